import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { deleteClusterAccessKeys } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './deleteAccessKeys.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
} from './shared/context';
import {
  decommissionInput,
  fleetRepositoryInput,
  fleetTarget,
} from './shared/decommission';
import { actionInput, writeOutputs } from './shared/io';

/** The input of `bitbucket:delete-access-keys`. */
const deleteAccessKeysInput = actionInput(z =>
  z.object({
    cluster: decommissionInput.cluster(z),
    confirm: decommissionInput.confirm(z),
    repoUrl: fleetRepositoryInput.repoUrl(z),
    token: fleetRepositoryInput.token(z),
    branch: fleetRepositoryInput.branch(z),
    path: fleetRepositoryInput.path(z),
    namespace: z
      .string()
      .default('flux-system')
      .describe(
        'Namespace Flux ran in (default flux-system); part of the label.',
      ),
    secretName: z
      .string()
      .default('flux-system')
      .describe(
        "Name of Flux's Git Secret (default flux-system); part of the label.",
      ),
  }),
);

/**
 * `bitbucket:delete-access-keys` — deletes a decommissioned cluster's SSH access keys from the
 * fleet repository: the keys labelled as `flux:generate-key` labels that cluster's key, and no
 * other. A thin adapter over the engine's `deleteFluxAccessKeys`.
 * @public
 */
export function createBitbucketDeleteAccessKeysAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'bitbucket:delete-access-keys',
    description:
      "Deletes a cluster's SSH access keys from the fleet repository on Bitbucket Server: the keys labelled <namespace>-<branch>-<secretName>-./<path>, as flux:generate-key (and flux bootstrap) label that cluster's deploy key. The keys of other clusters and any other key stay. Needs confirm equal to the cluster name and REPO_ADMIN on the repository; a dry run lists the keys.",
    examples,
    supportsDryRun: true,
    schema: {
      input: deleteAccessKeysInput.schema,
      output: z =>
        z.object({
          label: z.string().describe('The label of the keys deleted.'),
          deletedKeyIds: z
            .array(z.number())
            .describe(
              'Ids of the access keys deleted (in a dry run: that would be).',
            ),
          changed: z.boolean().describe('True when a key was deleted.'),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        const input = deleteAccessKeysInput.parse(ctx.input);
        const target = fleetTarget(await settingsSource.get(), input);
        const result = await deleteClusterAccessKeys(
          { ...input, ...target, dryRun: ctx.isDryRun },
          {
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          },
        );
        writeOutputs(ctx, {
          label: result.label,
          deletedKeyIds: result.keys.map(k => k.id),
          changed: result.changed,
        });
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
