/**
 * Entity card showing the Flux bootstrap state of clusters, and the scaffolder form fields the
 * Flux bootstrap templates use (legacy frontend system; the new frontend system plugin is the
 * default export of `./alpha`).
 *
 * @packageDocumentation
 */
export {
  fluxBootstrapPlugin,
  EntityFluxBootstrapCard,
  FluxFleetPage,
  BitbucketServerRepoUrlPickerFieldExtension,
  FluxClusterPickerFieldExtension,
  SecretTextareaFieldExtension,
  BitbucketServerTokenFieldExtension,
} from './plugin';
export {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from './api/FluxBootstrapApi';
export type {
  FluxBootstrapApi,
  FluxBootstrapReadOptions,
  FluxBootstrapStreamOptions,
} from './api/FluxBootstrapApi';
export { FluxBootstrapCard } from './components/FluxBootstrapCard';
export { FluxFleetPage as FluxFleetPageContent } from './components/FluxFleetPage';
export { StateChip, STATE_LABEL } from './components/shared/StateChip';
export { fluxFleetRouteRef } from './routes';
export { fluxBootstrapCardFilter, isFluxBootstrapAvailable } from './filter';
export {
  BITBUCKET_SERVER_REPO_URL_PICKER,
  BitbucketServerRepoUrlPickerFieldSchema,
  FLUX_CLUSTER_PICKER,
  FluxClusterPickerFieldSchema,
  fluxClusterPickerValidation,
  SECRET_TEXTAREA,
  SecretTextareaFieldSchema,
  BITBUCKET_SERVER_TOKEN,
  BitbucketServerTokenFieldSchema,
} from './scaffolder/schemas';
export { bitbucketServerTokenValidation } from './scaffolder/BitbucketServerToken';
export type { BitbucketServerTokenUiOptions } from './scaffolder/BitbucketServerToken';
export type { ClusterPickerUiOptions } from './scaffolder/ClusterPicker';
export type { BitbucketServerRepoUrlPickerUiOptions } from './scaffolder/BitbucketServerRepoUrlPicker';
export type { RequestUserCredentialsOptions } from './scaffolder/userCredentials';
