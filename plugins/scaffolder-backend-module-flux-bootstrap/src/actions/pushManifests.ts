import fs from 'node:fs/promises';
import path from 'node:path';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  authSecrets,
  BitbucketServerClient,
  FluxManifestInput,
  gitHttpAuthHeaders,
  GitTransport,
  HttpsGitTransport,
  InputValidationError,
  loadFluxBundle,
  locateBitbucketRepository,
  parseKnownHosts,
  pendingRevision,
  planRepositoryOutputs,
  pushFluxManifestsOrPullRequest,
  renderFluxManifests,
  resolveFluxManifestOptions,
  SshGitTransport,
  validateSshUrl,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  fluxComponentOptions,
  fluxComponentOptionsInput,
} from './shared/fluxOptions';
import { examples } from './pushManifests.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  describeCredentials,
  FluxBootstrapActionOptions,
  resolveBitbucket,
  ResolvedBitbucket,
  toActionError,
  withDefault,
} from './shared/context';

// Printable text without line breaks or angle brackets (they would break the commit header).
const AUTHOR_NAME = /^[^<>\p{Cc}]{0,200}$/u;
const AUTHOR_EMAIL = /^[^<>\s\p{Cc}]{0,200}$/u;

function defaultSyncUrl(
  planned: { remoteUrl: string; sshUrl: string } | undefined,
  tokenAuth: boolean | undefined,
  sshUrl: string | undefined,
): string {
  if (!planned) return sshUrl!;
  return tokenAuth ? planned.remoteUrl : planned.sshUrl;
}

/** Writes the files under the workspace (never outside it). */
async function writeToWorkspace(
  workspacePath: string,
  files: Record<string, string>,
): Promise<string[]> {
  const root = path.resolve(workspacePath);
  const written: string[] = [];
  for (const [rel, content] of Object.entries(files)) {
    const target = path.resolve(root, rel);
    if (!target.startsWith(`${root}${path.sep}`)) {
      throw new InputValidationError(
        'path',
        `${rel} would be written outside the workspace`,
      );
    }
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, content, 'utf8');
    written.push(rel);
  }
  return written;
}

function requireText(field: string, value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InputValidationError(field, `is required: ${what}`);
  }
  return value;
}

/**
 * `flux:push-manifests` — writes what `flux bootstrap` writes to the fleet repository
 * (`<path>/<namespace>/gotk-components.yaml`, `gotk-sync.yaml`, `kustomization.yaml`) in flux's
 * two commits, over HTTPS to Bitbucket (token or integration credentials) or over SSH with a
 * key from the task secrets. A thin adapter over the engine's `pushFluxManifests`.
 * @public
 */
