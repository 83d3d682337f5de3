import {
  createApiFactory,
  createComponentExtension,
  createPlugin,
  discoveryApiRef,
  fetchApiRef,
} from '@backstage/core-plugin-api';
import {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from './api/FluxBootstrapApi';

/** The Flux bootstrap frontend plugin (legacy frontend system). @public */
export const fluxBootstrapPlugin = createPlugin({
  id: 'flux-bootstrap',
  apis: [
    createApiFactory({
      api: fluxBootstrapApiRef,
      deps: { discoveryApi: discoveryApiRef, fetchApi: fetchApiRef },
      factory: ({ discoveryApi, fetchApi }) =>
        new FluxBootstrapClient({ discoveryApi, fetchApi }),
    }),
  ],
});

/**
 * Entity card with the Flux bootstrap state of the clusters the entity shows (legacy frontend
 * system). Put it on cluster Resources and on entities annotated `flux-bootstrap.io/clusters`,
 * e.g. inside `<EntitySwitch.Case if={isFluxBootstrapAvailable}>`.
 * @public
 */
export const EntityFluxBootstrapCard = fluxBootstrapPlugin.provide(
  createComponentExtension({
    name: 'EntityFluxBootstrapCard',
    component: {
      lazy: () =>
        import('./components/FluxBootstrapCard').then(m => m.FluxBootstrapCard),
    },
  }),
);
