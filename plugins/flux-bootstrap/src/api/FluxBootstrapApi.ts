import {
  ApiHolder,
  createApiRef,
  DiscoveryApi,
  discoveryApiRef,
  FetchApi,
  fetchApiRef,
} from '@backstage/frontend-plugin-api';
import type { CompoundEntityRef } from '@backstage/catalog-model';
import { ResponseError } from '@backstage/errors';
import type {
  BitbucketServerIntegrationsResponse,
  ClusterBootstrapStatus,
  ClusterListResponse,
  ClusterStreamLine,
  EntityClustersResponse,
  OperateClusterAction,
  OperateClusterRequest,
  OperateClusterResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';

/** Options of reads: `refresh` bypasses the backend's short cache. @public */
export interface FluxBootstrapReadOptions {
  refresh?: boolean;
}

/** Options of {@link FluxBootstrapApi.streamClusters}. @public */
export interface FluxBootstrapStreamOptions extends FluxBootstrapReadOptions {
  /** Stops reading (and closes the request) when it fires, e.g. when the page unmounts. */
  signal?: AbortSignal;
  /** Called for each line as it arrives: first the cluster list, then one status per cluster. */
  onLine: (line: ClusterStreamLine) => void;
}

/** Client of the Flux bootstrap status backend (`/api/flux-bootstrap`). @public */
export interface FluxBootstrapApi {
  /** The status of every cluster the entity shows. */
  getEntityClusters(
    entityRef: CompoundEntityRef,
    options?: FluxBootstrapReadOptions,
  ): Promise<EntityClustersResponse>;
  /** One configured cluster's status. */
  getCluster(
    name: string,
    options?: FluxBootstrapReadOptions,
  ): Promise<ClusterBootstrapStatus>;
  /**
   * The configured clusters, optionally with their status and whether their Kubernetes suits
   * `fluxVersion` (default the configured Flux version).
   */
  listClusters(
    options?: FluxBootstrapReadOptions & {
      state?: boolean;
      fluxVersion?: string;
    },
  ): Promise<ClusterListResponse>;
  /**
   * Which credentials each `integrations.bitbucketServer` host has (never their value), and
   * whether `scaffolder.requireScmUserCredentials` is on.
   */
  getBitbucketServerIntegrations(): Promise<BitbucketServerIntegrationsResponse>;
  /**
   * Every configured cluster's status as each read finishes (`GET /clusters/stream`, NDJSON):
   * resolves when the stream ends, rejects with a `ResponseError` when the backend refuses it and
   * with an `AbortError` when `signal` fires.
   */
  streamClusters(options: FluxBootstrapStreamOptions): Promise<void>;
  /**
   * Reconcile now, suspend (a `reason` is required) or resume a cluster's Flux sync
   * (`POST /clusters/:cluster/:action`); needs `flux.bootstrap.cluster.operate`. Rejects with
   * the backend's `ResponseError` (403 names the missing permission).
   */
  operateCluster(
    cluster: string,
    action: OperateClusterAction,
    request?: OperateClusterRequest,
  ): Promise<OperateClusterResponse>;
}

/** API ref of {@link FluxBootstrapApi}, shared by the legacy and the new frontend system. @public */
export const fluxBootstrapApiRef = createApiRef<FluxBootstrapApi>().with({
  id: 'plugin.flux-bootstrap.service',
  pluginId: 'flux-bootstrap',
});

/** {@link FluxBootstrapApi} over HTTP, with the signed-in user's token (fetchApi). @public */
export class FluxBootstrapClient implements FluxBootstrapApi {
  private readonly discoveryApi: DiscoveryApi;
  private readonly fetchApi: FetchApi;

  constructor(options: { discoveryApi: DiscoveryApi; fetchApi: FetchApi }) {
    this.discoveryApi = options.discoveryApi;
    this.fetchApi = options.fetchApi;
  }

  async getEntityClusters(
    entityRef: CompoundEntityRef,
    options?: FluxBootstrapReadOptions,
  ): Promise<EntityClustersResponse> {
    const path = ['entity', entityRef.kind, entityRef.namespace, entityRef.name]
      .map(encodeURIComponent)
      .join('/');
    return this.get(`/${path}/clusters`, { refresh: options?.refresh });
  }

  async getCluster(
    name: string,
    options?: FluxBootstrapReadOptions,
  ): Promise<ClusterBootstrapStatus> {
    return this.get(`/clusters/${encodeURIComponent(name)}`, {
      refresh: options?.refresh,
    });
  }

  async listClusters(
    options?: FluxBootstrapReadOptions & {
      state?: boolean;
      fluxVersion?: string;
    },
  ): Promise<ClusterListResponse> {
    return this.get('/clusters', {
      state: options?.state,
      refresh: options?.refresh,
      fluxVersion: options?.fluxVersion,
    });
  }

  async getBitbucketServerIntegrations(): Promise<BitbucketServerIntegrationsResponse> {
    return this.get('/integrations/bitbucket-server', {});
  }

  async streamClusters(options: FluxBootstrapStreamOptions): Promise<void> {
    const baseUrl = await this.discoveryApi.getBaseUrl('flux-bootstrap');
    const response = await this.fetchApi.fetch(
      `${baseUrl}/clusters/stream${options.refresh ? '?refresh=true' : ''}`,
      { signal: options.signal, headers: { accept: 'application/x-ndjson' } },
    );
    if (!response.ok) throw await ResponseError.fromResponse(response);
    await readNdjson(response, options.onLine, options.signal);
  }

  async operateCluster(
    cluster: string,
    action: OperateClusterAction,
    request: OperateClusterRequest = {},
  ): Promise<OperateClusterResponse> {
    const baseUrl = await this.discoveryApi.getBaseUrl('flux-bootstrap');
    const response = await this.fetchApi.fetch(
      `${baseUrl}/clusters/${encodeURIComponent(cluster)}/${encodeURIComponent(
        action,
      )}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      },
    );
    if (!response.ok) throw await ResponseError.fromResponse(response);
    return (await response.json()) as OperateClusterResponse;
  }

  private async get<T>(
    path: string,
    query: Record<string, boolean | string | undefined>,
  ): Promise<T> {
    const baseUrl = await this.discoveryApi.getBaseUrl('flux-bootstrap');
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query))
      if (v) params.set(k, v === true ? 'true' : v);
    const qs = params.toString();
    const response = await this.fetchApi.fetch(
      `${baseUrl}${path}${qs ? `?${qs}` : ''}`,
    );
    if (!response.ok) throw await ResponseError.fromResponse(response);
    return (await response.json()) as T;
  }
}

/**
 * Reads an NDJSON body line by line as it arrives (a body without a stream reader, as in some
 * test environments, is read whole). Blank lines are skipped; a line that is not JSON fails.
 */
export async function readNdjson(
  response: Response,
  onLine: (line: ClusterStreamLine) => void,
  signal?: AbortSignal,
): Promise<void> {
  const emit = (text: string) => {
    const trimmed = text.trim();
    if (trimmed) onLine(JSON.parse(trimmed) as ClusterStreamLine);
  };
  const reader = response.body?.getReader?.();
  if (!reader) {
    for (const line of (await response.text()).split('\n')) emit(line);
    return;
  }
  const onAbort = () => {
    reader.cancel().catch(() => {});
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for (;;) {
      if (signal?.aborted) {
        throw signal.reason instanceof Error
          ? signal.reason
          : new DOMException('The stream was aborted', 'AbortError');
      }
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        emit(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
    }
    emit(buffered + decoder.decode());
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The plugin's API when the app has it; otherwise the same client over the core discovery and
 * fetch APIs. Scaffolder field extensions bring no plugin APIs along, so a legacy app that
 * installs only the form fields has no {@link fluxBootstrapApiRef}.
 */
export function fluxBootstrapApiFrom(apiHolder: ApiHolder): FluxBootstrapApi {
  const own = apiHolder.get(fluxBootstrapApiRef);
  if (own) return own;
  const discoveryApi = apiHolder.get(discoveryApiRef);
  const fetchApi = apiHolder.get(fetchApiRef);
  if (!discoveryApi || !fetchApi) {
    throw new Error('The app has no discovery or fetch API');
  }
  return new FluxBootstrapClient({ discoveryApi, fetchApi });
}
