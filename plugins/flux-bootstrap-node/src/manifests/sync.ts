import type { KubeObject } from '../kube/types';
import { FLUX_GEN_WARNING } from './components';
import { stringifyObject } from './yaml';

/** Validated options of `gotk-sync.yaml` (flux's `sync.Options`). @public */
export interface SyncOptions {
  /** Namespace of Flux; also the name of the GitRepository and the Kustomization. */
  namespace: string;
  /** GitRepository `spec.url`: the URL the source-controller clones. */
  url: string;
  /** Branch Flux follows (`spec.ref.branch`). */
  branch: string;
  /** Secret with the Git credentials (`spec.secretRef.name`). */
  secretName: string;
  /** GitRepository interval in Go form, default `1m0s`. */
  interval: string;
  /** Cluster path in the repository, normalised (`''` for the root). */
  path: string;
  /** `spec.recurseSubmodules`; written only when true, as flux does. */
  recurseSubmodules?: boolean;
}

/**
 * The GitRepository and the Kustomization of `gotk-sync.yaml`, named after the namespace, as
 * flux2's `pkg/manifestgen/sync` makes them.
 * @public
 */
export function generateSyncObjects(options: SyncOptions): KubeObject[] {
  const { namespace } = options;
  const metadata = { name: namespace, namespace };
  return [
    {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata,
      spec: {
        interval: options.interval,
        ref: { branch: options.branch },
        ...(options.recurseSubmodules ? { recurseSubmodules: true } : {}),
        secretRef: { name: options.secretName },
        url: options.url,
      },
    },
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { ...metadata },
      spec: {
        interval: '10m0s',
        path: `./${options.path}`,
        prune: true,
        sourceRef: { kind: 'GitRepository', name: namespace },
      },
    },
  ];
}

/**
 * `gotk-sync.yaml`: {@link generateSyncObjects} serialised with sorted keys (as sigs.k8s.io/yaml)
 * — never templated, so a branch or path cannot inject YAML.
 * @public
 */
export function generateSyncManifest(options: SyncOptions): string {
  const [gitRepository, kustomization] = generateSyncObjects(options);
  return `${FLUX_GEN_WARNING}\n---\n${stringifyObject(
    gitRepository,
  )}---\n${stringifyObject(kustomization)}`;
}
