import { createPermission } from '@backstage/plugin-permission-common';

/**
 * Read the Flux bootstrap state of clusters through the status backend.
 * @public
 */
export const fluxBootstrapClusterReadPermission = createPermission({
  name: 'flux.bootstrap.cluster.read',
  attributes: { action: 'read' },
});

/** All permissions of the Flux bootstrap plugins. @public */
export const fluxBootstrapPermissions = [fluxBootstrapClusterReadPermission];
