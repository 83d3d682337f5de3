/**
 * Engine of the Flux bootstrap plugins. Plain Node.js: no Backstage runtime imports, so the
 * scaffolder actions, the status backend, the test ground and benchmarks all share it.
 *
 * The public API is this list: one use case per scaffolder action and operate route (with its
 * request, dependencies and result), the settings they read, the clients they are given, and the
 * domain rules the actions' schemas reuse. Everything else is internal (`src/<folder>/…`), and
 * `index.test.ts` keeps the list under 100 symbols.
 *
 * @packageDocumentation
 */

// Use cases, one per action
export { ensureFleetRepository, planRepositoryOutputs } from './bitbucket';
export type {
  BitbucketRepositoryOutputs,
  FleetRepositoryDeps,
  FleetRepositoryRequest,
} from './bitbucket';
export { provisionDeployKey, storeSuppliedKey } from './keys';
export type { DeployKeyRequest, SuppliedKeyRequest } from './keys';
export { pushFluxManifests } from './git/pushFluxManifests';
export type { GitAuthor } from './git/session';
export type { FluxManifestInput } from './manifests/options';
export type { PullRequestInput } from './git/pullRequestMode';
export type {
  BitbucketFleetRepository,
  PushFluxManifestsDeps,
  PushFluxManifestsRequest,
  PushFluxManifestsResult,
  SshFleetRepository,
} from './git/pushFluxManifests';
export { installFluxOnCluster } from './install/installFlux';
export type { FluxOperatorOptions } from './operator/instance';
export type {
  InstallFluxDeps,
  InstallFluxOnClusterResult,
  InstallFluxRequest,
} from './install/installFlux';
export {
  deleteClusterAccessKeys,
  deleteFluxAccessKeys,
  removeClusterPath,
  removeClusterPathFromRepository,
  requireClusterConfirmation,
  uninstallFlux,
  uninstallFluxFromCluster,
  unregisterClusterEntity,
} from './decommission';
export type { DecommissionUseCaseDeps } from './decommission';
export { bootstrapFleet } from './fleet/bootstrapFleet';
export type {
  FleetBootstrapDeps,
  FleetBootstrapRequest,
  FleetBootstrapResult,
  FleetClusterResult,
} from './fleet/bootstrapFleet';
export {
  reconcileFluxSync,
  resumeFluxSync,
  suspendFluxSync,
  validateOperateReason,
} from './operate';

// Status
export { readClusterStatus } from './status/readClusterStatus';
export {
  createFluxStatusReader,
  FluxStatusReader,
} from './status/FluxStatusReader';
export { bitbucketPullRequestLookup } from './status/pullRequestState';
export type {
  FluxStatusReaderOptions,
  StatusCache,
  StatusReadCoordinator,
} from './status/FluxStatusReader';
export { judgeKubernetesVersion } from './upgrade/kubernetesVersions';
export type {
  KubernetesVersionSupport,
  KubernetesVersionVerdict,
} from './upgrade/kubernetesVersions';

// Settings
export { fluxBootstrapSettings, readFluxBootstrapSettings } from './config';
export type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
  ClusterConnection,
  FluxBootstrapSettings,
  FluxBootstrapSettingsSource,
} from './config';
export { configureHttpProxy, readHttpProxyConfig } from './http';
export type { HttpProxySettings } from './http';

// Clients and connections
export {
  authSecrets,
  BitbucketError,
  BitbucketServerClient,
  gitHttpAuthHeaders,
  isBitbucketError,
  parseBitbucketRepoUrl,
} from './bitbucket';
export type { BitbucketAccess, BitbucketRepoRef } from './bitbucket';
export { chooseBitbucketCredentials } from './bitbucket/credentials';
export { HttpsGitTransport } from './git/transport';
export { createKubeClient } from './kube/client';
export { resolveCluster } from './kube/cluster';
export { isKubeApiError, KubeApiError } from './kube/errors';
export type { KubeClient, KubeObject } from './kube/types';

// Keys
export {
  ECDSA_CURVES,
  fluxAccessKeyLabel,
  generateSshKeyPair,
  parseSshHost,
  SSH_KEY_ALGORITHMS,
  SSH_KEY_DEFAULTS,
} from './keys';
export type { SshKeyOptions } from './keys';

// Flux defaults and the domain rules the actions' schemas reuse
export { FLUX_DEFAULTS } from './manifests/options';
export {
  FLUX_DEFAULT_COMPONENTS,
  FLUX_EXTRA_COMPONENTS,
  normalizeRepoPath,
  validateBranch,
  validateDnsLabel,
  validateDnsSubdomain,
  validateSshUrl,
} from './manifests/validation';

// Errors, logging, redaction
export {
  FluxBootstrapError,
  InputValidationError,
  OperationAbortedError,
} from './util/errors';
export { FluxInstallError } from './install/errors';
export type { EngineLogger } from './util/logger';
export { Redactor } from './util/redact';
export type { CheckpointFn } from './util/checkpoint';
