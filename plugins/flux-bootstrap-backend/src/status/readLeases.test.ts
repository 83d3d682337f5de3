import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigReader } from '@backstage/config';
import { DatabaseManager } from '@backstage/backend-defaults/database';
import { mockServices } from '@backstage/backend-test-utils';
import type { DatabaseService } from '@backstage/backend-plugin-api';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  createStatusReadCoordinator,
  databaseStatusReadLeases,
  StatusReadLeases,
} from './readLeases';

// Two "replicas" in one test: two Backstage database managers on one SQLite file (SQLite serialises their
// writes like PostgreSQL's row locks would), each with its own coordinator, and a shared cache
// (a Map) standing in for Redis. The two-process version with PostgreSQL and Redis is in the
// reliability suite (test/e2e/src/reliability/replicas.ts).

const status = (checkedAt: string): ClusterBootstrapStatus => ({
  cluster: 'a',
  state: 'ready',
  checkedAt,
  components: [],
  inSync: null,
});

describe('status read leases and the cross-replica coordinator', () => {
  let dir: string;
  const managers: { shutdown(): Promise<void> }[] = [];
  const db = (): DatabaseService => {
    const manager = DatabaseManager.fromConfig(
      new ConfigReader({
        backend: {
          database: {
            client: 'better-sqlite3',
            connection: { directory: dir },
          },
        },
      }),
    );
    managers.push(manager as unknown as { shutdown(): Promise<void> });
    return manager.forPlugin('flux-bootstrap', {
      logger: mockServices.logger.mock(),
      lifecycle: mockServices.lifecycle.mock(),
    });
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-leases-'));
  });
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.shutdown?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives a lease to one holder until it is released or expires', async () => {
    const a = await databaseStatusReadLeases(db());
    const b = await databaseStatusReadLeases(db());
    expect(await a.tryAcquire('c1', 'h1', 60_000)).toBe(true);
    expect(await b.tryAcquire('c1', 'h2', 60_000)).toBe(false);
    expect(await b.tryAcquire('c2', 'h2', 60_000)).toBe(true);
    expect(await b.held('c1')).toBe(true);
    await b.release('c1', 'h2'); // not its lease: nothing happens
    expect(await a.held('c1')).toBe(true);
    await a.release('c1', 'h1');
    expect(await b.held('c1')).toBe(false);
    expect(await b.tryAcquire('c1', 'h2', 50)).toBe(true);
    await sleep(80);
    expect(await a.held('c1')).toBe(false);
    expect(await a.tryAcquire('c1', 'h3', 60_000)).toBe(true);
  });

  it('runs one read for concurrent requests on two replicas; the waiters get its result from the shared cache', async () => {
    const shared = new Map<string, ClusterBootstrapStatus>();
    const reads: string[] = [];
    const replica = async (name: string) => {
      const coordinator = createStatusReadCoordinator({
        leases: await databaseStatusReadLeases(db()),
        logger: mockServices.logger.mock(),
        leaseMs: 10_000,
        sharedCacheHealthy: () => true,
      });
      const read = async () => {
        reads.push(name);
        await sleep(150);
        const s = status(`read by ${name}`);
        shared.set('a', s);
        return s;
      };
      return () => coordinator.run('a', read, async () => shared.get('a'));
    };
    const r1 = await replica('r1');
    const r2 = await replica('r2');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? r1() : r2())),
    );
    expect(reads).toHaveLength(1);
    expect(new Set(results.map(r => r.checkedAt))).toEqual(
      new Set([`read by ${reads[0]}`]),
    );
  });

  it('takes over when the holder died (lease expired, nothing cached), and reads alone without a shared cache', async () => {
    const leases = await databaseStatusReadLeases(db());
    const logger = mockServices.logger.mock();
    // A replica that took the lease and was killed: its lease runs out after 200 ms.
    expect(await leases.tryAcquire('a', 'dead-replica', 200)).toBe(true);
    let healthy = true;
    const coordinator = createStatusReadCoordinator({
      leases,
      logger,
      leaseMs: 10_000,
      sharedCacheHealthy: () => healthy,
    });
    let reads = 0;
    const read = async () => {
      reads++;
      return status('here');
    };
    const started = Date.now();
    expect(
      (await coordinator.run('a', read, async () => undefined)).checkedAt,
    ).toBe('here');
    expect(reads).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);

    // Shared cache down: no lease, no waiting, even while another holder has the lease.
    expect(await leases.tryAcquire('a', 'other', 60_000)).toBe(true);
    healthy = false;
    await coordinator.run('a', read, async () => undefined);
    expect(reads).toBe(2);
  });

  it('reads without coordination when the lease store fails, and says so once', async () => {
    const logger = mockServices.logger.mock();
    const broken: StatusReadLeases = {
      tryAcquire: async () => {
        throw new Error('connection refused');
      },
      held: async () => false,
      release: async () => undefined,
    };
    const coordinator = createStatusReadCoordinator({
      leases: broken,
      logger,
      leaseMs: 1000,
      sharedCacheHealthy: () => true,
    });
    let reads = 0;
    const read = async () => {
      reads++;
      return status('here');
    };
    await coordinator.run('a', read, async () => undefined);
    await coordinator.run('a', read, async () => undefined);
    expect(reads).toBe(2);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(String((logger.warn as jest.Mock).mock.calls[0][0])).toContain(
      'Status read leases are unavailable',
    );
  });
});
