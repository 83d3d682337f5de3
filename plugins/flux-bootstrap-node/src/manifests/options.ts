import { booleanInput } from '../util/errors';
import type { ComponentsOptions } from './components';
import type { SyncOptions } from './sync';
import {
  FLUX_DEFAULT_COMPONENTS,
  normalizeRepoPath,
  validateBranch,
  validateClusterDomain,
  validateComponents,
  validateDnsLabel,
  validateDnsSubdomain,
  validateFluxVersion,
  validateInterval,
  validateLogLevel,
  validateRegistry,
  validateSyncUrl,
  validateTolerationKeys,
} from './validation';

/** Raw manifest inputs (action inputs), before defaults and validation. @public */
export interface FluxManifestInput {
  fluxVersion?: string;
  namespace?: string;
  components?: string[];
  componentsExtra?: string[];
  registry?: string;
  imagePullSecret?: string;
  watchAllNamespaces?: boolean;
  networkPolicy?: boolean;
  logLevel?: string;
  clusterDomain?: string;
  tolerationKeys?: string[];
  /** Cluster path in the repository. */
  path: string;
  branch?: string;
  secretName?: string;
  /** GitRepository `spec.url`. */
  syncUrl: string;
  interval?: string;
  recurseSubmodules?: boolean;
}

/** Everything needed to produce the three files, validated, with flux's defaults. @public */
export interface ResolvedFluxManifestOptions {
  components: ComponentsOptions;
  sync: SyncOptions;
  /** Cluster path, normalised (`''` for the root). */
  path: string;
  namespace: string;
  branch: string;
}

/**
 * Applies flux bootstrap's defaults and validates every manifest input. Throws
 * InputValidationError naming the first bad field. Makes no network call.
 * @public
 */
export function resolveFluxManifestOptions(
  input: FluxManifestInput,
  defaults: { fluxVersion: string },
): ResolvedFluxManifestOptions {
  const version = validateFluxVersion(
    input.fluxVersion ?? defaults.fluxVersion,
  );
  const path = normalizeRepoPath(input.path, 'path');
  const branch = validateBranch(input.branch ?? 'main', 'branch');
  const namespace = validateDnsLabel(
    input.namespace ?? 'flux-system',
    'namespace',
  );
  const components = validateComponents(
    input.components ?? [...FLUX_DEFAULT_COMPONENTS],
    input.componentsExtra ?? [],
  );
  let registry = 'ghcr.io/fluxcd';
  if (input.registry !== undefined && input.registry !== null) {
    registry =
      input.registry.trim() === ''
        ? ''
        : validateRegistry(input.registry, 'registry');
  }
  const imagePullSecret = input.imagePullSecret
    ? validateDnsSubdomain(input.imagePullSecret, 'imagePullSecret')
    : undefined;
  const secretName = validateDnsSubdomain(
    input.secretName ?? 'flux-system',
    'secretName',
  );
  const syncUrl = validateSyncUrl(input.syncUrl, 'syncUrl');
  return {
    path,
    namespace,
    branch,
    components: {
      version,
      namespace,
      components,
      registry,
      imagePullSecret,
      watchAllNamespaces: booleanInput(
        'watchAllNamespaces',
        input.watchAllNamespaces,
        true,
      ),
      networkPolicy: booleanInput('networkPolicy', input.networkPolicy, true),
      logLevel: validateLogLevel(input.logLevel ?? 'info', 'logLevel'),
      clusterDomain: validateClusterDomain(
        input.clusterDomain ?? 'cluster.local',
        'clusterDomain',
      ),
      tolerationKeys: validateTolerationKeys(
        input.tolerationKeys,
        'tolerationKeys',
      ),
    },
    sync: {
      namespace,
      url: syncUrl,
      branch,
      secretName,
      interval: validateInterval(input.interval ?? '1m', 'interval'),
      path,
      recurseSubmodules: booleanInput(
        'recurseSubmodules',
        input.recurseSubmodules,
        false,
      ),
    },
  };
}
