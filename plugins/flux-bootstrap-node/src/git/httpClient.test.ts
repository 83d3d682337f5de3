import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGitHttpClient } from './httpClient';
import { OperationAbortedError } from '../util/errors';

type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  n: number,
) => void;

async function startServer(handler: Handler) {
  const seen: { method: string; url: string; auth?: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({
      method: req.method!,
      url: req.url!,
      auth: req.headers.authorization,
    });
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

async function text(body: AsyncIterable<Uint8Array> | undefined) {
  const chunks: Buffer[] = [];
  for await (const c of body ?? []) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

describe('createGitHttpClient', () => {
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('retries a ref discovery GET that failed transiently (5xx, 429, dropped connection), telling why', async () => {
    server = await startServer((_req, res, n) => {
      if (n === 1) {
        res.writeHead(503).end('busy');
      } else if (n === 2) {
        res.socket?.destroy();
      } else if (n === 3) {
        res.writeHead(429, { 'Retry-After': '0' }).end();
      } else {
        res.writeHead(200).end('refs');
      }
    });
    const retries: string[] = [];
    const client = createGitHttpClient({
      getRetries: 3,
      retryBaseDelayMs: 1,
      onRetry: (reason, attempt) => retries.push(`${attempt}: ${reason}`),
    });
    const res = await client.request({
      url: `${server.url}/scm/x/y.git/info/refs?service=git-upload-pack`,
      method: 'GET',
      headers: { Authorization: 'Bearer canary-token' },
    });
    expect(res.statusCode).toBe(200);
    expect(await text(res.body)).toBe('refs');
    expect(retries).toEqual([
      '1: HTTP 503',
      expect.stringMatching(/^2: /),
      '3: HTTP 429',
    ]);
    expect(server.seen.map(s => s.auth)).toEqual(
      Array(4).fill('Bearer canary-token'),
    );
    expect(retries.join('\n')).not.toContain('canary-token');
  });

  it('never repeats a pack upload (POST), and retries nothing by default', async () => {
    server = await startServer((_req, res) => res.writeHead(502).end());
    const client = createGitHttpClient({ getRetries: 3, retryBaseDelayMs: 1 });
    const post = await client.request({
      url: `${server.url}/scm/x/y.git/git-receive-pack`,
      method: 'POST',
      body: (async function* body() {
        yield new Uint8Array([0x30, 0x30, 0x30, 0x30]);
      })(),
    });
    expect(post.statusCode).toBe(502);
    const get = await createGitHttpClient().request({
      url: `${server.url}/scm/x/y.git/info/refs?service=git-upload-pack`,
      method: 'GET',
    });
    expect(get.statusCode).toBe(502);
    expect(server.seen.map(s => s.method)).toEqual(['POST', 'GET']);
  });

  it('stops waiting between retries when the signal aborts', async () => {
    server = await startServer((_req, res) =>
      res.writeHead(503, { 'Retry-After': '30' }).end(),
    );
    const controller = new AbortController();
    const client = createGitHttpClient({
      getRetries: 5,
      signal: controller.signal,
      onRetry: () => controller.abort(),
    });
    await expect(
      client.request({
        url: `${server.url}/scm/x/y.git/info/refs?service=git-upload-pack`,
        method: 'GET',
      }),
    ).rejects.toBeInstanceOf(OperationAbortedError);
    expect(server.seen).toHaveLength(1);
  });

  it('does not follow redirects (they would carry the Authorization header elsewhere)', async () => {
    server = await startServer((_req, res) =>
      res.writeHead(302, { Location: 'http://127.0.0.1:1/steal' }).end(),
    );
    const res = await createGitHttpClient({ getRetries: 2 }).request({
      url: `${server.url}/scm/x/y.git/info/refs?service=git-upload-pack`,
      method: 'GET',
      headers: { Authorization: 'Bearer canary-token' },
    });
    expect(res.statusCode).toBe(302);
    expect(server.seen).toHaveLength(1);
  });
});
