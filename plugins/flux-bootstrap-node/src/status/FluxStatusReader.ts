import type {
  ClusterBootstrapState,
  ClusterBootstrapStatus,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  BitbucketServerHostConfig,
  readBitbucketServerHosts,
} from '../config/bitbucketServer';
import { ClusterConnection, readConfigClusters } from '../config/clusters';
import type { ConfigLike } from '../config/ConfigLike';
import type { KubeClient } from '../kube/types';
import { combineSignals, mapLimit } from '../util/async';
import { InputValidationError } from '../util/errors';
import { EngineLogger, silentLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import { addBranchHeadState, BranchHeadLookup } from './bitbucketRepository';
import { readClusterStatus } from './readClusterStatus';

/**
 * Where statuses are cached. Backstage's `CacheService` fits structurally (`ttl` in
 * milliseconds).
 * @public
 */
export interface StatusCache {
  get(key: string): Promise<unknown>;
  set(key: string, value: any, options?: { ttl?: number }): Promise<void>;
}

/**
 * Lets processes that share the status cache (backend replicas) read each cluster once: `run`
 * calls `read` in at most one process at a time per cluster, and elsewhere waits for that read's
 * result through `cached` (the shared cache, fresh entries only).
 * @public
 */
export interface StatusReadCoordinator {
  run(
    cluster: string,
    read: () => Promise<ClusterBootstrapStatus>,
    cached: () => Promise<ClusterBootstrapStatus | undefined>,
  ): Promise<ClusterBootstrapStatus>;
}

/**
 * States cached only for {@link FluxStatusSettings.transitionalCacheTtlMs}: a bootstrap in
 * progress moves a cluster from `not-installed` through `installing` to `ready` within seconds,
 * and a card opened meanwhile (and polling) must see each step, not a copy from before it.
 * `unreachable` keeps the normal TTL: reading a dead cluster costs a whole cluster timeout, and
 * nothing in progress makes it come back sooner.
 * @public
 */
export const TRANSITIONAL_CACHE_STATES: readonly ClusterBootstrapState[] = [
  'not-installed',
  'installing',
];

/** Settings of the status reader, from `fluxBootstrap.status.*`. @public */
export interface FluxStatusSettings {
  /** How long a cluster's status is cached (ms). */
  cacheTtlMs: number;
  /**
   * How long a status in {@link TRANSITIONAL_CACHE_STATES} is cached (ms); never more than
   * `cacheTtlMs`. Optional for callers that build settings by hand (default 2 s, capped).
   */
  transitionalCacheTtlMs?: number;
  /** How long one cluster may take before it is reported unreachable (ms); also bounds the Bitbucket lookup. */
  clusterTimeoutMs: number;
  /** Clusters read in parallel. */
  concurrency: number;
  /** Flux namespace on every cluster; detected when unset. */
  namespace?: string;
}

/**
 * Default of `fluxBootstrap.status.concurrency`. Reading a cluster is waiting on the network
 * (a TLS handshake and a few round trips, its own requests in parallel), not CPU, so a fleet of
 * this many clusters is read in one wave: a distant cluster costs its latency once, not once per
 * wave, and a dead one holds its slot until its deadline without delaying the others.
 * @public
 */
export const DEFAULT_STATUS_CONCURRENCY = 100;

/** Reads `fluxBootstrap.status.*` with its defaults. @public */
export function readFluxStatusSettings(config: ConfigLike): FluxStatusSettings {
  const positive = (key: string, fallback: number) => {
    const value = config.getOptionalNumber(`fluxBootstrap.status.${key}`);
    if (value === undefined) return fallback;
    if (!(value > 0)) {
      throw new InputValidationError(
        `fluxBootstrap.status.${key}`,
        'must be a positive number',
      );
    }
    return value;
  };
  const namespace = config.getOptionalString('fluxBootstrap.status.namespace');
  if (
    namespace !== undefined &&
    !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)
  ) {
    throw new InputValidationError(
      'fluxBootstrap.status.namespace',
      'must be a DNS-1123 label',
    );
  }
  const cacheTtlMs = positive('cacheTtlSeconds', 15) * 1000;
  return {
    cacheTtlMs,
    transitionalCacheTtlMs: Math.min(
      cacheTtlMs,
      positive('transitionalCacheTtlSeconds', 2) * 1000,
    ),
    clusterTimeoutMs: positive('clusterTimeoutSeconds', 5) * 1000,
    concurrency: Math.floor(
      positive('concurrency', DEFAULT_STATUS_CONCURRENCY),
    ),
    namespace,
  };
}

