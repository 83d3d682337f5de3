import { KubeConfig } from '@kubernetes/client-node';
import type { ClusterConnection } from '../config/clusters';
import {
  HttpClient,
  HttpError,
  type HttpResponse,
  type HttpTls,
} from '../http';
import type { EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import { kubeConfigFor } from './cluster';
import { KubeApiError, kindForStatus } from './errors';
import type {
  KubeAccessCheck,
  KubeClient,
  KubeObject,
  KubeObjectRef,
  KubeResourceInfo,
} from './types';

/** Options of {@link createKubeClient}. @public */
export interface KubeClientOptions {
  logger?: EngineLogger;
  /** One HTTP request, including reading the body. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** Retries of a failed call (5xx, 429, connection reset/refused, timeout). Default 4. */
  retries?: number;
  /** First retry delay; doubles per attempt, capped at 5 s. Default 250 ms. */
  retryBaseDelayMs?: number;
  /** Gets the cluster's credentials added, to mask them in errors and logs. */
  redactor?: Redactor;
  /** Parallel connections over HTTP/1.1. Default 16. */
  maxSockets?: number;
  /** Offer HTTP/2 to an HTTPS API server, as client-go does. Default true. */
  http2?: boolean;
}

interface Call {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** For messages: `apply Deployment flux-system/source-controller`. */
  what: string;
  /** Statuses returned instead of thrown. */
  accept?: number[];
  metadata?: 'PartialObjectMetadata' | 'PartialObjectMetadataList';
}

/** The options (argument `i`) of a {@link KubeClient} method. */
type Opts<M extends keyof KubeClient, I extends number> = NonNullable<
  Parameters<Extract<KubeClient[M], (...args: never[]) => unknown>>[I]
>;

const describeRef = (ref: { kind: string; name: string; namespace?: string }) =>
  `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;

const apiPrefix = (apiVersion: string) =>
  apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;

const json = <T>(res: HttpResponse) => JSON.parse(res.body.toString()) as T;

/**
 * Kinds the engine reads without discovery, as a typed client does (a server that does not serve
 * one answers 404: absent). Writes still go through discovery.
 */
const WELL_KNOWN = new Map<string, KubeResourceInfo>(
  [
    // apiVersions (comma-separated), kind, resource, scope
    'v1 Namespace namespaces Cluster',
    'v1 Secret secrets',
    'v1 ServiceAccount serviceaccounts',
    'v1 Service services',
    'v1 ConfigMap configmaps',
    'apps/v1 Deployment deployments',
    'apiextensions.k8s.io/v1 CustomResourceDefinition customresourcedefinitions Cluster',
    'source.toolkit.fluxcd.io/v1,source.toolkit.fluxcd.io/v1beta2 GitRepository gitrepositories',
    'source.toolkit.fluxcd.io/v1,source.toolkit.fluxcd.io/v1beta2 OCIRepository ocirepositories',
    'source.toolkit.fluxcd.io/v1,source.toolkit.fluxcd.io/v1beta2 Bucket buckets',
    'kustomize.toolkit.fluxcd.io/v1,kustomize.toolkit.fluxcd.io/v1beta2 Kustomization kustomizations',
    'fluxcd.controlplane.io/v1 FluxReport fluxreports',
  ].flatMap(line => {
    const [versions, kind, name, scope] = line.split(' ');
    const info = { name, kind, namespaced: scope !== 'Cluster', verbs: [] };
    return versions.split(',').map(v => [`${v}/${kind}`, info] as const);
  }),
);

/** Fields the server owns: in an apply they would be ignored or become a precondition. */
const SERVER_OWNED =
  'resourceVersion uid creationTimestamp managedFields generation selfLink deletionTimestamp deletionGracePeriodSeconds'.split(
    ' ',
  );

/**
 * Plain JSON calls on the engine's HTTP layer (no typed model drops a custom resource's field);
 * authentication and TLS from client-node's `KubeConfig.applyToHTTPSOptions`.
 */
class KubeClientImpl implements KubeClient {
  private readonly discovery = new Map<
    string,
    { at: number; promise: Promise<KubeResourceInfo[] | undefined> }
  >();

  constructor(
    readonly clusterName: string,
    private readonly base: URL,
    private readonly http: HttpClient,
    private readonly auth: () => Promise<Record<string, string>>,
    private readonly timeoutMs: number,
  ) {}

  private fail(
    what: string,
    detail: string,
    opts: ConstructorParameters<typeof KubeApiError>[1],
  ) {
    return new KubeApiError(
      this.http.redactor.redact(
        `Kubernetes API of cluster "${this.clusterName}": ${what} failed: ${detail}`,
      ),
      opts,
    );
  }

  private async call(c: Call): Promise<HttpResponse> {
    const url = new URL(this.base);
    url.pathname = `${this.base.pathname.replace(/\/+$/, '')}${c.path}`;
    for (const [k, v] of Object.entries(c.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, v);
    let res: HttpResponse;
    try {
      res = await this.http.request({
        method: c.method,
        url,
        what: `Kubernetes API of cluster "${this.clusterName}": ${c.what}`,
        signal: c.signal,
        // Every call here is safe to repeat: reads, server-side apply, delete, access reviews.
        idempotent: true,
        headers: {
          Accept: c.metadata
            ? `application/json;as=${c.metadata};g=meta.k8s.io;v=v1,application/json`
            : 'application/json',
          ...(c.body === undefined
            ? {}
            : { 'Content-Type': c.contentType ?? 'application/json' }),
          ...(await this.auth()),
        },
        body: c.body === undefined ? undefined : JSON.stringify(c.body),
      });
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      const server = `the API server at ${this.base.origin}`;
      const seconds = Math.round(this.timeoutMs / 1000);
      const tls = e.kind === 'tls';
      const hint = tls ? " — check the cluster's caData/caFile" : '';
      throw e.kind === 'timeout'
        ? this.fail(c.what, `${server} did not answer within ${seconds} s`, {
            kind: 'unreachable',
            reason: 'Timeout',
          })
        : this.fail(c.what, `cannot reach ${server}: ${e.detail}${hint}`, {
            kind: 'unreachable',
            reason: e.code ?? (tls ? 'TLS' : undefined),
          });
    }
    if (res.status < 300 || c.accept?.includes(res.status)) return res;
    const text = res.body.toString();
    let status: Partial<Pick<KubeApiError, 'message' | 'reason'>> & {
      details?: Pick<KubeApiError, 'causes'>;
    } = {};
    try {
      status = JSON.parse(text) ?? {};
    } catch {
      // not JSON (a proxy's HTML page, plain text)
    }
    let message =
      status.message?.trim() ||
      text
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, 300);
    if (res.status === 401) {
      message = `the API server rejected the credentials${
        message && message !== 'Unauthorized' ? ` (${message})` : ''
      } — check the cluster's serviceAccountToken`;
    }
    throw this.fail(
      c.what,
      `${message || 'no message'} (HTTP ${res.status} ${res.statusText})`,
      {
        kind: kindForStatus(res.status),
        status: res.status,
        reason: status.reason,
        causes: status.details?.causes,
      },
    );
  }

  async resourceFor(
    apiVersion: string,
    kind: string,
    opts: { signal?: AbortSignal; refresh?: boolean; forWhat?: string } = {},
  ): Promise<KubeResourceInfo | undefined> {
    const cached = this.discovery.get(apiVersion);
    if (cached && !opts.refresh) {
      const hit = (await cached.promise)?.find(r => r.kind === kind);
      // A kind may have appeared since (CRD just applied): look again, but not in a tight loop.
      if (hit || Date.now() - cached.at < 1_000) return hit;
    }
    const promise = this.call({
      method: 'GET',
      path: apiPrefix(apiVersion),
      signal: opts.signal,
      what: opts.forWhat
        ? `${opts.forWhat} (discovery of ${apiVersion})`
        : `discover the resources of ${apiVersion}`,
      accept: [404],
    }).then(res =>
      res.status === 404
        ? undefined
        : (json<{ resources?: KubeResourceInfo[] }>(res).resources ?? [])
            // subresources (deployments/status) are not kinds
            .filter(r => !r.name.includes('/')),
    );
    const entry = { at: Date.now(), promise };
    this.discovery.set(apiVersion, entry);
    promise.catch(() => {
      if (this.discovery.get(apiVersion) === entry)
        this.discovery.delete(apiVersion);
    });
    return (await promise)?.find(r => r.kind === kind);
  }

  /** The path of a kind (and name); `undefined` when not served (writes throw instead). */
  private async pathOf(
    ref: Omit<KubeObjectRef, 'name'> & { name?: string },
    what: string,
    signal: AbortSignal | undefined,
    verb: 'get' | 'list' | 'delete' | 'patch' | 'apply',
  ): Promise<{ path: string; res: KubeResourceInfo } | undefined> {
    const known = WELL_KNOWN.get(`${ref.apiVersion}/${ref.kind}`);
    const res =
      (verb === 'get' || verb === 'list') &&
      known &&
      !this.discovery.has(ref.apiVersion)
        ? known
        : await this.resourceFor(ref.apiVersion, ref.kind, {
            signal,
            forWhat: what,
          });
    if (!res && (verb === 'patch' || verb === 'apply')) {
      throw this.fail(
        what,
        `the API server does not serve kind ${ref.kind} in ${ref.apiVersion} (is its CustomResourceDefinition installed?)`,
        { kind: 'not-found', reason: 'NoKindMatch' },
      );
    }
    if (!res) return undefined;
    let path = apiPrefix(ref.apiVersion);
    if (res.namespaced && ref.namespace)
      path += `/namespaces/${encodeURIComponent(ref.namespace)}`;
    else if (res.namespaced && ref.name) {
      throw this.fail(
        what,
        `${ref.kind} is namespaced but no namespace was given`,
        { kind: 'invalid', reason: 'NamespaceRequired' },
      );
    }
    path += `/${res.name}${ref.name ? `/${encodeURIComponent(ref.name)}` : ''}`;
    return { path, res };
  }

  /** A call on an object or kind; `undefined` when it or its kind does not exist. */
  private async onObject(
    ref: Omit<KubeObjectRef, 'name'> & { name?: string },
    verb: 'get' | 'list' | 'patch' | 'delete',
    c: Omit<Call, 'path' | 'what'>,
    what = `${verb} ${describeRef(ref as KubeObjectRef)}`,
  ): Promise<HttpResponse | undefined> {
    const target = await this.pathOf(ref, what, c.signal, verb);
    const res =
      target &&
      (await this.call({ ...c, path: target.path, what, accept: [404] }));
    return res?.status === 404 ? undefined : res;
  }

  async get<T extends KubeObject = KubeObject>(
    ref: KubeObjectRef,
    opts: Opts<'get', 1> = {},
  ): Promise<T | undefined> {
    const res = await this.onObject(ref, 'get', {
      method: 'GET',
      signal: opts.signal,
      metadata: opts.metadataOnly ? 'PartialObjectMetadata' : undefined,
    });
    const obj = res && json<T>(res);
    return obj && opts.metadataOnly
      ? { ...obj, apiVersion: ref.apiVersion, kind: ref.kind }
      : obj;
  }

  async list<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
    opts: Opts<'list', 2> = {},
  ): Promise<T[]> {
    const { namespace, labelSelector } = opts;
    const what = `list ${kind}${namespace ? ` in namespace ${namespace}` : ''}${
      labelSelector ? ` with labels ${labelSelector}` : ''
    }`;
    const ref = { apiVersion, kind, namespace };
    const items: T[] = [];
    let cont: string | undefined;
    do {
      const res = await this.onObject(
        ref,
        'list',
        {
          method: 'GET',
          query: { labelSelector, limit: '500', continue: cont },
          signal: opts.signal,
          metadata: opts.metadataOnly ? 'PartialObjectMetadataList' : undefined,
        },
        what,
      );
      if (!res) return [];
      const page = json<{ items?: T[]; metadata?: { continue?: string } }>(res);
      for (const item of page.items ?? [])
        items.push({ ...item, apiVersion, kind });
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return items;
  }

  async apply<T extends KubeObject = KubeObject>(
    obj: KubeObject,
    opts: Opts<'apply', 1>,
  ): Promise<T> {
    const name = obj?.metadata?.name;
    const what = `apply ${describeRef({
      kind: obj?.kind ?? '?',
      name: name ?? '?',
      namespace: obj?.metadata?.namespace,
    })}`;
    if (!obj?.apiVersion || !obj.kind || !name) {
      throw this.fail(
        what,
        'the object needs apiVersion, kind and metadata.name',
        { kind: 'invalid', reason: 'Invalid' },
      );
    }
    const ref = { ...obj, name, namespace: obj.metadata.namespace };
    const target = (await this.pathOf(ref, what, opts.signal, 'apply'))!;
    const { status: _status, ...body } = obj;
    const metadata: Record<string, unknown> = { ...obj.metadata };
    for (const k of SERVER_OWNED) delete metadata[k];
    if (!target.res.namespaced) delete metadata.namespace;
    const res = await this.call({
      method: 'PATCH',
      path: target.path,
      query: {
        fieldManager: opts.fieldManager,
        force: opts.force ? 'true' : undefined,
        dryRun: opts.dryRun ? 'All' : undefined,
      },
      // JSON is YAML; the API server parses apply patches as YAML.
      body: { ...body, metadata },
      contentType: 'application/apply-patch+yaml',
      signal: opts.signal,
      what,
    });
    return json<T>(res);
  }

  async patch<T extends KubeObject = KubeObject>(
    ref: KubeObjectRef,
    patch: Record<string, unknown>,
    opts: Opts<'patch', 2>,
  ): Promise<T | undefined> {
    const res = await this.onObject(ref, 'patch', {
      method: 'PATCH',
      query: { fieldManager: opts.fieldManager },
      // JSON merge patch (RFC 7386): the same patch twice gives the same object.
      body: patch,
      contentType: 'application/merge-patch+json',
      signal: opts.signal,
    });
    return res && json<T>(res);
  }

  async delete(
    ref: KubeObjectRef,
    opts: Opts<'delete', 1> = {},
  ): Promise<boolean> {
    const res = await this.onObject(ref, 'delete', {
      method: 'DELETE',
      query: { propagationPolicy: opts.propagationPolicy ?? 'Background' },
      signal: opts.signal,
    });
    return res !== undefined;
  }

  async canI(
    checks: KubeAccessCheck[],
    opts: Opts<'canI', 1> = {},
  ): Promise<{ allowed: boolean; reason?: string }[]> {
    // In parallel: one HTTP/2 connection, or the client's HTTP/1.1 connections.
    return Promise.all(
      checks.map(async ({ verb, group, resource, namespace, name }) => {
        const res = await this.call({
          method: 'POST',
          path: '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: {
              resourceAttributes: { verb, group, resource, namespace, name },
            },
          },
          signal: opts.signal,
          what: `review access "${verb} ${resource}${
            group ? `.${group}` : ''
          }"${namespace ? ` in namespace ${namespace}` : ''}`,
        });
        const { status } = json<{
          status?: {
            allowed?: boolean;
            reason?: string;
            evaluationError?: string;
          };
        }>(res);
        return {
          allowed: status?.allowed === true,
          reason: status?.reason || status?.evaluationError || undefined,
        };
      }),
    );
  }

  async ensureNamespace(
    name: string,
    opts: Opts<'ensureNamespace', 1>,
  ): Promise<void> {
    const existing = await this.get(
      { apiVersion: 'v1', kind: 'Namespace', name },
      opts,
    );
    if ((existing?.status as { phase?: string })?.phase === 'Terminating') {
      throw this.fail(
        `use Namespace ${name}`,
        'the namespace is being deleted (phase Terminating); wait until it is gone or choose another namespace',
        { kind: 'conflict', reason: 'NamespaceTerminating' },
      );
    }
    // Created by apply so the field manager is recorded; an existing namespace is never modified
    // (an apply with fewer fields would drop labels this manager set earlier).
    if (!existing) {
      await this.apply(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
        opts,
      );
    }
  }

  async version(opts: Opts<'version', 0> = {}) {
    const res = await this.call({
      method: 'GET',
      path: '/version',
      signal: opts.signal,
      what: 'read the server version',
    });
    return json<{ gitVersion: string; major: string; minor: string }>(res);
  }

  /** The HTTP layer pools connections (shared per TLS material); they close when idle. */
  close(): void {}
}

