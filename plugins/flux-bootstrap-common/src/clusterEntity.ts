/**
 * Path (below `backend.baseUrl`) of cluster entity locations: `catalog:register` registers
 * `<backend.baseUrl>/api/flux-bootstrap/v1/cluster-entity.yaml?name=…&owner=…&repository=…`,
 * whose content — a `Resource` of `spec.type: kubernetes-cluster` — is rendered from the query.
 * Nothing is stored and the same inputs give the same URL, so registering again is a no-op.
 * Versioned because the URLs live on in catalog locations.
 * @public
 */
export const CLUSTER_ENTITY_PATH = '/api/flux-bootstrap/v1/cluster-entity.yaml';

/** Annotation of a cluster entity: the fleet repository Flux syncs from. @public */
export const FLEET_REPOSITORY_ANNOTATION = 'flux-bootstrap.io/fleet-repository';
/** Annotation of a cluster entity: the branch Flux syncs. @public */
export const FLEET_BRANCH_ANNOTATION = 'flux-bootstrap.io/fleet-branch';
/** Annotation of a cluster entity: the cluster's folder in the fleet repository. @public */
export const FLEET_PATH_ANNOTATION = 'flux-bootstrap.io/fleet-path';

/** What a cluster entity is made of (the template's inputs). @public */
export interface ClusterEntityParams {
  /** Cluster name from kubernetes.clusterLocatorMethods; also the entity name. */
  name: string;
  title?: string;
  description?: string;
  /** Owner entity ref, e.g. group:default/platform-team. */
  owner: string;
  /** The fleet repository: its browse URL (https://…) or its git URL (ssh://…). */
  repository: string;
  branch?: string;
  path?: string;
  /** Optional system entity ref the cluster belongs to. */
  system?: string;
}

/** The query parameters of a cluster entity location, in URL order. @public */
export const CLUSTER_ENTITY_PARAMS: readonly (keyof ClusterEntityParams)[] = [
  'name',
  'title',
  'description',
  'owner',
  'repository',
  'branch',
  'path',
  'system',
];

/**
 * `<backend.baseUrl>/api/flux-bootstrap/v1/cluster-entity.yaml?…` for these parameters (empty
 * ones left out, values trimmed). The template global `clusterEntityUrl(...)` of the scaffolder
 * module returns it.
 * @public
 */
export function clusterEntityUrl(
  backendBaseUrl: string,
  params: Partial<ClusterEntityParams>,
): string {
  const url = new URL(
    `${backendBaseUrl.replace(/\/+$/, '')}${CLUSTER_ENTITY_PATH}`,
  );
  for (const key of CLUSTER_ENTITY_PARAMS) {
    const value = params[key];
    if (typeof value === 'string' && value.trim() !== '')
      url.searchParams.set(key, value.trim());
  }
  return url.toString();
}

/** True for the cluster entity locations of the backend at `backendBaseUrl`. @public */
export function isClusterEntityUrl(url: URL, backendBaseUrl: string): boolean {
  const base = new URL(backendBaseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  return (
    url.origin === base.origin &&
    url.pathname === `${basePath}${CLUSTER_ENTITY_PATH}`
  );
}
