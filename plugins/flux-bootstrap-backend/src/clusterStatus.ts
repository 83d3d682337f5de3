import type {
  BackstageCredentials,
  PermissionsService,
} from '@backstage/backend-plugin-api';
import type { CompoundEntityRef } from '@backstage/catalog-model';
import { NotAllowedError, NotFoundError } from '@backstage/errors';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import {
  ClusterBootstrapStatus,
  ClusterListResponse,
  EntityClustersResponse,
  fluxBootstrapClusterReadPermission,
  getEntityClusterNames,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { FluxStatusReader } from '@flux-bootstrap/plugin-flux-bootstrap-node';

/** How fresh an answer must be, and when to give up waiting for it. */
export interface ClusterStatusReadOptions {
  /** Read the clusters now instead of answering from the status cache. */
  refresh?: boolean;
  /** Aborts the wait (the shared read itself goes on for other callers). */
  signal?: AbortSignal;
}

/**
 * The answers of the status API, in one place: the REST routes (router.ts) and the actions of
 * the actions registry (actions/) both call these, so a REST client, the card and an AI agent
 * get the same JSON for the same question. Every method first checks
 * `flux.bootstrap.cluster.read` for the given credentials (a user, or a service such as another
 * plugin acting for an agent) and throws a NotAllowedError naming the permission, before it
 * reads anything. No answer carries a credential: statuses are built by the engine's status
 * reader, which never copies Secret data or tokens.
 */
export interface ClusterStatusService {
  /** Throws a NotAllowedError naming `flux.bootstrap.cluster.read` unless it is granted. */
  authorize(credentials: BackstageCredentials): Promise<void>;
  /** Configured clusters (names and titles), each with its status when `includeStatus`. */
  listClusters(
    credentials: BackstageCredentials,
    options?: ClusterStatusReadOptions & { includeStatus?: boolean },
  ): Promise<ClusterListResponse>;
  /** One configured cluster's status; a NotFoundError for a name that is not configured. */
  getClusterStatus(
    credentials: BackstageCredentials,
    cluster: string,
    options?: ClusterStatusReadOptions,
  ): Promise<ClusterBootstrapStatus>;
  /**
   * The statuses of the clusters an entity names (its `flux-bootstrap.io/clusters` annotation,
   * or a cluster Resource itself). The entity is read with the caller's own credentials, so a
   * caller sees only clusters named by entities they may see.
   */
  getEntityClusters(
    credentials: BackstageCredentials,
    entity: CompoundEntityRef,
    options?: ClusterStatusReadOptions,
  ): Promise<EntityClustersResponse>;
}

/** What {@link createClusterStatusService} needs. */
export interface ClusterStatusServiceOptions {
  reader: Pick<
    FluxStatusReader,
    'listClusters' | 'hasCluster' | 'read' | 'readMany'
  >;
  permissions: PermissionsService;
  catalog: Pick<CatalogService, 'getEntityByRef'>;
}

export function createClusterStatusService(
  options: ClusterStatusServiceOptions,
): ClusterStatusService {
  const { reader, permissions, catalog } = options;

  const authorize = async (credentials: BackstageCredentials) => {
    const [decision] = await permissions.authorize(
      [{ permission: fluxBootstrapClusterReadPermission }],
      { credentials },
    );
    if (decision.result !== AuthorizeResult.ALLOW) {
      throw new NotAllowedError(
        `Reading the Flux bootstrap state of clusters requires the permission "${fluxBootstrapClusterReadPermission.name}"`,
      );
    }
  };

  return {
    authorize,

    async listClusters(credentials, { includeStatus, ...read } = {}) {
      await authorize(credentials);
      const clusters = reader.listClusters();
      if (!includeStatus) return { items: clusters };
      const statuses = await reader.readMany(
        clusters.map(c => c.name),
        read,
      );
      return {
        items: clusters.map((c, i) => ({ ...c, status: statuses[i] })),
      };
    },

    async getClusterStatus(credentials, cluster, read = {}) {
      await authorize(credentials);
      if (!reader.hasCluster(cluster)) {
        throw new NotFoundError(
          `No cluster named "${cluster}" is configured in kubernetes.clusterLocatorMethods`,
        );
      }
      return reader.read(cluster, read);
    },

    async getEntityClusters(credentials, { kind, namespace, name }, read = {}) {
      await authorize(credentials);
      const entity = await catalog.getEntityByRef(
        { kind, namespace, name },
        { credentials },
      );
      if (!entity) {
        throw new NotFoundError(
          `No entity ${kind}:${namespace}/${name} in the catalog`,
        );
      }
      const clusters = getEntityClusterNames(entity);
      const known = clusters.filter(c => reader.hasCluster(c));
      const items = await reader.readMany(known, read);
      return {
        entityRef: `${kind}:${namespace}/${name}`.toLocaleLowerCase('en-US'),
        clusters,
        items,
        unknownClusters: clusters.filter(c => !reader.hasCluster(c)),
      };
    },
  };
}
