import {
  ApiBlueprint,
  createFrontendPlugin,
  discoveryApiRef,
  fetchApiRef,
} from '@backstage/frontend-plugin-api';
import { EntityCardBlueprint } from '@backstage/plugin-catalog-react/alpha';
import {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from './api/FluxBootstrapApi';
import { fluxBootstrapCardFilter } from './filter';

/** The status backend client as a utility API (new frontend system). @alpha */
export const fluxBootstrapApi = ApiBlueprint.make({
  params: defineParams =>
    defineParams({
      api: fluxBootstrapApiRef,
      deps: { discoveryApi: discoveryApiRef, fetchApi: fetchApiRef },
      factory: ({ discoveryApi, fetchApi }) =>
        new FluxBootstrapClient({ discoveryApi, fetchApi }),
    }),
});

/**
 * The entity card (new frontend system): on cluster Resources and on entities annotated
 * `flux-bootstrap.io/clusters`.
 * @alpha
 */
export const fluxBootstrapEntityCard = EntityCardBlueprint.make({
  name: 'cluster-status',
  params: {
    filter: fluxBootstrapCardFilter,
    loader: () =>
      import('./components/FluxBootstrapCard').then(m => (
        <m.FluxBootstrapCard />
      )),
  },
});

/** The Flux bootstrap plugin for the new frontend system. @alpha */
export default createFrontendPlugin({
  pluginId: 'flux-bootstrap',
  info: { packageJson: () => import('../package.json') },
  extensions: [fluxBootstrapApi, fluxBootstrapEntityCard],
});
