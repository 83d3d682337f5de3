import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { ClusterConnection } from '../config/clusters';
import type { KubeClient, KubeObject } from '../kube/types';
import { readFluxStatusSettings } from '../config/settings';
import { FluxStatusReader, StatusCache } from './FluxStatusReader';

/*
 * The fan-out logic alone (concurrency bound, one shared read per cluster, cache, deadline), with
 * a scripted client in place of a cluster; the states themselves are tested against a real
 * kube-apiserver in readClusterStatus.test.ts.
 */

const connection = (name: string): ClusterConnection => ({
  name,
  url: `https://${name}.example:6443`,
  token: `token-of-${name}`,
  skipTLSVerify: false,
  source: 'config',
});

/** A client whose every call waits until released, recording how many run at once. */
function scriptedClients() {
  let inFlight = 0;
  let maxInFlight = 0;
  let aborted = 0;
  const calls: string[] = [];
  const waiting: (() => void)[] = [];
  const release = () => waiting.splice(0).forEach(r => r());
  const factory = async (conn: ClusterConnection): Promise<KubeClient> => {
    const call = async <T>(
      what: string,
      value: T,
      signal?: AbortSignal,
    ): Promise<T> => {
      calls.push(`${conn.name}:${what}`);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await new Promise<void>((resolve, reject) => {
          waiting.push(resolve);
          signal?.addEventListener(
            'abort',
            () => {
              aborted++;
              reject(signal.reason);
            },
            { once: true },
          );
        });
        return value;
      } finally {
        inFlight--;
      }
    };
    return {
      clusterName: conn.name,
      // no Flux CRD: the shortest read, "not-installed" (the reads started alongside the CRD's
      // — Kustomization, GitRepository — find nothing at once; the CRD read is the one scripted)
      get: async (ref: { kind: string }, opts?: { signal?: AbortSignal }) =>
        ref.kind === 'CustomResourceDefinition'
          ? call('get', undefined as KubeObject | undefined, opts?.signal)
          : undefined,
      list: async () => [],
      close: () => {},
    } as unknown as KubeClient;
  };
  return {
    factory,
    calls,
    release,
    get waitingCount() {
      return waiting.length;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get aborted() {
      return aborted;
    },
  };
}

const settings = {
  cacheTtlMs: 60_000,
  transitionalCacheTtlMs: 60_000,
  clusterTimeoutMs: 60_000,
  concurrency: 2,
};

async function until(pred: () => boolean) {
  for (let i = 0; i < 1000 && !pred(); i++)
    await new Promise(r => setTimeout(r, 5));
  expect(pred()).toBe(true);
}

