import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import type { ClusterConnection } from '../config/clusters';
import { combineSignals, mapLimit, retry } from '../util/async';
import { isTransientNetworkCode, OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import { isKubeconfigConnection, loadDefaultKubeConfig } from './cluster';
import { describeNetworkError, KubeApiError, kindForStatus } from './errors';
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
  /** Time one HTTP request may take, including reading the body. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** Retries of a failed idempotent call (5xx, 429, connection reset/refused, request timeout). Default 4. */
  retries?: number;
  /** First retry delay; doubles per attempt, capped at 5 s. Default 250 ms. */
  retryBaseDelayMs?: number;
  /** Redactor the client adds the cluster's credentials to; its values are masked in every error and log line. */
  redactor?: Redactor;
  /** Parallel connections to the API server over HTTP/1.1. Default 16. */
  maxSockets?: number;
  /**
   * Talk HTTP/2 to an HTTPS API server that offers it (as client-go does): every request of the
   * client shares one TLS connection, so parallel requests cost no extra handshakes. Falls back to
   * HTTP/1.1 when the server (or a proxy in front of it) does not negotiate h2, and when a
   * kubeconfig proxy is configured. Default true.
   */
  http2?: boolean;
}

/** HTTP/2 receive window per stream (the connection's is 4× that). */
const H2_WINDOW_BYTES = 4 * 1024 * 1024;

