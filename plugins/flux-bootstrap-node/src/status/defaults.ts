import { BitbucketServerClient } from '../bitbucket/client';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import type {
  FluxBootstrapSettings,
  FluxBootstrapSettingsSource,
} from '../config/settings';
import { createKubeClient } from '../kube/client';
import { EngineLogger, silentLogger } from '../util/logger';
import type { BranchHeadLookup } from './bitbucketRepository';
import { FluxStatusReader, StatusCache } from './FluxStatusReader';

/**
 * Reads branch heads with the engine's Bitbucket Server client and the integration's own
 * credentials. Hosts without credentials are not asked: the lookup rejects and `inSync` stays
 * unknown.
 * @public
 */
export function bitbucketBranchHeadLookup(options: {
  logger?: EngineLogger;
  requestTimeoutMs?: number;
}): BranchHeadLookup {
  const clients = new Map<BitbucketServerHostConfig, BitbucketServerClient>();
  return async ({ host, project, slug }, branch, signal) => {
    if (!host.auth) {
      throw new Error(
        `integrations.bitbucketServer entry ${host.host} has no token or username/password to read branches with`,
      );
    }
    let client = clients.get(host);
    if (!client) {
      client = new BitbucketServerClient(host, host.auth, {
        logger: options.logger ?? silentLogger,
        requestTimeoutMs: options.requestTimeoutMs,
        retries: 0,
      });
      clients.set(host, client);
    }
    return client.getBranchHead(project, slug, branch, signal);
  };
}

function readerConfig(settings: FluxBootstrapSettings) {
  return {
    clusters: settings.clusters,
    bitbucketHosts: settings.bitbucketServer,
    settings: settings.status,
  };
}

/**
 * The status reader as the backend uses it: the configured clusters, the engine's kube and
 * Bitbucket clients, `fluxBootstrap.status.*` settings; it follows changes of the settings.
 * @public
 */
export async function createFluxStatusReader(
  source: FluxBootstrapSettingsSource,
  options: {
    logger?: EngineLogger;
    cache?: StatusCache;
    now?: () => Date;
  } = {},
): Promise<FluxStatusReader> {
  const logger = options.logger ?? silentLogger;
  const settings = await source.get();
  const reader = new FluxStatusReader({
    ...options,
    ...readerConfig(settings),
    logger,
    createClient: createKubeClient,
    branchHeads: bitbucketBranchHeadLookup({
      logger,
      requestTimeoutMs: settings.status.clusterTimeoutMs,
    }),
  });
  source.subscribe(changed => reader.update(readerConfig(changed)));
  return reader;
}
