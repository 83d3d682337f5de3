import type { ClusterConnection } from '../config/clusters';
import type { KubeClient, KubeObject } from '../kube/types';
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
      // no Flux CRD: the shortest read, "not-installed"
      get: (_ref: unknown, opts?: { signal?: AbortSignal }) =>
        call('get', undefined as KubeObject | undefined, opts?.signal),
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
