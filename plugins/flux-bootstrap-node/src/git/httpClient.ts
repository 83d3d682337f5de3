import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type {
  GitHttpRequest,
  GitHttpResponse,
  HttpClient,
} from 'isomorphic-git';
import { sleep } from '../util/async';
import { isTransientNetworkCode, OperationAbortedError } from '../util/errors';

/** Options of {@link createGitHttpClient}. @public */
export interface GitHttpClientOptions {
  /** Extra CA certificates (PEM) trusted in addition to Node's built-in roots. */
  caPem?: string;
  /** Milliseconds without any socket activity before a request fails. Default 60 000. */
  timeoutMs?: number;
  /** Aborts every request made through the client. */
  signal?: AbortSignal;
  /** Cap of one response body. Default 512 MiB. */
  maxResponseBytes?: number;
  /**
   * Retries of a GET (ref discovery, idempotent) that failed transiently: 429, 5xx, connection
   * reset/refused, timeout. Pack uploads (POST) are never repeated. Default 0.
   */
  getRetries?: number;
  /** First delay between GET retries (doubles, at most 10 s; Retry-After is honoured). Default 500 ms. */
  retryBaseDelayMs?: number;
  /** Told about each GET retry (what failed, the delay), e.g. to log it. */
  onRetry?: (reason: string, attempt: number, delayMs: number) => void;
}

/** Thrown when the git server does not answer in time. @public */
export class GitHttpTimeoutError extends Error {
  constructor(url: string, ms: number) {
    super(`no answer from ${url} within ${ms} ms`);
    this.name = 'GitHttpTimeoutError';
  }
}

async function collectBody(
  body: GitHttpRequest['body'],
): Promise<Buffer | undefined> {
  if (!body) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

function safeUrlForError(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return '(git remote)';
  }
}

/**
 * An isomorphic-git HTTP client over node:http(s) that trusts the configured CA (never disables
 * verification), times out idle connections, stops on the abort signal, and never follows
 * redirects (they would carry the Authorization header elsewhere).
 * @public
 */
export function createGitHttpClient(
  options: GitHttpClientOptions = {},
): HttpClient {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const maxBytes = options.maxResponseBytes ?? 512 * 1024 * 1024;
  const ca = options.caPem
    ? [...tls.rootCertificates, options.caPem]
    : undefined;
  const retries = Math.max(0, options.getRetries ?? 0);
  const baseDelayMs = options.retryBaseDelayMs ?? 500;
  const once = (req: GitHttpRequest, body: Buffer | undefined) =>
    requestOnce(req, body, options.signal, timeoutMs, maxBytes, ca);
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const signal = options.signal;
      if (signal?.aborted)
        throw new OperationAbortedError(
          'Cancelled before contacting the git server',
        );
      const url = new URL(req.url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw new Error(`unsupported git URL scheme ${url.protocol}`);
      }
      const body = await collectBody(req.body);
      const method = (req.method ?? 'GET').toUpperCase();
      for (let attempt = 0; ; attempt++) {
        const last = method !== 'GET' || attempt >= retries;
        let reason: string;
        let retryAfterMs: number | undefined;
        try {
          const res = await once(req, body);
          const transient =
            res.statusCode === 429 ||
            (res.statusCode >= 500 && res.statusCode !== 501);
          if (last || !transient) return res;
          await drain(res);
          reason = `HTTP ${res.statusCode}`;
          retryAfterMs = retryAfterOf(res.headers?.['retry-after']);
        } catch (e) {
          if (last || signal?.aborted || !isTransientError(e)) throw e;
          reason = (e as Error).message;
        }
        const delayMs = Math.min(
          retryAfterMs ?? baseDelayMs * 2 ** attempt,
          10_000,
        );
        options.onRetry?.(reason, attempt + 1, delayMs);
        await sleep(delayMs, signal).catch(() => {
          throw new OperationAbortedError(
            'Cancelled while talking to the git server',
          );
        });
      }
    },
  };
}

function isTransientError(e: unknown): boolean {
  return (
    e instanceof GitHttpTimeoutError ||
    isTransientNetworkCode((e as { code?: string })?.code)
  );
}

function retryAfterOf(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

async function drain(res: GitHttpResponse): Promise<void> {
  try {
    for await (const _ of res.body as AsyncIterable<Uint8Array>) {
      // discard
    }
  } catch {
    // the answer is thrown away anyway
  }
}

/** One HTTP exchange; the body is streamed to isomorphic-git. */
async function requestOnce(
  req: GitHttpRequest,
  body: Buffer | undefined,
  signal: AbortSignal | undefined,
  timeoutMs: number,
  maxBytes: number,
  ca: string[] | undefined,
): Promise<GitHttpResponse> {
  const url = new URL(req.url);
  const isHttps = url.protocol === 'https:';
  const headers: Record<string, string> = { ...(req.headers ?? {}) };
  if (body) headers['content-length'] = String(body.length);
  return await new Promise<GitHttpResponse>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    let onAbort = () => {};
    const request = (isHttps ? https : http).request(
      url,
      {
        method: req.method ?? 'GET',
        headers,
        ...(isHttps && ca ? { ca } : {}),
      },
      res => {
        settled = true;
        let size = 0;
        const responseHeaders: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined)
            responseHeaders[k] = Array.isArray(v) ? v.join(', ') : v;
        }
        res.setTimeout(timeoutMs, () => {
          res.destroy(
            new GitHttpTimeoutError(safeUrlForError(req.url), timeoutMs),
          );
        });
        async function* iterate(): AsyncGenerator<Uint8Array> {
          try {
            for await (const chunk of res as AsyncIterable<Buffer>) {
              size += chunk.length;
              if (size > maxBytes) {
                throw new Error(
                  `git server response larger than ${maxBytes} bytes`,
                );
              }
              yield new Uint8Array(
                chunk.buffer,
                chunk.byteOffset,
                chunk.byteLength,
              );
            }
          } finally {
            signal?.removeEventListener('abort', onAbort);
            if (!res.complete) res.destroy();
          }
        }
        resolve({
          url: req.url,
          method: req.method,
          statusCode: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          headers: responseHeaders,
          body: iterate(),
        });
      },
    );
    onAbort = () => {
      request.destroy();
      fail(
        new OperationAbortedError('Cancelled while talking to the git server'),
      );
    };
    request.setTimeout(timeoutMs, () => {
      request.destroy();
      fail(new GitHttpTimeoutError(safeUrlForError(req.url), timeoutMs));
    });
    request.on('error', e => {
      signal?.removeEventListener('abort', onAbort);
      fail(e);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    request.end(body);
  });
}
