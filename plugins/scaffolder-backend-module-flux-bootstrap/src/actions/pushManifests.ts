import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import type { z as zod } from 'zod/v3';
import {
  InputValidationError,
  normalizeRepoPath,
  pushFluxManifests,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { docs, examples } from './pushManifests.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
} from './shared/context';
import { bitbucketAccess } from './shared/bitbucketAccess';
import { gitBranch, repoPath, sshUrl } from './shared/domainInputs';
import {
  fluxComponentOptionsInput,
  fluxSyncOptionsInput,
  refineComponents,
  syncUrl,
} from './shared/fluxOptions';
import { actionInput, ruled, writeOutputs } from './shared/io';
import {
  fluxOperatorInput,
  operatorRequest,
  refineOperator,
} from './shared/operatorOptions';
import { writeToWorkspace } from './shared/workspace';

/** A commit author field: printable text that cannot break the commit header. */
const authorField = (z: typeof zod, spaces: boolean) =>
  ruled(z, v => {
    if (/^[^<>\p{Cc}]{0,200}$/u.test(v) && (spaces || !/\s/.test(v))) return v;
    throw new Error(
      `must not contain ${
        spaces ? '' : 'spaces, '
      }line breaks or angle brackets`,
    );
  });

/** The input of flux:push-manifests: one schema, documented and parsed. */
export const pushManifestsInput = actionInput((z: typeof zod) => {
  const sync = fluxSyncOptionsInput(z);
  return z
    .object({
      repoUrl: z
        .string()
        .optional()
        .describe(
          'Bitbucket repository in the RepoUrlPicker form host?project=KEY&repo=name (pushed over HTTPS with the token or the integration credentials). Give either repoUrl or url.',
        ),
      url: sshUrl(z)
        .optional()
        .describe(
          'An ssh:// remote (e.g. ssh://git@host:7999/PROJ/fleet.git) pushed with the system git and a private key from the task secrets — bootstrap without a Bitbucket token. Give either repoUrl or url.',
        ),
      token: z
        .string()
        .optional()
        .describe(
          "Bitbucket HTTP access token with write access (a ui:field Secret passed as ${{ secrets.token }}). Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
        ),
      branch: gitBranch(z)
        .default('main')
        .describe(
          'Branch to push to and for Flux to follow (default main). Created when missing.',
        ),
      cluster: z
        .string()
        .optional()
        .describe('Cluster name; path defaults to clusters/<cluster>.'),
      path: repoPath(z)
        .optional()
        .describe(
          'Cluster folder in the repository, relative (e.g. clusters/my-cluster; "." for the root). Required unless cluster is given.',
        ),
      namespace: sync.namespace.describe(
        'Namespace Flux runs in (default flux-system).',
      ),
      secretName: sync.secretName.describe(
        'Secret with the Git credentials Flux uses, GitRepository spec.secretRef (default flux-system).',
      ),
      syncUrl: syncUrl(z)
        .optional()
        .describe(
          "URL Flux clones (GitRepository spec.url). Default: the repository's SSH URL (url itself for an SSH remote), or its HTTPS URL with tokenAuth.",
        ),
      tokenAuth: z
        .boolean()
        .default(false)
        .describe(
          'Flux syncs over HTTPS with a token (default false: over SSH with an access key).',
        ),
      interval: sync.interval.describe('GitRepository interval (default 1m).'),
      recurseSubmodules: sync.recurseSubmodules.describe(
        'Make Flux clone submodules too (default false).',
      ),
      ...fluxComponentOptionsInput(z),
      // Printable text without line breaks or angle brackets (they would break the commit header).
      authorName: authorField(z, true)
        .default('Flux')
        .describe('Commit author name (default Flux).'),
      authorEmail: authorField(z, false)
        .default('')
        .describe('Commit author email (default empty).'),
      commitMessageAppendix: z
        .string()
        .optional()
        .describe('Text appended to both commit messages after a blank line.'),
      allowDowngrade: z
        .boolean()
        .default(false)
        .describe(
          'Write an older Flux version than the one in Git (default false: refused; Flux does not support downgrades in general).',
        ),
      ...fluxOperatorInput(z),
      migrate: z
        .boolean()
        .default(false)
        .describe(
          'With distribution operator on a folder flux bootstrap wrote: replace gotk-components.yaml and gotk-sync.yaml by flux-instance.yaml in one commit — only after flux:install adopted the controllers (the migrationPending output says when; default false: such a folder is left as it is).',
        ),
      pullRequest: z
        .union([
          z.boolean(),
          z.literal('auto'),
          z
            .object({
              auto: z
                .boolean()
                .optional()
                .describe(
                  "Open a pull request only when the branch's restrictions refuse a direct push (default false).",
                ),
              branch: gitBranch(z)
                .optional()
                .describe(
                  'Branch the commits go to (default flux/<cluster>), made from branch.',
                ),
              title: z
                .string()
                .max(255)
                .optional()
                .describe(
                  'Pull request title (default: what changes, e.g. "flux: bootstrap Flux v2.9.4 on cluster prod").',
                ),
              description: z
                .string()
                .max(30000)
                .optional()
                .describe(
                  'Pull request description (default: Flux version, files and path).',
                ),
              reviewers: z
                .array(z.string().regex(/^[A-Za-z0-9._@-]+$/))
                .optional()
                .describe(
                  "Bitbucket user names asked to review, besides the repository's default reviewers.",
                ),
            })
            .strict(),
        ])
        .optional()
        .describe(
          "Changes reach branch through a pull request on Bitbucket (needs repoUrl): true, 'auto' (only when the branch's restrictions refuse a direct push), or an object with branch, title, description, reviewers, auto. Default false: pushed directly.",
        ),
      signCommits: z
        .boolean()
        .default(false)
        .describe(
          "Sign both commits with the integration's commitSigningKey (default false).",
        ),
      sshPrivateKeySecret: z
        .string()
        .default('sshPrivateKey')
        .describe(
          'With url: name of the task secret holding the private key (default sshPrivateKey). The key itself never goes through inputs.',
        ),
      sshPassphraseSecret: z
        .string()
        .optional()
        .describe(
          'With url: name of the task secret holding the key passphrase, if the key is encrypted.',
        ),
      knownHosts: z
        .string()
        .optional()
        .describe(
          'With url: known_hosts lines of the SSH server (host keys are checked strictly), e.g. the knownHosts output of flux:generate-key. A dry run does without them (flux:generate-key does not scan in a dry run).',
        ),
    })
    .superRefine((v, ctx) => {
      const issue = (field: string, message: string) =>
        ctx.addIssue({ code: 'custom', path: [field], message });
      if (!!v.repoUrl === !!v.url) {
        issue(
          v.repoUrl ? 'url' : 'repoUrl',
          'give either repoUrl (a Bitbucket repository, pushed over HTTPS) or url (an ssh:// remote), not both and not neither',
        );
      }
      if (v.url && v.tokenAuth) {
        issue(
          'tokenAuth',
          'needs repoUrl (a Bitbucket repository); an SSH remote has no token',
        );
      }
      if (v.url && v.pullRequest) {
        issue(
          'pullRequest',
          'needs repoUrl (a Bitbucket repository); an SSH remote has no token',
        );
      }
      if (
        typeof v.pullRequest === 'object' &&
        v.pullRequest.branch === v.branch
      ) {
        issue(
          'pullRequest.branch',
          `must differ from branch ("${v.branch}"): the pull request goes from it to branch`,
        );
      }
      if (v.url && v.signCommits) {
        issue(
          'signCommits',
          "needs repoUrl: the signing key is the Bitbucket integration's commitSigningKey",
        );
      }
      if (v.path === undefined && !v.cluster) {
        issue(
          'path',
          'is required (or give cluster to use clusters/<cluster>)',
        );
      } else if (v.path === undefined) {
        try {
          normalizeRepoPath(`clusters/${v.cluster}`);
        } catch (e) {
          issue('cluster', `${(e as Error).message} (as clusters/<cluster>)`);
        }
      }
      refineComponents(v, ctx);
      refineOperator(v, ctx);
    })
    .transform(v => ({
      ...v,
      path: v.path ?? normalizeRepoPath(`clusters/${v.cluster}`),
    }));
});

