import { ConfigReader } from '@backstage/config';
import { CacheManager } from '@backstage/backend-defaults/cache';
import { mockServices } from '@backstage/backend-test-utils';
import { startTestRedis, TestRedis } from '@flux-bootstrap/test-peers';
import { resilientStatusCache } from './resilientCache';

// Against a real redis-server through Backstage's own cache service: when Redis stops, the
// cache service's calls wait in the client's offline queue — a status request must not.

describe('resilientStatusCache', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startTestRedis({ password: 'canary-redis-pw-5d1e' });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  // The valkey store (iovalkey) reconnects after an outage; the redis store's client does not
  // (backstage/backstage#31742), which the reliability suite's two real backends show.
  const cacheService = (store: 'redis' | 'valkey') =>
    CacheManager.fromConfig(
      new ConfigReader({
        backend: { cache: { store, connection: redis.url } },
      }),
      { logger: mockServices.logger.mock() },
    ).forPlugin('flux-bootstrap');

  it('shares entries through Redis; with Redis down it answers from this replica within the timeout, says so once, and shares again when Redis is back', async () => {
    const logger = mockServices.logger.mock();
    const cache = resilientStatusCache(cacheService('valkey'), {
      logger,
      timeoutMs: 300,
      retryMs: 500,
    });
    const other = cacheService('valkey');
    await cache.set('k', { v: 1 }, { ttl: 60_000 });
    expect(await other.get('k')).toEqual({ v: 1 });
    expect(await redis.keys()).toEqual([
      expect.stringMatching(/flux-bootstrap/),
    ]);
    expect(cache.sharedHealthy()).toBe(true);

    await redis.kill();
    let t = Date.now();
    expect(await cache.get('k')).toEqual({ v: 1 }); // this replica's own copy
    expect(Date.now() - t).toBeLessThan(1500);
    expect(cache.sharedHealthy()).toBe(false);
    t = Date.now();
    await cache.set('k', { v: 2 }, { ttl: 60_000 });
    expect(await cache.get('k')).toEqual({ v: 2 });
    expect(Date.now() - t).toBeLessThan(100); // skipped, not waited for
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(String((logger.warn as jest.Mock).mock.calls[0][0])).toMatch(
      /Shared status cache unavailable .*no longer shared with other replicas/,
    );

    await redis.start(); // empty: a restarted Redis without persistence
    let back = false;
    for (let i = 0; i < 60 && !back; i++) {
      await new Promise(r => setTimeout(r, 250));
      await cache.set('k', { v: 3 }, { ttl: 60_000 });
      back = cache.sharedHealthy();
    }
    expect(back).toBe(true);
    expect(await other.get('k')).toEqual({ v: 3 });
    expect(logger.info).toHaveBeenCalledWith(
      'Shared status cache answers again: statuses are shared between replicas',
    );
    const logged = JSON.stringify([
      (logger.warn as jest.Mock).mock.calls,
      (logger.info as jest.Mock).mock.calls,
    ]);
    expect(logged).not.toContain('canary-redis-pw-5d1e');
  });
});
