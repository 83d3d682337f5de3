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
 * Builds `gotk-sync.yaml`: a GitRepository and a Kustomization named after the namespace,
 * serialised from objects (keys sorted, as sigs.k8s.io/yaml does) — never templated, so a branch
 * or path cannot inject YAML. Matches flux2 `pkg/manifestgen/sync`.
 * @public
 */
export function generateSyncManifest(options: SyncOptions): string {
  const { namespace } = options;
  const gitRepository = {
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind: 'GitRepository',
    metadata: { name: namespace, namespace },
    spec: {
      interval: options.interval,
      ref: { branch: options.branch },
      ...(options.recurseSubmodules ? { recurseSubmodules: true } : {}),
      secretRef: { name: options.secretName },
      url: options.url,
    },
  };
  const kustomization = {
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    metadata: { name: namespace, namespace },
    spec: {
      interval: '10m0s',
      path: `./${options.path}`,
      prune: true,
      sourceRef: { kind: 'GitRepository', name: namespace },
    },
  };
  return `${FLUX_GEN_WARNING}\n---\n${stringifyObject(
    gitRepository,
  )}---\n${stringifyObject(kustomization)}`;
}
