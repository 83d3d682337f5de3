import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createTestPki } from '../common/tls';
import { FaultProxy, startFaultProxy } from './faultProxy';

interface Answer {
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: string;
  error?: string;
}

function get(
  proxy: FaultProxy,
  path: string,
  opts: { method?: string; timeoutMs?: number; body?: string } = {},
): Promise<Answer> {
  return new Promise(resolve => {
    const req = https.request(
      `${proxy.url}${path}`,
      {
        method: opts.method ?? 'GET',
        ca: proxy.caPem,
        agent: false,
        headers: { Authorization: 'Bearer canary-token' },
        timeout: opts.timeoutMs ?? 5000,
      },
      res => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', c => (body += c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body }),
        );
        res.on('error', e =>
          resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }),
        );
      },
    );
    req.on('timeout', () => {
      req.destroy(new Error('client timeout'));
    });
    req.on('error', e =>
      resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }),
    );
    req.end(opts.body);
  });
}

describe('startFaultProxy', () => {
  let upstream: https.Server;
  let upstreamUrl: string;
  let upstreamCa: string;
  const seen: { method?: string; url?: string; auth?: string; body: string }[] =
    [];
  let proxy: FaultProxy;

  beforeAll(async () => {
    const pki = await createTestPki();
    upstreamCa = pki.caPem;
    upstream = https.createServer(
      { cert: pki.certPem, key: pki.keyPem },
      (req, res) => {
        let body = '';
        req.on('data', c => (body += c));
        req.on('end', () => {
          seen.push({
            method: req.method,
            url: req.url,
            auth: req.headers.authorization,
            body,
          });
          res.writeHead(200, {
            'Content-Type': 'application/json',
            'X-Upstream': 'yes',
          });
          res.end(JSON.stringify({ path: req.url }));
        });
      },
    );
    await new Promise<void>(r => upstream.listen(0, '127.0.0.1', () => r()));
    upstreamUrl = `https://127.0.0.1:${
      (upstream.address() as AddressInfo).port
    }`;
    proxy = await startFaultProxy({
      upstream: { url: upstreamUrl, caPem: upstreamCa },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    upstream.closeAllConnections();
    await new Promise<void>(r => upstream.close(() => r()));
  });

  beforeEach(() => {
    seen.length = 0;
    proxy.clearFaults();
    proxy.clearRequests();
    proxy.setOutage(undefined);
  });

  it('forwards requests with their headers and body, and logs them without credentials', async () => {
    const a = await get(proxy, '/api/v1/namespaces?limit=5', {
      method: 'POST',
      body: '{"x":1}',
    });
    expect(a.status).toBe(200);
    expect(a.headers?.['x-upstream']).toBe('yes');
    expect(seen).toEqual([
      {
        method: 'POST',
        url: '/api/v1/namespaces?limit=5',
        auth: 'Bearer canary-token',
        body: '{"x":1}',
      },
    ]);
    expect(proxy.requests()).toEqual([
      {
        seq: expect.any(Number),
        method: 'POST',
        path: '/api/v1/namespaces',
        query: 'limit=5',
        status: 200,
      },
    ]);
    expect(JSON.stringify(proxy.requests())).not.toContain('canary-token');
  });

  it('answers matching requests with an HTTP error and Retry-After, the given number of times', async () => {
    proxy.inject({
      method: 'GET',
      path: '/apis/*',
      status: 429,
      retryAfter: 3,
      times: 2,
    });
    const a = await get(proxy, '/apis/apps/v1');
    const b = await get(proxy, '/apis/apps/v1');
    const c = await get(proxy, '/apis/apps/v1');
    const other = await get(proxy, '/api/v1');
    expect([a.status, b.status, c.status, other.status]).toEqual([
      429, 429, 200, 200,
    ]);
    expect(a.headers?.['retry-after']).toBe('3');
    expect(JSON.parse(a.body!)).toMatchObject({ kind: 'Status', code: 429 });
    proxy.inject({ path: '/echo', status: 401, echoCredentials: true });
    expect(JSON.parse((await get(proxy, '/echo')).body!).message).toBe(
      'injected fault: HTTP 401 (request header Authorization: Bearer canary-token; credential canary-token)',
    );
    expect(seen.map(s => s.url)).toEqual(['/apis/apps/v1', '/api/v1']);
    expect(proxy.requests().map(r => r.fault)).toEqual([
      'status 429',
      'status 429',
      undefined,
      undefined,
      'status 401',
    ]);
    expect(proxy.pendingFaults()).toEqual([]);
  });

  it('matches the query string, or its absence', async () => {
    proxy.inject({
      method: 'PATCH',
      path: '/apis/x',
      notQuery: 'dryRun=All',
      status: 500,
    });
    proxy.inject({ path: '/apis/y', query: /(^|&)watch=1/, status: 503 });
    expect(
      (await get(proxy, '/apis/x?dryRun=All', { method: 'PATCH' })).status,
    ).toBe(200);
    expect(
      (await get(proxy, '/apis/x?fieldManager=flux', { method: 'PATCH' }))
        .status,
    ).toBe(500);
    expect((await get(proxy, '/apis/y?limit=1')).status).toBe(200);
    expect((await get(proxy, '/apis/y?watch=1')).status).toBe(503);
  });

  it('resets a request without forwarding it', async () => {
    proxy.inject({ path: /\/secrets$/, reset: true });
    const a = await get(proxy, '/api/v1/namespaces/x/secrets');
    expect(a.error).toBe('ECONNRESET');
    expect(seen).toEqual([]);
    expect(proxy.requests()[0]).toMatchObject({ status: 0, fault: 'reset' });
  });

  it('resets after the upstream processed the request (the change happened, the answer is lost)', async () => {
    proxy.inject({ method: 'PATCH', resetAfterForward: true });
    const a = await get(proxy, '/apis/x', { method: 'PATCH', body: 'p' });
    expect(a.error).toBe('ECONNRESET');
    expect(seen).toEqual([
      expect.objectContaining({ method: 'PATCH', body: 'p' }),
    ]);
  });

  it('delays and black-holes requests', async () => {
    proxy.inject({ path: '/slow', delayMs: 300 });
    const started = Date.now();
    expect((await get(proxy, '/slow')).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    proxy.inject({ path: '/hang', blackhole: true });
    const hung = await get(proxy, '/hang', { timeoutMs: 300 });
    expect(hung.error).toBe('client timeout');
    expect(seen.map(s => s.url)).toEqual(['/slow']);
  });

  it('applies connection-level outages to new connections, and resets when the upstream is down', async () => {
    proxy.setOutage('reset');
    expect((await get(proxy, '/a')).error).toBe('ECONNRESET');
    proxy.setOutage('blackhole');
    expect((await get(proxy, '/a', { timeoutMs: 300 })).error).toBe(
      'client timeout',
    );
    proxy.setOutage(undefined);
    expect((await get(proxy, '/a')).status).toBe(200);
    expect(proxy.requests().map(r => r.path)).toEqual(['/a']);

    proxy.setUpstream({ url: 'https://127.0.0.1:1', caPem: upstreamCa });
    expect((await get(proxy, '/down')).error).toBe('ECONNRESET');
    expect(proxy.requests().at(-1)).toMatchObject({
      path: '/down',
      status: 0,
      fault: 'upstream error',
    });
    proxy.setUpstream({ url: upstreamUrl, caPem: upstreamCa });
    expect((await get(proxy, '/up')).status).toBe(200);
  });
});
