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
  EntityClustersResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';

/** Options of reads: `refresh` bypasses the backend's short cache. @public */
export interface FluxBootstrapReadOptions {
  refresh?: boolean;
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
  /** The configured clusters, optionally with their status. */
  listClusters(
    options?: FluxBootstrapReadOptions & { state?: boolean },
  ): Promise<ClusterListResponse>;
  /**
   * Which credentials each `integrations.bitbucketServer` host has (never their value), and
   * whether `scaffolder.requireScmUserCredentials` is on.
   */
  getBitbucketServerIntegrations(): Promise<BitbucketServerIntegrationsResponse>;
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
    options?: FluxBootstrapReadOptions & { state?: boolean },
  ): Promise<ClusterListResponse> {
    return this.get('/clusters', {
      state: options?.state,
      refresh: options?.refresh,
    });
  }

  async getBitbucketServerIntegrations(): Promise<BitbucketServerIntegrationsResponse> {
    return this.get('/integrations/bitbucket-server', {});
  }

  private async get<T>(
    path: string,
    query: Record<string, boolean | undefined>,
  ): Promise<T> {
    const baseUrl = await this.discoveryApi.getBaseUrl('flux-bootstrap');
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v) params.set(k, 'true');
    const qs = params.toString();
    const response = await this.fetchApi.fetch(
      `${baseUrl}${path}${qs ? `?${qs}` : ''}`,
    );
    if (!response.ok) throw await ResponseError.fromResponse(response);
    return (await response.json()) as T;
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
