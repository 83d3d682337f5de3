import {
  type CustomFieldValidator,
  makeFieldSchema,
} from '@backstage/plugin-scaffolder-react';

/*
 * The scaffolder form fields the templates in templates/ use, as both frontend systems register
 * them (the new system's FormFieldBlueprint extensions in ../alpha.tsx, the legacy field
 * extensions in ../plugin.ts): names, ui:options schemas (shown by the template editor's field
 * explorer) and validation.
 */

/** `ui:field` names. @public */
export const FLUX_CLUSTER_PICKER = 'FluxClusterPicker';
/** @public */
export const BITBUCKET_SERVER_REPO_URL_PICKER = 'BitbucketServerRepoUrlPicker';
/** @public */
export const SECRET_TEXTAREA = 'SecretTextarea';
/** @public */
export const BITBUCKET_SERVER_TOKEN = 'BitbucketServerToken';

/** Schema of `ui:field: FluxClusterPicker`. @public */
export const FluxClusterPickerFieldSchema = makeFieldSchema({
  output: z =>
    z
      .union([z.string(), z.array(z.string())])
      .describe(
        'The cluster name; with ui:options.multiple the list of cluster names',
      ),
  uiOptions: z =>
    z.object({
      multiple: z
        .boolean()
        .optional()
        .describe(
          'Pick several clusters (a multi-select); the value is then an array of names',
        ),
      allowedClusters: z
        .array(z.string())
        .optional()
        .describe(
          'Only offer these cluster names (from kubernetes.clusterLocatorMethods)',
        ),
    }),
});

/** Schema of `ui:field: BitbucketServerRepoUrlPicker` (RepoUrlPicker's, hosts from the integrations). @public */
export const BitbucketServerRepoUrlPickerFieldSchema = makeFieldSchema({
  output: z =>
    z
      .string()
      .describe(
        'RepoUrlPicker value: host?project=KEY&repo=name (project=~USER: personal)',
      ),
  uiOptions: z =>
    z.object({
      allowedHosts: z
        .array(z.string())
        .optional()
        .describe(
          'Further restrict to these hosts; each must be in integrations.bitbucketServer (default: all of them)',
        ),
      allowedProjects: z
        .array(z.string())
        .optional()
        .describe('Offer only these project keys'),
      allowedRepos: z
        .array(z.string())
        .optional()
        .describe('Offer only these repository names'),
      requestUserCredentials: z
        .object({
          secretsKey: z
            .string()
            .describe(
              "Task secret that receives the user's Bitbucket token (${{ secrets.<secretsKey> }})",
            ),
          additionalScopes: z
            .object({
              bitbucket: z
                .array(z.string())
                .optional()
                .describe(
                  'Bitbucket Server scopes on top of PUBLIC_REPOS REPO_READ REPO_WRITE, e.g. PROJECT_ADMIN to create repositories',
                ),
            })
            .optional(),
        })
        .optional()
        .describe(
          'Ask the user to sign in to Bitbucket (where the backend configures auth.providers.bitbucketServer for the host), so the steps act as the user',
        ),
    }),
});

/** Schema of `ui:field: SecretTextarea`. @public */
export const SecretTextareaFieldSchema = makeFieldSchema({
  output: z =>
    z
      .string()
      .describe(
        'Asterisks only; the value is in the task secrets under the field name (${{ secrets.<name> }})',
      ),
});

/** Schema of `ui:field: BitbucketServerToken`. @public */
export const BitbucketServerTokenFieldSchema = makeFieldSchema({
  output: z =>
    z
      .string()
      .describe(
        'Asterisks only; the token is in the task secrets under the field name (${{ secrets.<name> }})',
      ),
  uiOptions: z =>
    z.object({
      repoUrlField: z
        .string()
        .optional()
        .describe(
          'Sibling field holding the repository (a RepoUrlPicker value) whose host the token is for. Default repoUrl',
        ),
      userCredentialsSecretsKey: z
        .string()
        .optional()
        .describe(
          "The repository field's requestUserCredentials.secretsKey: when the user is signed in to Bitbucket the token is optional",
        ),
    }),
});

/**
 * A cluster name as `kubernetes.clusterLocatorMethods` names clusters (each of them, for a
 * multi-select; no name twice).
 * @public
 */
export const fluxClusterPickerValidation: CustomFieldValidator<
  string | string[]
> = (value, validation) => {
  const names = Array.isArray(value) ? value : [value];
  for (const name of names) {
    if (
      name !== undefined &&
      name !== '' &&
      !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(String(name))
    ) {
      validation.addError(`"${name}" must be a configured cluster name`);
    }
  }
  if (Array.isArray(value) && new Set(value).size !== value.length) {
    validation.addError('names a cluster twice');
  }
};