export function createFluxPushManifestsAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'flux:push-manifests',
    description:
      "Generates Flux's manifests (gotk-components.yaml from the release bundle, gotk-sync.yaml, kustomization.yaml) and commits them to the fleet repository as flux bootstrap does: two commits, nothing when unchanged, rebased when the branch moves.",
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        repoUrl: z =>
          z
            .string()
            .optional()
            .describe(
              'Bitbucket repository in the RepoUrlPicker form host?project=KEY&repo=name (pushed over HTTPS with the token or the integration credentials). Give either repoUrl or url.',
            ),
        url: z =>
          z
            .string()
            .optional()
            .describe(
              'An ssh:// remote (e.g. ssh://git@host:7999/PROJ/fleet.git) pushed with the system git and a private key from the task secrets — bootstrap without a Bitbucket token. Give either repoUrl or url.',
            ),
        token: z =>
          z
            .string()
            .optional()
            .describe(
              "Bitbucket HTTP access token with write access (a ui:field Secret passed as ${{ secrets.token }}). Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
            ),
        branch: z =>
          z
            .string()
            .optional()
            .describe(
              'Branch to push to and for Flux to follow (default main). Created when missing.',
            ),
        cluster: z =>
          z
            .string()
            .optional()
            .describe('Cluster name; path defaults to clusters/<cluster>.'),
        path: z =>
          z
            .string()
            .optional()
            .describe(
              'Cluster folder in the repository, relative (e.g. clusters/my-cluster; "." for the root). Required unless cluster is given.',
            ),
        namespace: z =>
          z
            .string()
            .optional()
            .describe('Namespace Flux runs in (default flux-system).'),
        secretName: z =>
          z
            .string()
            .optional()
            .describe(
              'Secret with the Git credentials Flux uses, GitRepository spec.secretRef (default flux-system).',
            ),
        syncUrl: z =>
          z
            .string()
            .optional()
            .describe(
              "URL Flux clones (GitRepository spec.url). Default: the repository's SSH URL (url itself for an SSH remote), or its HTTPS URL with tokenAuth.",
            ),
        tokenAuth: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Flux syncs over HTTPS with a token (default false: over SSH with an access key).',
            ),
        interval: z =>
          z
            .string()
            .optional()
            .describe('GitRepository interval (default 1m).'),
        recurseSubmodules: z =>
          z
            .boolean()
            .optional()
            .describe('Make Flux clone submodules too (default false).'),
        ...fluxComponentOptionsInput,
        authorName: z =>
          z.string().optional().describe('Commit author name (default Flux).'),
        authorEmail: z =>
          z
            .string()
            .optional()
            .describe('Commit author email (default empty).'),
        commitMessageAppendix: z =>
          z
            .string()
            .optional()
            .describe(
              'Text appended to both commit messages after a blank line.',
            ),
        allowDowngrade: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Write an older Flux version than the one in Git (default false: refused; Flux does not support downgrades in general).',
            ),
        pullRequest: z =>
          z
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
                  branch: z
                    .string()
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
        signCommits: z =>
          z
            .boolean()
            .optional()
            .describe(
              "Sign both commits with the integration's commitSigningKey (default false).",
            ),
        sshPrivateKeySecret: z =>
          z
            .string()
            .optional()
            .describe(
              'With url: name of the task secret holding the private key (default sshPrivateKey). The key itself never goes through inputs.',
            ),
        sshPassphraseSecret: z =>
          z
            .string()
            .optional()
            .describe(
              'With url: name of the task secret holding the key passphrase, if the key is encrypted.',
            ),
        knownHosts: z =>
          z
            .string()
            .optional()
            .describe(
              'With url: known_hosts lines of the SSH server (host keys are checked strictly), e.g. the knownHosts output of flux:generate-key. A dry run does without them (flux:generate-key does not scan in a dry run).',
            ),
      },
      output: {
        commitHash: z =>
          z
            .string()
            .describe(
              'Head of the branch after the push (empty in a dry run).',
            ),
        componentsCommit: z =>
          z
            .string()
            .optional()
            .describe(
              'Commit "Add Flux <version> component manifests", when one was made.',
            ),
        syncCommit: z =>
          z
            .string()
            .optional()
            .describe('Commit "Add Flux sync manifests", when one was made.'),
        changed: z => z.boolean().describe('True when a commit was pushed.'),
        manifestsPath: z =>
          z
            .string()
            .describe(
              'Folder of the files in the repository: <path>/<namespace>.',
            ),
        revision: z =>
          z
            .string()
            .describe(
              '<branch>@sha1:<commitHash>, the revision Flux reports once it has synced (<branch>@sha1: in a dry run, which pushes nothing).',
            ),
        syncUrl: z =>
          z.string().describe('The URL written to GitRepository spec.url.'),
        pullRequestUrl: z =>
          z
            .string()
            .optional()
            .describe(
              "With pullRequest: the pull request's URL (pass it to flux:install's pullRequest).",
            ),
        pullRequestId: z =>
          z.number().optional().describe('With pullRequest: its id.'),
        sourceBranch: z =>
          z
            .string()
            .optional()
            .describe('With pullRequest: the branch holding the commits.'),
        files: z =>
          z
            .array(z.string())
            .describe(
              'The files, written into the workspace at their repository paths.',
            ),
      },
    },
    async handler(ctx) {
      const input = ctx.input;
      const sshKeyName = withDefault(
        input.sshPrivateKeySecret,
        'sshPrivateKey',
      );
      const secretKey = input.url ? ctx.secrets?.[sshKeyName] : undefined;
      const passphrase =
        input.url && input.sshPassphraseSecret
          ? ctx.secrets?.[input.sshPassphraseSecret]
          : undefined;
      const { redactor, logger } = createActionRedaction(ctx, [
        input.token,
        secretKey,
        passphrase,
      ]);
      try {
        // 1. Everything is validated before any request.
        const settings = await settingsSource.get();
        const source = settings.manifests;
        if (!!input.repoUrl === !!input.url) {
          throw new InputValidationError(
            input.repoUrl ? 'url' : 'repoUrl',
            'give either repoUrl (a Bitbucket repository, pushed over HTTPS) or url (an ssh:// remote), not both and not neither',
          );
        }
        let bitbucket: ResolvedBitbucket | undefined;
        let sshUrl: string | undefined;
        if (input.repoUrl) {
          bitbucket = resolveBitbucket(settings, {
            repoUrl: input.repoUrl,
            token: input.token,
          });
          for (const s of authSecrets(bitbucket.auth)) redactor.add(s);
          redactor.add(bitbucket.host.commitSigningKey);
        } else {
          sshUrl = validateSshUrl(input.url, 'url');
          if (input.tokenAuth || input.pullRequest) {
            throw new InputValidationError(
              input.tokenAuth ? 'tokenAuth' : 'pullRequest',
              'needs repoUrl (a Bitbucket repository); an SSH remote has no token',
            );
          }
          if (!secretKey) {
            throw new InputValidationError(
              'sshPrivateKeySecret',
              `no task secret named "${sshKeyName}": pass the private key through a ui:field Secret (never as a plain input)`,
            );
          }
          if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(secretKey)) {
            throw new InputValidationError(
              'sshPrivateKeySecret',
              `the task secret "${sshKeyName}" is not a PEM/OpenSSH private key`,
            );
          }
          if (input.sshPassphraseSecret && !passphrase) {
            throw new InputValidationError(
              'sshPassphraseSecret',
              `no task secret named "${input.sshPassphraseSecret}"`,
            );
          }
          const knownHostsGiven =
            typeof input.knownHosts === 'string' &&
            input.knownHosts.trim() !== '';
          if (ctx.isDryRun && !knownHostsGiven) {
            // The usual source, flux:generate-key's knownHosts output, comes from a host key
            // scan, which a dry run does not do; nothing connects in a dry run either.
            logger.info(
              'Dry run: no knownHosts given (flux:generate-key outputs them from its host key scan, which a dry run does not do); a real run requires them',
            );
          } else {
            const knownHosts = requireText(
              'knownHosts',
              input.knownHosts,
              'known_hosts lines of the SSH server (strict host key checking)',
            );
            if (parseKnownHosts(knownHosts).length === 0) {
              throw new InputValidationError(
                'knownHosts',
                'holds no usable known_hosts line ("[host]:port type base64")',
              );
            }
          }
        }
        const signingKey = input.signCommits
          ? bitbucket?.host.commitSigningKey
          : undefined;
        if (input.signCommits && !signingKey) {
          throw new InputValidationError(
            'signCommits',
            bitbucket
              ? `integrations.bitbucketServer for ${bitbucket.host.host} has no commitSigningKey`
              : "needs repoUrl: the signing key is the Bitbucket integration's commitSigningKey",
          );
        }
        const clusterPath =
          input.path ??
          (input.cluster ? `clusters/${input.cluster}` : undefined);
        if (clusterPath === undefined) {
          throw new InputValidationError(
            'path',
            'is required (or give cluster to use clusters/<cluster>)',
          );
        }
        const branch = withDefault(input.branch, 'main');
        // Where the repository is, without any request: planned from repoUrl, or the ssh URL.
        const planned = bitbucket
          ? planRepositoryOutputs(bitbucket.host, {
              ref: bitbucket.ref,
              defaultBranch: branch,
            })
          : undefined;
        const manifestInput: FluxManifestInput = {
          ...fluxComponentOptions(input),
          namespace: input.namespace,
          path: clusterPath,
          branch,
          secretName: input.secretName,
          syncUrl:
            input.syncUrl ?? defaultSyncUrl(planned, input.tokenAuth, sshUrl),
          interval: input.interval,
          recurseSubmodules: input.recurseSubmodules,
        };
        let resolved = resolveFluxManifestOptions(manifestInput, {
          fluxVersion: source.defaultVersion,
        });
        const author = {
          name: withDefault(input.authorName, 'Flux'),
          email: withDefault(input.authorEmail, ''),
        };
        if (!AUTHOR_NAME.test(author.name)) {
          throw new InputValidationError(
            'authorName',
            'must not contain line breaks or angle brackets',
          );
        }
        if (!AUTHOR_EMAIL.test(author.email)) {
          throw new InputValidationError(
            'authorEmail',
            'must not contain spaces, line breaks or angle brackets',
          );
        }

        // 2. The release bundle (local folder, cache, or the configured download source).
        const bundle = await loadFluxBundle(
          resolved.components.version,
          source,
          { signal: ctx.signal, logger },
        );

        if (ctx.isDryRun) {
          const files = renderFluxManifests(bundle.files, resolved);
          const written = await writeToWorkspace(ctx.workspacePath, {
            [files.components.path]: files.components.content,
            [files.sync.path]: files.sync.content,
            [files.kustomization.path]: files.kustomization.content,
          });
          logger.info(
            `Dry run: generated ${written.join(', ')} for "${branch}" of ${
              planned?.remoteUrl ?? sshUrl
            } (kustomization.yaml as for a folder without one); nothing was pushed`,
          );
          ctx.output('commitHash', '');
          ctx.output('changed', true);
          ctx.output('manifestsPath', files.dir);
          // No commit in a dry run: flux:install accepts this in its own dry run.
          ctx.output('revision', pendingRevision(branch));
          ctx.output('syncUrl', resolved.sync.url);
          ctx.output('files', written);
          return;
        }

        // 3. The remote.
        let transport: GitTransport;
        let located: { projectKey: string; repoSlug: string } | undefined;
        if (bitbucket) {
          const credentials = describeCredentials(bitbucket);
          logger.info(`Using ${credentials}`);
          const client = new BitbucketServerClient(
            bitbucket.host,
            bitbucket.auth,
            { logger, redactor },
          );
          try {
            located = await locateBitbucketRepository(client, bitbucket.ref, {
              signal: ctx.signal,
              credentials,
            });
          } finally {
            client.close();
          }
          const outputs = planRepositoryOutputs(bitbucket.host, {
            ref: {
              host: bitbucket.ref.host,
              project: located.projectKey,
              repo: located.repoSlug,
              personal: located.projectKey.startsWith('~'),
              owner: located.projectKey.startsWith('~')
                ? located.projectKey.slice(1)
                : undefined,
            },
            defaultBranch: branch,
          });
          if (input.syncUrl === undefined) {
            // The project key is known only now when repoUrl named the project by name.
            resolved = resolveFluxManifestOptions(
              {
                ...manifestInput,
                syncUrl: input.tokenAuth ? outputs.remoteUrl : outputs.sshUrl,
              },
              { fluxVersion: source.defaultVersion },
            );
          }
          transport = new HttpsGitTransport({
            url: outputs.remoteUrl,
            headers: gitHttpAuthHeaders(bitbucket.auth),
            caPem: bitbucket.host.caPem,
            timeoutMs: Math.max(60_000, bitbucket.host.requestTimeoutMs),
          });
        } else {
          transport = new SshGitTransport({
            url: sshUrl!,
            privateKey: secretKey!,
            passphrase,
            knownHosts: input.knownHosts!,
          });
        }

        // 4. The two commits, each push in a checkpoint.
        const result = await pushFluxManifestsOrPullRequest(
          {
            pullRequest: input.pullRequest,
            cluster: input.cluster,
            bitbucket: bitbucket && {
              ...bitbucket,
              projectKey: located!.projectKey,
              slug: located!.repoSlug,
            },
            transport,
            bundle: bundle.files,
            options: resolved,
            author,
            commitMessageAppendix: input.commitMessageAppendix || undefined,
            signingKey,
            allowDowngrade: input.allowDowngrade === true,
          },
          {
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          },
        );
        const written = await writeToWorkspace(ctx.workspacePath, result.files);
        ctx.output('commitHash', result.commitHash);
        if (result.componentsCommit)
          ctx.output('componentsCommit', result.componentsCommit);
        if (result.syncCommit) ctx.output('syncCommit', result.syncCommit);
        ctx.output('changed', result.changed);
        ctx.output('manifestsPath', result.manifestsPath);
        ctx.output('revision', result.revision);
        ctx.output('syncUrl', resolved.sync.url);
        ctx.output('files', written);
        if (result.pullRequestUrl) {
          ctx.output('pullRequestUrl', result.pullRequestUrl);
          ctx.output('pullRequestId', result.pullRequestId);
          ctx.output('sourceBranch', result.sourceBranch);
        }
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
