import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { OperationAbortedError } from '../util/errors';
import { parseRetryAfter } from '../http';
import { BitbucketServerClient, gitHttpAuthHeaders, restPath } from './client';
import { BitbucketError } from './errors';
import { createGitHttpClient } from '../git/httpClient';

// Unit-level tests of the transport against a tiny local server whose every answer the test
// scripts. The behaviour against a Bitbucket-shaped peer is covered by the action's integration
// tests (createRepo.test.ts) with the Bitbucket double.

const CANARY = 'canary-token-7d0c41e2b9';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: string,
) => void;

async function startServer(handler: Handler) {
  const seen: Seen[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body,
      });
      handler(req, res, body);
    });
  });
  server.on('connection', s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    seen,
    port,
    stop: () =>
      new Promise<void>(r => {
        sockets.forEach(s => s.destroy());
        server.close(() => r());
      }),
  };
}

function hostFor(port: number, contextPath = ''): BitbucketServerHostConfig {
  const baseUrl = `http://127.0.0.1:${port}${contextPath}`;
  return {
    host: `127.0.0.1:${port}`,
    baseUrl,
    apiBaseUrl: `${baseUrl}/rest/api/1.0`,
    sshHost: '127.0.0.1:7999',
    requestTimeoutMs: 5_000,
    retries: 3,
  };
}

