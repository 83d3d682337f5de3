import { STATUS_CODES } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { interceptors, type Dispatcher } from 'undici';
import { isTransientNetworkCode, OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import {
  dispatcherFor,
  proxySecrets,
  specKey,
  type DispatcherSpec,
  type HttpTls,
} from './dispatchers';

type SocketAddress = { address: string; port: number };
type BodyReadable = Dispatcher.ResponseData['body'];

/** Options of {@link HttpClient}. @public */
export interface HttpClientOptions {
  tls?: HttpTls;
  /** Offer HTTP/2 (ALPN); HTTP/1.1 stays the fallback. */
  http2?: boolean;
  /** A proxy for this client only; default `fluxBootstrap.proxy`, else HTTPS_PROXY/HTTP_PROXY/NO_PROXY. */
  proxyUrl?: string;
  /** Connections per origin over HTTP/1.1 (default unlimited). */
  connections?: number;
  /** One attempt until the body is read (streams: until the headers, then between chunks). Default 30 s. */
  timeoutMs?: number;
  /** Largest body read; default 32 MiB. */
  maxResponseBytes?: number;
  /** Attempts after the first of a request that is safe to repeat; default 4. */
  retries?: number;
  /** First backoff, doubled per attempt with jitter; default 500 ms. */
  baseDelayMs?: number;
  /** Largest backoff; default 10 s. */
  maxDelayMs?: number;
  /** A longer `Retry-After` is not waited for: the answer is returned at once. Default 120 s. */
  maxRetryAfterMs?: number;
  /** All waits of one request together; default 5 min. */
  maxTotalDelayMs?: number;
  logger?: EngineLogger;
  /** Masks credentials in errors and logs; the client adds the proxy's. */
  redactor?: Redactor;
  /** Told about each retry (what failed, which retry, the delay), besides the log line. */
  onRetry?: (reason: string, attempt: number, delayMs: number) => void;
  userAgent?: string;
}

/** One request. @public */
export interface HttpRequest {
  method: string;
  url: string | URL;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
  /** Names the request in log lines and errors, e.g. `Bitbucket GET /rest/api/1.0/projects`. */
  what: string;
  /** Safe to send again? Default: GET, HEAD, OPTIONS, PUT, DELETE and server-side apply PATCH. */
  idempotent?: boolean;
  /** Follow up to 5 redirects (default: return the 3xx answer). */
  followRedirects?: boolean;
  maxResponseBytes?: number;
}

/** An answer (any status). @public */
export interface HttpResponse<B = Buffer> {
  status: number;
  statusText: string;
  headers: Headers;
  body: B;
  /** Attempts made (1 when it was not retried). */
  attempts: number;
  /** Why a retryable answer was not retried (a Retry-After beyond the bound, the delay budget). */
  retryNote?: string;
}

/** Why no answer arrived. @public */
export type HttpErrorKind =
  | 'timeout'
  | 'network'
  | 'tls'
  | 'proxy'
  | 'too-large';

/** A request that got no (complete) answer. The message never carries a credential. @public */
export class HttpError extends Error {
  constructor(
    readonly what: string,
    readonly kind: HttpErrorKind,
    /** What happened, e.g. `connection refused (ECONNREFUSED 127.0.0.1:443)`. */
    readonly detail: string,
    readonly code?: string,
    public attempts = 1,
  ) {
    super(`${what}: ${detail}`);
    this.name = 'HttpError';
  }

  /** Worth another attempt of a request that is safe to repeat. */
  get transient(): boolean {
    if (this.kind === 'timeout') return true;
    if (this.kind === 'proxy') return /\b50[234]\b/.test(this.detail);
    return (
      this.kind === 'network' &&
      (isTransientNetworkCode(this.code) ||
        /^(UND_ERR_(SOCKET|CLOSED)|ERR_HTTP2)/.test(this.code ?? ''))
    );
  }
}

/** `Retry-After` (seconds or an HTTP date) in milliseconds. @public */
export function parseRetryAfter(
  value: string | null | undefined,
  now = Date.now(),
): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const TLS_CODE =
  /^(CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_|ERR_SSL_|EPROTO$)/;
const CODE_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name not found',
  ECONNRESET: 'connection reset',
  UND_ERR_SOCKET: 'connection closed by the other side',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'host unreachable',
};

