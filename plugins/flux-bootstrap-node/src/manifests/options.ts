import type { ComponentsOptions } from './components';
import type { SyncOptions } from './sync';
import { FLUX_DEFAULT_COMPONENTS } from './validation';

/**
 * The options of `flux bootstrap` that flux:push-manifests and flux:install share, parsed by the
 * actions' schemas; omitted fields take {@link FLUX_DEFAULTS}.
 * @public
 */
export interface FluxManifestInput {
  /** Flux release, `v2.x.y`; default `fluxBootstrap.manifests.defaultVersion`. */
  fluxVersion?: string;
  namespace?: string;
  components?: string[];
  componentsExtra?: string[];
  /** Image registry prefix; `''` keeps the bundle's `fluxcd/<name>` images. */
  registry?: string;
  imagePullSecret?: string;
  watchAllNamespaces?: boolean;
  networkPolicy?: boolean;
  logLevel?: 'debug' | 'info' | 'error';
  clusterDomain?: string;
  tolerationKeys?: string[];
  /** Cluster path in the repository, normalised (`''` for the root). */
  path: string;
  branch?: string;
  secretName?: string;
  /** GitRepository `spec.url`. */
  syncUrl: string;
  /** GitRepository interval in Go's form (`1m0s`). */
  interval?: string;
  recurseSubmodules?: boolean;
}

/** flux bootstrap's defaults, which the actions' schemas apply too. @public */
export const FLUX_DEFAULTS = {
  namespace: 'flux-system',
  branch: 'main',
  secretName: 'flux-system',
  interval: '1m0s',
  components: FLUX_DEFAULT_COMPONENTS as readonly string[],
  componentsExtra: [] as readonly string[],
  registry: 'ghcr.io/fluxcd',
  watchAllNamespaces: true,
  networkPolicy: true,
  logLevel: 'info' as const,
  clusterDomain: 'cluster.local',
  tolerationKeys: [] as readonly string[],
  recurseSubmodules: false,
};

/** What generates the three files, with flux's defaults applied. @public */
export interface ResolvedFluxManifestOptions {
  components: ComponentsOptions;
  sync: SyncOptions;
  path: string;
  namespace: string;
  branch: string;
}

/** Applies flux bootstrap's defaults to parsed options. No check, no I/O. @public */
export function resolveFluxManifestOptions(
  input: FluxManifestInput,
  defaults: { fluxVersion: string },
): ResolvedFluxManifestOptions {
  const o = { ...FLUX_DEFAULTS, ...withoutUndefined(input) };
  const { namespace, branch, path } = o;
  return {
    path,
    namespace,
    branch,
    components: {
      version: o.fluxVersion ?? defaults.fluxVersion,
      namespace,
      components: [...o.components, ...o.componentsExtra],
      registry: o.registry,
      imagePullSecret: o.imagePullSecret || undefined,
      watchAllNamespaces: o.watchAllNamespaces,
      networkPolicy: o.networkPolicy,
      logLevel: o.logLevel,
      clusterDomain: o.clusterDomain,
      tolerationKeys: [...o.tolerationKeys],
    },
    sync: {
      namespace,
      url: o.syncUrl,
      branch,
      secretName: o.secretName,
      interval: o.interval,
      path,
      recurseSubmodules: o.recurseSubmodules,
    },
  };
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== undefined),
  ) as T;
}