/** TLS material of the connection (from the kubeconfig / cluster config). */
interface TlsSettings {
  ca?: string | Buffer | (string | Buffer)[];
  cert?: string | Buffer | (string | Buffer)[];
  key?: string | Buffer | (string | Buffer)[];
  servername?: string;
  rejectUnauthorized: boolean;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

interface CallSpec {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | undefined>;
  body?: string;
  contentType?: string;
  signal?: AbortSignal;
  /** What is being done, for messages: `apply Deployment flux-system/source-controller`. */
  what: string;
  /** Statuses that are returned instead of thrown. */
  accept?: number[];
  /** Accept header (default `application/json`). */
  acceptHeader?: string;
}

/** Internal marker carried by retryable errors. */
const RETRY_AFTER = Symbol('retryAfterMs');
const TRANSIENT = Symbol('transient');

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function describeRef(ref: { kind: string; name: string; namespace?: string }) {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

function apiPrefix(apiVersion: string): string {
  return apiVersion.includes('/')
    ? `/apis/${apiVersion}`
    : `/api/${apiVersion}`;
}

function parseRetryAfter(
  value: string | string[] | undefined,
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(v);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

/**
 * Resources of kinds the engine reads, as every API server serves them (built-in kinds) or as
 * their CRDs name them (Flux): reads of these need no discovery request first, as with a typed
 * client. A server that does not serve one answers 404, which a read reports as absent, the same
 * as a discovery miss. Writes still go through discovery (its "is the CRD installed?" error).
 */
const WELL_KNOWN_RESOURCES: Record<string, KubeResourceInfo> = (() => {
  const table: Record<string, KubeResourceInfo> = {};
  const add = (
    apiVersions: string[],
    kind: string,
    name: string,
    namespaced: boolean,
  ) => {
    for (const apiVersion of apiVersions)
      table[`${apiVersion}\0${kind}`] = { name, namespaced, kind, verbs: [] };
  };
  add(['v1'], 'Namespace', 'namespaces', false);
  add(['v1'], 'Secret', 'secrets', true);
  add(['v1'], 'ServiceAccount', 'serviceaccounts', true);
  add(['v1'], 'Service', 'services', true);
  add(['v1'], 'ConfigMap', 'configmaps', true);
  add(['apps/v1'], 'Deployment', 'deployments', true);
  add(
    ['apiextensions.k8s.io/v1'],
    'CustomResourceDefinition',
    'customresourcedefinitions',
    false,
  );
  const source = [
    'source.toolkit.fluxcd.io/v1',
    'source.toolkit.fluxcd.io/v1beta2',
  ];
  add(source, 'GitRepository', 'gitrepositories', true);
  add(source, 'OCIRepository', 'ocirepositories', true);
  add(source, 'Bucket', 'buckets', true);
  add(
    ['kustomize.toolkit.fluxcd.io/v1', 'kustomize.toolkit.fluxcd.io/v1beta2'],
    'Kustomization',
    'kustomizations',
    true,
  );
  add(['fluxcd.controlplane.io/v1'], 'FluxReport', 'fluxreports', true);
  return table;
})();

/** Accept header of a metadata-only answer (meta.k8s.io/v1, Kubernetes ≥ 1.15), JSON as fallback. */
function metadataAccept(
  kind: 'PartialObjectMetadata' | 'PartialObjectMetadataList',
) {
  return `application/json;as=${kind};g=meta.k8s.io;v=v1,application/json`;
}

/**
 * Fields the server owns; sending them in an apply would either be ignored or turn into a
 * precondition (resourceVersion), so they are stripped.
 */
function applyBody(obj: KubeObject, namespaced: boolean): KubeObject {
  const copy = JSON.parse(JSON.stringify(obj)) as KubeObject;
  const meta = copy.metadata as Record<string, unknown>;
  for (const k of [
    'resourceVersion',
    'uid',
    'creationTimestamp',
    'managedFields',
    'generation',
    'selfLink',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
  ]) {
    delete meta[k];
  }
  if (!namespaced) delete meta.namespace;
  delete copy.status;
  return copy;
}

/**
 * The engine's Kubernetes client.
 *
 * Authentication, CA, client certificates, skipTLSVerify, proxies and kubeconfig exec/auth-provider
 * plugins come from `@kubernetes/client-node`'s `KubeConfig` (`applyToHTTPSOptions`). Requests go
 * through node's http(s) with a keep-alive agent built from that TLS material, because the
 * library's `KubernetesObjectApi` in 1.4.0 (a) cannot take an AbortSignal or timeout per call
 * (per-call `Configuration` middleware is ignored), (b) builds a new TLS agent for every request,
 * and (c) round-trips bodies through its typed model serializer, which drops fields it does not
 * know — none of which suits server-side apply of CRDs and custom resources.
 */
class KubeClientImpl implements KubeClient {
  readonly clusterName: string;
  private readonly baseUrl: URL;
  private readonly logger: EngineLogger;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly redactor: Redactor;
  private readonly discovery = new Map<
    string,
    { at: number; promise: Promise<KubeResourceInfo[] | undefined> }
  >();

  /** HTTP/2: the shared session, the connection being made, or off (h1 only). */
  private h2Enabled: boolean;
  private h2Session?: http2.ClientHttp2Session;
  private h2Connecting?: Promise<http2.ClientHttp2Session | undefined>;
  private h2Socket?: tls.TLSSocket;
  private closed = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly agent: http.Agent,
    private readonly staticHeaders: Record<string, string> | undefined,
    conn: ClusterConnection,
    opts: KubeClientOptions,
    private readonly tlsSettings?: TlsSettings,
  ) {
    this.h2Enabled = !!tlsSettings;
    this.clusterName = conn.name;
    this.baseUrl = new URL(conn.url.replace(/\/+$/, ''));
    this.logger = opts.logger ?? silentLogger;
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.retries = opts.retries ?? 4;
    this.retryBaseDelayMs = opts.retryBaseDelayMs ?? 250;
    this.redactor = opts.redactor ?? new Redactor();
    this.redactor.add(conn.token).add(conn.clientKeyPem);
  }

  // ---------------------------------------------------------------- transport

  private async authHeaders(): Promise<Record<string, string>> {
    if (this.staticHeaders) return this.staticHeaders;
    // Exec plugins / auth providers: ask client-node each time (it caches and refreshes tokens).
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v !== undefined)
        headers[k] = Array.isArray(v) ? v.join(', ') : String(v);
    }
    if (opts.auth) {
      headers.Authorization = `Basic ${Buffer.from(opts.auth).toString(
        'base64',
      )}`;
    }
    return headers;
  }

