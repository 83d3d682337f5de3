import fs from 'node:fs';
import net from 'node:net';
import { startTestRedis, TestRedis } from './redis';

function accepts(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('startTestRedis', () => {
  let redis: TestRedis | undefined;
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  it('serves on loopback with a password that is on no command line, and keeps no data across kill/start', async () => {
    const password = `canary-${Date.now().toString(36)}`;
    redis = await startTestRedis({ password });
    expect(redis.url).toBe(`redis://:${password}@127.0.0.1:${redis.port}`);
    expect(await redis.command('SET', 'a:1', 'x')).toBe('OK');
    expect(await redis.command('SET', 'b:1', 'y')).toBe('OK');
    expect(await redis.keys('a:*')).toEqual(['a:1']);
    expect(await redis.command('CONFIG', 'GET', 'save')).toContain('""');
    const cmdline = fs
      .readFileSync(`/proc/${redis.pid()}/cmdline`, 'utf8')
      .replace(/\0/g, ' ');
    expect(cmdline).toContain(`127.0.0.1:${redis.port}`);
    expect(cmdline).not.toContain(password);

    // Without the password the server refuses commands.
    const anonymous = await new Promise<string>(resolve => {
      const s = net.connect(redis!.port, '127.0.0.1', () =>
        s.write('*1\r\n$4\r\nPING\r\n'),
      );
      s.once('data', d => {
        s.destroy();
        resolve(d.toString());
      });
    });
    expect(anonymous).toMatch(/NOAUTH/);

    const { port } = redis;
    const pid = redis.pid();
    await redis.kill();
    expect(redis.running()).toBe(false);
    expect(await accepts(port)).toBe(false);
    await expect(redis.command('PING')).rejects.toThrow();
    await redis.start();
    expect(redis.pid()).not.toBe(pid);
    expect(await redis.command('PING')).toBe('PONG');
    expect(await redis.keys()).toEqual([]);

    await redis.stop();
    expect(await accepts(port)).toBe(false);
  });
});
