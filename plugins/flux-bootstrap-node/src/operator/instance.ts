import type { KubeObject } from '../kube/types';
import { generateKustomizationFile } from '../manifests/kustomization';
import type { ResolvedFluxManifestOptions } from '../manifests/options';
import { stringifyObject } from '../manifests/yaml';

/** API group/version of the Flux Operator's kinds. @public */
export const FLUX_OPERATOR_API = 'fluxcd.controlplane.io/v1';

/** What the Flux Operator adds to flux bootstrap's options (`spec.distribution`, `spec.cluster`). @public */
export interface FluxOperatorOptions {
  /** `spec.distribution.version`: exact (`2.9.4`, `v2.9.4`) or a semver range (`2.9.x`, `2.x`). */
  version: string;
  clusterType: 'kubernetes' | 'openshift' | 'aws' | 'azure' | 'gcp';
  clusterSize?: 'small' | 'medium' | 'large';
  multitenant: boolean;
  /** The Flux Operator release flux:install installs (`v0.58.1`); default: the configured one. */
  release?: string;
}

/** The operator's pause switch on an instance: `fluxcd.controlplane.io/reconcile: disabled`. */
export const isReconcileDisabled = (o: KubeObject) =>
  o.metadata.annotations?.['fluxcd.controlplane.io/reconcile'] === 'disabled';

/** The files operator mode keeps in `<path>/<namespace>/`. @public */
export const FLUX_INSTANCE_FILE = 'flux-instance.yaml';
/** The files flux bootstrap keeps there; operator mode replaces them. @public */
export const BOOTSTRAP_FILES = ['gotk-components.yaml', 'gotk-sync.yaml'];

/** An exact version is pinned; a range (`2.9.x`) lets the operator pick the newest match. @public */
export function isExactFluxVersion(version: string): boolean {
  return /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version);
}

/** `v2.9.4@sha256:…` (a FluxInstance revision) → `v2.9.4`. @public */
export function instanceRevisionVersion(revision: unknown): string | undefined {
  return typeof revision === 'string' && revision.includes('@')
    ? revision.split('@')[0]
    : undefined;
}

/** A kustomize patch of every Flux controller Deployment. */
const deploymentPatch = (patch: unknown) => ({
  patch: stringifyObject(patch),
  target: { kind: 'Deployment' },
});

/** A JSON6902 patch adding one argument to every Flux controller's manager container. */
const addArgument = (value: string) =>
  deploymentPatch([
    { op: 'add', path: '/spec/template/spec/containers/0/args/-', value },
  ]);

/**
 * The `FluxInstance` `flux` that installs what flux bootstrap would with the same options; a
 * registry other than ghcr.io needs `variant: upstream-alpine` (the operator requires it), and
 * kustomize patches carry what the instance has no field for (tolerations, log level, watched
 * namespaces). Pure.
 * @public
 */
export function generateFluxInstance(
  options: ResolvedFluxManifestOptions,
  operator: FluxOperatorOptions,
): KubeObject {
  const c = options.components;
  const registry = c.registry || 'docker.io/fluxcd';
  const tolerations = c.tolerationKeys.map(key => ({
    key,
    operator: 'Exists',
  }));
  const patches = [
    tolerations.length > 0 &&
      deploymentPatch({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'all' },
        spec: { template: { spec: { tolerations } } },
      }),
    c.logLevel !== 'info' && addArgument(`--log-level=${c.logLevel}`),
    !c.watchAllNamespaces && addArgument('--watch-all-namespaces=false'),
  ].filter(Boolean);
  return {
    apiVersion: FLUX_OPERATOR_API,
    kind: 'FluxInstance',
    metadata: { name: 'flux', namespace: options.namespace },
    spec: {
      distribution: {
        version: operator.version.replace(/^v(?=\d)/, ''),
        registry,
        ...(registry === 'ghcr.io/fluxcd'
          ? {}
          : { variant: 'upstream-alpine' }),
        ...(c.imagePullSecret ? { imagePullSecret: c.imagePullSecret } : {}),
      },
      components: c.components,
      cluster: {
        type: operator.clusterType,
        ...(operator.clusterSize ? { size: operator.clusterSize } : {}),
        ...(operator.multitenant ? { multitenant: true } : {}),
        networkPolicy: c.networkPolicy,
        domain: c.clusterDomain,
      },
      ...(patches.length ? { kustomize: { patches } } : {}),
      sync: {
        kind: 'GitRepository',
        url: options.sync.url,
        ref: `refs/heads/${options.branch}`,
        path: options.path || './',
        pullSecret: options.sync.secretName,
        interval: options.sync.interval,
      },
    },
  };
}

/** `flux-instance.yaml` and the `kustomization.yaml` listing it, as repository paths. @public */
export function renderFluxInstanceFiles(
  options: ResolvedFluxManifestOptions,
  operator: FluxOperatorOptions,
): { dir: string; instance: KubeObject; files: Record<string, string> } {
  const dir = options.path
    ? `${options.path}/${options.namespace}`
    : options.namespace;
  const instance = generateFluxInstance(options, operator);
  return {
    dir,
    instance,
    files: {
      [`${dir}/${FLUX_INSTANCE_FILE}`]: stringifyObject(instance),
      [`${dir}/kustomization.yaml`]: generateKustomizationFile([
        FLUX_INSTANCE_FILE,
      ]),
    },
  };
}
