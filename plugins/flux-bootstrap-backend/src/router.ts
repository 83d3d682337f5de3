import type {
  HttpAuthService,
  LoggerService,
  PermissionsService,
} from '@backstage/backend-plugin-api';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import {
  BitbucketServerCredentialsKind,
  BitbucketServerIntegrationsResponse,
  CLUSTER_ENTITY_PATH,
  ClusterStreamLine,
  OperateClusterAction,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  BitbucketServerAuth,
  FluxBootstrapSettingsSource,
  FluxStatusReader,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import express from 'express';
import { setMaxListeners } from 'node:events';
import Router from 'express-promise-router';
import {
  clusterEntityParamsFromUrl,
  renderClusterEntityYaml,
} from './clusterEntities/entities';
import {
  ClusterStatusService,
  createClusterStatusService,
} from './clusterStatus';
import { fluxVersionQuery, withKubernetesSupport } from './kubernetesSupport';
import type { ClusterOperateService } from './clusterOperate';

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
  /** The plugin's settings: `integrations.bitbucketServer`, `scaffolder.requireScmUserCredentials`, `fluxBootstrap.status`. */
  settings: FluxBootstrapSettingsSource;
  /**
   * The answers of the status routes, shared with the registered actions (actions/); made
   * from `reader`, `permissions` and `catalog` when not given.
   */
  statusService?: ClusterStatusService;
  /**
   * The hosts (`host[:port][/context-path]`) Backstage's Bitbucket Server auth provider signs
   * users in to (`auth.providers.bitbucketServer`), read at each call; none when not given.
   */
  bitbucketSignInHosts?: () => string[];
  /**
   * Reconcile now, suspend and resume (`POST /clusters/:cluster/{reconcile,suspend,resume}`);
   * the routes exist when it is given.
   */
  operateService?: ClusterOperateService;
}

