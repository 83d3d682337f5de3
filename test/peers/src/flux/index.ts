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