/** Headers and TLS of the kubeconfig's current context, as client-node applies them. */
async function credentials(kc: KubeConfig) {
  const o: {
    headers?: Record<string, unknown>;
    auth?: string;
  } & HttpTls = {};
  await kc.applyToHTTPSOptions(
    o as Parameters<KubeConfig['applyToHTTPSOptions']>[0],
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.headers ?? {}))
    if (v !== undefined) headers[k] = [v].flat().join(', ');
  if (o.auth)
    headers.Authorization = `Basic ${Buffer.from(o.auth).toString('base64')}`;
  const { ca, cert, key, rejectUnauthorized, servername } = o;
  return { headers, tls: { ca, cert, key, rejectUnauthorized, servername } };
}

/** Creates a client for one cluster. Sends nothing until the first call. @public */
export async function createKubeClient(
  conn: ClusterConnection,
  opts: KubeClientOptions = {},
): Promise<KubeClient> {
  if (!URL.canParse(conn.url))
    throw new KubeApiError(
      `Kubernetes cluster "${conn.name}": invalid url "${conn.url}"`,
      { kind: 'invalid', reason: 'InvalidURL' },
    );
  const base = new URL(conn.url);
  const kc = kubeConfigFor(conn);
  const user = kc.getCurrentUser();
  const first = await credentials(kc);
  const redactor = (opts.redactor ?? new Redactor())
    .add(conn.token)
    .add(conn.clientKeyPem);
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const http = new HttpClient({
    tls: first.tls,
    http2: opts.http2 !== false && base.protocol === 'https:',
    proxyUrl: kc.getCurrentCluster()?.proxyUrl,
    connections: opts.maxSockets ?? 16,
    maxResponseBytes: Infinity, // lists of large CRDs; the API server pages them
    timeoutMs,
    retries: opts.retries ?? 4,
    baseDelayMs: opts.retryBaseDelayMs ?? 250,
    maxDelayMs: 5_000,
    logger: opts.logger,
    redactor,
    userAgent: 'backstage-flux-bootstrap',
  });
  // Exec plugins and auth providers refresh their tokens: ask client-node on every request.
  const dynamic = Boolean(user?.exec || user?.authProvider);
  const secretOf = (h: Record<string, string>) =>
    redactor.add(h.Authorization?.replace(/^\S+ /, ''));
  secretOf(first.headers);
  redactor.add(first.tls.key?.toString()); // a client key from the kubeconfig
  const auth = async () => {
    if (!dynamic) return first.headers;
    const { headers } = await credentials(kc);
    secretOf(headers);
    return headers;
  };
  return new KubeClientImpl(conn.name, base, http, auth, timeoutMs);
}
