import {
  coreServices,
  createBackendPlugin,
  type RootConfigService,
} from '@backstage/backend-plugin-api';
import { actionsRegistryServiceRef } from '@backstage/backend-plugin-api/alpha';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { fluxBootstrapPermissions } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  configureHttpProxy,
  createFluxStatusReader,
  fluxBootstrapSettings,
  readHttpProxyConfig,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { registerFluxBootstrapActions } from './actions';
import { createClusterStatusService } from './clusterStatus';
import { createClusterOperateService } from './clusterOperate';
import { createRouter } from './router';
import {
  createStatusReadCoordinator,
  databaseStatusReadLeases,
} from './status/readLeases';
import { resilientStatusCache } from './status/resilientCache';

/**
 * The host Backstage's Bitbucket Server auth provider signs users in to, for the auth
 * environment the frontend asks for (`auth.environment`, default `development`), if configured.
 */
function bitbucketSignInHosts(config: RootConfigService): string[] {
  const env = config.getOptionalString('auth.environment') ?? 'development';
  const provider = config.getOptionalConfig(
    `auth.providers.bitbucketServer.${env}`,
  );
  const host = provider?.getOptionalString('host');
  return host && provider?.has('clientId') ? [host] : [];
}

/**
 * Status backend of the Flux bootstrap card, mounted at `/api/flux-bootstrap`:
 *
 * - `GET /clusters[?state=true]` configured cluster names (and their status),
 * - `GET /clusters/stream` every configured cluster's status as each read finishes (NDJSON, the
 *   fleet page),
 * - `GET /clusters/:name` (also `/clusters/:name/status`) one cluster's status,
 * - `GET /entity/:kind/:namespace/:name/clusters` the status of the clusters an entity shows,
 * - `GET /integrations/bitbucket-server` whether each Bitbucket Server integration has
 *   credentials (for the template's token field) and whether users can sign in to it
 *   (`auth.providers.bitbucketServer`, for the repository field); any signed-in user or service.
 *
 * - `POST /clusters/:name/{reconcile,suspend,resume}` reconcile now, suspend (`{ "reason" }`
 *   required) or resume the cluster's Flux sync, for a signed-in user with
 *   `flux.bootstrap.cluster.operate`; audited through the auditor service.
 *
 * The status routes need a signed-in user with `flux.bootstrap.cluster.read`;
 * `?refresh=true` bypasses the cache. Statuses are cached through Backstage's cache service; when
 * that is shared (`backend.cache.store` other than `memory`, e.g. Redis), replicas also share
 * each cluster's read through short leases in the plugin's database (see docs/production.md).
 *
 * The same answers are registered as read-only actions with Backstage's actions registry
 * (`flux-bootstrap:list-clusters`, `flux-bootstrap:get-cluster-status`,
 * `flux-bootstrap:get-entity-clusters`; see actions/), which
 * `@backstage/plugin-mcp-actions-backend` offers to AI agents as MCP tools; they need
 * `flux.bootstrap.cluster.read` too, for a user or a service caller. The operate actions
 * (`reconcile-cluster`, `suspend-cluster`, `resume-cluster`) need `flux.bootstrap.cluster.operate`.
 * @public
 */
export const fluxBootstrapPlugin = createBackendPlugin({
  pluginId: 'flux-bootstrap',
  register(env) {
    env.registerInit({
      deps: {
        config: coreServices.rootConfig,
        cache: coreServices.cache,
        database: coreServices.database,
        httpAuth: coreServices.httpAuth,
        httpRouter: coreServices.httpRouter,
        lifecycle: coreServices.lifecycle,
        logger: coreServices.logger,
        permissions: coreServices.permissions,
        permissionsRegistry: coreServices.permissionsRegistry,
        catalog: catalogServiceRef,
        actionsRegistry: actionsRegistryServiceRef,
        auditor: coreServices.auditor,
      },
      async init({
        config,
        cache,
        database,
        httpAuth,
        httpRouter,
        lifecycle,
        logger,
        permissions,
        permissionsRegistry,
        catalog,
        actionsRegistry,
        auditor,
      }) {
        permissionsRegistry.addPermissions(fluxBootstrapPermissions);
        configureHttpProxy(readHttpProxyConfig(config)); // fluxBootstrap.proxy
        // The configuration is read once here (and again when it changes), not per request.
        const settings = fluxBootstrapSettings(config, { logger });
        const { status } = await settings.get();
        const statusCache = resilientStatusCache(cache, { logger });
        // A memory store is per process: there is nothing to share between replicas.
        const sharedStore =
          (config.getOptionalString('backend.cache.store') ?? 'memory') !==
          'memory';
        const coordinator = sharedStore
          ? createStatusReadCoordinator({
              leases: await databaseStatusReadLeases(database),
              logger,
              // Longer than the longest read: the cluster's deadline, then Bitbucket's.
              leaseMs: 2 * status.clusterTimeoutMs + 2000,
              sharedCacheHealthy: statusCache.sharedHealthy,
            })
          : undefined;
        const reader = await createFluxStatusReader(settings, {
          logger,
          cache: statusCache,
          coordinator,
        });
        lifecycle.addShutdownHook(() => reader.close());
        logger.info(
          `Flux bootstrap status for ${
            reader.listClusters().length
          } configured cluster(s)${
            coordinator
              ? '; reads shared with other replicas through the cache service and the database'
              : ''
          }`,
        );
        // One place builds the status answers, for the REST routes and the registered actions.
        const statusService = createClusterStatusService({
          reader,
          permissions,
          catalog,
        });
        // Reconcile now, suspend, resume: routes and actions, audited, behind
        // flux.bootstrap.cluster.operate.
        const operateService = createClusterOperateService({
          settings,
          reader,
          permissions,
          auditor,
          logger,
        });
        registerFluxBootstrapActions({
          actionsRegistry,
          status: statusService,
          operate: operateService,
          settings,
        });
        httpRouter.use(
          await createRouter({
            reader,
            httpAuth,
            permissions,
            catalog,
            logger,
            settings,
            statusService,
            bitbucketSignInHosts: () => bitbucketSignInHosts(config),
            operateService,
          }),
        );
        httpRouter.addAuthPolicy({ path: '/health', allow: 'unauthenticated' });
      },
    });
  },
});
