import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DatabaseService,
  LoggerService,
  resolvePackagePath,
} from '@backstage/backend-plugin-api';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { StatusReadCoordinator } from '@flux-bootstrap/plugin-flux-bootstrap-node';

const TABLE = 'flux_bootstrap_status_read_leases';

/** Per-cluster read leases shared by the replicas (a row per cluster being read). */
export interface StatusReadLeases {
  /** Takes the lease of `cluster` for `ms` unless another holder has a lease that has not expired. */
  tryAcquire(cluster: string, holder: string, ms: number): Promise<boolean>;
  /** True while some holder has an unexpired lease of `cluster`. */
  held(cluster: string): Promise<boolean>;
  release(cluster: string, holder: string): Promise<void>;
}

/**
 * Leases in the plugin's own database (`coreServices.database`: PostgreSQL when the replicas share
 * one). Taking a lease is one conditional upsert — insert, or take over a row whose lease expired —
 * so two replicas never both get it; expiry is what frees the lease of a replica that died.
 */
export async function databaseStatusReadLeases(
  database: DatabaseService,
): Promise<StatusReadLeases> {
  const knex = await database.getClient();
  if (!database.migrations?.skip) {
    const directory = resolvePackagePath(
      '@flux-bootstrap/plugin-flux-bootstrap-backend',
      'migrations',
    );
    // Replicas starting together on a fresh database race to create knex's own bookkeeping
    // tables; the loser finds them made and succeeds on its second try.
    await knex.migrate
      .latest({ directory })
      .catch(() => sleep(500).then(() => knex.migrate.latest({ directory })));
  }
  return {
    async tryAcquire(cluster, holder, ms) {
      const now = Date.now();
      await knex(TABLE)
        .insert({ cluster, holder, expires_at: now + ms })
        .onConflict('cluster')
        .merge(['holder', 'expires_at'])
        .where(`${TABLE}.expires_at`, '<', now);
      const row = await knex(TABLE).where({ cluster }).first('holder');
      return row?.holder === holder;
    },
    async held(cluster) {
      const row = await knex(TABLE)
        .where({ cluster })
        .andWhere('expires_at', '>=', Date.now())
        .first('holder');
      return !!row;
    },
    async release(cluster, holder) {
      await knex(TABLE).where({ cluster, holder }).delete();
    },
  };
}

/** Options of {@link createStatusReadCoordinator}. */
export interface StatusReadCoordinatorOptions {
  leases: StatusReadLeases;
  logger: LoggerService;
  /** How long a lease lasts: longer than the longest read (both its deadlines). */
  leaseMs: number;
  /** Whether the shared cache answers; when it does not, every replica reads for itself. */
  sharedCacheHealthy: () => boolean;
  /** First poll interval of a waiting replica (doubles up to 8×). */
  pollMs?: number;
}

/**
 * Cross-replica single flight for the status reader: the replica that gets a cluster's lease
 * reads it (and writes the result to the shared cache); the others poll the shared cache until
 * the result is there, or the lease is gone without one (its holder died, or the cache lost the
 * entry) and they take it over. Without a working shared cache or lease store each replica reads
 * for itself, as a single replica would, and says so in the log.
 */
export function createStatusReadCoordinator(
  options: StatusReadCoordinatorOptions,
): StatusReadCoordinator {
  const { leases, logger, leaseMs, sharedCacheHealthy } = options;
  const pollMs = options.pollMs ?? 20;
  let leasesFailing = false;
  const leaseStoreFailed = (error: unknown) => {
    if (!leasesFailing) {
      leasesFailing = true;
      logger.warn(
        `Status read leases are unavailable (database): this replica reads clusters without coordinating with other replicas until they work again`,
        error as Error,
      );
    }
  };

  return {
    async run(cluster, read, cached): Promise<ClusterBootstrapStatus> {
      if (!sharedCacheHealthy()) return read();
      const holder = randomUUID();
      for (;;) {
        let acquired: boolean;
        try {
          acquired = await leases.tryAcquire(cluster, holder, leaseMs);
          if (leasesFailing) {
            leasesFailing = false;
            logger.info('Status read leases work again');
          }
        } catch (error) {
          leaseStoreFailed(error);
          return read();
        }
        if (acquired) {
          try {
            return await read();
          } finally {
            leases
              .release(cluster, holder)
              .catch(error => leaseStoreFailed(error));
          }
        }
        // Another replica reads this cluster: wait for its result in the shared cache.
        let interval = pollMs;
        for (;;) {
          await sleep(interval);
          interval = Math.min(interval * 2, pollMs * 8);
          const hit = await cached();
          if (hit) return hit;
          if (!sharedCacheHealthy()) return read();
          let stillHeld: boolean;
          try {
            stillHeld = await leases.held(cluster);
          } catch (error) {
            leaseStoreFailed(error);
            return read();
          }
          if (!stillHeld) {
            // Released (or expired) and still nothing cached: one more look, then take it over.
            const late = await cached();
            if (late) return late;
            logger.debug(
              `The status of cluster ${cluster} was not in the shared cache after another replica's read; reading it here`,
            );
            break;
          }
        }
      }
    },
  };
}
