import { Readable } from 'node:stream';
import {
  coreServices,
  createBackendModule,
  createBackendPlugin,
  createServiceFactory,
  UrlReaderService,
} from '@backstage/backend-plugin-api';
import {
  ReadUrlResponseFactory,
  urlReaderFactoriesServiceRef,
} from '@backstage/backend-defaults/urlReader';
import { NotAllowedError } from '@backstage/errors';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import { scaffolderTemplatingExtensionPoint } from '@backstage/plugin-scaffolder-node/alpha';
import express from 'express';
import Router from 'express-promise-router';
import crypto from 'node:crypto';
import {
  ClusterEntityParams,
  clusterEntityParamsFromUrl,
  clusterEntityUrl,
  isClusterEntityUrl,
  renderClusterEntityYaml,
} from './entities';
import { createWaitForEntityAction } from './waitForEntity';

/**
 * Reads cluster entity locations in-process: the catalog asks the URL reader for
 * `<backend.baseUrl>/api/fleet-entities/v1/cluster.yaml?…` and gets the rendered entity without
 * any HTTP round trip (so no unauthenticated route and no backend.reading.allow entry is needed).
 */
export function createClusterEntityReader(
  backendBaseUrl: string,
): UrlReaderService {
  const read = async (url: string) => {
    const parsed = new URL(url);
    if (!isClusterEntityUrl(parsed, backendBaseUrl)) {
      throw new NotAllowedError(`Not a cluster entity location: ${url}`);
    }
    return Buffer.from(
      await renderClusterEntityYaml(clusterEntityParamsFromUrl(parsed)),
      'utf8',
    );
  };
  return {
    async readUrl(url) {
      const buffer = await read(url);
      const etag = crypto
        .createHash('sha256')
        .update(buffer)
        .digest('hex')
        .slice(0, 32);
      return ReadUrlResponseFactory.fromReadable(Readable.from([buffer]), {
        etag,
      });
    },
    async readTree() {
      throw new NotAllowedError('Cluster entity locations are single files');
    },
    async search(url) {
      return { files: [{ url, content: () => read(url) }], etag: '' } as any;
    },
  };
}

/** Adds the in-process reader to the URL reader service of every plugin (the catalog's included). */
export const clusterEntityUrlReaderFactory = createServiceFactory({
  service: urlReaderFactoriesServiceRef,
  deps: {},
  async factory() {
    return ({ config }) => {
      const baseUrl = config.getString('backend.baseUrl');
      return [
        {
          predicate: (url: URL) => isClusterEntityUrl(url, baseUrl),
          reader: createClusterEntityReader(baseUrl),
        },
      ];
    };
  },
});

/**
 * `GET /api/fleet-entities/v1/cluster.yaml?…`: the same entity for people (authenticated like
 * every Backstage route), so a location URL opened in a browser or with curl shows what the
 * catalog reads.
 */
export const fleetEntitiesPlugin = createBackendPlugin({
  pluginId: 'fleet-entities',
  register(env) {
    env.registerInit({
      deps: { httpRouter: coreServices.httpRouter },
      async init({ httpRouter }) {
        const router = Router();
        router.get(
          '/v1/cluster.yaml',
          async (req: express.Request, res: express.Response) => {
            const url = new URL(req.originalUrl, 'http://localhost');
            const text = await renderClusterEntityYaml(
              clusterEntityParamsFromUrl(url),
            );
            res.type('text/yaml').send(text);
          },
        );
        httpRouter.use(router);
      },
    });
  },
});

/**
 * This app's scaffolder additions for the templates: the template global
 * `clusterEntityUrl({ name, owner, repository, branch, path, title, system })` (the location URL
 * a template registers with `catalog:register`) and `fleet:wait-for-entity` (so the template's
 * link to the registered entity works at once).
 */
export const scaffolderModuleAppActions = createBackendModule({
  pluginId: 'scaffolder',
  moduleId: 'flux-bootstrap-app',
  register(reg) {
    reg.registerInit({
      deps: {
        templating: scaffolderTemplatingExtensionPoint,
        actions: scaffolderActionsExtensionPoint,
        catalog: catalogServiceRef,
        config: coreServices.rootConfig,
      },
      async init({ templating, actions, catalog, config }) {
        actions.addActions(createWaitForEntityAction({ catalog }));
        const baseUrl = config.getString('backend.baseUrl');
        templating.addTemplateGlobals({
          clusterEntityUrl: (params: unknown) =>
            clusterEntityUrl(
              baseUrl,
              (params ?? {}) as Partial<ClusterEntityParams>,
            ),
        });
      },
    });
  },
});
