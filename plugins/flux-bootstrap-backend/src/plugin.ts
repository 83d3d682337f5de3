import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import { actionsRegistryServiceRef } from '@backstage/backend-plugin-api/alpha';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { fluxBootstrapPermissions } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { createFluxStatusReader } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { registerFluxBootstrapActions } from './actions';
import { createClusterStatusService } from './clusterStatus';
import { createClusterOperateService } from './clusterOperate';
import { createRouter } from './router';

/**
 * Status backend of the Flux bootstrap card, mounted at `/api/flux-bootstrap`:
 *
 * - `GET /clusters[?state=true]` configured cluster names (and their status),
 * - `GET /clusters/:name` (also `/clusters/:name/status`) one cluster's status,
 * - `GET /entity/:kind/:namespace/:name/clusters` the status of the clusters an entity shows,
 * - `GET /integrations/bitbucket-server` whether each Bitbucket Server integration has
 *   credentials (for the template's token field; any signed-in user or service).
 *
 * - `POST /clusters/:name/{reconcile,suspend,resume}` reconcile now, suspend (`{ "reason" }`
 *   required) or resume the cluster's Flux sync, for a signed-in user with
 *   `flux.bootstrap.cluster.operate`; audited through the auditor service.
 *
 * The status routes need a signed-in user with `flux.bootstrap.cluster.read`;
 * `?refresh=true` bypasses the cache.
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
        const reader = createFluxStatusReader(config, { logger, cache });
        lifecycle.addShutdownHook(() => reader.close());
        logger.info(
          `Flux bootstrap status for ${
            reader.listClusters().length
          } configured cluster(s)`,
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
          config,
          reader,
          permissions,
          auditor,
          logger,
        });
        registerFluxBootstrapActions({
          actionsRegistry,
          status: statusService,
          operate: operateService,
        });
        httpRouter.use(
          await createRouter({
            reader,
            httpAuth,
            permissions,
            catalog,
            logger,
            config,
            statusService,
            operateService,
          }),
        );
        httpRouter.addAuthPolicy({ path: '/health', allow: 'unauthenticated' });
      },
    });
  },
});
