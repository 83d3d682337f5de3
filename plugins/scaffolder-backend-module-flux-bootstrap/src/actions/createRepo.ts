import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  authSecrets,
  BitbucketRepoPermission,
  BitbucketServerClient,
  ensureBitbucketRepository,
  EnsureRepositoryRequest,
  planRepositoryOutputs,
  validateRepositoryRequest,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './createRepo.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  describeCredentials,
  FluxBootstrapActionOptions,
  resolveBitbucket,
  toActionError,
  withDefault,
} from './shared/context';

const PERMISSIONS = ['REPO_READ', 'REPO_WRITE', 'REPO_ADMIN'] as const;

/**
 * `bitbucket:create-repo` — makes sure the fleet repository exists on Bitbucket Server / Data
 * Center (personal or project), with the asked visibility, default branch and group access.
 * A thin adapter over the engine's `ensureBitbucketRepository`.
 * @public
 */
export function createBitbucketCreateRepoAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'bitbucket:create-repo',
    description:
      'Ensures a repository exists on Bitbucket Server / Data Center (created when missing, reused otherwise), grants groups access and makes its default branch exist, ready for flux:push-manifests.',
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        repoUrl: z =>
          z
            .string()
            .describe(
              'Repository location in the RepoUrlPicker form host?project=KEY&repo=name. The host must be one of integrations.bitbucketServer; project is a project key (any case), the exact project name, or ~USER for a personal repository.',
            ),
        description: z =>
          z
            .string()
            .optional()
            .describe(
              'Description of the repository, used only when it is created.',
            ),
        private: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Create the repository private (default true); false creates it public. An existing repository keeps its visibility.',
            ),
        defaultBranch: z =>
          z
            .string()
            .optional()
            .describe(
              'Default branch, created when missing so that the next step can push to it (default main).',
            ),
        groups: z =>
          z
            .array(
              z.object({
                name: z
                  .string()
                  .describe('Name of an existing Bitbucket group.'),
                permission: z
                  .enum(PERMISSIONS)
                  .optional()
                  .describe(
                    'Repository permission to grant: REPO_READ, REPO_WRITE (default) or REPO_ADMIN.',
                  ),
              }),
            )
            .optional()
            .describe(
              'Groups to grant access to the repository; each permission is set and read back.',
            ),
        token: z =>
          z
            .string()
            .optional()
            .describe(
              "Bitbucket HTTP access token of the user running the template (pass a ui:field Secret as ${{ secrets.token }}). Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
            ),
      },
      output: {
        remoteUrl: z =>
          z.string().describe('HTTPS clone URL of the repository.'),
        sshUrl: z =>
          z
            .string()
            .describe(
              'SSH clone URL with the Bitbucket SSH host and port, e.g. ssh://git@host:7999/key/repo.git.',
            ),
        repoContentsUrl: z =>
          z.string().describe('URL to browse the repository in Bitbucket.'),
        projectKey: z =>
          z
            .string()
            .describe(
              'Key of the project that holds the repository (~USER for personal).',
            ),
        repoSlug: z => z.string().describe('Slug of the repository.'),
        defaultBranch: z =>
          z
            .string()
            .describe('The branch Flux will sync; it exists after this step.'),
        created: z =>
          z
            .boolean()
            .describe(
              'True when this run created the repository, false when it existed.',
            ),
      },
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        // Defaults are applied here: zod defaults are not applied at runtime.
        const groups = withDefault(ctx.input.groups, []).map(g => ({
          name: g.name,
          permission: withDefault(
            g.permission,
            'REPO_WRITE',
          ) as BitbucketRepoPermission,
        }));
        // Everything is validated before the first request.
        const settings = await settingsSource.get();
        const resolved = resolveBitbucket(settings, {
          repoUrl: ctx.input.repoUrl,
          token: ctx.input.token,
        });
        for (const secret of authSecrets(resolved.auth)) redactor.add(secret);
        const request: EnsureRepositoryRequest = {
          ref: resolved.ref,
          description: ctx.input.description,
          private: withDefault(ctx.input.private, true),
          defaultBranch: withDefault(ctx.input.defaultBranch, 'main').trim(),
          groups,
        };
        validateRepositoryRequest(request);

        if (ctx.isDryRun) {
          const planned = planRepositoryOutputs(resolved.host, request);
          logger.info(
            `Dry run: would ensure ${
              request.private ? 'private' : 'public'
            } repository ${planned.projectKey}/${planned.repoSlug} on ${
              resolved.host.host
            } with default branch "${request.defaultBranch}"${
              groups.length
                ? ` and grant ${groups
                    .map(g => `${g.name}=${g.permission}`)
                    .join(', ')}`
                : ''
            }; no request sent`,
          );
          for (const [name, value] of Object.entries(planned))
            ctx.output(name as keyof typeof planned, value);
          return;
        }

        const credentials = describeCredentials(resolved);
        logger.info(`Using ${credentials}`);
        const client = new BitbucketServerClient(resolved.host, resolved.auth, {
          logger,
          redactor,
        });
        try {
          const result = await ensureBitbucketRepository(client, request, {
            signal: ctx.signal,
            logger,
            checkpoint: checkpointFor(ctx),
            credentials,
          });
          ctx.output('remoteUrl', result.remoteUrl);
          ctx.output('sshUrl', result.sshUrl);
          ctx.output('repoContentsUrl', result.repoContentsUrl);
          ctx.output('projectKey', result.projectKey);
          ctx.output('repoSlug', result.repoSlug);
          ctx.output('defaultBranch', result.defaultBranch);
          ctx.output('created', result.created);
          logger.info(
            `Repository ${result.projectKey}/${result.repoSlug} ${
              result.created ? 'created' : 'reused'
            }: ${result.repoContentsUrl}`,
          );
        } finally {
          client.close();
        }
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