/** A Bitbucket host as URL hosts compare: lower-case, without a default port or context path. */
function hostKey(host: string): string {
  try {
    return new URL(`https://${host}`).host || host.toLocaleLowerCase('en-US');
  } catch {
    return host.toLocaleLowerCase('en-US');
  }
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

  const status =
    options.statusService ??
    createClusterStatusService({ reader, permissions, catalog });

  /** The status routes answer signed-in users (the card, people); 401 for anyone else. */
  const userCredentials = (req: express.Request) =>
    httpAuth.credentials(req, { allow: ['user'] });

  router.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Configured clusters (names and titles), for the template's cluster picker; `?state=true`
  // adds each cluster's status.
  // With `state=true` each cluster also says whether its Kubernetes suits `fluxVersion` (default
  // the configured version): what the templates' cluster picker marks.
  router.get('/clusters', async (req, res) => {
    const fluxVersion = fluxVersionQuery(req.query.fluxVersion);
    const includeStatus = flag(req.query.state);
    const list = await status.listClusters(await userCredentials(req), {
      includeStatus,
      refresh: flag(req.query.refresh),
      signal: requestSignal(res),
    });
    res.json(
      includeStatus
        ? withKubernetesSupport(list, fluxVersion, await settings.get())
        : list,
    );
  });

  // Every configured cluster's status as each read finishes (the fleet page), NDJSON: first the
  // list of clusters, then one line per cluster in the order the reads finish, then `done`. The
  // reader's cache, its shared in-flight reads and its per-cluster timeout apply, so a live
  // cluster's line is written while a dead one still waits for its deadline. At most
  // `fluxBootstrap.status.concurrency` reads at a time; the reads stop being waited for when the
  // client goes away. Registered before `/clusters/:name` (a cluster named `stream` stays
  // readable at `/clusters/stream/status`).
  router.get('/clusters/stream', async (req, res) => {
    await status.authorize(await userCredentials(req));
    const signal = requestSignal(res);
    const refresh = flag(req.query.refresh);
    const clusters = reader.listClusters();
    // Every read waits on this one signal (a listener each): a fleet is no leak.
    setMaxListeners(clusters.length + 10, signal);
    const { concurrency } = (await settings.get()).status;
    res.status(200);
    res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
    // no-transform: the compression middleware leaves the body alone (gzip would hold lines back).
    res.setHeader('Cache-Control', 'no-store, no-transform');
    // Tells proxies that buffer responses (nginx) to pass each line on as it is written.
    res.setHeader('X-Accel-Buffering', 'no');
    const write = (line: ClusterStreamLine) => {
      if (signal.aborted) return;
      res.write(`${JSON.stringify(line)}\n`);
      (res as { flush?: () => void }).flush?.();
    };
    res.flushHeaders();
    write({ type: 'clusters', items: clusters });
    let next = 0;
    let written = 0;
    const worker = async () => {
      while (next < clusters.length && !signal.aborted) {
        const { name } = clusters[next++];
        try {
          const clusterStatus = await reader.read(name, { refresh, signal });
          write({ type: 'status', status: clusterStatus });
          written++;
        } catch (error) {
          if (signal.aborted) return;
          // The reader turns every cluster problem into a state; anything else ends the stream.
          throw error;
        }
      }
    };
    try {
      await Promise.all(
        Array.from({ length: Math.min(concurrency, clusters.length) }, worker),
      );
      write({ type: 'done', count: written });
    } catch (error) {
      options.logger.warn(
        `Streaming the cluster statuses failed: ${(error as Error).message}`,
      );
      write({
        type: 'error',
        error: {
          name: (error as Error).name ?? 'Error',
          message: (error as Error).message ?? String(error),
        },
      });
    }
    res.end();
  });

  // `/clusters/:name/status` is the same route under the name the template's cluster picker uses.
  router.get(
    ['/clusters/:name', '/clusters/:name/status'],
    async (req, res) => {
      res.json(
        await status.getClusterStatus(
          await userCredentials(req),
          req.params.name,
          { refresh: flag(req.query.refresh), signal: requestSignal(res) },
        ),
      );
    },
  );

  // The clusters an entity shows. The entity is read with the caller's own credentials, so a
  // user sees only clusters named by entities they may see.
  router.get('/entity/:kind/:namespace/:name/clusters', async (req, res) => {
    const { kind, namespace, name } = req.params;
    res.json(
      await status.getEntityClusters(
        await userCredentials(req),
        { kind, namespace, name },
        { refresh: flag(req.query.refresh), signal: requestSignal(res) },
      ),
    );
  });

  // Day 2 from the card and the fleet page: reconcile now, suspend (a reason is required) and
  // resume a cluster's Flux sync, for signed-in users with flux.bootstrap.cluster.operate. The
  // service checks the permission first, audits every call and answers the fresh status.
  const operate = options.operateService;
  if (operate) {
    router.post(
      '/clusters/:cluster/:action(reconcile|suspend|resume)',
      async (req, res) => {
        const credentials = await userCredentials(req);
        const body: unknown = req.body;
        const reason =
          body && typeof body === 'object' && !Array.isArray(body)
            ? (body as { reason?: unknown }).reason
            : undefined;
        res.json(
          await operate.operate(
            credentials,
            req.params.cluster,
            req.params.action as OperateClusterAction,
            { reason, request: req, signal: requestSignal(res) },
          ),
        );
      },
    );
  }

  // Whether each configured Bitbucket Server host has credentials (never which), for the
  // template's token field: optional where the actions can use the integration's credentials;
  // and whether users can sign in to it (the Bitbucket Server auth provider), for the repository
  // field's requestUserCredentials.
  // Any signed-in user or service: the host names are frontend-visible config anyway, and the
  // form needs this answer before anything else, so no permission guards it. The settings the
  // actions use, read again when the config changes.
  router.get('/integrations/bitbucket-server', async (req, res) => {
    await httpAuth.credentials(req, { allow: ['user', 'service'] });
    const { bitbucketServer, requireScmUserCredentials } = await settings.get();
    const signIn = new Set(
      (options.bitbucketSignInHosts?.() ?? []).map(hostKey),
    );
    const body: BitbucketServerIntegrationsResponse = {
      items: bitbucketServer.map(h => ({
        host: h.host,
        credentials: credentialsKind(h.auth),
        ...(signIn.has(hostKey(h.host)) ? { userSignIn: true } : {}),
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
