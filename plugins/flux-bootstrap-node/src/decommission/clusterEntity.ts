import { ConflictError } from '@backstage/errors';
import {
  isClusterEntityUrl,
  KUBERNETES_CLUSTER_ANNOTATION,
  KUBERNETES_CLUSTER_RESOURCE_TYPE,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { pollUntil } from '../operate/poll';
import { withDefaults, type DecommissionDeps } from './shared';

/** The entity fields {@link unregisterClusterEntity} reads. @public */
export interface CatalogEntityLike {
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
}

/**
 * The catalog calls {@link unregisterClusterEntity} makes, with the caller's credentials bound.
 * `getLocationByRef` (the origin location), since `getLocationByEntity` misses ours: the search
 * index leaves out annotation values as long as a cluster entity URL. @public
 */
export interface ClusterEntityCatalog {
  getEntityByRef(ref: string): Promise<CatalogEntityLike | undefined>;
  getLocationByRef(
    locationRef: string,
  ): Promise<{ id: string; type: string; target: string } | undefined>;
  removeLocationById(id: string): Promise<void>;
  removeEntityByUid(uid: string): Promise<void>;
}

/** Options of {@link unregisterClusterEntity}. @public */
export interface UnregisterClusterEntityOptions {
  cluster: string;
  /** Default `resource:default/<cluster>`, the entity the bootstrap templates register. */
  entityRef?: string;
  /** `backend.baseUrl`: the cluster entity locations are `<baseUrl>/api/flux-bootstrap/v1/cluster-entity.yaml?…`. */
  backendBaseUrl: string;
  dryRun?: boolean;
  /** How long to wait until the catalog no longer shows the entity. Default 30 s. */
  timeoutMs?: number;
  pollIntervalMs?: number;
}

/** Outcome of {@link unregisterClusterEntity}. @public */
export interface UnregisterClusterEntityResult {
  entityRef: string;
  /** The entity was there (and is removed, or would be in a dry run). */
  found: boolean;
  /** The location that was (or would be) removed. */
  location?: string;
  changed: boolean;
}

const ORPHAN = 'backstage.io/orphan';

/** The cluster a location registers, when it is one of our cluster entity locations. */
function clusterOfLocation(
  { type, target }: { type: string; target: string },
  backendBaseUrl: string,
): string | undefined {
  const url = type === 'url' && URL.canParse(target) && new URL(target);
  if (!url || !isClusterEntityUrl(url, backendBaseUrl)) return undefined;
  return url.searchParams.get('name') ?? undefined;
}

/**
 * Unregisters the cluster's `kubernetes-cluster` Resource by removing the location
 * `catalog:register` added (an orphan: by uid), then waits until the catalog drops it. Refuses
 * another cluster's entity, or one another location provides (the catalog would read it again).
 * @public
 */
export async function unregisterClusterEntity(
  catalog: ClusterEntityCatalog,
  options: UnregisterClusterEntityOptions,
  deps: DecommissionDeps = {},
): Promise<UnregisterClusterEntityResult> {
  const { cluster } = options;
  const { signal, logger, step } = withDefaults(deps);
  const entityRef = (
    options.entityRef ?? `resource:default/${cluster}`
  ).toLocaleLowerCase('en-US');
  const entity = await catalog.getEntityByRef(entityRef);
  if (!entity) {
    logger.info(`The catalog has no ${entityRef}: nothing to unregister`);
    return { entityRef, found: false, changed: false };
  }
  const { annotations = {}, name, uid } = entity.metadata;
  if (
    entity.kind.toLocaleLowerCase('en-US') !== 'resource' ||
    entity.spec?.type !== KUBERNETES_CLUSTER_RESOURCE_TYPE ||
    (annotations[KUBERNETES_CLUSTER_ANNOTATION] ?? name) !== cluster
  ) {
    throw new ConflictError(
      `${entityRef} is not the kubernetes-cluster Resource of cluster "${cluster}"; it was left in the catalog`,
    );
  }
  const orphan = annotations[ORPHAN] === 'true';
  const origin = annotations['backstage.io/managed-by-origin-location'];
  const location =
    orphan || !origin ? undefined : await catalog.getLocationByRef(origin);
  if (
    !orphan &&
    (!location ||
      clusterOfLocation(location, options.backendBaseUrl) !== cluster)
  ) {
    const from = origin
      ? `the catalog location ${origin}`
      : 'an entity provider';
    throw new ConflictError(
      `${entityRef} comes from ${from}, not from the cluster's registration by the bootstrap templates (clusterEntityUrl); remove it there. It was left in the catalog.`,
    );
  }
  const where = location && `${location.type}:${location.target}`;
  if (options.dryRun) {
    logger.info(
      where
        ? `Dry run: would unregister ${entityRef} by removing its location ${where}`
        : `Dry run: would delete the orphaned entity ${entityRef}`,
    );
    return { entityRef, found: true, location: where, changed: false };
  }
  await step('unregister-entity', async () => {
    if (location) {
      await catalog.removeLocationById(location.id);
      logger.info(`Removed the catalog location ${where} of ${entityRef}`);
    } else if (uid) {
      await catalog.removeEntityByUid(uid);
      logger.info(`Deleted the orphaned entity ${entityRef}`);
    }
    return true;
  });
  // The catalog deletes what a removed location produced (an orphan is deleted by its uid).
  const timeoutMs = options.timeoutMs ?? 30_000;
  const dropped = await pollUntil(
    async () => {
      const still = (await catalog.getEntityByRef(entityRef))?.metadata;
      if (still?.uid && still.annotations?.[ORPHAN] === 'true')
        await catalog.removeEntityByUid(still.uid);
      return !still;
    },
    {
      timeoutMs,
      pollIntervalMs: options.pollIntervalMs ?? 500,
      signal,
      what: `waiting for the catalog to drop ${entityRef}`,
    },
  );
  const seconds = Math.round(timeoutMs / 1000);
  if (!dropped)
    throw new ConflictError(
      `The catalog still shows ${entityRef} ${seconds} s after its location was removed; run again to retry`,
    );
  logger.info(`The catalog no longer shows ${entityRef}`);
  return { entityRef, found: true, location: where, changed: true };
}
