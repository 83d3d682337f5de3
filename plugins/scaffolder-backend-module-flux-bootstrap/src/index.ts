/**
 * Scaffolder actions that bootstrap Flux from Bitbucket Server / Data Center:
 * `bitbucket:create-repo`, `flux:generate-key`, `flux:push-manifests`, `flux:install`.
 *
 * @packageDocumentation
 */
export { scaffolderModuleFluxBootstrap as default } from './module';
export { createBitbucketCreateRepoAction } from './actions/createRepo';
export { createFluxGenerateKeyAction } from './actions/generateKey';
export { createFluxPushManifestsAction } from './actions/pushManifests';
export { createFluxInstallAction } from './actions/install';
export type { FluxBootstrapActionOptions } from './actions/shared/context';
