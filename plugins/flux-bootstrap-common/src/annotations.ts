/**
 * Annotation on any entity listing the clusters (comma separated names from
 * `kubernetes.clusterLocatorMethods`) whose bootstrap state the card shows, e.g. on the fleet
 * repository's Component: `flux-bootstrap.io/clusters: prod-eu, prod-us`.
 * @public
 */
export const FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION = 'flux-bootstrap.io/clusters';

/**
 * Backstage's own annotation naming the cluster of a `Resource` of `spec.type: kubernetes-cluster`.
 * When absent, the entity's `metadata.name` is the cluster name.
 * @public
 */
export const KUBERNETES_CLUSTER_ANNOTATION = 'backstage.io/kubernetes-cluster';

/** `spec.type` of cluster Resources. @public */
export const KUBERNETES_CLUSTER_RESOURCE_TYPE = 'kubernetes-cluster';

/** Minimal entity shape needed to find its clusters (no catalog-model import). @public */
export interface EntityLike {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown> | { type?: unknown };
}

/**
 * The clusters an entity shows: a `Resource` of `spec.type: kubernetes-cluster` shows itself;
 * any entity can list clusters in {@link FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION}. Names are trimmed,
 * de-duplicated and kept in order.
 * @public
 */
export function getEntityClusterNames(entity: EntityLike): string[] {
  const names: string[] = [];
  const annotations = entity.metadata.annotations ?? {};
  const isClusterResource =
    entity.kind.toLocaleLowerCase('en-US') === 'resource' &&
    (entity.spec as { type?: unknown } | undefined)?.type ===
      KUBERNETES_CLUSTER_RESOURCE_TYPE;
  if (isClusterResource) {
    names.push(
      (
        annotations[KUBERNETES_CLUSTER_ANNOTATION] ?? entity.metadata.name
      ).trim(),
    );
  }
  const listed = annotations[FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION];
  if (listed) {
    for (const part of listed.split(',')) {
      const name = part.trim();
      if (name) names.push(name);
    }
  }
  return [...new Set(names.filter(Boolean))];
}

/**
 * The software template that bootstraps Flux on a cluster (shipped in `templates/`); the card
 * links to it when an entity shows no cluster.
 * @public
 */
export const FLUX_BOOTSTRAP_TEMPLATE_PATH =
  '/create/templates/default/flux-bootstrap-bitbucket-server';