  private urlFor(
    path: string,
    query?: Record<string, string | undefined>,
  ): URL {
    const prefix = this.baseUrl.pathname.replace(/\/+$/, '');
    const url = new URL(this.baseUrl.toString());
    url.pathname = `${prefix}${path}`;
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, v);
    }
    return url;
  }

  private message(spec: CallSpec, detail: string): string {
    return this.redactor.redact(
      `Kubernetes API of cluster "${this.clusterName}": ${spec.what} failed: ${detail}`,
    );
  }

  /** One HTTP exchange; network failures become KubeApiError(unreachable), abort → OperationAbortedError. */
  private async sendOnce(spec: CallSpec): Promise<RawResponse> {
    const url = this.urlFor(spec.path, spec.query);
    const headers: Record<string, string> = {
      Accept: spec.acceptHeader ?? 'application/json',
      'User-Agent': 'backstage-flux-bootstrap',
      ...(await this.authHeaders()),
    };
    if (spec.body !== undefined) {
      headers['Content-Type'] = spec.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(spec.body));
    }
    const combined = combineSignals([spec.signal], this.timeoutMs);
    const mod = url.protocol === 'http:' ? http : https;
    try {
      const session = await this.http2Session(combined.signal);
      if (session)
        return await this.sendHttp2(session, spec, url, headers, combined);
      return await new Promise<RawResponse>((resolve, reject) => {
        if (combined.signal.aborted) {
          reject(combined.signal.reason);
          return;
        }
        const req = mod.request(
          url,
          { method: spec.method, headers, agent: this.agent },
          res => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                headers: res.headers,
                text: Buffer.concat(chunks).toString('utf8'),
              }),
            );
            res.on('error', reject);
            res.on('aborted', () =>
              reject(
                Object.assign(new Error('response aborted'), {
                  code: 'ECONNRESET',
                }),
              ),
            );
          },
        );
        // Release the caller at once on abort/timeout, whatever state the socket is in.
        const onAbort = () => {
          req.destroy();
          reject(combined.signal.reason ?? new Error('aborted'));
        };
        combined.signal.addEventListener('abort', onAbort, { once: true });
        req.on('close', () =>
          combined.signal.removeEventListener('abort', onAbort),
        );
        req.on('error', reject);
        if (spec.body !== undefined) req.write(spec.body);
        req.end();
      });
    } catch (error) {
      if (spec.signal?.aborted) {
        throw new OperationAbortedError(
          `Cancelled while waiting for the Kubernetes API of cluster "${this.clusterName}" (${spec.what})`,
        );
      }
      if (combined.timedOut()) {
        throw Object.assign(
          new KubeApiError(
            this.message(
              spec,
              `the API server at ${
                this.baseUrl.origin
              } did not answer within ${Math.round(this.timeoutMs / 1000)} s`,
            ),
            { kind: 'unreachable', reason: 'Timeout' },
          ),
          { [TRANSIENT]: true },
        );
      }
      const cause = describeNetworkError(error);
      throw Object.assign(
        new KubeApiError(
          this.message(
            spec,
            `cannot reach the API server at ${this.baseUrl.origin}: ${cause.text}`,
          ),
          {
            kind: 'unreachable',
            reason: cause.code ?? (cause.tls ? 'TLS' : undefined),
          },
        ),
        {
          [TRANSIENT]:
            !cause.tls &&
            (isTransientNetworkCode(cause.code) ||
              // the shared HTTP/2 connection went away under the request: a new one is made
              !!cause.code?.startsWith('ERR_HTTP2')),
        },
      );
    } finally {
      combined.dispose();
    }
  }

  /**
   * The shared HTTP/2 session, connected on first use: one TLS connection offering h2 and
   * http/1.1 (ALPN). When the server picks HTTP/1.1 the client stays on HTTP/1.1 from then on.
   * The caller's signal only stops its own wait; the connection attempt has the client's
   * request timeout.
   */
  private async http2Session(
    signal: AbortSignal,
  ): Promise<http2.ClientHttp2Session | undefined> {
    if (!this.h2Enabled || this.closed) return undefined;
    const current = this.h2Session;
    if (current && !current.closed && !current.destroyed) return current;
    this.h2Connecting ??= this.connectHttp2().finally(() => {
      this.h2Connecting = undefined;
    });
    const connecting = this.h2Connecting;
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      connecting.then(
        value => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        error => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  private connectHttp2(): Promise<http2.ClientHttp2Session | undefined> {
    const settings = this.tlsSettings!;
    const host = this.baseUrl.hostname.replace(/^\[|\]$/g, '');
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host,
        port: Number(this.baseUrl.port || 443),
        servername: settings.servername ?? (net.isIP(host) ? undefined : host),
        ca: settings.ca,
        cert: settings.cert,
        key: settings.key,
        rejectUnauthorized: settings.rejectUnauthorized,
        ALPNProtocols: ['h2', 'http/1.1'],
      });
      this.h2Socket = socket;
      const timer = setTimeout(
        () =>
          socket.destroy(
            Object.assign(
              new Error(
                `no TLS handshake within ${Math.round(
                  this.timeoutMs / 1000,
                )} s`,
              ),
              { code: 'ETIMEDOUT' },
            ),
          ),
        this.timeoutMs,
      );
      const done = () => {
        clearTimeout(timer);
        if (this.h2Socket === socket) this.h2Socket = undefined;
      };
      socket.once('error', error => {
        done();
        reject(error);
      });
      socket.once('secureConnect', () => {
        done();
        if (this.closed) {
          socket.destroy();
          resolve(undefined);
          return;
        }
        if (socket.alpnProtocol !== 'h2') {
          // HTTP/1.1 only (or a TLS-terminating proxy in between): use the agent from now on.
          this.h2Enabled = false;
          socket.destroy();
          resolve(undefined);
          return;
        }
        const session = http2.connect(this.baseUrl.origin, {
          createConnection: () => socket,
          // Large answers (CRDs with their managed fields) in few round trips: 4 MiB windows
          // instead of HTTP/2's default 64 KiB.
          settings: { initialWindowSize: H2_WINDOW_BYTES },
        });
        session.once('connect', () => {
          try {
            session.setLocalWindowSize(H2_WINDOW_BYTES * 4);
          } catch {
            // an older peer: the default window works, only slower
          }
        });
        const forget = () => {
          if (this.h2Session === session) this.h2Session = undefined;
        };
        session.on('error', forget); // the requests on it fail on their own
        session.on('goaway', forget);
        session.on('close', forget);
        session.unref(); // like idle keep-alive sockets: does not hold the process open
        this.h2Session = session;
        resolve(session);
      });
    });
  }

  /** One request on the HTTP/2 session; same contract as the HTTP/1.1 path. */
  private sendHttp2(
    session: http2.ClientHttp2Session,
    spec: CallSpec,
    url: URL,
    headers: Record<string, string>,
    combined: ReturnType<typeof combineSignals>,
  ): Promise<RawResponse> {
    return new Promise<RawResponse>((resolve, reject) => {
      if (combined.signal.aborted) {
        reject(combined.signal.reason);
        return;
      }
      const h2headers: http2.OutgoingHttpHeaders = {
        ':method': spec.method,
        ':path': `${url.pathname}${url.search}`,
      };
      for (const [k, v] of Object.entries(headers))
        h2headers[k.toLowerCase()] = v;
      let req: http2.ClientHttp2Stream;
      try {
        req = session.request(h2headers, {
          endStream: spec.body === undefined,
        });
      } catch (error) {
        reject(error);
        return;
      }
      let status = 0;
      let responseHeaders: http.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      const onAbort = () => {
        req.close(http2.constants.NGHTTP2_CANCEL);
        // A request that timed out may sit on a dead connection: start over on a new one.
        if (combined.timedOut() && !spec.signal?.aborted) session.destroy();
        reject(combined.signal.reason ?? new Error('aborted'));
      };
      combined.signal.addEventListener('abort', onAbort, { once: true });
      req.on('close', () =>
        combined.signal.removeEventListener('abort', onAbort),
      );
      req.on('response', h => {
        status = Number(h[':status'] ?? 0);
        const { ':status': _status, ...rest } = h;
        responseHeaders = rest as http.IncomingHttpHeaders;
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () =>
        resolve({
          status,
          headers: responseHeaders,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      req.on('error', reject);
      if (spec.body !== undefined) req.end(spec.body);
    });
  }

  private errorFromResponse(spec: CallSpec, res: RawResponse): KubeApiError {
    let status: {
      message?: string;
      reason?: string;
      details?: {
        causes?: { field?: string; message?: string; reason?: string }[];
      };
    } = {};
    try {
      const parsed = JSON.parse(res.text);
      if (parsed && typeof parsed === 'object') status = parsed;
    } catch {
      // not JSON (a proxy's HTML page, plain text)
    }
    const httpText = `HTTP ${res.status}${
      STATUS_TEXT[res.status] ? ` ${STATUS_TEXT[res.status]}` : ''
    }`;
    let apiMessage =
      status.message?.trim() ||
      res.text
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, 300);
    if (res.status === 401) {
      apiMessage = `the API server rejected the credentials${
        apiMessage && apiMessage !== 'Unauthorized' ? ` (${apiMessage})` : ''
      } — check the cluster's serviceAccountToken`;
    }
    const err = new KubeApiError(
      this.message(spec, `${apiMessage || 'no message'} (${httpText})`),
      {
        kind: kindForStatus(res.status),
        status: res.status,
        reason: status.reason,
        causes: status.details?.causes,
      },
    );
    const transient =
      res.status === 429 || (res.status >= 500 && res.status !== 501);
    return Object.assign(err, {
      [TRANSIENT]: transient,
      [RETRY_AFTER]: parseRetryAfter(res.headers['retry-after']),
    });
  }

  /** An idempotent call with bounded retries on transient failures. */
  private async call(spec: CallSpec): Promise<RawResponse> {
    return retry(
      async () => {
        const res = await this.sendOnce(spec);
        if (
          (res.status >= 200 && res.status < 300) ||
          spec.accept?.includes(res.status)
        ) {
          return res;
        }
        throw this.errorFromResponse(spec, res);
      },
      {
        retries: this.retries,
        baseDelayMs: this.retryBaseDelayMs,
        maxDelayMs: 5_000,
        signal: spec.signal,
        shouldRetry: error => {
          const e = error as Record<symbol, unknown>;
          if (!e || !e[TRANSIENT]) return false;
          const after = e[RETRY_AFTER];
          return typeof after === 'number' ? { delayMs: after } : true;
        },
        onRetry: (error, attempt, delayMs) => {
          this.logger.warn(
            `${
              (error as Error).message
            }; retrying in ${delayMs} ms (retry ${attempt} of ${this.retries})`,
          );
        },
      },
    ).catch(error => {
      if (
        error instanceof OperationAbortedError ||
        error instanceof KubeApiError
      )
        throw error;
      if (spec.signal?.aborted) {
        throw new OperationAbortedError(
          `Cancelled while waiting for the Kubernetes API of cluster "${this.clusterName}" (${spec.what})`,
        );
      }
      throw this.redactor.redactError(error);
    });
  }

  private static json<T>(res: RawResponse): T {
    return JSON.parse(res.text) as T;
  }

  // ---------------------------------------------------------------- discovery

  private fetchResources(
    apiVersion: string,
    signal?: AbortSignal,
    forWhat?: string,
  ): Promise<KubeResourceInfo[] | undefined> {
    const promise = this.call({
      method: 'GET',
      path: apiPrefix(apiVersion),
      signal,
      what: forWhat
        ? `${forWhat} (discovery of ${apiVersion})`
        : `discover the resources of ${apiVersion}`,
      accept: [404],
    }).then(res => {
      if (res.status === 404) return undefined;
      const list = KubeClientImpl.json<{ resources?: KubeResourceInfo[] }>(res);
      return (list.resources ?? []).filter(r => !r.name.includes('/'));
    });
    const entry = { at: Date.now(), promise };
    this.discovery.set(apiVersion, entry);
    promise.catch(() => {
      if (this.discovery.get(apiVersion) === entry)
        this.discovery.delete(apiVersion);
    });
    return promise;
  }

  async resourceFor(
    apiVersion: string,
    kind: string,
    opts: { signal?: AbortSignal; refresh?: boolean; forWhat?: string } = {},
  ): Promise<KubeResourceInfo | undefined> {
    const cached = this.discovery.get(apiVersion);
    let list: KubeResourceInfo[] | undefined;
    if (cached && !opts.refresh) {
      list = await cached.promise;
      const hit = list?.find(r => r.kind === kind);
      if (hit) return hit;
      // A kind may have appeared since (CRD just applied): look again, but not in a tight loop.
      if (Date.now() - cached.at < 1_000) return undefined;
    }
    list = await this.fetchResources(apiVersion, opts.signal, opts.forWhat);
    return list?.find(r => r.kind === kind);
  }

  /** The resource of a kind for a read: discovery's answer when cached, else a well-known one. */
  private async resourceForRead(
    apiVersion: string,
    kind: string,
    opts: { signal?: AbortSignal; forWhat?: string },
  ): Promise<KubeResourceInfo | undefined> {
    const known = WELL_KNOWN_RESOURCES[`${apiVersion}\0${kind}`];
    if (known && !this.discovery.has(apiVersion)) return known;
    return this.resourceFor(apiVersion, kind, opts);
  }

  private async requireResource(
    ref: { apiVersion: string; kind: string },
    what: string,
    signal?: AbortSignal,
  ): Promise<KubeResourceInfo> {
    const res = await this.resourceFor(ref.apiVersion, ref.kind, {
      signal,
      forWhat: what,
    });
    if (!res) {
      throw new KubeApiError(
        this.message(
          { what } as CallSpec,
          `the API server does not serve kind ${ref.kind} in ${ref.apiVersion} (is its CustomResourceDefinition installed?)`,
        ),
        { kind: 'not-found', reason: 'NoKindMatch' },
      );
    }
    return res;
  }

  private objectPath(
    res: KubeResourceInfo,
    ref: {
      apiVersion: string;
      kind: string;
      name?: string;
      namespace?: string;
    },
    what: string,
  ): string {
    let path = apiPrefix(ref.apiVersion);
    if (res.namespaced) {
      if (ref.namespace)
        path += `/namespaces/${encodeURIComponent(ref.namespace)}`;
      else if (ref.name) {
        throw new KubeApiError(
          this.message(
            { what } as CallSpec,
            `${ref.kind} is namespaced but no namespace was given`,
          ),
          { kind: 'invalid', reason: 'NamespaceRequired' },
        );
      }
    }
    path += `/${res.name}`;
    if (ref.name) path += `/${encodeURIComponent(ref.name)}`;
    return path;
  }

  // ---------------------------------------------------------------- verbs

  async get<T extends KubeObject = KubeObject>(
    ref: KubeObjectRef,
    opts: { signal?: AbortSignal; metadataOnly?: boolean } = {},
  ): Promise<T | undefined> {
    const what = `get ${describeRef(ref)}`;
    const res = await this.resourceForRead(ref.apiVersion, ref.kind, {
      signal: opts.signal,
      forWhat: what,
    });
    if (!res) return undefined;
    const out = await this.call({
      method: 'GET',
      path: this.objectPath(res, ref, what),
      signal: opts.signal,
      what,
      accept: [404],
      acceptHeader: opts.metadataOnly
        ? metadataAccept('PartialObjectMetadata')
        : undefined,
    });
    if (out.status === 404) return undefined;
    const obj = KubeClientImpl.json<T>(out);
    return opts.metadataOnly
      ? { ...obj, apiVersion: ref.apiVersion, kind: ref.kind }
      : obj;
  }

  async list<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
    opts: {
      namespace?: string;
      labelSelector?: string;
      metadataOnly?: boolean;
      signal?: AbortSignal;
    } = {},
  ): Promise<T[]> {
    const what = `list ${kind}${
      opts.namespace ? ` in namespace ${opts.namespace}` : ''
    }${opts.labelSelector ? ` with labels ${opts.labelSelector}` : ''}`;
    const res = await this.resourceForRead(apiVersion, kind, {
      signal: opts.signal,
      forWhat: what,
    });
    if (!res) return [];
    const path = this.objectPath(
      res,
      {
        apiVersion,
        kind,
        namespace: res.namespaced ? opts.namespace : undefined,
      },
      what,
    );
    const items: T[] = [];
    let cont: string | undefined;
    do {
      const out = await this.call({
        method: 'GET',
        path,
        query: {
          labelSelector: opts.labelSelector,
          limit: '500',
          continue: cont,
        },
        signal: opts.signal,
        what,
        accept: [404],
        // PartialObjectMetadataList (meta.k8s.io/v1, Kubernetes ≥ 1.15): names and metadata only.
        acceptHeader: opts.metadataOnly
          ? metadataAccept('PartialObjectMetadataList')
          : undefined,
      });
      if (out.status === 404) return [];
      const page = KubeClientImpl.json<{
        items?: T[];
        metadata?: { continue?: string };
      }>(out);
      for (const item of page.items ?? []) {
        items.push({ ...item, apiVersion, kind });
      }
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return items;
  }

  async apply<T extends KubeObject = KubeObject>(
    obj: KubeObject,
    opts: {
      fieldManager: string;
      force?: boolean;
      dryRun?: boolean;
      signal?: AbortSignal;
    },
  ): Promise<T> {
    const name = obj?.metadata?.name;
    const what = `apply ${describeRef({
      kind: obj?.kind ?? '?',
      name: name ?? '?',
      namespace: obj?.metadata?.namespace,
    })}`;
    if (!obj?.apiVersion || !obj.kind || !name) {
      throw new KubeApiError(
        this.message(
          { what } as CallSpec,
          'the object needs apiVersion, kind and metadata.name',
        ),
        { kind: 'invalid', reason: 'Invalid' },
      );
    }
    const res = await this.requireResource(obj, what, opts.signal);
    const body = applyBody(obj, res.namespaced);
    const out = await this.call({
      method: 'PATCH',
      path: this.objectPath(
        res,
        {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name,
          namespace: body.metadata.namespace,
        },
        what,
      ),
      query: {
        fieldManager: opts.fieldManager,
        force: opts.force ? 'true' : undefined,
        dryRun: opts.dryRun ? 'All' : undefined,
      },
      // JSON is YAML; the API server parses apply patches as YAML.
      body: JSON.stringify(body),
      contentType: 'application/apply-patch+yaml',
      signal: opts.signal,
      what,
    });
    return KubeClientImpl.json<T>(out);
  }

  async patch<T extends KubeObject = KubeObject>(
    ref: KubeObjectRef,
    patch: Record<string, unknown>,
    opts: { fieldManager: string; signal?: AbortSignal },
  ): Promise<T | undefined> {
    const what = `patch ${describeRef(ref)}`;
    const res = await this.requireResource(ref, what, opts.signal);
    const out = await this.call({
      method: 'PATCH',
      path: this.objectPath(res, ref, what),
      query: { fieldManager: opts.fieldManager },
      body: JSON.stringify(patch),
      contentType: 'application/merge-patch+json',
      signal: opts.signal,
      what,
      accept: [404],
    });
    return out.status === 404 ? undefined : KubeClientImpl.json<T>(out);
  }

  async delete(
    ref: KubeObjectRef,
    opts: {
      signal?: AbortSignal;
      propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
    } = {},
  ): Promise<boolean> {
    const what = `delete ${describeRef(ref)}`;
    const res = await this.resourceFor(ref.apiVersion, ref.kind, {
      ...opts,
      forWhat: what,
    });
    if (!res) return false;
    const out = await this.call({
      method: 'DELETE',
      path: this.objectPath(res, ref, what),
      query: { propagationPolicy: opts.propagationPolicy ?? 'Background' },
      signal: opts.signal,
      what,
      accept: [404],
    });
    return out.status !== 404;
  }

  async canI(
    checks: KubeAccessCheck[],
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ allowed: boolean; reason?: string }[]> {
    return mapLimit(checks, 8, async check => {
      const what = `review access "${check.verb} ${check.resource}${
        check.group ? `.${check.group}` : ''
      }"${check.namespace ? ` in namespace ${check.namespace}` : ''}`;
      const out = await this.call({
        method: 'POST',
        path: '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
        body: JSON.stringify({
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: {
            resourceAttributes: {
              verb: check.verb,
              group: check.group,
              resource: check.resource,
              namespace: check.namespace,
              name: check.name,
            },
          },
        }),
        signal: opts.signal,
        what,
      });
      const review = KubeClientImpl.json<{
        status?: {
          allowed?: boolean;
          denied?: boolean;
          reason?: string;
          evaluationError?: string;
        };
      }>(out);
      return {
        allowed: review.status?.allowed === true,
        reason:
          review.status?.reason || review.status?.evaluationError || undefined,
      };
    });
  }

  async ensureNamespace(
    name: string,
    opts: { fieldManager: string; signal?: AbortSignal },
  ): Promise<void> {
    const ref = { apiVersion: 'v1', kind: 'Namespace', name };
    const existing = await this.get(ref, opts);
    if (existing) {
      const phase = (existing.status as { phase?: string } | undefined)?.phase;
      if (phase === 'Terminating') {
        throw new KubeApiError(
          this.message(
            { what: `use Namespace ${name}` } as CallSpec,
            'the namespace is being deleted (phase Terminating); wait until it is gone or choose another namespace',
          ),
          { kind: 'conflict', reason: 'NamespaceTerminating' },
        );
      }
      return;
    }
    // Created by apply so the field manager is recorded; an existing namespace is never modified
    // (an apply with fewer fields would drop labels this manager set earlier).
    await this.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
      opts,
    );
  }

  async version(opts: { signal?: AbortSignal } = {}) {
    const out = await this.call({
      method: 'GET',
      path: '/version',
      signal: opts.signal,
      what: 'read the server version',
    });
    return KubeClientImpl.json<{
      gitVersion: string;
      major: string;
      minor: string;
    }>(out);
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
    this.h2Session?.destroy();
    this.h2Session = undefined;
    this.h2Socket?.destroy();
  }
}

function kubeConfigFor(conn: ClusterConnection): KubeConfig {
  if (isKubeconfigConnection(conn)) {
    const kc = loadDefaultKubeConfig();
    if (!kc.getContextObject(conn.context)) {
      throw new KubeApiError(
        `Kubernetes cluster "${conn.name}": the kubeconfig no longer has context "${conn.context}"`,
        { kind: 'not-found', reason: 'NoContext' },
      );
    }
    kc.setCurrentContext(conn.context);
    return kc;
  }
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: conn.name,
      server: conn.url,
      caData: conn.caPem
        ? Buffer.from(conn.caPem, 'utf8').toString('base64')
        : undefined,
      skipTLSVerify: conn.skipTLSVerify,
    },
    {
      name: 'flux-bootstrap',
      token: conn.token,
      certData: conn.clientCertPem
        ? Buffer.from(conn.clientCertPem, 'utf8').toString('base64')
        : undefined,
      keyData: conn.clientKeyPem
        ? Buffer.from(conn.clientKeyPem, 'utf8').toString('base64')
        : undefined,
    },
  );
  return kc;
}