type PushManifestsInput = ReturnType<typeof pushManifestsInput.parse>;

/** Where to push: the Bitbucket repository with its credentials, or the SSH remote and its key. */
function fleetRepository(
  settings: Parameters<typeof bitbucketAccess>[0],
  input: PushManifestsInput,
  secrets: Record<string, string | undefined> = {},
): Parameters<typeof pushFluxManifests>[0]['repository'] {
  if (input.repoUrl) {
    return {
      bitbucket: bitbucketAccess(settings, {
        repoUrl: input.repoUrl,
        token: input.token,
      }),
    };
  }
  /** A task secret by name: the key material never goes through inputs. */
  const secret = (field: string, name: string) => {
    if (secrets[name]) return secrets[name]!;
    throw new InputValidationError(
      field,
      `no task secret named "${name}": pass it through a ui:field Secret (never as a plain input)`,
    );
  };
  return {
    ssh: {
      url: input.url!,
      privateKey: secret('sshPrivateKeySecret', input.sshPrivateKeySecret),
      passphrase: input.sshPassphraseSecret
        ? secret('sshPassphraseSecret', input.sshPassphraseSecret)
        : undefined,
      knownHosts: input.knownHosts,
    },
  };
}

/**
 * `flux:push-manifests`: writes what `flux bootstrap` writes to the fleet repository in flux's
 * two commits. A thin adapter over the engine's `pushFluxManifests`.
 * @public
 */
