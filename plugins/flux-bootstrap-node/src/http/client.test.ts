import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OperationAbortedError } from '../util/errors';
import { Redactor } from '../util/redact';
import { HttpClient, HttpError, parseRetryAfter } from './client';
import { configureHttpProxy, readHttpProxyConfig } from './dispatchers';

// The layer's policies against a local server whose every answer the test scripts. The proxy
// suite (scaffolder module, proxy.test.ts) runs whole template runs through a real tinyproxy.

type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  n: number,
) => void;

async function serve(handler: Handler) {
  const seen: { method: string; url: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url! });
    req.resume();
    req.on('end', () => handler(req, res, seen.length));
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise<void>(r => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function recorder() {
  const lines: string[] = [];
  const log = (m: string) => lines.push(m);
  return { lines, logger: { error: log, warn: log, info: log, debug: log } };
}

let server: Awaited<ReturnType<typeof serve>> | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  configureHttpProxy(undefined);
});

describe('HttpClient retry policy', () => {
  it('repeats a GET after 503, 429 (waiting its Retry-After), 502, 504 and a reset, logging each reason', async () => {
    server = await serve((req, res, n) => {
      if (n === 1) res.writeHead(503).end();
      else if (n === 2) res.writeHead(429, { 'Retry-After': '1' }).end();
      else if (n === 3) res.writeHead(502).end();
      else if (n === 4) res.writeHead(504).end();
      else if (n === 5) req.socket.destroy();
      else res.writeHead(200).end('ok');
    });
    const { lines, logger } = recorder();
    const client = new HttpClient({ retries: 5, baseDelayMs: 1, logger });
    const started = Date.now();
    const res = await client.request({
      method: 'GET',
      url: `${server.url}/x`,
      what: 'test GET /x',
    });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
    expect(res.attempts).toBe(6);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(lines).toEqual([
      expect.stringMatching(
        /^test GET \/x failed \(HTTP 503\); retrying, retry 1 of 5 in \d+ ms$/,
      ),
      'test GET /x failed (HTTP 429); retrying, retry 2 of 5 in 1000 ms',
      expect.stringContaining('(HTTP 502)'),
      expect.stringContaining('(HTTP 504)'),
      expect.stringMatching(/closed by the other side|connection reset/),
    ]);
  });

  it('never repeats a POST unless it is marked idempotent, and never a 4xx or a 501', async () => {
    server = await serve((_req, res) => res.writeHead(503).end());
    const client = new HttpClient({ retries: 2, baseDelayMs: 1 });
    const post = await client.request({
      method: 'POST',
      url: server.url,
      body: '{}',
      what: 'create',
    });
    expect([post.status, post.attempts]).toEqual([503, 1]);
    const marked = await client.request({
      method: 'POST',
      url: server.url,
      body: '{}',
      what: 'create',
      idempotent: true,
    });
    expect([marked.status, marked.attempts]).toEqual([503, 3]);
    // server-side apply is idempotent by its content type
    const apply = await client.request({
      method: 'PATCH',
      url: server.url,
      headers: { 'Content-Type': 'application/apply-patch+yaml' },
      body: '{}',
      what: 'apply',
    });
    expect(apply.attempts).toBe(3);
    expect(server.seen).toHaveLength(7);

    await server.stop();
    server = await serve((_req, res, n) =>
      res.writeHead(n === 1 ? 404 : 501).end(),
    );
    for (const status of [404, 501]) {
      const res = await client.request({
        method: 'GET',
        url: server.url,
        what: 'get',
      });
      expect([res.status, res.attempts]).toEqual([status, 1]);
    }
  });

  it('answers at once when Retry-After is longer than it waits, and bounds the total delay', async () => {
    server = await serve((_req, res) =>
      res.writeHead(503, { 'Retry-After': '3600' }).end(),
    );
    const client = new HttpClient({ retries: 5 });
    const res = await client.request({
      method: 'GET',
      url: server.url,
      what: 'get',
    });
    expect(res.retryNote).toBe(
      'the server asks to retry after 3600 s, longer than the 120 s this client waits',
    );
    expect(server.seen).toHaveLength(1);

    const budget = new HttpClient({
      retries: 10,
      baseDelayMs: 40,
      maxDelayMs: 40,
      maxTotalDelayMs: 100,
    });
    await server.stop();
    server = await serve((_req, answer) => answer.writeHead(500).end());
    const failed = await budget
      .request({ method: 'GET', url: server.url, what: 'get' })
      .catch(e => e);
    expect(failed).toBeInstanceOf(HttpError);
    expect(failed.kind).toBe('timeout');
    expect(failed.message).toMatch(/still failing \(HTTP 500\)/);
    expect(server.seen.length).toBeLessThanOrEqual(5);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('HttpClient timeouts, aborts and limits', () => {
  it('times out each attempt, retries a GET, then reports a timeout', async () => {
    server = await serve(() => {});
    const client = new HttpClient({
      timeoutMs: 100,
      retries: 1,
      baseDelayMs: 1,
    });
    const err = await client
      .request({ method: 'GET', url: server.url, what: 'slow GET' })
      .catch(e => e);
    expect(err).toBeInstanceOf(HttpError);
    expect([err.kind, err.code, err.attempts]).toEqual([
      'timeout',
      'ETIMEDOUT',
      2,
    ]);
    expect(err.message).toBe('slow GET: no answer within 100 ms');
    expect(server.seen).toHaveLength(2);
  });

  it('releases the caller at once on abort, while waiting and while backing off', async () => {
    server = await serve((_req, res, n) => {
      if (n === 1) res.writeHead(503, { 'Retry-After': '60' }).end();
    });
    const client = new HttpClient();
    for (const n of [1, 2]) {
      const controller = new AbortController();
      const pending = client.request({
        method: 'GET',
        url: server.url,
        signal: controller.signal,
        what: 'the test server',
      });
      while (server.seen.length < n) await new Promise(r => setTimeout(r, 5));
      controller.abort();
      const err = await pending.catch(e => e);
      expect(err).toBeInstanceOf(OperationAbortedError);
      expect(err.message).toBe('Cancelled while waiting for the test server');
    }
  });

  it('caps the body it reads, and follows redirects only when asked', async () => {
    server = await serve((req, res) => {
      if (req.url === '/big') res.writeHead(200).end(Buffer.alloc(4096));
      else if (req.url === '/moved')
        res.writeHead(302, { Location: '/big' }).end();
    });
    const client = new HttpClient({ maxResponseBytes: 1024 });
    const err = await client
      .request({ method: 'GET', url: `${server.url}/big`, what: 'big' })
      .catch(e => e);
    expect([err.kind, err.detail]).toEqual([
      'too-large',
      'the answer is larger than 1024 bytes',
    ]);
    const moved = await client.request({
      method: 'GET',
      url: `${server.url}/moved`,
      what: 'moved',
    });
    expect(moved.status).toBe(302);
    const followed = await client.request({
      method: 'GET',
      url: `${server.url}/moved`,
      what: 'moved',
      followRedirects: true,
      maxResponseBytes: 8192,
    });
    expect([followed.status, followed.body.length]).toEqual([200, 4096]);
  });

  it('names a refused connection and a missing host', async () => {
    const client = new HttpClient({ retries: 0 });
    const refused = await client
      .request({ method: 'GET', url: 'http://127.0.0.1:1/', what: 'x' })
      .catch(e => e);
    expect([refused.kind, refused.code]).toEqual(['network', 'ECONNREFUSED']);
    expect(refused.detail).toMatch(/^connection refused \(ECONNREFUSED/);
    const unknown = await client
      .request({
        method: 'GET',
        url: 'http://no-such-host.invalid/',
        what: 'x',
      })
      .catch(e => e);
    expect(unknown.detail).toMatch(/^host name not found/);
  });
});

describe('proxy settings', () => {
  it('reads fluxBootstrap.proxy and keeps the proxy password out of errors', async () => {
    const config = {
      getOptionalString: (k: string) =>
        k === 'fluxBootstrap.proxy.url'
          ? 'http://user:canary-proxy-pass@127.0.0.1:1'
          : undefined,
      getOptionalStringArray: (k: string) =>
        k === 'fluxBootstrap.proxy.noProxy' ? ['localhost'] : undefined,
    };
    const settings = readHttpProxyConfig(config);
    expect(settings).toEqual({
      url: 'http://user:canary-proxy-pass@127.0.0.1:1',
      noProxy: ['localhost'],
    });
    expect(() => configureHttpProxy({ url: 'socks://x:1' })).toThrow(
      /must be an http\(s\) URL/,
    );
    configureHttpProxy(settings);
    const redactor = new Redactor();
    const client = new HttpClient({ retries: 0, redactor });
    const err = await client
      .request({
        method: 'GET',
        url: 'http://example.test/',
        what: 'via proxy',
      })
      .catch(e => e);
    // the proxy (port 1) refuses: the error says so without its credentials
    expect(err.kind).toBe('network');
    expect(err.detail).toContain('127.0.0.1:1');
    expect(redactor.values()).toContain('canary-proxy-pass');
    expect(`${err.message} ${err.stack}`).not.toContain('canary-proxy-pass');
  });
});
