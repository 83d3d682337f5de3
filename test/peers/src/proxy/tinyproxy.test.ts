import http from 'node:http';
import net from 'node:net';
import { listenLoopback } from '../common/net';
import { startTinyproxy, Tinyproxy } from './tinyproxy';

/** A CONNECT through the proxy, then one GET inside the tunnel; the status line of each. */
function tunnelGet(
  proxy: Tinyproxy,
  target: string,
  proxyAuthorization?: string,
): Promise<{ connect: string; answer?: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxy.port, '127.0.0.1');
    let buffer = '';
    let phase: 'connect' | 'get' = 'connect';
    let connect = '';
    socket.on('error', reject);
    socket.on('data', chunk => {
      buffer += chunk.toString('latin1');
      if (phase === 'connect' && buffer.includes('\r\n\r\n')) {
        connect = buffer.split('\r\n')[0];
        buffer = '';
        if (!/ 200 /.test(connect)) {
          socket.destroy();
          resolve({ connect });
          return;
        }
        phase = 'get';
        socket.write(
          `GET /hello HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
        );
      }
    });
    socket.on('end', () =>
      resolve({ connect, answer: buffer.split('\r\n')[0] }),
    );
    socket.write(
      `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${
        proxyAuthorization
          ? `Proxy-Authorization: ${proxyAuthorization}\r\n`
          : ''
      }\r\n`,
    );
  });
}

describe('startTinyproxy', () => {
  let origin: http.Server;
  let target: string;
  beforeAll(async () => {
    origin = http.createServer((_req, res) => res.end('hello'));
    target = `127.0.0.1:${await listenLoopback(origin)}`;
  });
  afterAll(() => new Promise(r => origin.close(r)));

  it('tunnels CONNECT to any loopback port and logs each request', async () => {
    const proxy = await startTinyproxy();
    try {
      expect(proxy.url).toBe(`http://127.0.0.1:${proxy.port}`);
      expect(proxy.proxyUrl).toBe(proxy.url);
      const r = await tunnelGet(proxy, target);
      expect(r.connect).toMatch(/^HTTP\/1\.[01] 200/);
      expect(r.answer).toBe('HTTP/1.1 200 OK');
      const mark = proxy.mark();
      await tunnelGet(proxy, target);
      expect(proxy.requests()).toEqual([
        { method: 'CONNECT', target },
        { method: 'CONNECT', target },
      ]);
      expect(proxy.requests(mark)).toEqual([{ method: 'CONNECT', target }]);
    } finally {
      await proxy.stop();
    }
    expect(
      await new Promise(r =>
        net
          .connect(proxy.port, '127.0.0.1')
          .on('error', () => r('closed'))
          .on('connect', () => r('open')),
      ),
    ).toBe('closed');
  });

  it('requires BasicAuth when configured, and never logs the password', async () => {
    const password = 'canary-proxy-password-71c4';
    const proxy = await startTinyproxy({
      basicAuth: { user: 'alice', password },
    });
    try {
      expect(proxy.proxyUrl).toBe(
        `http://alice:${password}@127.0.0.1:${proxy.port}`,
      );
      expect((await tunnelGet(proxy, target)).connect).toMatch(/ 407 /);
      const basic = `Basic ${Buffer.from(`alice:${password}`).toString(
        'base64',
      )}`;
      const ok = await tunnelGet(proxy, target, basic);
      expect(ok.answer).toBe('HTTP/1.1 200 OK');
      expect(proxy.log()).not.toContain(password);
      expect(proxy.log()).not.toContain(basic.split(' ')[1]);
    } finally {
      await proxy.stop();
    }
  });
});
