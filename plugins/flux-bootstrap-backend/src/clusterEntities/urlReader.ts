import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import {
  createServiceFactory,
  UrlReaderService,
} from '@backstage/backend-plugin-api';
import {
  ReadUrlResponseFactory,
  urlReaderFactoriesServiceRef,
} from '@backstage/backend-defaults/urlReader';
import { NotAllowedError } from '@backstage/errors';
import { isClusterEntityUrl } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  clusterEntityParamsFromUrl,
  renderClusterEntityYaml,
} from './entities';

/**
 * Reads cluster entity locations in-process: the catalog asks its URL reader for
 * `<backend.baseUrl>/api/flux-bootstrap/v1/cluster-entity.yaml?…` and gets the rendered entity
 * without an HTTP round trip, so the location needs neither an unauthenticated route nor a
 * `backend.reading.allow` entry for the backend's own host.
 * @public
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
      const buffer = await read(url);
      return {
        files: [{ url, content: async () => buffer }],
        etag: '',
      };
    },
  };
}

/**
 * Adds the in-process reader of cluster entity locations to the URL reader service of every
 * plugin in this backend, the catalog's included.
 *
 * It ships with the status backend rather than with the scaffolder module, which makes the URLs
 * (template global `clusterEntityUrl`), because the locations live under this plugin's path and
 * this plugin also serves them over HTTP: the package that owns the path answers for it, both
 * in-process and over the wire. It is a URL reader — Backstage's extension point for reading a
 * kind of URL — rather than a catalog processor, because the catalog reads `url` locations
 * (what `catalog:register` adds) through the URL reader service, in processing as in the dry run
 * `catalog:register` does to learn the entity ref; a processor would have to be ordered before
 * the built-in URL reader processor to get a say. It must run in the backend that runs the
 * catalog; the package's default export installs it together with the plugin.
 * @public
 */
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
