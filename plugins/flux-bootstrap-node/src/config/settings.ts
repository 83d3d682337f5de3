import os from 'node:os';
import path from 'node:path';
import type { Config } from '@backstage/config';
import type { ManifestsSourceConfig } from '../manifests/bundle';
import {
  DEFAULT_FLUX_OPERATOR_VERSION,
  FLUX_OPERATOR_RELEASES_BASE_URL,
} from '../operator/release';
import { validateFluxVersion } from '../manifests/validation';
import type { FluxStatusSettings } from '../status/FluxStatusReader';
import {
  readKubernetesVersionsConfig,
  type KubernetesVersionSupport,
} from '../upgrade/kubernetesVersions';
import { InputValidationError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import {
  BitbucketServerHostConfig,
  readBitbucketServerHosts,
} from './bitbucketServer';
import { ClusterConnection, readConfigClusters } from './clusters';

/** The Flux release used when neither input nor config names one. @public */
export const DEFAULT_FLUX_VERSION = 'v2.9.4';

/** Where official release bundles live: `<base>/<version>/manifests.tar.gz`. @public */
export const FLUX_RELEASES_BASE_URL =
  'https://github.com/fluxcd/flux2/releases/download';

/** Everything the plugins read from the app config, read once ({@link fluxBootstrapSettings}). @public */
export interface FluxBootstrapSettings {
  /** `integrations.bitbucketServer[]` with their `fluxBootstrap.bitbucketServer[]` extras. */
  bitbucketServer: BitbucketServerHostConfig[];
  /** `scaffolder.requireScmUserCredentials`. */
  requireScmUserCredentials: boolean;
  /** `kubernetes.clusterLocatorMethods[type=config].clusters[]`. */
  clusters: ClusterConnection[];
  /** `fluxBootstrap.allowKubeconfigContexts`. */
  allowKubeconfigContexts: boolean;
  /** `fluxBootstrap.manifests`. */
  manifests: ManifestsSourceConfig;
  /** `fluxBootstrap.operator.manifests`: the Flux Operator's `install.yaml` per release. */
  operatorManifests: ManifestsSourceConfig;
  /** `fluxBootstrap.status`. */
  status: FluxStatusSettings;
  /** The built-in Kubernetes range per Flux minor with `fluxBootstrap.kubernetesVersions` applied. */
  kubernetesVersions: KubernetesVersionSupport[];
}

const MANIFESTS_DEFAULTS = {
  'fluxBootstrap.manifests': {
    baseUrl: FLUX_RELEASES_BASE_URL,
    defaultVersion: DEFAULT_FLUX_VERSION,
    cacheDir: 'flux-bootstrap-manifests',
  },
  'fluxBootstrap.operator.manifests': {
    baseUrl: FLUX_OPERATOR_RELEASES_BASE_URL,
    defaultVersion: DEFAULT_FLUX_OPERATOR_VERSION,
    cacheDir: 'flux-bootstrap-operator',
  },
};

/**
 * Reads `fluxBootstrap.manifests` (Flux's release bundles), or with `key`
 * `fluxBootstrap.operator.manifests` (the Flux Operator's `install.yaml`); errors name the key.
 * @public
 */
export function readManifestsConfig(
  config: Config,
  key: keyof typeof MANIFESTS_DEFAULTS = 'fluxBootstrap.manifests',
): ManifestsSourceConfig {
  const defaults = MANIFESTS_DEFAULTS[key];
  const c = config.getOptionalConfig(key);
  const baseUrl = (c?.getOptionalString('baseUrl') ?? defaults.baseUrl).replace(
    /\/+$/,
    '',
  );
  const parsed = URL.canParse(baseUrl) ? new URL(baseUrl) : undefined;
  let problem: string | undefined;
  if (!parsed) problem = `"${baseUrl}" is not a URL`;
  else if (!/^https?:$/.test(parsed.protocol))
    problem = 'must be an http(s) URL';
  else if (parsed.username || parsed.password)
    problem = 'must not contain credentials';
  if (problem) throw new Error(`${key}.baseUrl ${problem}`);
  // Read raw: a version such as v2.9.4 is one key, not a path.
  const sums = c?.getOptional<Record<string, unknown>>('sha256') ?? {};
  const sha256: Record<string, string> = {};
  for (const [version, sum] of Object.entries(sums)) {
    if (typeof sum !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sum.trim())) {
      throw new Error(
        `${key}.sha256 must map versions to 64 hex digits (bad entry for "${version}")`,
      );
    }
    sha256[version] = sum.trim().toLowerCase();
  }
  const defaultVersion =
    c?.getOptionalString('defaultVersion') ?? defaults.defaultVersion;
  if (key === 'fluxBootstrap.manifests')
    validateFluxVersion(defaultVersion, `${key}.defaultVersion`);
  else if (!/^v\d+\.\d+\.\d+$/.test(defaultVersion))
    throw new InputValidationError(
      `${key}.defaultVersion`,
      'must be a Flux Operator release of the form v<major>.<minor>.<patch>, e.g. v0.58.1',
    );
  return {
    baseUrl,
    localPath: c?.getOptionalString('localPath') || undefined,
    cacheDir:
      c?.getOptionalString('cacheDir') ??
      path.join(os.tmpdir(), defaults.cacheDir),
    sha256,
    defaultVersion,
    caPem: c?.getOptionalString('caData') || undefined,
    downloadTimeoutMs: c?.getOptionalNumber('downloadTimeoutMs') ?? 120_000,
  };
}

