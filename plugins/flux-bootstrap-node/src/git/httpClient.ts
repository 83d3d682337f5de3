import type {
  GitHttpRequest,
  GitHttpResponse,
  HttpClient as GitHttpClient,
} from 'isomorphic-git';
import { HttpClient, withSystemRoots } from '../http';

/** Options of {@link createGitHttpClient}. @public */
export interface GitHttpClientOptions {
  /** Extra CA certificates (PEM) trusted in addition to Node's built-in roots. */
  caPem?: string;
  /** Idle time (headers, then between body chunks) before a request fails. Default 60 000 ms. */
  timeoutMs?: number;
  /** Aborts every request made through the client. */
  signal?: AbortSignal;
  /** Retries of a transiently failed GET (ref discovery); a pack upload never. Default 0. */
  getRetries?: number;
  /** First delay between GET retries (doubles, at most 10 s). Default 500 ms. */
  retryBaseDelayMs?: number;
  /** Told about each GET retry, e.g. to log it. */
  onRetry?: (reason: string, attempt: number, delayMs: number) => void;
}

/** Cap of one response body. */
const MAX_BYTES = 512 << 20;

async function* capped(
  body: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_BYTES)
      throw new Error(`git server response larger than ${MAX_BYTES} bytes`);
    yield chunk;
  }
}

/** isomorphic-git's HTTP plugin on the engine's HTTP layer; no redirects (they would leak credentials). @public */
export function createGitHttpClient(
  options: GitHttpClientOptions = {},
): GitHttpClient {
  const http = new HttpClient({
    tls: { ca: withSystemRoots(options.caPem) },
    timeoutMs: options.timeoutMs ?? 60_000,
    retries: options.getRetries ?? 0,
    baseDelayMs: options.retryBaseDelayMs,
    onRetry: options.onRetry,
  });
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const url = new URL(req.url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new Error(`unsupported git URL scheme ${url.protocol}`);
      const chunks: Uint8Array[] = [];
      for await (const chunk of req.body ?? []) chunks.push(chunk);
      url.username = url.password = url.search = '';
      const method = (req.method ?? 'GET').toUpperCase();
      const res = await http.stream({
        method,
        url: req.url,
        headers: req.headers,
        body: req.body ? Buffer.concat(chunks) : undefined,
        signal: options.signal,
        what: `git ${method} ${url}`,
        // Ref discovery may be repeated; a pack upload never.
        idempotent: method === 'GET',
      });
      return {
        url: req.url,
        method: req.method,
        statusCode: res.status,
        statusMessage: res.statusText,
        headers: Object.fromEntries(res.headers),
        body: capped(res.body),
      };
    },
  };
}