export function createFluxPushManifestsAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  const action = createTemplateAction({
    id: 'flux:push-manifests',
    description:
      "Commits Flux's manifests (gotk-components.yaml, gotk-sync.yaml, kustomization.yaml) to the fleet repository in flux bootstrap's two commits.",
    examples,
    supportsDryRun: true,
    schema: {
      input: pushManifestsInput.schema,
      output: z =>
        z.object({
          commitHash: z
            .string()
            .describe(
              'Head of the branch after the push (empty in a dry run).',
            ),
          componentsCommit: z
            .string()
            .optional()
            .describe(
              'Commit "Add Flux <version> component manifests", when one was made.',
            ),
          syncCommit: z
            .string()
            .optional()
            .describe('Commit "Add Flux sync manifests", when one was made.'),
          changed: z.boolean().describe('True when a commit was pushed.'),
          manifestsPath: z
            .string()
            .describe(
              'Folder of the files in the repository: <path>/<namespace>.',
            ),
          revision: z
            .string()
            .describe(
              '<branch>@sha1:<commitHash>, the revision Flux reports once it has synced (<branch>@sha1: in a dry run, which pushes nothing).',
            ),
          syncUrl: z
            .string()
            .describe('The URL written to GitRepository spec.url.'),
          pullRequestUrl: z
            .string()
            .optional()
            .describe(
              "With pullRequest: the pull request's URL (pass it to flux:install's pullRequest).",
            ),
          pullRequestId: z
            .number()
            .optional()
            .describe('With pullRequest: its id.'),
          sourceBranch: z
            .string()
            .optional()
            .describe('With pullRequest: the branch holding the commits.'),
          files: z
            .array(z.string())
            .describe(
              'The files, written into the workspace at their repository paths.',
            ),
          migrationPending: z
            .boolean()
            .optional()
            .describe(
              "With distribution operator: the folder holds flux bootstrap's files and nothing was written; run flux:install, then flux:push-manifests with migrate.",
            ),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        const input = pushManifestsInput.parse(ctx.input);
        const settings = await settingsSource.get();
        const { manifests, operator } = operatorRequest(input);
        const result = await pushFluxManifests(
          {
            repository: fleetRepository(settings, input, ctx.secrets),
            manifests,
            operator: operator && { ...operator, migrate: input.migrate },
            tokenAuth: input.tokenAuth,
            author: { name: input.authorName, email: input.authorEmail },
            commitMessageAppendix: input.commitMessageAppendix,
            signCommits: input.signCommits,
            allowDowngrade: input.allowDowngrade,
            pullRequest: input.pullRequest,
            cluster: input.cluster,
            dryRun: ctx.isDryRun,
          },
          {
            settings,
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          },
        );
        const files = await writeToWorkspace(ctx.workspacePath, result.files);
        writeOutputs(ctx, { ...result, files });
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
  return Object.assign(action, { docs });
}
