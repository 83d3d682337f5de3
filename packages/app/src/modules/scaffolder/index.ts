import { createFrontendModule } from '@backstage/frontend-plugin-api';
import { repoPickerValidation } from '@backstage/plugin-scaffolder';
import {
  createFormField,
  FormFieldBlueprint,
} from '@backstage/plugin-scaffolder-react/alpha';

/**
 * `ui:field: FluxClusterPicker`: a custom field rather than an `EntityPicker` on cluster
 * Resources, because a cluster that has never been bootstrapped has no catalog entity yet (the
 * template registers it as its last step), while the clusters the actions can reach are exactly
 * those of `kubernetes.clusterLocatorMethods` — which the status backend lists, with their state.
 */
const clusterPickerField = FormFieldBlueprint.make({
  name: 'flux-cluster-picker',
  params: {
    field: () =>
      import('./ClusterPicker').then(m =>
        createFormField({
          name: 'FluxClusterPicker',
          component: m.ClusterPicker as any,
          validation: (value: unknown, validation) => {
            if (
              value !== undefined &&
              value !== '' &&
              !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(String(value))
            ) {
              validation.addError('must be a configured cluster name');
            }
          },
        }),
      ),
  },
});

/**
 * `ui:field: BitbucketServerRepoUrlPicker`: Backstage's RepoUrlPicker (same value, same
 * validation) with `allowedHosts` filled from `integrations.bitbucketServer`, so the templates
 * need no installation-specific host list.
 */
const bitbucketServerRepoUrlPickerField = FormFieldBlueprint.make({
  name: 'bitbucket-server-repo-url-picker',
  params: {
    field: () =>
      import('./BitbucketServerRepoUrlPicker').then(m =>
        createFormField({
          name: 'BitbucketServerRepoUrlPicker',
          component: m.BitbucketServerRepoUrlPicker as any,
          validation: repoPickerValidation as any,
        }),
      ),
  },
});

/**
 * `ui:field: SecretTextarea`: a multi-line secret (SSH private keys), stored in the task's
 * secrets like `ui:field: Secret`; mask it on the review page with `ui:backstage.review.mask`.
 */
const secretTextareaField = FormFieldBlueprint.make({
  name: 'secret-textarea',
  params: {
    field: () =>
      import('./SecretTextarea').then(m =>
        createFormField({
          name: 'SecretTextarea',
          component: m.SecretTextarea as any,
        }),
      ),
  },
});

/** Scaffolder form fields of this app. */
export const scaffolderFieldsModule = createFrontendModule({
  pluginId: 'scaffolder',
  extensions: [
    clusterPickerField,
    bitbucketServerRepoUrlPickerField,
    secretTextareaField,
  ],
});
