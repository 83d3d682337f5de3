import type {
  ClusterBootstrapState,
  ClusterBootstrapStatus,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import pLimit from 'p-limit';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import type { ClusterConnection } from '../config/clusters';
import type {
  FluxBootstrapSettings,
  FluxBootstrapSettingsSource,
} from '../config/settings';
import { createKubeClient } from '../kube/client';
import type { KubeClient } from '../kube/types';
import { InputValidationError } from '../util/errors';
import { EngineLogger, silentLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import { addBranchHeadState, BranchHeadLookup } from './bitbucketRepository';
import {
  addPullRequestState,
  bitbucketPullRequestLookup,
  integrationClients,
  type PullRequestLookup,
} from './pullRequestState';
import { record } from './fluxObjects';
import { readClusterStatus } from './readClusterStatus';

/** Where statuses are cached; Backstage's `CacheService` fits (`ttl` in milliseconds). @public */
export interface StatusCache {
  get(key: string): Promise<unknown>;
  set(key: string, value: any, options?: { ttl?: number }): Promise<void>;
}

/**
 * Lets processes sharing the status cache (replicas) read each cluster once: `run` calls `read`
 * in one process at a time per cluster; the others wait for its result through `cached`.
 * @public
 */
export interface StatusReadCoordinator {
  run(
    cluster: string,
    read: () => Promise<ClusterBootstrapStatus>,
    cached: () => Promise<ClusterBootstrapStatus | undefined>,
  ): Promise<ClusterBootstrapStatus>;
}

/** States a bootstrap passes within seconds: cached briefly, so a polling card sees each step. */
const TRANSITIONAL_CACHE_STATES: readonly ClusterBootstrapState[] = [
  'not-installed',
  'installing',
];

/** Settings of the status reader, from `fluxBootstrap.status.*`. @public */
export interface FluxStatusSettings {
  /** How long a cluster's status is cached (ms). */
  cacheTtlMs: number;
  /** How long a transitional status is cached (ms), at most `cacheTtlMs` (default 2 s). */
  transitionalCacheTtlMs?: number;
  /** How long one cluster may take before it is reported unreachable (ms); also bounds the Bitbucket lookup. */
  clusterTimeoutMs: number;
  concurrency: number;
  /** Flux namespace on every cluster; detected when unset. */
  namespace?: string;
}

/** Creates a kube client for one cluster (the engine's `createKubeClient` by default). @public */
export type KubeClientFactory = (
  connection: ClusterConnection,
  options: { logger: EngineLogger; requestTimeoutMs: number; retries: number },
) => Promise<KubeClient>;

/** What the reader reads. @public */
export interface FluxStatusReaderConfig {
  clusters: ClusterConnection[];
  bitbucketHosts: BitbucketServerHostConfig[];
  settings: FluxStatusSettings;
}

/** Options of {@link FluxStatusReader}. @public */
export interface FluxStatusReaderOptions extends FluxStatusReaderConfig {
  createClient: KubeClientFactory;
  /** Reads branch heads on Bitbucket; without it `inSync` stays null. */
  branchHeads?: BranchHeadLookup;
  /** Reads the pull request a sync waits for (`awaiting-merge`); without it it counts as open. */
  pullRequests?: PullRequestLookup;
  cache?: StatusCache;
  /** Shares reads between processes using the same cache; without it reads are shared per process. */
  coordinator?: StatusReadCoordinator;
  logger?: EngineLogger;
  now?: () => Date;
}

const CACHE_PREFIX = 'flux-bootstrap:status:v1:';

function abortPromise(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(signal.reason);
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/**
 * Reads the Flux state of configured clusters: a per-cluster deadline (then `unreachable`), a
 * bounded number in flight, one shared read per cluster, a short-lived cache.
 * @public
 */
export class FluxStatusReader {
  private config!: FluxStatusReaderConfig;
  private clusters = new Map<string, ClusterConnection>();
  private clients = new Map<string, Promise<KubeClient>>();
  private readonly inFlight = new Map<
    string,
    Promise<ClusterBootstrapStatus>
  >();
  private readonly logger: EngineLogger;

  constructor(private readonly options: FluxStatusReaderOptions) {
    this.logger = options.logger ?? silentLogger;
    this.update(options);
  }

  /** Takes changed configuration (clusters, hosts, settings); clients of the old one are closed. */
  update(config: FluxStatusReaderConfig): void {
    const old = this.clients;
    this.config = config;
    this.clusters = new Map(config.clusters.map(c => [c.name, c]));
    this.clients = new Map();
    void closeAll(old);
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
   * One cluster's status; InputValidationError for an unknown name, every cluster problem is a
   * state. `signal` only stops this caller's wait, not a read others share.
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

  /**
   * A cached status, fresh (within its TTL) or stale (see {@link FluxStatusReader.staleTtlFor}).
   * Its age counts from `checkedAt`: the reader enforces its TTLs, whatever the store does.
   */
  private async fromCache(
    name: string,
  ): Promise<{ status: ClusterBootstrapStatus; fresh: boolean } | undefined> {
    if (!this.options.cache) return undefined;
    try {
      const status = (await this.options.cache.get(CACHE_PREFIX + name)) as
        | ClusterBootstrapStatus
        | undefined;
      const { state, checkedAt } = record(status);
      if (!state || typeof checkedAt !== 'string') return undefined;
      const age = this.now().getTime() - Date.parse(checkedAt);
      const ttl = this.cacheTtlFor(state as ClusterBootstrapState);
      const stale = this.staleTtlFor(state as ClusterBootstrapState);
      if (age < ttl + stale) return { status: status!, fresh: age < ttl };
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
    const limit = pLimit(this.config.settings.concurrency);
    return Promise.all(names.map(n => limit(() => this.read(n, options))));
  }

  async close(): Promise<void> {
    const clients = this.clients;
    this.clients = new Map();
    await closeAll(clients);
  }

  private client(connection: ClusterConnection): Promise<KubeClient> {
    let client = this.clients.get(connection.name);
    if (!client) {
      client = this.options.createClient(connection, {
        logger: this.logger,
        requestTimeoutMs: this.config.settings.clusterTimeoutMs,
        retries: 0,
      });
      client.catch(() => this.clients.delete(connection.name));
      this.clients.set(connection.name, client);
    }
    return client;
  }

  /** How long a status in `state` may be served from the cache (ms). */
  cacheTtlFor(state: ClusterBootstrapState): number {
    const { cacheTtlMs, transitionalCacheTtlMs } = this.config.settings;
    return TRANSITIONAL_CACHE_STATES.includes(state)
      ? Math.min(cacheTtlMs, transitionalCacheTtlMs ?? 2000)
      : cacheTtlMs;
  }

  /** How long after its TTL a status is still answered while a read runs behind it. */
  staleTtlFor(state: ClusterBootstrapState): number {
    return TRANSITIONAL_CACHE_STATES.includes(state)
      ? 0
      : this.cacheTtlFor(state);
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private async readAndCache(
    connection: ClusterConnection,
  ): Promise<ClusterBootstrapStatus> {
    const status = await this.readFresh(connection);
    try {
      await this.options.cache?.set(CACHE_PREFIX + connection.name, status, {
        ttl: this.cacheTtlFor(status.state) + this.staleTtlFor(status.state),
      });
    } catch (error) {
      this.logger.warn(
        `Status cache write failed for cluster ${connection.name}`,
        error as Error,
      );
    }
    return status;
  }

  private async readFresh(
    connection: ClusterConnection,
  ): Promise<ClusterBootstrapStatus> {
    const { settings, bitbucketHosts } = this.config;
    const redactor = new Redactor([connection.token, connection.clientKeyPem]);
    const timeoutMs = settings.clusterTimeoutMs;
    const late = `The API server at ${connection.url} did not answer within ${
      timeoutMs / 1000
    } s.`;
    const unreachable = (reason: string): ClusterBootstrapStatus => ({
      cluster: connection.name,
      ...(connection.title ? { title: connection.title } : {}),
      components: [],
      inSync: null,
      state: 'unreachable',
      checkedAt: this.now().toISOString(),
      reason,
    });

    // Phase 1: the cluster, within its deadline. The race keeps the deadline even when a
    // request ignores the abort.
    const deadline = AbortSignal.timeout(timeoutMs);
    let status = await Promise.race([
      this.client(connection).then(
        client =>
          readClusterStatus(client, {
            cluster: connection.name,
            title: connection.title,
            namespace: settings.namespace,
            signal: deadline,
            logger: this.logger,
            redactor,
            now: () => this.now(),
          }),
        error =>
          unreachable(
            `Could not set up a client for the cluster: ${
              redactor.redactError(error).message
            }`,
          ),
      ),
      abortPromise(deadline),
    ]).catch(() => unreachable(late));
    if (status.state === 'unreachable' && deadline.aborted) {
      status.reason = late;
    }

    // Phase 2: the branch head on Bitbucket, with its own deadline, so a slow Bitbucket never
    // turns a healthy cluster into an unreachable one.
    const { branchHeads } = this.options;
    if (branchHeads && status.source?.url) {
      const bbDeadline = AbortSignal.timeout(timeoutMs);
      const before = status;
      status = await Promise.race([
        addBranchHeadState(before, {
          hosts: bitbucketHosts,
          lookup: branchHeads,
          signal: bbDeadline,
          logger: this.logger,
          redactor,
        }),
        abortPromise(bbDeadline).catch(() =>
          addBranchHeadState(before, {
            hosts: bitbucketHosts,
            lookup: async () => {
              throw new Error(
                `Bitbucket did not answer within ${timeoutMs / 1000} s`,
              );
            },
          }),
        ),
      ]);
    }
    // Phase 3: the pull request flux:install recorded, within its own deadline (never throws).
    if (status.pullRequest) {
      status = await addPullRequestState(status, status.pullRequest.url, {
        hosts: bitbucketHosts,
        lookup: this.options.pullRequests,
        signal: AbortSignal.timeout(timeoutMs),
        redactor,
      });
    }
    return status;
  }
}

async function closeAll(clients: Map<string, Promise<KubeClient>>) {
  for (const client of clients.values()) {
    try {
      (await client).close();
    } catch {
      // a client that failed to build has nothing to release
    }
  }
}

/** Reads branch heads with the integration's credentials; `inSync` stays unknown without them. */
export function bitbucketBranchHeadLookup(options: {
  logger?: EngineLogger;
  requestTimeoutMs?: number;
}): BranchHeadLookup {
  const clientFor = integrationClients(options, 'read branches with');
  return async ({ host, project, slug }, branch, signal) =>
    clientFor(host).getBranchHead(project, slug, branch, signal);
}

function readerConfig(settings: FluxBootstrapSettings) {
  return {
    clusters: settings.clusters,
    bitbucketHosts: settings.bitbucketServer,
    settings: settings.status,
  };
}

/** The status reader as the backend uses it; it follows changes of the settings. @public */
export async function createFluxStatusReader(
  source: FluxBootstrapSettingsSource,
  options: {
    logger?: EngineLogger;
    cache?: StatusCache;
    coordinator?: StatusReadCoordinator;
    now?: () => Date;
  } = {},
): Promise<FluxStatusReader> {
  const logger = options.logger ?? silentLogger;
  const settings = await source.get();
  const bitbucket = {
    logger,
    requestTimeoutMs: settings.status.clusterTimeoutMs,
  };
  const reader = new FluxStatusReader({
    ...options,
    ...readerConfig(settings),
    logger,
    createClient: createKubeClient,
    branchHeads: bitbucketBranchHeadLookup(bitbucket),
    pullRequests: bitbucketPullRequestLookup(bitbucket),
  });
  source.subscribe(changed => reader.update(readerConfig(changed)));
  return reader;
}