/**
 * Creates a client for one cluster. Sends nothing until the first call.
 * @public
 */
export async function createKubeClient(
  conn: ClusterConnection,
  opts: KubeClientOptions = {},
): Promise<KubeClient> {
  let url: URL;
  try {
    url = new URL(conn.url);
  } catch {
    throw new KubeApiError(
      `Kubernetes cluster "${conn.name}": invalid url "${conn.url}"`,
      {
        kind: 'invalid',
        reason: 'InvalidURL',
      },
    );
  }
  const kc = kubeConfigFor(conn);
  const httpsOptions: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(httpsOptions);
  const user = kc.getCurrentUser();
  const cluster = kc.getCurrentCluster();
  const dynamicAuth = Boolean(user?.exec || user?.authProvider);
  let staticHeaders: Record<string, string> | undefined;
  if (!dynamicAuth) {
    staticHeaders = {};
    for (const [k, v] of Object.entries(httpsOptions.headers ?? {})) {
      if (v !== undefined)
        staticHeaders[k] = Array.isArray(v) ? v.join(', ') : String(v);
    }
    if (httpsOptions.auth) {
      staticHeaders.Authorization = `Basic ${Buffer.from(
        httpsOptions.auth,
      ).toString('base64')}`;
    }
  }
  let agent: http.Agent;
  if (cluster?.proxyUrl && httpsOptions.agent) {
    agent = httpsOptions.agent as http.Agent;
  } else if (url.protocol === 'http:') {
    agent = new http.Agent({
      keepAlive: true,
      maxSockets: opts.maxSockets ?? 16,
    });
  } else {
    agent = new https.Agent({
      keepAlive: true,
      maxSockets: opts.maxSockets ?? 16,
      ca: httpsOptions.ca,
      cert: httpsOptions.cert,
      key: httpsOptions.key,
      servername: httpsOptions.servername,
      rejectUnauthorized:
        httpsOptions.rejectUnauthorized ?? !conn.skipTLSVerify,
    });
  }
  const http2Wanted =
    opts.http2 !== false && url.protocol === 'https:' && !cluster?.proxyUrl;
  return new KubeClientImpl(
    kc,
    agent,
    staticHeaders,
    conn,
    opts,
    http2Wanted
      ? {
          ca: httpsOptions.ca as TlsSettings['ca'],
          cert: httpsOptions.cert as TlsSettings['cert'],
          key: httpsOptions.key as TlsSettings['key'],
          servername: httpsOptions.servername,
          rejectUnauthorized:
            httpsOptions.rejectUnauthorized ?? !conn.skipTLSVerify,
        }
      : undefined,
  );
}
