import type {
  BackstageCredentials,
  BackstageUserPrincipal,
  HttpAuthService,
  LoggerService,
  PermissionsService,
} from '@backstage/backend-plugin-api';
import { NotAllowedError, NotFoundError } from '@backstage/errors';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import {
  BitbucketServerCredentialsKind,
  BitbucketServerIntegrationsResponse,
  CLUSTER_ENTITY_PATH,
  ClusterListResponse,
  EntityClustersResponse,
  fluxBootstrapClusterReadPermission,
  getEntityClusterNames,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  BitbucketServerAuth,
  FluxBootstrapSettingsSource,
  FluxStatusReader,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import express from 'express';
import Router from 'express-promise-router';
import {
  clusterEntityParamsFromUrl,
  renderClusterEntityYaml,
} from './clusterEntities/entities';

/** What the router needs; the plugin wires Backstage's services in. */
export interface RouterOptions {
  reader: Pick<
    FluxStatusReader,
    'listClusters' | 'hasCluster' | 'read' | 'readMany'
  >;
  httpAuth: HttpAuthService;
  permissions: PermissionsService;
  catalog: Pick<CatalogService, 'getEntityByRef'>;
  logger: LoggerService;
  /** The plugin's settings: `integrations.bitbucketServer` and `scaffolder.requireScmUserCredentials`. */
  settings: FluxBootstrapSettingsSource;
}

/** An AbortSignal that fires when the client goes away, so nobody waits for nothing. */
function requestSignal(res: express.Response): AbortSignal {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort(new Error('client went away'));
  });
  return controller.signal;
}

/** Which credentials an integration has, never their value. */
function credentialsKind(
  auth: BitbucketServerAuth | undefined,
): BitbucketServerCredentialsKind {
  if (!auth) return 'none';
  return 'token' in auth ? 'token' : 'basic';
}

function flag(value: unknown): boolean {
  return value === 'true' || value === '1' || value === '';
}

export async function createRouter(
  options: RouterOptions,
): Promise<express.Router> {
  const { reader, httpAuth, permissions, catalog, settings } = options;
  const router = Router();
  router.use(express.json());

  /** A signed-in user holding flux.bootstrap.cluster.read, else 401 / 403. */
  const authorize = async (
    req: express.Request,
  ): Promise<BackstageCredentials<BackstageUserPrincipal>> => {
    const credentials = await httpAuth.credentials(req, { allow: ['user'] });
    const [decision] = await permissions.authorize(
      [{ permission: fluxBootstrapClusterReadPermission }],
      { credentials },
    );
    if (decision.result !== AuthorizeResult.ALLOW) {
      throw new NotAllowedError(
        `Reading the Flux bootstrap state of clusters requires the permission "${fluxBootstrapClusterReadPermission.name}"`,
      );
    }
    return credentials;
  };

  router.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Configured clusters (names and titles), for the template's cluster picker; `?state=true`
  // adds each cluster's status.
  router.get('/clusters', async (req, res) => {
    await authorize(req);
    const clusters = reader.listClusters();
    let body: ClusterListResponse = { items: clusters };
    if (flag(req.query.state)) {
      const statuses = await reader.readMany(
        clusters.map(c => c.name),
        { refresh: flag(req.query.refresh), signal: requestSignal(res) },
      );
      body = { items: clusters.map((c, i) => ({ ...c, status: statuses[i] })) };
    }
    res.json(body);
  });

  // `/clusters/:name/status` is the same route under the name the template's cluster picker uses.
  router.get(
    ['/clusters/:name', '/clusters/:name/status'],
    async (req, res) => {
      await authorize(req);
      const { name } = req.params;
      if (!reader.hasCluster(name)) {
        throw new NotFoundError(
          `No cluster named "${name}" is configured in kubernetes.clusterLocatorMethods`,
        );
      }
      res.json(
        await reader.read(name, {
          refresh: flag(req.query.refresh),
          signal: requestSignal(res),
        }),
      );
    },
  );

  // The clusters an entity shows. The entity is read with the caller's own credentials, so a
  // user sees only clusters named by entities they may see.
  router.get('/entity/:kind/:namespace/:name/clusters', async (req, res) => {
    const credentials = await authorize(req);
    const { kind, namespace, name } = req.params;
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
    const items = await reader.readMany(known, {
      refresh: flag(req.query.refresh),
      signal: requestSignal(res),
    });
    const body: EntityClustersResponse = {
      entityRef: `${kind}:${namespace}/${name}`.toLocaleLowerCase('en-US'),
      clusters,
      items,
      unknownClusters: clusters.filter(c => !reader.hasCluster(c)),
    };
    res.json(body);
  });

  // Whether each configured Bitbucket Server host has credentials (never which), for the
  // template's token field: optional where the actions can use the integration's credentials.
  // Any signed-in user or service: the host names are frontend-visible config anyway, and the
  // form needs this answer before anything else, so no permission guards it. The settings the
  // actions use, read again when the config changes.
  router.get('/integrations/bitbucket-server', async (req, res) => {
    await httpAuth.credentials(req, { allow: ['user', 'service'] });
    const { bitbucketServer, requireScmUserCredentials } = await settings.get();
    const body: BitbucketServerIntegrationsResponse = {
      items: bitbucketServer.map(h => ({
        host: h.host,
        credentials: credentialsKind(h.auth),
      })),
      requireScmUserCredentials,
    };
    res.json(body);
  });

  // Cluster entity locations (`clusterEntityUrl(...)` of the scaffolder module): the entity the
  // catalog reads in-process from the same URL (clusterEntities/urlReader.ts), for people and
  // other clients. Rendered from the query alone, so any signed-in user or service may read it.
  router.get(
    CLUSTER_ENTITY_PATH.replace(/^\/api\/flux-bootstrap/, ''),
    async (req, res) => {
      await httpAuth.credentials(req, { allow: ['user', 'service'] });
      const url = new URL(req.url, 'http://localhost');
      res
        .type('text/yaml')
        .send(await renderClusterEntityYaml(clusterEntityParamsFromUrl(url)));
    },
  );

  return router;
}
