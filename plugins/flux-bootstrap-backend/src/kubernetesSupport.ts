import { InputError } from '@backstage/errors';
import type {
  ClusterKubernetesSupport,
  ClusterListResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  judgeKubernetesVersion,
  type FluxBootstrapSettings,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';

/** A Flux release such as v2.9.4: the `fluxVersion` of `GET /clusters` and of `list-clusters`. */
export const FLUX_RELEASE = /^v\d+\.\d+\.\d+$/;

/** The `fluxVersion` query of `GET /clusters`: a Flux release such as v2.9.4, checked before any read. */
export function fluxVersionQuery(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && FLUX_RELEASE.test(value)) return value;
  throw new InputError(
    'Invalid query "fluxVersion": must be a Flux release such as v2.9.4',
  );
}

/**
 * Adds to each listed cluster with a status whether its Kubernetes suits `fluxVersion` (default
 * the configured Flux version), judged by the engine's table as `flux:install` judges it.
 */
export function withKubernetesSupport(
  list: ClusterListResponse,
  fluxVersion: string | undefined,
  settings: Pick<FluxBootstrapSettings, 'manifests' | 'kubernetesVersions'>,
): ClusterListResponse {
  const version = fluxVersion ?? settings.manifests.defaultVersion;
  const judge = (name: string, k?: string): ClusterKubernetesSupport => {
    if (!k) {
      return {
        fluxVersion: version,
        level: 'unknown',
        message: `The Kubernetes version of cluster "${name}" could not be read`,
      };
    }
    const { level, range, message } = judgeKubernetesVersion(
      k,
      version,
      settings.kubernetesVersions,
    );
    return { fluxVersion: version, level, range, message };
  };
  return {
    items: list.items.map(item =>
      item.status
        ? {
            ...item,
            kubernetesSupport: judge(item.name, item.status.kubernetesVersion),
          }
        : item,
    ),
  };
}
