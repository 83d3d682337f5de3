import type {
  CacheService,
  LoggerService,
} from '@backstage/backend-plugin-api';
import type { StatusCache } from '@flux-bootstrap/plugin-flux-bootstrap-node';

/** A status cache that never makes a request wait for a cache store that does not answer. */
export interface ResilientStatusCache extends StatusCache {
  /** False while the shared store is considered down (after a failed or timed-out call). */
  sharedHealthy(): boolean;
}

/**
 * Wraps Backstage's cache service (Redis, Valkey, Memcache … when configured; shared by the
 * replicas) for the status reader. Every call is bounded by `timeoutMs`: with Redis down, the
 * cache service's calls wait in its client's offline queue instead of failing. After a failure
 * the shared store is skipped for `retryMs` (then one call probes it) and this replica serves
 * and keeps statuses in its own memory — the per-replica cache a single backend has — and says
 * so in the log, once per outage.
 */
export function resilientStatusCache(
  shared: CacheService,
  options: { logger: LoggerService; timeoutMs?: number; retryMs?: number },
): ResilientStatusCache {
  const { logger } = options;
  const timeoutMs = options.timeoutMs ?? 1000;
  const retryMs = options.retryMs ?? 5000;
  const local = new Map<string, { value: unknown; expiresAt: number }>();
  let downUntil = 0;
  let down = false;
  let probing = false;

  /** Whether this call may use the shared store (while down: one probe at a time after retryMs). */
  const mayUseShared = (): { probe: boolean } | undefined => {
    if (!down) return { probe: false };
    if (probing || Date.now() < downUntil) return undefined;
    probing = true;
    return { probe: true };
  };
  const bounded = <T>(op: () => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      op(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `the cache service did not answer within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  };
  const failed = (error: unknown) => {
    downUntil = Date.now() + retryMs;
    if (!down) {
      down = true;
      logger.warn(
        `Shared status cache unavailable (${
          (error as Error)?.message ?? error
        }): statuses are cached in this replica's memory and no longer shared with other replicas; retrying every ${Math.round(
          retryMs / 1000,
        )} s`,
      );
    }
  };
  const succeeded = () => {
    if (down) {
      down = false;
      logger.info(
        'Shared status cache answers again: statuses are shared between replicas',
      );
    }
  };
  const fromLocal = (key: string) => {
    const entry = local.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      local.delete(key);
      return undefined;
    }
    return entry.value;
  };

  return {
    sharedHealthy: () => !down,
    async get(key) {
      const use = mayUseShared();
      if (use) {
        try {
          const value = await bounded(() => shared.get(key));
          succeeded();
          return value;
        } catch (error) {
          failed(error);
        } finally {
          if (use.probe) probing = false;
        }
      }
      return fromLocal(key);
    },
    async set(key, value, opts) {
      local.set(key, {
        value,
        expiresAt: Date.now() + (opts?.ttl ?? 60_000),
      });
      const use = mayUseShared();
      if (!use) return;
      try {
        await bounded(() => shared.set(key, value, opts));
        succeeded();
      } catch (error) {
        failed(error);
      } finally {
        if (use.probe) probing = false;
      }
    },
  };
}
