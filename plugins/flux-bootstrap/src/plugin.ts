import {
  createApiFactory,
  createComponentExtension,
  createPlugin,
  createRoutableExtension,
  discoveryApiRef,
  fetchApiRef,
} from '@backstage/core-plugin-api';
import {
  repoPickerValidation,
  scaffolderPlugin,
} from '@backstage/plugin-scaffolder';
import { createScaffolderFieldExtension } from '@backstage/plugin-scaffolder-react';
import {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from './api/FluxBootstrapApi';
import { BitbucketServerRepoUrlPicker } from './scaffolder/BitbucketServerRepoUrlPicker';
import {
  BitbucketServerToken,
  bitbucketServerTokenValidation,
} from './scaffolder/BitbucketServerToken';
import { ClusterPicker } from './scaffolder/ClusterPicker';
import {
  BITBUCKET_SERVER_REPO_URL_PICKER,
  BitbucketServerRepoUrlPickerFieldSchema,
  BITBUCKET_SERVER_TOKEN,
  BitbucketServerTokenFieldSchema,
  FLUX_CLUSTER_PICKER,
  fluxClusterPickerValidation,
  FluxClusterPickerFieldSchema,
  SECRET_TEXTAREA,
  SecretTextareaFieldSchema,
} from './scaffolder/schemas';
import { SecretTextarea } from './scaffolder/SecretTextarea';
import { fluxFleetRouteRef } from './routes';

/** The Flux bootstrap frontend plugin (legacy frontend system). @public */
export const fluxBootstrapPlugin = createPlugin({
  id: 'flux-bootstrap',
  routes: { fleet: fluxFleetRouteRef },
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

/**
 * The fleet page (legacy frontend system): every configured cluster with its Flux bootstrap
 * state, streamed as each cluster answers, with counts, filter, search and the operate buttons.
 * Mount it in the app's routes, e.g. `<Route path="/flux-fleet" element={<FluxFleetPage />} />`,
 * and link it from the sidebar.
 * @public
 */
export const FluxFleetPage = fluxBootstrapPlugin.provide(
  createRoutableExtension({
    name: 'FluxFleetPage',
    mountPoint: fluxFleetRouteRef,
    component: () =>
      import('./components/FluxFleetPage').then(m => m.FluxFleetPage),
  }),
);

/*
 * Scaffolder form fields (legacy frontend system), for the templates in templates/. Put them in
 * the app's scaffolder route:
 *
 *   <Route path="/create" element={<ScaffolderPage />}>
 *     <ScaffolderFieldExtensions>
 *       <FluxClusterPickerFieldExtension />
 *       <BitbucketServerRepoUrlPickerFieldExtension />
 *       <SecretTextareaFieldExtension />
 *       <BitbucketServerTokenFieldExtension />
 *     </ScaffolderFieldExtensions>
 *   </Route>
 *
 * Provided by `scaffolderPlugin`, as Backstage documents for custom fields. Field extensions
 * bring no plugin APIs along, so the cluster picker and the token field do not need this plugin's
 * API: they use it
 * when the app has it (the entity card registers it) and otherwise the same client over the
 * core discovery and fetch APIs.
 */

/**
 * `ui:field: FluxClusterPicker`: the clusters of `kubernetes.clusterLocatorMethods` with their
 * Flux bootstrap state (from the status backend); the value is the cluster name.
 * @public
 */
export const FluxClusterPickerFieldExtension = scaffolderPlugin.provide(
  createScaffolderFieldExtension({
    name: FLUX_CLUSTER_PICKER,
    component: ClusterPicker,
    validation: fluxClusterPickerValidation,
    schema: FluxClusterPickerFieldSchema.schema,
  }),
);

/**
 * `ui:field: BitbucketServerRepoUrlPicker`: the scaffolder's RepoUrlPicker with `allowedHosts`
 * from `integrations.bitbucketServer`, validated like RepoUrlPicker.
 * @public
 */
export const BitbucketServerRepoUrlPickerFieldExtension =
  scaffolderPlugin.provide(
    createScaffolderFieldExtension({
      name: BITBUCKET_SERVER_REPO_URL_PICKER,
      component: BitbucketServerRepoUrlPicker,
      validation: repoPickerValidation,
      schema: BitbucketServerRepoUrlPickerFieldSchema.schema,
    }),
  );

/**
 * `ui:field: SecretTextarea`: a multi-line secret (an SSH private key), kept in the task secrets
 * under the field's name like `ui:field: Secret`.
 * @public
 */
export const SecretTextareaFieldExtension = scaffolderPlugin.provide(
  createScaffolderFieldExtension({
    name: SECRET_TEXTAREA,
    component: SecretTextarea,
    schema: SecretTextareaFieldSchema.schema,
  }),
);

/**
 * `ui:field: BitbucketServerToken`: the user's Bitbucket HTTP access token for the host of the
 * sibling `repoUrl` field (`ui:options.repoUrlField`), kept in the task secrets like
 * `ui:field: Secret`; required only when that host's integration has no credentials or
 * `scaffolder.requireScmUserCredentials` is on.
 * @public
 */
export const BitbucketServerTokenFieldExtension = scaffolderPlugin.provide(
  createScaffolderFieldExtension({
    name: BITBUCKET_SERVER_TOKEN,
    component: BitbucketServerToken,
    validation: bitbucketServerTokenValidation,
    schema: BitbucketServerTokenFieldSchema.schema,
  }),
);