describe('FluxStatusReader', () => {
  it('reads at most `concurrency` clusters at a time and keeps the order', async () => {
    const clients = scriptedClients();
    const names = ['a', 'b', 'c', 'd', 'e'];
    const reader = new FluxStatusReader({
      clusters: names.map(connection),
      bitbucketHosts: [],
      settings,
      createClient: clients.factory,
    });
    const all = reader.readMany(names);
    while (clients.calls.length < names.length) {
      await until(() => clients.waitingCount > 0);
      expect(clients.waitingCount).toBeLessThanOrEqual(2);
      clients.release();
    }
    clients.release();
    const statuses = await all;
    expect(statuses.map(s => s.cluster)).toEqual(names);
    expect(statuses.every(s => s.state === 'not-installed')).toBe(true);
    expect(clients.maxInFlight).toBe(2);
  });

  it('shares one read between concurrent callers of the same cluster, and caches it', async () => {
    const clients = scriptedClients();
    const store = new Map<string, unknown>();
    const ttls: (number | undefined)[] = [];
    const cache: StatusCache = {
      get: async key => store.get(key),
      set: async (key, value, opts) => {
        store.set(key, value);
        ttls.push(opts?.ttl);
      },
    };
    const reader = new FluxStatusReader({
      clusters: [connection('a')],
      bitbucketHosts: [],
      settings,
      createClient: clients.factory,
      cache,
    });
    const first = reader.read('a');
    const second = reader.read('a');
    await until(() => clients.waitingCount === 1);
    clients.release();
    const [s1, s2] = await Promise.all([first, second]);
    expect(s1).toEqual(s2);
    expect(clients.calls).toEqual(['a:get']);
    expect(ttls).toEqual([60_000]);

    // cached: no call at all; refresh: a new read
    expect(await reader.read('a')).toEqual(s1);
    expect(clients.calls).toEqual(['a:get']);
    const refreshed = reader.read('a', { refresh: true });
    await until(() => clients.waitingCount === 1);
    clients.release();
    await refreshed;
    expect(clients.calls).toEqual(['a:get', 'a:get']);
  });

  it('serves a transitional state (not-installed, installing) from the cache only for its short TTL, a steady one for the normal TTL', async () => {
    const clients = scriptedClients();
    // A store that keeps everything: the reader itself must not serve stale transitional states.
    const store = new Map<string, any>();
    const ttls: (number | undefined)[] = [];
    const cache: StatusCache = {
      get: async key => store.get(key),
      set: async (key, value, opts) => {
        store.set(key, value);
        ttls.push(opts?.ttl);
      },
    };
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const reader = new FluxStatusReader({
      clusters: [connection('a')],
      bitbucketHosts: [],
      settings: {
        ...settings,
        cacheTtlMs: 15_000,
        transitionalCacheTtlMs: 2_000,
      },
      createClient: clients.factory,
      cache,
      now: () => new Date(clock),
    });
    const readOnce = async () => {
      const pending = reader.read('a');
      await until(() => clients.waitingCount === 1);
      clients.release();
      return pending;
    };
    const first = await readOnce();
    expect(first.state).toBe('not-installed');
    expect(ttls).toEqual([2_000]);
    expect(reader.cacheTtlFor('installing')).toBe(2_000);
    expect(reader.cacheTtlFor('unreachable')).toBe(15_000);
    expect(reader.cacheTtlFor('ready')).toBe(15_000);

    // Within the short TTL the cached copy is served: no cluster call.
    clock += 1_999;
    expect(await reader.read('a')).toEqual(first);
    expect(clients.calls).toEqual(['a:get']);
    // Past it, the cluster is read again although the store still holds the copy.
    clock += 1;
    const second = await readOnce();
    expect(clients.calls).toEqual(['a:get', 'a:get']);
    expect(second.checkedAt).not.toBe(first.checkedAt);

    // A steady state (here: written by an earlier read) is served for the normal TTL.
    const key = [...store.keys()][0];
    store.set(key, {
      ...second,
      state: 'ready',
      checkedAt: new Date(clock).toISOString(),
    });
    clock += 14_999;
    expect((await reader.read('a')).state).toBe('ready');
    expect(clients.calls).toHaveLength(2);
    // Past it, the stale copy is answered at once while one read refreshes it behind the answer
    // (stale-while-revalidate, for up to one more TTL); the next answer is the fresh one.
    clock += 1;
    expect(ttls.at(-1)).toBe(2_000); // transitional: never answered stale
    expect((await reader.read('a')).state).toBe('ready');
    expect((await reader.read('a')).state).toBe('ready');
    await until(() => clients.waitingCount === 1);
    clients.release();
    await until(() => store.get(key).state === 'not-installed');
    expect(clients.calls).toHaveLength(3);
    expect((await reader.read('a')).state).toBe('not-installed');
    expect(clients.calls).toHaveLength(3);

    // A steady state older than two TTLs is not answered: the caller waits for a read.
    store.set(key, {
      ...second,
      state: 'ready',
      checkedAt: new Date(clock - 30_000).toISOString(),
    });
    expect((await readOnce()).state).toBe('not-installed');
    expect(clients.calls).toHaveLength(4);
  });

  it('hands cache misses to the coordinator (one run per cluster in flight), and refreshes past it', async () => {
    const clients = scriptedClients();
    const runs: string[] = [];
    const waiter: { answer?: ClusterBootstrapStatus } = {};
    const reader = new FluxStatusReader({
      clusters: [connection('a')],
      bitbucketHosts: [],
      settings,
      createClient: clients.factory,
      cache: { get: async () => undefined, set: async () => undefined },
      coordinator: {
        run: async (cluster, read, cached) => {
          runs.push(cluster);
          // Another process holds the read: answer what the shared cache has.
          if (waiter.answer) return (await cached()) ?? waiter.answer;
          return read();
        },
      },
    });
    const a = reader.read('a');
    const b = reader.read('a');
    await until(() => clients.waitingCount === 1);
    clients.release();
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra).toBe(rb);
    expect(runs).toEqual(['a']);
    expect(clients.calls).toEqual(['a:get']);

    waiter.answer = { ...ra, checkedAt: 'from another replica' };
    expect((await reader.read('a')).checkedAt).toBe('from another replica');
    expect(runs).toEqual(['a', 'a']);
    expect(clients.calls).toHaveLength(1);

    // ?refresh=true reads here, without asking the coordinator.
    const refreshed = reader.read('a', { refresh: true });
    await until(() => clients.waitingCount === 1);
    clients.release();
    expect((await refreshed).state).toBe('not-installed');
    expect(runs).toHaveLength(2);
    expect(clients.calls).toHaveLength(2);
  });

  it('keeps a steady state one more TTL for stale answers, a transitional one for its TTL only', async () => {
    const clients = scriptedClients();
    const ttls: (number | undefined)[] = [];
    const reader = new FluxStatusReader({
      clusters: [connection('a')],
      bitbucketHosts: [],
      settings: { ...settings, cacheTtlMs: 15_000 },
      createClient: clients.factory,
      cache: {
        get: async () => undefined,
        set: async (_k, _v, o) => void ttls.push(o?.ttl),
      },
    });
    expect(reader.staleTtlFor('ready')).toBe(15_000);
    expect(reader.staleTtlFor('unreachable')).toBe(15_000);
    expect(reader.staleTtlFor('installing')).toBe(0);
    expect(reader.staleTtlFor('not-installed')).toBe(0);
    const pending = reader.read('a');
    await until(() => clients.waitingCount === 1);
    clients.release();
    expect((await pending).state).toBe('not-installed');
    expect(ttls).toEqual([reader.cacheTtlFor('not-installed')]);
  });

  it('reads the TTLs from fluxBootstrap.status, the transitional one capped by the normal one', () => {
    const cfg = (status: Record<string, number>) => ({
      getOptionalNumber: (key: string) =>
        status[key.replace('fluxBootstrap.status.', '')],
      getOptionalString: () => undefined,
    });
    expect(readFluxStatusSettings(cfg({}) as any)).toMatchObject({
      cacheTtlMs: 15_000,
      transitionalCacheTtlMs: 2_000,
    });
    expect(
      readFluxStatusSettings(
        cfg({ cacheTtlSeconds: 60, transitionalCacheTtlSeconds: 5 }) as any,
      ),
    ).toMatchObject({ cacheTtlMs: 60_000, transitionalCacheTtlMs: 5_000 });
    expect(
      readFluxStatusSettings(
        cfg({ cacheTtlSeconds: 1, transitionalCacheTtlSeconds: 5 }) as any,
      ),
    ).toMatchObject({ cacheTtlMs: 1_000, transitionalCacheTtlMs: 1_000 });
    expect(() =>
      readFluxStatusSettings(cfg({ transitionalCacheTtlSeconds: 0 }) as any),
    ).toThrow(/fluxBootstrap\.status\.transitionalCacheTtlSeconds.*positive/);
  });

  it('answers unreachable at the deadline and aborts the cluster requests; a caller can stop waiting', async () => {
    const clients = scriptedClients();
    const reader = new FluxStatusReader({
      clusters: [connection('slow'), connection('other')],
      bitbucketHosts: [],
      settings: { ...settings, clusterTimeoutMs: 50 },
      createClient: clients.factory,
    });
    const s = await reader.read('slow');
    expect(s.state).toBe('unreachable');
    expect(s.reason).toBe(
      'The API server at https://slow.example:6443 did not answer within 0.05 s.',
    );
    expect(clients.aborted).toBe(1); // the parked request was told to stop
    expect(JSON.stringify(s)).not.toContain('token-of-slow');

    const patient = new FluxStatusReader({
      clusters: [connection('other')],
      bitbucketHosts: [],
      settings,
      createClient: clients.factory,
    });
    const controller = new AbortController();
    const pending = patient.read('other', { signal: controller.signal });
    controller.abort(new Error('client went away'));
    await expect(pending).rejects.toThrow('client went away');
    clients.release();
  });

  it('refuses a cluster name that is not configured, naming the field', async () => {
    const reader = new FluxStatusReader({
      clusters: [connection('a')],
      bitbucketHosts: [],
      settings,
      createClient: scriptedClients().factory,
    });
    await expect(reader.read('nope')).rejects.toThrow(
      /Invalid input "cluster".*"nope" is not a configured cluster/,
    );
    expect(reader.listClusters()).toEqual([{ name: 'a' }]);
  });
});