/** Default of `fluxBootstrap.status.concurrency`: reading clusters waits on the network, not CPU. @public */
export const DEFAULT_STATUS_CONCURRENCY = 100;

/** Reads `fluxBootstrap.status.*` with its defaults. @public */
export function readFluxStatusSettings(config: Config): FluxStatusSettings {
  const invalid = (key: string, message: string) =>
    new InputValidationError(`fluxBootstrap.status.${key}`, message);
  const positive = (key: string, fallback: number) => {
    const value = config.getOptionalNumber(`fluxBootstrap.status.${key}`);
    if (value === undefined) return fallback;
    if (value > 0) return value;
    throw invalid(key, 'must be a positive number');
  };
  const namespace = config.getOptionalString('fluxBootstrap.status.namespace');
  if (namespace && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace))
    throw invalid('namespace', 'must be a DNS-1123 label');
  const cacheTtlMs = positive('cacheTtlSeconds', 15) * 1000;
  const transitionalMs = positive('transitionalCacheTtlSeconds', 2) * 1000;
  const concurrency = positive('concurrency', DEFAULT_STATUS_CONCURRENCY);
  return {
    cacheTtlMs,
    transitionalCacheTtlMs: Math.min(cacheTtlMs, transitionalMs),
    clusterTimeoutMs: positive('clusterTimeoutSeconds', 5) * 1000,
    concurrency: Math.floor(concurrency),
    namespace,
  };
}

/** Reads all of the plugins' configuration; `caFile`s are read here, once. @public */
export async function readFluxBootstrapSettings(
  config: Config,
): Promise<FluxBootstrapSettings> {
  const [bitbucketServer, clusters] = await Promise.all([
    readBitbucketServerHosts(config),
    readConfigClusters(config),
  ]);
  const flag = (key: string) => config.getOptionalBoolean(key) ?? false;
  const operator = 'fluxBootstrap.operator.manifests';
  return {
    bitbucketServer,
    requireScmUserCredentials: flag('scaffolder.requireScmUserCredentials'),
    clusters,
    allowKubeconfigContexts: flag('fluxBootstrap.allowKubeconfigContexts'),
    manifests: readManifestsConfig(config),
    operatorManifests: readManifestsConfig(config, operator),
    status: readFluxStatusSettings(config),
    kubernetesVersions: readKubernetesVersionsConfig(config),
  };
}

/** The settings of a running plugin, read at start and again when the config changes. @public */
export interface FluxBootstrapSettingsSource {
  /** The current settings (rejects when the configuration is invalid). */
  get(): Promise<FluxBootstrapSettings>;
  /** Calls `listener` with the settings each time a changed configuration was read. */
  subscribe(listener: (settings: FluxBootstrapSettings) => void): void;
}

/**
 * Reads the settings once, and again when Backstage's config service reports a change
 * (`config.subscribe`); an invalid changed configuration is logged and the last good one kept.
 * @public
 */
export function fluxBootstrapSettings(
  config: Config,
  options: { logger?: EngineLogger } = {},
): FluxBootstrapSettingsSource {
  const logger = options.logger ?? silentLogger;
  const listeners: ((settings: FluxBootstrapSettings) => void)[] = [];
  let current = readFluxBootstrapSettings(config);
  let good = false;
  current.then(
    () => (good = true),
    () => undefined, // reported to every caller of get()
  );
  config.subscribe?.(() => {
    const next = readFluxBootstrapSettings(config);
    next.then(
      settings => {
        current = next;
        good = true;
        listeners.forEach(listener => listener(settings));
      },
      error => {
        logger.warn(
          `The changed configuration of the Flux bootstrap plugins is not used: ${error}`,
        );
        if (!good) current = next;
      },
    );
  });
  return {
    get: () => current,
    subscribe: listener => listeners.push(listener),
  };
}
