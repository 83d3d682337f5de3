import type { KubeObject } from '../kube/types';
import { FluxBundleError } from '../manifests/components';
import {
  loadReleaseAsset,
  type ManifestsSourceConfig,
} from '../manifests/releaseAsset';
import { isK8sObject, parseYamlDocuments } from '../manifests/yaml';
import type { EngineLogger } from '../util/logger';

/** Where the Flux Operator's releases are published: `<base>/<tag>/install.yaml`. @public */
export const FLUX_OPERATOR_RELEASES_BASE_URL =
  'https://github.com/controlplaneio-fluxcd/flux-operator/releases/download';

/** The operator release installed when neither input nor config names one. @public */
export const DEFAULT_FLUX_OPERATOR_VERSION = 'v0.58.1';

/** The operator's `install.yaml` of one release, checked and parsed. @public */
export interface FluxOperatorRelease {
  version: string;
  /** Its objects in file order: Namespace, CRDs, RBAC, the `flux-operator` Deployment, … */
  objects: KubeObject[];
  /** Namespace of the `flux-operator` Deployment (its `RUNTIME_NAMESPACE`). */
  namespace: string;
  sha256: string;
  location: string;
}

const REQUIRED = [
  ['CustomResourceDefinition', 'fluxinstances.fluxcd.controlplane.io'],
  ['CustomResourceDefinition', 'fluxreports.fluxcd.controlplane.io'],
  ['Deployment', 'flux-operator'],
];

/**
 * Reads the operator's `install.yaml` from `fluxBootstrap.operator.manifests` (local folder, cache
 * or download, sha256 pinned per version); refuses one without the FluxInstance and FluxReport
 * CRDs or the `flux-operator` Deployment.
 * @public
 */
export async function loadFluxOperatorRelease(
  version: string,
  source: ManifestsSourceConfig,
  options: { signal?: AbortSignal; logger?: EngineLogger } = {},
): Promise<FluxOperatorRelease> {
  const what = `the Flux Operator ${version} install.yaml`;
  const asset = await loadReleaseAsset(
    {
      what,
      version,
      file: 'install.yaml',
      configKey: 'fluxBootstrap.operator.manifests',
      source,
      maxBytes: 16 * 1024 * 1024,
      read: data => {
        const docs = parseYamlDocuments(data.toString('utf8'), what);
        const objects = docs.filter(isK8sObject);
        const missing = REQUIRED.filter(
          ([kind, name]) =>
            !objects.some(o => o.kind === kind && o.metadata.name === name),
        ).map(([kind, name]) =>
          kind === 'Deployment' ? `${kind} ${name}` : name,
        );
        if (objects.length !== docs.length || missing.length)
          throw new FluxBundleError(
            `${what} is not the operator's release manifest: ${
              missing.length
                ? `no ${missing.join(', ')}`
                : 'it holds documents that are not Kubernetes objects'
            }`,
          );
        return objects;
      },
    },
    options,
  );
  if (!asset)
    throw new FluxBundleError(
      `${what} is not in fluxBootstrap.operator.manifests.localPath (expected ${source.localPath}/${version}/install.yaml)`,
    );
  const deployment = asset.value.find(
    o => o.kind === 'Deployment' && o.metadata.name === 'flux-operator',
  )!;
  return {
    version,
    objects: asset.value,
    namespace: deployment.metadata.namespace ?? 'flux-system',
    sha256: asset.sha256,
    location: asset.location,
  };
}
