import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { fluxBootstrapPermissions } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  createFluxStatusReader,
  fluxBootstrapSettings,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
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
 * The status routes need a signed-in user with `flux.bootstrap.cluster.read`;
 * `?refresh=true` bypasses the cache.
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
      }) {
        permissionsRegistry.addPermissions(fluxBootstrapPermissions);
        // Config is read once here (and again when it changes), not per request.
        const settings = fluxBootstrapSettings(config, { logger });
        const reader = await createFluxStatusReader(settings, {
          logger,
          cache,
        });
        lifecycle.addShutdownHook(() => reader.close());
        logger.info(
          `Flux bootstrap status for ${
            reader.listClusters().length
          } configured cluster(s)`,
        );
        httpRouter.use(
          await createRouter({
            reader,
            httpAuth,
            permissions,
            catalog,
            logger,
            settings,
          }),
        );
        httpRouter.addAuthPolicy({ path: '/health', allow: 'unauthenticated' });
      },
    });
  },
});
