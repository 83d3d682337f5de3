import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import { fluxBootstrapPermissions } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { createRouter } from './router';

/**
 * Status backend of the Flux bootstrap card, mounted at `/api/flux-bootstrap`.
 * @public
 */
export const fluxBootstrapPlugin = createBackendPlugin({
  pluginId: 'flux-bootstrap',
  register(env) {
    env.registerInit({
      deps: {
        httpRouter: coreServices.httpRouter,
        permissionsRegistry: coreServices.permissionsRegistry,
        logger: coreServices.logger,
      },
      async init({ httpRouter, permissionsRegistry }) {
        permissionsRegistry.addPermissions(fluxBootstrapPermissions);
        httpRouter.use(await createRouter());
        httpRouter.addAuthPolicy({ path: '/health', allow: 'unauthenticated' });
      },
    });
  },
});
