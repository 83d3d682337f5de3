/**
 * Scaffolder actions that bootstrap Flux from Bitbucket Server / Data Center:
 * `bitbucket:create-repo`, `flux:generate-key`, `flux:push-manifests`, `flux:install`; and for
 * registering the bootstrapped cluster, `fleet:wait-for-entity` and the template global
 * `clusterEntityUrl(...)`. For decommissioning a cluster: `flux:uninstall`,
 * `bitbucket:delete-access-keys`, `flux:remove-cluster-path` and `fleet:unregister-cluster`.
 *
 * @packageDocumentation
 */
export {
  scaffolderModuleFluxBootstrap as default,
  createClusterEntityUrlGlobal,
} from './module';
export { createBitbucketCreateRepoAction } from './actions/createRepo';
export { createFluxGenerateKeyAction } from './actions/generateKey';
export { createFluxPushManifestsAction } from './actions/pushManifests';
export { createFluxInstallAction } from './actions/install';
export { createWaitForEntityAction } from './actions/waitForEntity';
export type { WaitForEntityActionOptions } from './actions/waitForEntity';
export { createFluxUninstallAction } from './actions/uninstall';
export { createBitbucketDeleteAccessKeysAction } from './actions/deleteAccessKeys';
export { createFluxRemoveClusterPathAction } from './actions/removeClusterPath';
export { createFleetUnregisterClusterAction } from './actions/unregisterCluster';
export { createFluxBootstrapFleetAction } from './actions/bootstrapFleet';
export type { UnregisterClusterActionOptions } from './actions/unregisterCluster';
export type { FluxBootstrapActionOptions } from './actions/shared/context';