function json(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, {
    'Content-Type': 'application/json;charset=UTF-8',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

function collectingLogger() {
  const lines: string[] = [];
  const log = (m: string, meta?: unknown) =>
    lines.push(m + (meta ? ` ${JSON.stringify(meta)}` : ''));
  return { lines, logger: { info: log, warn: log, error: log, debug: log } };
}

async function caught(p: Promise<unknown>): Promise<BitbucketError> {
  try {
    await p;
  } catch (e) {
    return e as BitbucketError;
  }
  throw new Error('expected a rejection');
}

describe('BitbucketServerClient', () => {
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let client: BitbucketServerClient | undefined;
  afterEach(async () => {
    client?.close();
    await server?.stop();
    server = undefined;
    client = undefined;
  });

  it('keeps the context path for /rest/api, /rest/keys and /scm and sends Bearer auth', async () => {
    server = await startServer((req, res) => {
      if (req.url!.startsWith('/bitbucket/scm/')) {
        res.writeHead(200, {
          'Content-Type': 'application/x-git-receive-pack-advertisement',
        });
        res.end('001f# service=git-receive-pack\n0000');
        return;
      }
      if (req.url!.startsWith('/bitbucket/rest/keys/1.0/')) {
        json(res, 200, {
          values: [
            {
              key: { id: 7, text: 'ssh-ed25519 AAAA x', label: 'x' },
              permission: 'REPO_READ',
            },
          ],
          isLastPage: true,
        });
        return;
      }
      json(res, 200, { key: 'FLUX', name: 'Flux' });
    });
    client = new BitbucketServerClient(hostFor(server.port, '/bitbucket'), {
      token: CANARY,
    });
    const res = await client.request<{ key: string }>(
      'GET',
      restPath('/rest/api/1.0/projects/{}', 'FLUX'),
    );
    expect(res.body.key).toBe('FLUX');
    const keys = await client.listAccessKeys('FLUX', 'fleet');
    expect(keys.map(k => k.key.id)).toEqual([7]);
    // git over HTTPS goes through the engine's git HTTP client with the client's settings
    const url = `${client.scmUrl(
      'FLUX',
      'fleet',
    )}/info/refs?service=git-receive-pack`;
    const { headers, ...settings } = client.gitHttpSettings(url);
    const git = await createGitHttpClient(settings).request({
      url,
      method: 'GET',
      headers,
    });
    expect(git.statusCode).toBe(200);
    expect(() =>
      client!.gitHttpSettings('http://elsewhere.example.com/scm/x/y.git'),
    ).toThrow(/no credentials are sent there/);
    expect(server.seen.map(s => s.url.split('?')[0])).toEqual([
      '/bitbucket/rest/api/1.0/projects/FLUX',
      '/bitbucket/rest/keys/1.0/projects/FLUX/repos/fleet/ssh',
      '/bitbucket/scm/flux/fleet.git/info/refs',
    ]);
    for (const s of server.seen)
      expect(s.headers.authorization).toBe(`Bearer ${CANARY}`);
  });

  it('sends Basic auth for username and password, and encodes path segments', async () => {
    server = await startServer((_req, res) => json(res, 200, {}));
    client = new BitbucketServerClient(hostFor(server.port), {
      username: 'alice',
      password: CANARY,
    });
    await client.request(
      'GET',
      restPath('/rest/api/1.0/projects/{}/repos/{}', '~alice', 'a/../b'),
    );
    expect(server.seen[0].headers.authorization).toBe(
      `Basic ${Buffer.from(`alice:${CANARY}`).toString('base64')}`,
    );
    expect(server.seen[0].url).toBe(
      '/rest/api/1.0/projects/~alice/repos/a%2F..%2Fb',
    );
    expect(gitHttpAuthHeaders({ token: 't0ken' })).toEqual({
      Authorization: 'Bearer t0ken',
    });
  });

  it('walks every page with start/limit until isLastPage', async () => {
    const all = Array.from({ length: 7 }, (_, i) => ({ n: i }));
    server = await startServer((req, res) => {
      const q = new URL(req.url!, 'http://x').searchParams;
      const start = Number(q.get('start'));
      const limit = Number(q.get('limit'));
      const values = all.slice(start, start + limit);
      const isLastPage = start + limit >= all.length;
      json(res, 200, {
        values,
        size: values.length,
        start,
        limit,
        isLastPage,
        ...(isLastPage ? {} : { nextPageStart: start + limit }),
      });
    });
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    const got = await client.listAll<{ n: number }>('/rest/api/1.0/projects', {
      limit: 3,
      query: { name: 'x' },
    });
    expect(got.map(v => v.n)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(server.seen.map(s => s.url)).toEqual([
      '/rest/api/1.0/projects?name=x&start=0&limit=3',
      '/rest/api/1.0/projects?name=x&start=3&limit=3',
      '/rest/api/1.0/projects?name=x&start=6&limit=3',
    ]);
  });

  it('refuses a page that would loop forever', async () => {
    server = await startServer((_req, res) =>
      json(res, 200, { values: [1], isLastPage: false, nextPageStart: 0 }),
    );
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    const err = await caught(client.listAll('/rest/api/1.0/projects'));
    expect(err.kind).toBe('unexpected-response');
  });

  it('turns Bitbucket error bodies into readable errors and tells a missing permission from bad credentials', async () => {
    server = await startServer((req, res) => {
      if (req.url!.includes('NOPE')) {
        json(res, 401, {
          errors: [
            {
              context: null,
              message: 'You are not permitted to access this resource',
              exceptionName: 'com.atlassian.bitbucket.AuthorisationException',
            },
          ],
        });
        return;
      }
      json(res, 401, {
        errors: [
          {
            context: null,
            message: `Authentication failed for ${req.headers.authorization}. Please check your credentials and try again.`,
            exceptionName:
              'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException',
          },
        ],
      });
    });
    const { lines, logger } = collectingLogger();
    client = new BitbucketServerClient(
      hostFor(server.port),
      { token: CANARY },
      { logger },
    );
    const forbidden = await caught(
      client.request('GET', '/rest/api/1.0/projects/NOPE'),
    );
    expect(forbidden).toBeInstanceOf(BitbucketError);
    expect(forbidden.kind).toBe('forbidden');
    expect(forbidden.status).toBe(401);
    expect(forbidden.exceptionName).toBe(
      'com.atlassian.bitbucket.AuthorisationException',
    );
    expect(forbidden.message).toContain(
      'You are not permitted to access this resource',
    );
    expect(forbidden.message).toContain('GET /rest/api/1.0/projects/NOPE');

    const unauthorized = await caught(
      client.request('GET', '/rest/api/1.0/projects/FLUX'),
    );
    expect(unauthorized.kind).toBe('unauthorized');
    // The server echoed the Authorization header: the client must not repeat it.
    expect(unauthorized.message).toContain('Authentication failed');
    for (const text of [
      unauthorized.message,
      unauthorized.stack ?? '',
      JSON.stringify(unauthorized.details),
      ...lines,
    ]) {
      expect(text).not.toContain(CANARY);
    }
    // 401 is not retried
    expect(server.seen).toHaveLength(2);
  });

  it('detects an HTML page (wrong context path) and explains it', async () => {
    server = await startServer((req, res) => {
      res.writeHead(req.url!.includes('missing') ? 404 : 200, {
        'Content-Type': 'text/html',
      });
      res.end(
        '<!DOCTYPE html><html><head><title>Log in - Bitbucket</title></head><body></body></html>',
      );
    });
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    const ok = await caught(
      client.request('GET', '/rest/api/1.0/projects/FLUX'),
    );
    expect(ok.kind).toBe('unexpected-response');
    expect(ok.message).toMatch(/HTML page/);
    expect(ok.message).toMatch(/context path/);
    expect(ok.message).toContain('Log in - Bitbucket');
    const missing = await caught(
      client.request('GET', '/rest/api/1.0/missing'),
    );
    expect(missing.kind).toBe('unexpected-response');
    expect(missing.status).toBe(404);
    expect(missing.message).toMatch(/context path/);
  });

  it('treats a 403 page of a proxy as a missing permission, not retried', async () => {
    server = await startServer((_req, res) => {
      res.writeHead(403, { 'Content-Type': 'text/html' });
      res.end(
        '<html><head><title>403 Forbidden</title></head><body>Access denied by policy</body></html>',
      );
    });
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    const err = await caught(
      client.request('POST', '/rest/api/1.0/projects/FLUX/repos', {
        body: { name: 'x' },
      }),
    );
    expect(err.kind).toBe('forbidden');
    expect(err.status).toBe(403);
    expect(err.message).toContain('HTTP 403');
    expect(err.message).toContain('403 Forbidden');
    expect(err.message).toMatch(/proxy/);
    expect(server.seen).toHaveLength(1);
  });

  it('does not follow redirects (the Authorization header would travel along)', async () => {
    server = await startServer((_req, res) => {
      res.writeHead(302, {
        Location: 'https://sso.example.com/login?token=abc',
      });
      res.end();
    });
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    const err = await caught(client.request('GET', '/rest/api/1.0/projects'));
    expect(err.kind).toBe('unexpected-response');
    expect(err.message).toContain('https://sso.example.com/login');
    expect(err.message).not.toContain('token=abc');
    expect(server.seen).toHaveLength(1);
  });

  it('retries 5xx and 429 (honouring Retry-After) and then succeeds', async () => {
    let n = 0;
    server = await startServer((_req, res) => {
      n++;
      if (n === 1) json(res, 503, { errors: [{ message: 'busy' }] });
      else if (n === 2)
        json(
          res,
          429,
          { errors: [{ message: 'slow down' }] },
          { 'Retry-After': '1' },
        );
      else if (n === 3) json(res, 502, {});
      else json(res, 200, { ok: true });
    });
    const { lines, logger } = collectingLogger();
    client = new BitbucketServerClient(
      hostFor(server.port),
      { token: CANARY },
      {
        logger,
        baseDelayMs: 5,
      },
    );
    // A POST is repeated only when the caller says a repeat converges (a create answering 409).
    const res = await client.request<{ ok: boolean }>(
      'POST',
      '/rest/api/1.0/projects/FLUX/repos',
      {
        body: { name: 'fleet' },
        retry: true,
      },
    );
    expect(res.body.ok).toBe(true);
    expect(server.seen).toHaveLength(4);
    expect(server.seen.every(s => s.body === '{"name":"fleet"}')).toBe(true);
    const retryLines = lines.filter(l => /retry \d of 3/.test(l));
    expect(retryLines).toHaveLength(3);
    // the 429's Retry-After (1 s) is the delay used, not the 5 ms backoff
    expect(retryLines[1]).toContain('in 1000 ms');

    // Not marked: a failed POST is not sent again (it may have been carried out).
    n = 0;
    const err = await caught(
      client.request('POST', '/rest/api/1.0/projects/FLUX/repos', {
        body: { name: 'fleet' },
      }),
    );
    expect(err.status).toBe(503);
    expect(server.seen).toHaveLength(5);
  });

  it('gives up after the bounded number of retries', async () => {
    server = await startServer((_req, res) =>
      json(res, 500, { errors: [{ message: 'boom' }] }),
    );
    client = new BitbucketServerClient(
      hostFor(server.port),
      { token: CANARY },
      { retries: 2, baseDelayMs: 1 },
    );
    const err = await caught(client.request('GET', '/rest/api/1.0/projects'));
    expect(err.kind).toBe('server');
    expect(err.message).toMatch(/gave up after 3 attempts/);
    // …and says what to do about a transient outage.
    expect(err.message).toMatch(/try again later \(re-running is safe/);
    expect(server.seen).toHaveLength(3);
  });

  it('fails at once when Retry-After asks for longer than it is willing to wait', async () => {
    server = await startServer((_req, res) =>
      json(res, 429, {}, { 'Retry-After': '3600' }),
    );
    client = new BitbucketServerClient(
      hostFor(server.port),
      { token: CANARY },
      { baseDelayMs: 1 },
    );
    const err = await caught(client.request('GET', '/rest/api/1.0/projects'));
    expect(err.kind).toBe('rate-limited');
    expect(err.message).toMatch(/retry after 3600 s/);
    expect(server.seen).toHaveLength(1);
  });

  it.each([400, 404, 409])('never retries %s', async status => {
    server = await startServer((_req, res) =>
      json(res, status, { errors: [{ message: `nope ${status}` }] }),
    );
    client = new BitbucketServerClient(
      hostFor(server.port),
      { token: CANARY },
      { baseDelayMs: 1 },
    );
    const err = await caught(
      client.request('PUT', '/rest/api/1.0/projects/FLUX'),
    );
    expect(err.status).toBe(status);
    const kinds: Record<number, string> = {
      400: 'bad-request',
      404: 'not-found',
      409: 'conflict',
    };
    expect(err.kind).toBe(kinds[status]);
    expect(server.seen).toHaveLength(1);
  });

  it('returns listed statuses instead of throwing', async () => {
    server = await startServer((_req, res) =>
      json(res, 404, { errors: [{ message: 'no repo' }] }),
    );
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    expect(await client.getRepository('FLUX', 'fleet')).toBeUndefined();
  });

  it('retries a reset connection', async () => {
    let n = 0;
    server = await startServer((req, res) => {
      n++;
      if (n === 1) {
        req.socket.destroy();
        return;
      }
      json(res, 200, { ok: true });
    });
    client = new BitbucketServerClient(
      hostFor(server.port),
      { token: CANARY },
      { baseDelayMs: 1 },
    );
    const res = await client.request<{ ok: boolean }>(
      'GET',
      '/rest/api/1.0/projects',
    );
    expect(res.body.ok).toBe(true);
    expect(server.seen).toHaveLength(2);
  });

  it('times out each attempt and retries, then reports a timeout', async () => {
    server = await startServer(() => {
      /* never answers */
    });
    client = new BitbucketServerClient(
      hostFor(server.port),
      { token: CANARY },
      {
        requestTimeoutMs: 100,
        retries: 1,
        baseDelayMs: 1,
      },
    );
    const err = await caught(client.request('GET', '/rest/api/1.0/projects'));
    expect(err.kind).toBe('timeout');
    expect(server.seen).toHaveLength(2);
  });

  it('stops at once when the signal aborts, also while backing off', async () => {
    server = await startServer((_req, res) =>
      json(res, 503, {}, { 'Retry-After': '60' }),
    );
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    const controller = new AbortController();
    const pending = client.request('GET', '/rest/api/1.0/projects', {
      signal: controller.signal,
    });
    // abort once the first answer arrived and the client is waiting for Retry-After
    while (server.seen.length === 0) await new Promise(r => setTimeout(r, 5));
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(OperationAbortedError);
    expect(server.seen).toHaveLength(1);

    const hanging = await startServer(() => {});
    const c2 = new BitbucketServerClient(hostFor(hanging.port), {
      token: CANARY,
    });
    const ctl2 = new AbortController();
    const p2 = c2.request('GET', '/rest/api/1.0/projects', {
      signal: ctl2.signal,
    });
    while (hanging.seen.length === 0) await new Promise(r => setTimeout(r, 5));
    ctl2.abort();
    await expect(p2).rejects.toBeInstanceOf(OperationAbortedError);
    const already = new AbortController();
    already.abort();
    await expect(
      c2.request('GET', '/rest/api/1.0/projects', { signal: already.signal }),
    ).rejects.toBeInstanceOf(OperationAbortedError);
    expect(hanging.seen).toHaveLength(1);
    c2.close();
    await hanging.stop();
  });

  it('reads the user from X-AUSERNAME', async () => {
    server = await startServer((_req, res) =>
      json(
        res,
        200,
        { version: '8.19.0' },
        { 'X-AUSERNAME': 'alice%40corp', 'X-AUSERID': '42' },
      ),
    );
    client = new BitbucketServerClient(hostFor(server.port), { token: CANARY });
    expect(await client.whoami()).toEqual({ name: 'alice@corp', id: 42 });
  });

  it('reports an unreachable server without retrying forever', async () => {
    const s = await startServer(() => {});
    const port = s.port;
    await s.stop();
    client = new BitbucketServerClient(
      hostFor(port),
      { token: CANARY },
      { retries: 1, baseDelayMs: 1 },
    );
    const err = await caught(client.request('GET', '/rest/api/1.0/projects'));
    expect(err.kind).toBe('network');
    expect(err.code).toBe('ECONNREFUSED');
    expect(err.message).not.toContain(CANARY);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
