export {
  buildFluxInstallPlan,
  isPendingRevision,
  normalizeSyncPath,
  parseKubeObjects,
  pendingRevision,
  tokenAuthSecret,
  validateExpectedRevision,
} from './plan';
export type { FluxInstallPlan } from './plan';
export { FluxInstallError } from './errors';
export type { FluxInstallErrorReason } from './errors';
export { checkInstallPreconditions, MANAGED_BY_LABEL } from './preconditions';
export type { FluxInstallState } from './preconditions';
export { applyStaged, summarizeApplied } from './apply';
export type { AppliedObject, ApplyStagedOptions } from './apply';
export { readFluxReadiness, waitForFlux } from './wait';
export type {
  FluxComponentReadiness,
  FluxReadiness,
  WaitForFluxOptions,
} from './wait';
export { installFlux } from './installFlux';
export type { InstallFluxOptions, InstallFluxResult } from './installFlux';
export {
  installFluxOrAwaitPullRequest,
  PULL_REQUEST_ANNOTATION,
} from './pullRequestMerge';
