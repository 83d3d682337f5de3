import { createBackendFeatureLoader } from '@backstage/backend-plugin-api';
import { clusterEntityUrlReaderFactory } from './clusterEntities/urlReader';
import { fluxBootstrapPlugin } from './plugin';

/**
 * What `backend.add(import('@flux-bootstrap/plugin-flux-bootstrap-backend'))` installs: the
 * status backend plugin (`/api/flux-bootstrap`) and the in-process URL reader of its cluster
 * entity locations, which the catalog needs to read what `catalog:register` registers from the
 * template global `clusterEntityUrl(...)`.
 * @public
 */
export const fluxBootstrapBackend = createBackendFeatureLoader({
  *loader() {
    yield fluxBootstrapPlugin;
    yield clusterEntityUrlReaderFactory;
  },
});
