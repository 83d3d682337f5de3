import { BitbucketServerClient } from '../bitbucket/client';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import type { ConfigLike } from '../config/ConfigLike';
import { createKubeClient } from '../kube/client';
import { EngineLogger, silentLogger } from '../util/logger';
import type { BranchHeadLookup } from './bitbucketRepository';
import {
  FluxStatusReader,
  readFluxStatusSettings,
  StatusCache,
  StatusReadCoordinator,
} from './FluxStatusReader';

/**
 * Reads branch heads with the engine's Bitbucket Server client and the integration's own
 * credentials (`integrations.bitbucketServer[].token` or username/password). Hosts without
 * credentials are not asked: the lookup rejects and `inSync` stays unknown.
 * @public
 */
export function bitbucketBranchHeadLookup(options: {
  logger?: EngineLogger;
  requestTimeoutMs?: number;
}): BranchHeadLookup {
  const clients = new Map<BitbucketServerHostConfig, BitbucketServerClient>();
  return async (location, branch, signal) => {
    const { host } = location;
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
    return client.getBranchHead(
      location.project,
      location.slug,
      branch,
      signal,
    );
  };
}

/**
 * The status reader as the backend uses it: config clusters, the engine's kube client and
 * Bitbucket client, `fluxBootstrap.status.*` settings.
 * @public
 */
export function createFluxStatusReader(
  config: ConfigLike,
  options: {
    logger?: EngineLogger;
    cache?: StatusCache;
    coordinator?: StatusReadCoordinator;
    now?: () => Date;
  } = {},
): FluxStatusReader {
  const logger = options.logger ?? silentLogger;
  const settings = readFluxStatusSettings(config);
  return FluxStatusReader.fromConfig(config, {
    ...options,
    logger,
    createClient: (connection, clientOptions) =>
      createKubeClient(connection, clientOptions),
    branchHeads: bitbucketBranchHeadLookup({
      logger,
      requestTimeoutMs: settings.clusterTimeoutMs,
    }),
  });
}
