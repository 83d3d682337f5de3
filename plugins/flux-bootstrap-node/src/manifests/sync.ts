import type { KubeObject } from '../kube/types';
import { FLUX_GEN_WARNING } from './components';
import { stringifyObject } from './yaml';

/**
 * Validated options of `gotk-sync.yaml` (flux's `sync.Options`): `namespace` also names the
 * GitRepository and the Kustomization; `path` is normalised (`''` for the root).
 * @public
 */
export interface SyncOptions {
  namespace: string;
  url: string;
  branch: string;
  secretName: string;
  /** In Go form, default `1m0s`. */
  interval: string;
  path: string;
  /** Written only when true, as flux does. */
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
  const docs = generateSyncObjects(options).map(
    o => `---\n${stringifyObject(o)}`,
  );
  return `${FLUX_GEN_WARNING}\n${docs.join('')}`;
}
