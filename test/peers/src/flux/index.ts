export {
  buildFluxBundle,
  packFlat,
  toMultiDocYaml,
  FLUX_COMPONENTS,
  FLUX_BUNDLE_FILES,
} from './bundle';
export type {
  FluxBundle,
  BuildFluxBundleOptions,
  FluxComponent,
} from './bundle';
export { serveFluxBundles } from './serve';
export type { FluxBundleServer, BundleRequest, BundleFault } from './serve';
export {
  applyFluxBundle,
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
