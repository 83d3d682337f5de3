import { createPermission } from '@backstage/plugin-permission-common';

/**
 * Read the Flux bootstrap state of clusters through the status backend.
 * @public
 */
export const fluxBootstrapClusterReadPermission = createPermission({
  name: 'flux.bootstrap.cluster.read',
  attributes: { action: 'read' },
});

/**
 * Operate Flux on a cluster from Backstage: reconcile now, suspend and resume the sync.
 * Separate from read, so a policy can let everyone see clusters and only operators act.
 * @public
 */
export const fluxBootstrapClusterOperatePermission = createPermission({
  name: 'flux.bootstrap.cluster.operate',
  attributes: { action: 'update' },
});

/** All permissions of the Flux bootstrap plugins. @public */
export const fluxBootstrapPermissions = [
  fluxBootstrapClusterReadPermission,
  fluxBootstrapClusterOperatePermission,
];
