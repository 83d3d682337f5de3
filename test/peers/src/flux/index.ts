export {
  buildFluxBundle,
  buildFluxUpgradeBundles,
  packFlat,
  toMultiDocYaml,
  FLUX_COMPONENTS,
  FLUX_BUNDLE_FILES,
  FLUX_UPGRADE_VERSIONS,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from './bundle';
export type {
  FluxBundle,
  BuildFluxBundleOptions,
  FluxComponent,
} from './bundle';
export {
  serveFluxBundles,
  serveFluxUpgradeBundles,
  serveAssets,
} from './serve';
export type {
  FluxBundleServer,
  BundleRequest,
  BundleFault,
  Asset,
  AssetServer,
} from './serve';
export {
  renderFluxInstall,
  gotkComponentsYaml,
  gotkSyncYaml,
  fluxBootstrapFiles,
  fixtureImageDigest,
  GOTK_KUSTOMIZATION_YAML,
  DEFAULT_FLUX_COMPONENTS,
} from './install';
export type { RenderFluxOptions, GotkSyncOptions } from './install';
export {
  buildFluxOperatorRelease,
  serveFluxOperatorReleases,
  applyFluxOperatorRelease,
  fluxOperatorCrds,
  FLUX_OPERATOR_VERSION,
  FLUX_OPERATOR_IMAGE,
} from './operator';
export type {
  FluxOperatorRelease,
  FluxOperatorReleaseServer,
} from './operator';
export type { OperatorSimOptions } from './operatorSim';
export { kustomizeBuild, KustomizeBuildError } from './kustomize';
export type { TreeReader } from './kustomize';
export { inventoryId } from './resources';
export type { InventoryEntry } from './resources';
export {
  applyFluxBundle,
  applyFluxSync,
  parseBundleFile,
  waitEstablished,
} from './applyBundle';
export type { AppliedObject } from './applyBundle';
export { FLUX_CRDS } from './crds';
export { startFluxSimulator } from './simulator';
export type { FluxSimulator, FluxSimulatorOptions } from './simulator';
export {
  withGitAuth,
  lsRemote,
  GitAuthError,
  GitCommandError,
} from './gitRemote';
export type { FluxGitSecretData } from './gitRemote';
export {
  startBootstrappedCluster,
  addFleetRepo,
  READ_ALL_RULES,
  OPERATE_FLUX_RULES,
} from './bootstrappedCluster';
export type {
  BootstrappedCluster,
  StartBootstrappedClusterOptions,
  FleetRepo,
} from './bootstrappedCluster';
