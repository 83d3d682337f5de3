import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';

/** One HTTP exchange, body fully buffered. */
export interface RawResponse {
  status: number;
  statusText: string;
  headers: Headers;
  body: Buffer;
}

/** Thrown by {@link sendOnce} when the response body exceeds the size cap. */
export class ResponseTooLargeError extends Error {
  constructor(limit: number) {
    super(`response body larger than ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/**
 * An agent for one Bitbucket host. With extra CA certificates the trust store is Node's
 * built-in roots plus the PEM — never a global setting, never `rejectUnauthorized: false`.
 */
export function createAgent(
  baseUrl: string,
  caPem?: string,
): http.Agent | https.Agent {
  const isHttps = new URL(baseUrl).protocol === 'https:';
  if (!isHttps) return new http.Agent({ keepAlive: true, timeout: 60_000 });
  return new https.Agent({
    keepAlive: true,
    timeout: 60_000,
    ...(caPem ? { ca: [...tls.rootCertificates, caPem] } : {}),
  });
}

/**
 * Sends one request with node:http(s) and buffers the answer. Rejects with Node's own error on
 * network failures and with an AbortError when `signal` aborts. No redirect is followed (a
 * redirect would carry the Authorization header to wherever it points).
 */
export function sendOnce(options: {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
  agent: http.Agent | https.Agent;
  signal: AbortSignal;
  maxBytes: number;
}): Promise<RawResponse> {
  const { url, method, headers, body, agent, signal, maxBytes } = options;
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise<RawResponse>((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method,
        agent,
        signal,
        headers: {
          ...headers,
          ...(body ? { 'Content-Length': String(body.length) } : {}),
        },
      },
      res => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy(new ResponseTooLargeError(maxBytes));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('aborted', () =>
          reject(
            Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
          ),
        );
        res.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (value === undefined) continue;
            for (const v of Array.isArray(value) ? value : [value]) {
              responseHeaders.append(name, v);
            }
          }
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            headers: responseHeaders,
            body: Buffer.concat(chunks),
          });
        });
      },
    );
    req.on('error', reject);
    if (body) req.end(body);
    else req.end();
  });
}
