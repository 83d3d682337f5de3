import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { ensureFleetRepository } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './createRepo.examples';
import { bitbucketAccess } from './shared/bitbucketAccess';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
} from './shared/context';
import { gitBranch } from './shared/domainInputs';
import { actionInput, writeOutputs } from './shared/io';

const PERMISSIONS = ['REPO_READ', 'REPO_WRITE', 'REPO_ADMIN'] as const;

/** The input of `bitbucket:create-repo`. */
const createRepoInput = actionInput(z =>
  z.object({
    repoUrl: z
      .string()
      .describe(
        'Repository location in the RepoUrlPicker form host?project=KEY&repo=name. The host must be one of integrations.bitbucketServer; project is a project key (any case), the exact project name, or ~USER for a personal repository.',
      ),
    description: z
      .string()
      .max(1000)
      .optional()
      .describe('Description of the repository, used only when it is created.'),
    private: z
      .boolean()
      .default(true)
      .describe(
        'Create the repository private (default true); false creates it public. An existing repository keeps its visibility.',
      ),
    defaultBranch: gitBranch(z)
      .default('main')
      .describe(
        'Default branch, created when missing so that the next step can push to it (default main).',
      ),
    groups: z
      .array(
        z.object({
          name: z
            .string()
            .trim()
            .min(1)
            .max(255)
            .regex(/^[^\p{Cc}]+$/u, 'must have no control characters')
            .describe('Name of an existing Bitbucket group.'),
          permission: z
            .enum(PERMISSIONS)
            .default('REPO_WRITE')
            .describe(
              'Repository permission to grant: REPO_READ, REPO_WRITE (default) or REPO_ADMIN.',
            ),
        }),
      )
      .default([])
      .superRefine((groups, ctx) =>
        groups.forEach((g, i) => {
          if (groups.findIndex(o => o.name === g.name) < i) {
            const message = `group "${g.name}" is listed twice`;
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message });
          }
        }),
      )
      .describe(
        'Groups to grant access to the repository; each permission is set and read back.',
      ),
    token: z
      .string()
      .optional()
      .describe(
        "Bitbucket HTTP access token of the user running the template (pass a ui:field Secret as ${{ secrets.token }}). Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
      ),
    tokenAuth: z
      .boolean()
      .default(false)
      .describe(
        "Flux will read the repository over HTTPS with these credentials (flux:install's tokenAuth): check first that they belong to a user, so that a project or repository access token fails here, before anything is created (default false).",
      ),
  }),
);

/**
 * `bitbucket:create-repo`: parses its input and runs the engine's `ensureFleetRepository`.
 * @public
 */
export function createBitbucketCreateRepoAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'bitbucket:create-repo',
    description:
      'Ensures a repository exists on Bitbucket Server / Data Center, with group access and its default branch, ready for flux:push-manifests.',
    examples,
    supportsDryRun: true,
    schema: {
      input: createRepoInput.schema,
      output: z =>
        z.object({
          remoteUrl: z.string().describe('HTTPS clone URL of the repository.'),
          sshUrl: z
            .string()
            .describe(
              'SSH clone URL with the Bitbucket SSH host and port, e.g. ssh://git@host:7999/key/repo.git.',
            ),
          repoContentsUrl: z
            .string()
            .describe('URL to browse the repository in Bitbucket.'),
          projectKey: z
            .string()
            .describe(
              'Key of the project that holds the repository (~USER for personal).',
            ),
          repoSlug: z.string().describe('Slug of the repository.'),
          defaultBranch: z
            .string()
            .describe('The branch Flux will sync; it exists after this step.'),
          created: z
            .boolean()
            .describe(
              'True when this run created the repository, false when it existed.',
            ),
          tokenOwner: z
            .string()
            .optional()
            .describe(
              'The Bitbucket user the credentials act as (X-AUSERNAME): with tokenAuth, the user Flux signs in as. Not in a dry run.',
            ),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        const input = createRepoInput.parse(ctx.input);
        const settings = await settingsSource.get();
        const outputs = await ensureFleetRepository(
          { ...input, bitbucket: bitbucketAccess(settings, input) },
          {
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
            dryRun: ctx.isDryRun,
          },
        );
        writeOutputs(ctx, outputs);
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
