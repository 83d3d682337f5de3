/**
 * Scaffolder actions that bootstrap Flux from Bitbucket Server / Data Center:
 * `bitbucket:create-repo`, `flux:generate-key`, `flux:push-manifests`, `flux:install`; and for
 * registering the bootstrapped cluster, `fleet:wait-for-entity` and the template global
 * `clusterEntityUrl(...)`.
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
export type { FluxBootstrapActionOptions } from './actions/shared/context';