/** Human text of a network error code (`connection refused`), when it has one. */
export const networkCodeText = (code?: string): string | undefined =>
  CODE_TEXT[code ?? ''];

function isSafe(method: string, headers: Record<string, string>): boolean {
  if (/^(GET|HEAD|OPTIONS|PUT|DELETE)$/.test(method)) return true;
  const type = new Headers(headers).get('content-type');
  return method === 'PATCH' && type === 'application/apply-patch+yaml';
}

function toHeaders(raw: Record<string, string | string[] | undefined>) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    for (const v of [value ?? []].flat()) headers.append(name, v);
  }
  return headers;
}

/** Resolves when `p` settles; rejects when the signal aborts first. */
function until(p: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal!.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    p.finally(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }).catch(() => {});
  });
}

/**
 * The engine's one HTTP layer (undici): shared dispatchers per TLS material (keep-alive, HTTP/2),
 * proxies, one timeout and abort path, one bounded and logged retry policy for requests safe to
 * repeat (429/5xx, resets, timeouts, `Retry-After`).
 * @public
 */
export class HttpClient {
  private readonly spec: DispatcherSpec;
  private readonly key: string;
  private readonly logger: EngineLogger;
  readonly redactor: Redactor;

  constructor(private readonly options: HttpClientOptions = {}) {
    const timeoutMs = options.timeoutMs ?? 30_000;
    this.spec = {
      tls: options.tls,
      http2: options.http2,
      proxyUrl: options.proxyUrl,
      connections: options.connections,
      connectTimeoutMs: Math.min(timeoutMs, 10_000),
    };
    this.key = specKey(this.spec);
    this.redactor = options.redactor ?? new Redactor();
    for (const s of proxySecrets(options.proxyUrl)) this.redactor.add(s);
    this.logger = this.redactor.wrapLogger(options.logger ?? silentLogger);
  }

  /** Reads the whole body (bounded). */
  request(req: HttpRequest): Promise<HttpResponse<Buffer>> {
    return this.send(req, false) as Promise<HttpResponse<Buffer>>;
  }

  /** Hands the body over as a stream (e.g. a git pack). */
  stream(req: HttpRequest): Promise<HttpResponse<AsyncIterable<Uint8Array>>> {
    return this.send(req, true) as Promise<
      HttpResponse<AsyncIterable<Uint8Array>>
    >;
  }

