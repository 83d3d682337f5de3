import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { removeClusterPathFromRepository } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './removeClusterPath.examples';
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

// Printable text without line breaks or angle brackets (they would break the commit header).
const AUTHOR = /^[^<>\p{Cc}]{0,200}$/u;
const NOT_AUTHOR = 'must not contain line breaks or angle brackets';

/** The input of `flux:remove-cluster-path`. */
const removeClusterPathInput = actionInput(z =>
  z.object({
    cluster: decommissionInput.cluster(z),
    confirm: decommissionInput.confirm(z),
    repoUrl: fleetRepositoryInput.repoUrl(z),
    token: fleetRepositoryInput.token(z),
    branch: fleetRepositoryInput.branch(z),
    path: fleetRepositoryInput.path(z),
    authorName: z
      .string()
      .regex(AUTHOR, NOT_AUTHOR)
      .default('Flux')
      .describe('Commit author name (default Flux).'),
    authorEmail: z
      .string()
      .regex(AUTHOR, NOT_AUTHOR)
      .default('')
      .describe('Commit author email (default empty).'),
    commitMessageAppendix: z
      .string()
      .optional()
      .describe(
        'Text appended to the commit message after a blank line, e.g. a ticket.',
      ),
  }),
);

/**
 * `flux:remove-cluster-path` — removes a decommissioned cluster's folder from the fleet
 * repository in one commit, `Remove Flux from <cluster>`. A thin adapter over the engine's
 * `removeClusterPath`.
 * @public
 */
export function createFluxRemoveClusterPathAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'flux:remove-cluster-path',
    description:
      "Removes a cluster's folder (clusters/<cluster>: Flux's manifests and whatever else the cluster synced) from the fleet repository's branch in one commit, \"Remove Flux from <cluster>\", over HTTPS with the token or the integration's credentials. Other folders are untouched; no commit when the folder is already gone. Needs confirm equal to the cluster name; a dry run lists the files. Run it after flux:uninstall, so Flux does not act on the change.",
    examples,
    supportsDryRun: true,
    schema: {
      input: removeClusterPathInput.schema,
      output: z =>
        z.object({
          files: z
            .array(z.string())
            .describe(
              'The files removed (in a dry run: that would be), as repository paths.',
            ),
          commitHash: z
            .string()
            .optional()
            .describe('The commit that removed them, when one was made.'),
          changed: z.boolean().describe('True when a commit was pushed.'),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        const input = removeClusterPathInput.parse(ctx.input);
        const target = fleetTarget(await settingsSource.get(), input);
        const result = await removeClusterPathFromRepository(
          {
            ...target,
            cluster: input.cluster,
            author: { name: input.authorName, email: input.authorEmail },
            commitMessageAppendix: input.commitMessageAppendix || undefined,
            dryRun: ctx.isDryRun,
          },
          {
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          },
        );
        writeOutputs(ctx, {
          files: result.files,
          commitHash: result.commit,
          changed: result.changed,
        });
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