/** Creates a kube client for one cluster (the engine's `createKubeClient` by default). @public */
export type KubeClientFactory = (
  connection: ClusterConnection,
  options: { logger: EngineLogger; requestTimeoutMs: number; retries: number },
) => Promise<KubeClient>;

/** Options of {@link FluxStatusReader}. @public */
export interface FluxStatusReaderOptions {
  clusters: ClusterConnection[];
  bitbucketHosts: BitbucketServerHostConfig[];
  settings: FluxStatusSettings;
  createClient: KubeClientFactory;
  /** Reads branch heads on Bitbucket; without it `inSync` stays null. */
  branchHeads?: BranchHeadLookup;
  cache?: StatusCache;
  /** Shares reads between processes using the same cache; without it reads are shared per process. */
  coordinator?: StatusReadCoordinator;
  logger?: EngineLogger;
  now?: () => Date;
}

const CACHE_PREFIX = 'flux-bootstrap:status:v1:';

function abortPromise(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () =>
      reject(
        signal.reason instanceof Error ? signal.reason : new Error('aborted'),
      );
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/**
 * The status backend's engine: reads the Flux bootstrap state of configured clusters with a
 * per-cluster deadline (a dead cluster is reported `unreachable` when it passes, and its requests
 * are aborted), a bounded number of clusters in flight, one shared read per cluster at a time,
 * and a short-lived cache.
 * @public
 */
export class FluxStatusReader {
  private readonly clusters: Map<string, ClusterConnection>;
  private readonly clients = new Map<string, Promise<KubeClient>>();
  private readonly inFlight = new Map<
    string,
    Promise<ClusterBootstrapStatus>
  >();
  private readonly logger: EngineLogger;

  /** Builds a reader from Backstage-shaped config (`kubernetes.clusterLocatorMethods`, `integrations.bitbucketServer`, `fluxBootstrap.status`). */
  static fromConfig(
    config: ConfigLike,
    options: Omit<
      FluxStatusReaderOptions,
      'clusters' | 'bitbucketHosts' | 'settings'
    >,
  ): FluxStatusReader {
    return new FluxStatusReader({
      ...options,
      clusters: readConfigClusters(config),
      bitbucketHosts: readBitbucketServerHosts(config),
      settings: readFluxStatusSettings(config),
    });
  }

  constructor(private readonly options: FluxStatusReaderOptions) {
    this.clusters = new Map(options.clusters.map(c => [c.name, c]));
    this.logger = options.logger ?? silentLogger;
  }

  /** The configured clusters, in configuration order. No credentials. */
  listClusters(): { name: string; title?: string }[] {
    return [...this.clusters.values()].map(c => ({
      name: c.name,
      ...(c.title ? { title: c.title } : {}),
    }));
  }

  hasCluster(name: string): boolean {
    return this.clusters.has(name);
  }

  /**
   * One cluster's status. Throws InputValidationError for a name that is not configured; every
   * cluster problem is a state instead. `signal` only stops this caller's wait: a read other
   * callers share keeps going.
   */
  async read(
    name: string,
    options: { refresh?: boolean; signal?: AbortSignal } = {},
  ): Promise<ClusterBootstrapStatus> {
    const connection = this.clusters.get(name);
    if (!connection) {
      throw new InputValidationError(
        'cluster',
        `"${name}" is not a configured cluster (kubernetes.clusterLocatorMethods)`,
      );
    }
    if (!options.refresh) {
      const hit = await this.fromCache(name);
      if (hit?.fresh) return hit.status;
      if (hit) {
        // Stale-while-revalidate: answer the previous status and refresh it behind the answer,
        // so nobody waits for a read (a dead cluster's costs the whole timeout) once it is known.
        this.shared(connection, false).catch(error =>
          this.logger.warn(
            `Refreshing the status of cluster ${name} failed`,
            error,
          ),
        );
        return hit.status;
      }
    }
    const shared = this.shared(connection, !!options.refresh);
    return options.signal
      ? Promise.race([shared, abortPromise(options.signal)])
      : shared;
  }

  /** The one read of a cluster in flight in this process (and, with a coordinator, across processes). */
  private shared(
    connection: ClusterConnection,
    refresh: boolean,
  ): Promise<ClusterBootstrapStatus> {
    const name = connection.name;
    let shared = this.inFlight.get(name);
    if (!shared) {
      const read = () => this.readAndCache(connection);
      const { coordinator } = this.options;
      // A refresh asks for a read of its own, not for a result another process may have had.
      shared = (
        coordinator && !refresh
          ? coordinator.run(name, read, async () => {
              const hit = await this.fromCache(name);
              return hit?.fresh ? hit.status : undefined;
            })
          : read()
      ).finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, shared);
    }
    return shared;
  }

  /** A cached status, fresh (within its TTL) or stale (within one more TTL, see {@link FluxStatusReader.cacheTtlFor}). */
  private async fromCache(
    name: string,
  ): Promise<{ status: ClusterBootstrapStatus; fresh: boolean } | undefined> {
    if (!this.options.cache) return undefined;
    try {
      const cached = await this.options.cache.get(CACHE_PREFIX + name);
      if (!cached || typeof cached !== 'object') return undefined;
      const age = this.age(cached);
      const { state } = cached as ClusterBootstrapStatus;
      if (age === undefined) return undefined;
      const ttl = this.cacheTtlFor(state);
      if (age < ttl)
        return { status: cached as ClusterBootstrapStatus, fresh: true };
      if (age < ttl + this.staleTtlFor(state))
        return { status: cached as ClusterBootstrapStatus, fresh: false };
    } catch (error) {
      this.logger.warn(
        `Status cache read failed for cluster ${name}`,
        error as Error,
      );
    }
    return undefined;
  }

  /** Several clusters, at most `concurrency` at a time, in the order given. */
  async readMany(
    names: string[],
    options: { refresh?: boolean; signal?: AbortSignal } = {},
  ): Promise<ClusterBootstrapStatus[]> {
    return mapLimit(names, this.options.settings.concurrency, name =>
      this.read(name, options),
    );
  }

  /** Releases the kube clients. */
  async close(): Promise<void> {
    const clients = [...this.clients.values()];
    this.clients.clear();
    for (const c of clients) {
      try {
        (await c).close();
      } catch {
        // a client that failed to build has nothing to release
      }
    }
  }

  private client(connection: ClusterConnection): Promise<KubeClient> {
    let client = this.clients.get(connection.name);
    if (!client) {
      client = this.options.createClient(connection, {
        logger: this.logger,
        requestTimeoutMs: this.options.settings.clusterTimeoutMs,
        retries: 0,
      });
      client.catch(() => this.clients.delete(connection.name));
      this.clients.set(connection.name, client);
    }
    return client;
  }

  /** How long a status in `state` may be served from the cache (ms). */
  cacheTtlFor(state: ClusterBootstrapState): number {
    const { cacheTtlMs, transitionalCacheTtlMs } = this.options.settings;
    return TRANSITIONAL_CACHE_STATES.includes(state)
      ? Math.min(cacheTtlMs, transitionalCacheTtlMs ?? 2000)
      : cacheTtlMs;
  }

  /**
   * How long after its TTL a status may still be answered while a new read runs behind it: one
   * more TTL, except for {@link TRANSITIONAL_CACHE_STATES}, whose every step a card must see.
   */
  staleTtlFor(state: ClusterBootstrapState): number {
    return TRANSITIONAL_CACHE_STATES.includes(state)
      ? 0
      : this.cacheTtlFor(state);
  }

  /**
   * Age of a cached status, counted from its `checkedAt`: the reader enforces its TTLs itself,
   * whatever the cache store does with `ttl`.
   */
  private age(cached: object): number | undefined {
    const { state, checkedAt } = cached as Partial<ClusterBootstrapStatus>;
    const at = typeof checkedAt === 'string' ? Date.parse(checkedAt) : NaN;
    if (!state || Number.isNaN(at)) return undefined;
    const now = (this.options.now ?? (() => new Date()))().getTime();
    return now - at;
  }

  private async readAndCache(
    connection: ClusterConnection,
  ): Promise<ClusterBootstrapStatus> {
    const status = await this.readFresh(connection);
    if (this.options.cache) {
      try {
        await this.options.cache.set(CACHE_PREFIX + connection.name, status, {
          ttl: this.cacheTtlFor(status.state) + this.staleTtlFor(status.state),
        });
      } catch (error) {
        this.logger.warn(
          `Status cache write failed for cluster ${connection.name}`,
          error as Error,
        );
      }
    }
    return status;
  }

  private async readFresh(
    connection: ClusterConnection,
  ): Promise<ClusterBootstrapStatus> {
    const { settings } = this.options;
    const redactor = new Redactor([connection.token, connection.clientKeyPem]);
    const now = this.options.now ?? (() => new Date());
    const timeoutSeconds = settings.clusterTimeoutMs / 1000;
    const base = {
      cluster: connection.name,
      ...(connection.title ? { title: connection.title } : {}),
      components: [],
      inSync: null,
    };

    // Phase 1: the cluster, within its deadline. The race guarantees the deadline even when a
    // request ignores the abort.
    const deadline = combineSignals([], settings.clusterTimeoutMs);
    let status: ClusterBootstrapStatus;
    try {
      status = await Promise.race([
        (async () => {
          let client: KubeClient;
          try {
            client = await this.client(connection);
          } catch (error) {
            return {
              ...base,
              state: 'unreachable' as const,
              checkedAt: now().toISOString(),
              reason: `Could not set up a client for the cluster: ${
                redactor.redactError(error).message
              }`,
            };
          }
          return readClusterStatus(client, {
            cluster: connection.name,
            title: connection.title,
            namespace: settings.namespace,
            signal: deadline.signal,
            logger: this.logger,
            redactor,
            now,
          });
        })(),
        abortPromise(deadline.signal),
      ]);
    } catch {
      status = {
        ...base,
        state: 'unreachable',
        checkedAt: now().toISOString(),
        reason: `The API server at ${connection.url} did not answer within ${timeoutSeconds} s.`,
      };
    } finally {
      deadline.dispose();
    }
    if (status.state === 'unreachable' && deadline.timedOut()) {
      status.reason = `The API server at ${connection.url} did not answer within ${timeoutSeconds} s.`;
    }

    // Phase 2: the branch head on Bitbucket, with its own deadline, so a slow Bitbucket never
    // turns a healthy cluster into an unreachable one.
    if (this.options.branchHeads && status.source?.url) {
      const bbDeadline = combineSignals([], settings.clusterTimeoutMs);
      try {
        status = await Promise.race([
          addBranchHeadState(status, {
            hosts: this.options.bitbucketHosts,
            lookup: this.options.branchHeads,
            signal: bbDeadline.signal,
            logger: this.logger,
            redactor,
          }),
          abortPromise(bbDeadline.signal).catch(async () =>
            addBranchHeadState(status, {
              hosts: this.options.bitbucketHosts,
              lookup: async () => {
                throw new Error(
                  `Bitbucket did not answer within ${timeoutSeconds} s`,
                );
              },
              logger: silentLogger,
            }),
          ),
        ]);
      } finally {
        bbDeadline.dispose();
      }
    }
    return status;
  }
}
