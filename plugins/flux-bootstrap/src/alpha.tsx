import {
  ApiBlueprint,
  createFrontendPlugin,
  createRouteRef,
  discoveryApiRef,
  fetchApiRef,
  PageBlueprint,
} from '@backstage/frontend-plugin-api';
import { RiStackLine } from '@remixicon/react';
import { EntityCardBlueprint } from '@backstage/plugin-catalog-react/alpha';
import {
  createFormField,
  FormFieldBlueprint,
} from '@backstage/plugin-scaffolder-react/alpha';
import {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from './api/FluxBootstrapApi';
import { fluxBootstrapCardFilter } from './filter';
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

/** Route of the fleet page (new frontend system). @alpha */
export const fluxFleetPageRouteRef = createRouteRef();

/**
 * The fleet page (new frontend system) at `/flux-fleet`, with a nav item "Flux fleet": every
 * configured cluster with its state, streamed as each cluster answers.
 * @alpha
 */
export const fluxFleetPage = PageBlueprint.make({
  name: 'fleet',
  params: {
    path: '/flux-fleet',
    title: 'Flux fleet',
    icon: <RiStackLine />,
    routeRef: fluxFleetPageRouteRef,
    noHeader: true,
    loader: () =>
      import('./components/FluxFleetPage').then(m => <m.FluxFleetPage />),
  },
});

/**
 * `ui:field: FluxClusterPicker` (scaffolder form field, new frontend system): the clusters of
 * `kubernetes.clusterLocatorMethods` with their Flux bootstrap state; the value is the name.
 * @alpha
 */
export const fluxClusterPickerFormField = FormFieldBlueprint.make({
  name: 'cluster-picker',
  params: {
    field: () =>
      import('./scaffolder/ClusterPicker').then(m =>
        createFormField({
          name: FLUX_CLUSTER_PICKER,
          component: m.ClusterPicker as any,
          validation: fluxClusterPickerValidation as any,
          schema: FluxClusterPickerFieldSchema as any,
        }),
      ),
  },
});

/**
 * `ui:field: BitbucketServerRepoUrlPicker` (new frontend system): the scaffolder's RepoUrlPicker
 * with `allowedHosts` from `integrations.bitbucketServer`, validated like RepoUrlPicker.
 * @alpha
 */
export const bitbucketServerRepoUrlPickerFormField = FormFieldBlueprint.make({
  name: 'bitbucket-server-repo-url-picker',
  params: {
    field: () =>
      Promise.all([
        import('./scaffolder/BitbucketServerRepoUrlPicker'),
        import('@backstage/plugin-scaffolder'),
      ]).then(([m, scaffolder]) =>
        createFormField({
          name: BITBUCKET_SERVER_REPO_URL_PICKER,
          component: m.BitbucketServerRepoUrlPicker as any,
          validation: scaffolder.repoPickerValidation as any,
          schema: BitbucketServerRepoUrlPickerFieldSchema as any,
        }),
      ),
  },
});

/**
 * `ui:field: SecretTextarea` (new frontend system): a multi-line secret (SSH private keys),
 * stored in the task's secrets like `ui:field: Secret`; mask it on the review page with
 * `ui:backstage.review.mask`.
 * @alpha
 */
export const secretTextareaFormField = FormFieldBlueprint.make({
  name: 'secret-textarea',
  params: {
    field: () =>
      import('./scaffolder/SecretTextarea').then(m =>
        createFormField({
          name: SECRET_TEXTAREA,
          component: m.SecretTextarea as any,
          schema: SecretTextareaFieldSchema as any,
        }),
      ),
  },
});

/**
 * `ui:field: BitbucketServerToken` (new frontend system): the user's Bitbucket HTTP access token
 * for the host of the sibling `repoUrl` field, stored in the task's secrets like
 * `ui:field: Secret`; required only when that host's integration has no credentials or
 * `scaffolder.requireScmUserCredentials` is on (asked of the Flux bootstrap backend).
 * @alpha
 */
export const bitbucketServerTokenFormField = FormFieldBlueprint.make({
  name: 'bitbucket-server-token',
  params: {
    field: () =>
      import('./scaffolder/BitbucketServerToken').then(m =>
        createFormField({
          name: BITBUCKET_SERVER_TOKEN,
          component: m.BitbucketServerToken as any,
          validation: m.bitbucketServerTokenValidation as any,
          schema: BitbucketServerTokenFieldSchema as any,
        }),
      ),
  },
});

/**
 * The Flux bootstrap plugin for the new frontend system: the status API, the entity card, the
 * fleet page (`/flux-fleet`, in the nav as "Flux fleet") and the
 * scaffolder form fields the templates use (they attach to the scaffolder plugin's form fields,
 * so an app with the scaffolder gets them by installing this package).
 * @alpha
 */
export default createFrontendPlugin({
  pluginId: 'flux-bootstrap',
  info: { packageJson: () => import('../package.json') },
  routes: { fleet: fluxFleetPageRouteRef },
  extensions: [
    fluxBootstrapApi,
    fluxBootstrapEntityCard,
    fluxFleetPage,
    fluxClusterPickerFormField,
    bitbucketServerRepoUrlPickerFormField,
    secretTextareaFormField,
    bitbucketServerTokenFormField,
  ],
});