  private async send(
    req: HttpRequest,
    streaming: boolean,
  ): Promise<HttpResponse<unknown>> {
    const o = this.options;
    const retries = o.retries ?? 4;
    const maxRetryAfterMs = o.maxRetryAfterMs ?? 120_000;
    const method = req.method.toUpperCase();
    const safe = req.idempotent ?? isSafe(method, req.headers ?? {});
    let waited = 0;
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      let retryAfterMs: number | undefined;
      try {
        const res = await this.once({ ...req, method }, streaming);
        res.attempts = attempt;
        if (!safe || !RETRY_STATUSES.has(res.status) || attempt > retries)
          return res;
        retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
        if (retryAfterMs !== undefined && retryAfterMs > maxRetryAfterMs) {
          const asked = Math.ceil(retryAfterMs / 1000);
          const bound = Math.round(maxRetryAfterMs / 1000);
          res.retryNote = `the server asks to retry after ${asked} s, longer than the ${bound} s this client waits`;
          return res;
        }
        if (streaming) await (res.body as BodyReadable).dump().catch(() => {});
        reason = `HTTP ${res.status}`;
      } catch (e) {
        const error = this.failure(e, req);
        if (error instanceof HttpError) error.attempts = attempt;
        if (
          !(error instanceof HttpError) ||
          !error.transient ||
          !safe ||
          attempt > retries
        )
          throw error;
        reason = error.detail;
      }
      const backoff = Math.min(
        o.maxDelayMs ?? 10_000,
        (o.baseDelayMs ?? 500) * 2 ** (attempt - 1),
      );
      const delayMs =
        retryAfterMs ?? Math.round(backoff / 2 + (Math.random() * backoff) / 2);
      waited += delayMs;
      if (waited > (o.maxTotalDelayMs ?? 300_000)) {
        throw new HttpError(
          req.what,
          'timeout',
          `still failing (${reason}) after waiting ${Math.round(
            (waited - delayMs) / 1000,
          )} s in ${attempt} attempts`,
          'ETIMEDOUT',
          attempt,
        );
      }
      this.logger.warn(
        `${req.what} failed (${reason}); retrying, retry ${attempt} of ${retries} in ${delayMs} ms`,
      );
      o.onRetry?.(reason, attempt, delayMs);
      try {
        await sleep(delayMs, undefined, { signal: req.signal });
      } catch {
        throw this.failure(undefined, req);
      }
    }
  }

  private async once(
    req: HttpRequest,
    streaming: boolean,
  ): Promise<HttpResponse<unknown>> {
    const timeoutMs = this.options.timeoutMs ?? 30_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    // A stream is bounded by undici's idle timeouts (headers, then between chunks) instead.
    const signal = streaming
      ? req.signal
      : AbortSignal.any(req.signal ? [req.signal, timeout] : [timeout]);
    const url = new URL(req.url);
    const entry = dispatcherFor(this.spec, this.key);
    let dispatcher: Dispatcher = entry.dispatcher;
    if (req.followRedirects)
      dispatcher = dispatcher.compose(
        interceptors.redirect({ maxRedirections: 5 }),
      );
    let opened: (() => void) | undefined;
    try {
      if (this.spec.http2) {
        const opening = entry.opening.get(url.origin);
        if (opening) await until(opening, signal);
        else entry.opening.set(url.origin, new Promise(r => (opened = r)));
      }
      const res = await dispatcher.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: req.method as Dispatcher.HttpMethod,
        headers: {
          'user-agent': this.options.userAgent ?? 'flux-bootstrap-backstage',
          ...req.headers,
        },
        body: req.body,
        signal,
        ...(streaming
          ? { headersTimeout: timeoutMs, bodyTimeout: timeoutMs }
          : {}),
      });
      opened?.();
      const head = {
        status: res.statusCode,
        statusText: STATUS_CODES[res.statusCode] ?? '',
        headers: toHeaders(res.headers),
        attempts: 1,
      };
      if (streaming) return { ...head, body: res.body };
      const max =
        req.maxResponseBytes ?? this.options.maxResponseBytes ?? 32 << 20;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += chunk.length;
        if (size > max) {
          res.body.destroy();
          throw new HttpError(
            req.what,
            'too-large',
            `the answer is larger than ${max} bytes`,
          );
        }
        chunks.push(chunk);
      }
      return { ...head, body: Buffer.concat(chunks) };
    } catch (e) {
      if (opened) {
        entry.opening.delete(url.origin);
        opened();
      }
      throw timeout.aborted && !req.signal?.aborted
        ? new HttpError(
            req.what,
            'timeout',
            `no answer within ${timeoutMs} ms`,
            'ETIMEDOUT',
          )
        : e;
    }
  }

  /** The caller's abort, or what went wrong on the way, without credentials. */
  private failure(e: unknown, req: HttpRequest): Error {
    if (req.signal?.aborted)
      return new OperationAbortedError(
        `Cancelled while waiting for ${req.what}`,
      );
    if (e instanceof HttpError) return e;
    const err = (e ?? {}) as Partial<NodeJS.ErrnoException & SocketAddress>;
    const code = typeof err.code === 'string' ? err.code : undefined;
    const message = this.redactor.redact(err.message ?? String(e));
    const proxy =
      /^Proxy response \((\d+)\)|Proxy Authentication Required/.exec(message);
    if (proxy) {
      const status = Number(proxy[1] ?? 407);
      const auth = status === 401 || status === 407;
      return new HttpError(
        req.what,
        'proxy',
        `the proxy refused the connection (HTTP ${status} ${
          STATUS_CODES[status] ?? ''
        })${auth ? '; check the proxy credentials' : ''}`,
        code,
      );
    }
    if (/^UND_ERR_(HEADERS|BODY|CONNECT)_TIMEOUT$/.test(code ?? ''))
      return new HttpError(req.what, 'timeout', message, code);
    const tls =
      TLS_CODE.test(code ?? '') ||
      /certificate|self[- ]signed|\bssl\b|\btls\b/i.test(message);
    const where = err.address ? ` ${err.address}:${err.port}` : '';
    const text = tls
      ? `TLS error: ${message}`
      : CODE_TEXT[code ?? ''] ?? message;
    return new HttpError(
      req.what,
      tls ? 'tls' : 'network',
      code && !text.includes(code) ? `${text} (${code}${where})` : text,
      code,
    );
  }
}
