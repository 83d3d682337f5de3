import { authSecrets, BitbucketServerClient } from '../bitbucket/client';
import {
  locateBitbucketRepository,
  planRepositoryOutputs,
} from '../bitbucket/repository';
import type { BitbucketRepoRef } from '../bitbucket/repoUrl';
import type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
} from '../config/bitbucketServer';
import type { FluxBootstrapSettings } from '../config/settings';
import { pendingRevision } from '../install/plan';
import { parseKnownHosts } from '../keys/hostKey';
import { loadFluxBundle } from '../manifests/bundle';
import type { FluxOperatorOptions } from '../operator/instance';
import {
  dryRunFluxInstance,
  fluxInstanceCommits,
  refuseBootstrapOverInstance,
} from '../operator/push';
import {
  FluxBundleFiles,
  generateComponentsManifest,
} from '../manifests/components';
import {
  generateKustomizationFile,
  KUSTOMIZATION_FILE_NAMES,
  scanKustomizationResources,
} from '../manifests/kustomization';
import {
  FLUX_DEFAULTS,
  resolveFluxManifestOptions,
  type FluxManifestInput,
  type ResolvedFluxManifestOptions,
} from '../manifests/options';
import { generateSyncManifest } from '../manifests/sync';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import type { EngineLogger } from '../util/logger';
import {
  checkFluxVersionChange,
  componentsFluxVersion,
} from '../upgrade/fluxVersions';
import { Redactor } from '../util/redact';
import {
  pushFluxManifestsOrPullRequest,
  pushOrPullRequest,
  type PullRequestInput,
  type CommitDeps,
  type PullRequestRepository,
} from './pullRequestMode';
import { GitPushSession, type GitAuthor } from './session';
import type { TreeEditor } from './tree';
import { SshGitTransport } from './ssh';
import { bitbucketGitTransport, type GitTransport } from './transport';

/** The three files bootstrap writes, as repository paths. @public */
export interface FluxManifestFiles {
  /** `<path>/<namespace>` */
  dir: string;
  components: { path: string; content: string };
  sync: { path: string; content: string };
  /** Path of kustomization.yaml; content as generated for a folder that has none yet. */
  kustomization: { path: string; content: string };
}

/** Renders gotk-components.yaml, gotk-sync.yaml and a fresh folder's kustomization.yaml. @public */
export function renderFluxManifests(
  bundle: FluxBundleFiles,
  options: ResolvedFluxManifestOptions,
): FluxManifestFiles {
  const dir = [options.path, options.namespace].filter(Boolean).join('/');
  const file = (name: string, content: string) => ({
    path: `${dir}/${name}`,
    content,
  });
  return {
    dir,
    components: file(
      'gotk-components.yaml',
      generateComponentsManifest(bundle, options.components),
    ),
    sync: file('gotk-sync.yaml', generateSyncManifest(options.sync)),
    kustomization: file(
      'kustomization.yaml',
      generateKustomizationFile(['gotk-components.yaml', 'gotk-sync.yaml']),
    ),
  };
}

/** A Bitbucket repository the credentials push to over HTTPS. @public */
export interface BitbucketFleetRepository {
  ref: BitbucketRepoRef;
  host: BitbucketServerHostConfig;
  auth: BitbucketServerAuth;
  /** How logs and errors name the credentials (never their value). */
  credentials: string;
}

/** An `ssh://` remote pushed with the system git and a key from the task secrets. @public */
export interface SshFleetRepository {
  url: string;
  privateKey: string;
  passphrase?: string;
  /** known_hosts lines (strict checking); a dry run does without them. */
  knownHosts?: string;
}

/** A parsed flux:push-manifests request. @public */
export interface PushFluxManifestsRequest {
  repository:
    | { bitbucket: BitbucketFleetRepository }
    | { ssh: SshFleetRepository };
  /** `syncUrl` defaults to the repository's SSH URL, or its HTTPS URL with `tokenAuth`. */
  manifests: Omit<FluxManifestInput, 'syncUrl'> & { syncUrl?: string };
  tokenAuth?: boolean;
  author: GitAuthor;
  commitMessageAppendix?: string;
  /** Sign both commits with the Bitbucket integration's `commitSigningKey`. */
  signCommits?: boolean;
  /** Replace a newer Flux version in Git by an older one, with a warning. Default false. */
  allowDowngrade?: boolean;
  /** The changes reach the branch through a pull request on Bitbucket (needs `bitbucket`). */
  pullRequest?: PullRequestInput;
  /** Names the pull request's branch (`flux/<cluster>`); default the path's last folder. */
  cluster?: string;
  /** Render the files only; nothing is read from or pushed to the repository. */
  dryRun?: boolean;
  /**
   * `distribution: operator`: one commit with `flux-instance.yaml` (operator/push.ts); `migrate`
   * replaces flux bootstrap's files once the FluxInstance adopted the controllers.
   */
  operator?: Omit<FluxOperatorOptions, 'version'> & {
    version?: string;
    migrate?: boolean;
  };
}

/** What {@link pushFluxManifests} works with. @public */
export interface PushFluxManifestsDeps {
  settings: Pick<FluxBootstrapSettings, 'manifests'>;
  logger: EngineLogger;
  redactor?: Redactor;
  signal?: AbortSignal;
  /** Wraps each push (`ctx.checkpoint` in an action). */
  checkpoint?: CheckpointFn;
  /** Parent folder of the temporary repository. */
  workDir?: string;
}

/** Outcome of {@link pushFluxManifests}: public data only. @public */
export interface PushFluxManifestsResult {
  /** Head of the branch after the push (`''` in a dry run). */
  commitHash: string;
  componentsCommit?: string;
  syncCommit?: string;
  changed: boolean;
  /** `<path>/<namespace>` */
  manifestsPath: string;
  /** `<branch>@sha1:<commitHash>` (`<branch>@sha1:` in a dry run). */
  revision: string;
  /** GitRepository `spec.url`. */
  syncUrl: string;
  /** The files on the branch (in a dry run: as generated), repository path → content. */
  files: Record<string, string>;
  /** Operator mode: the folder holds flux bootstrap's files, nothing was written (migrate later). */
  migrationPending?: boolean;
  /** With `pullRequest`, while it is open: its URL, id and source branch (`revision` is ''). */
  pullRequestUrl?: string;
  pullRequestId?: number;
  sourceBranch?: string;
}

/**
 * flux:push-manifests: flux bootstrap's two commits, over HTTPS to Bitbucket or over SSH. The
 * signing key, private key and known_hosts are checked before any request.
 * @public
 */
export async function pushFluxManifests(
  req: PushFluxManifestsRequest,
  deps: PushFluxManifestsDeps,
): Promise<PushFluxManifestsResult> {
  const redactor = deps.redactor ?? new Redactor();
  const logger = redactor.wrapLogger(deps.logger);
  const { bitbucket, ssh } = req.repository as {
    bitbucket?: BitbucketFleetRepository;
    ssh?: SshFleetRepository;
  };
  const branch = req.manifests.branch ?? FLUX_DEFAULTS.branch;
  const { signal } = deps;
  try {
    if (bitbucket) {
      for (const s of authSecrets(bitbucket.auth)) redactor.add(s);
      redactor.add(bitbucket.host.commitSigningKey);
    }
    if (ssh) checkSshRemote(ssh, redactor, logger, req.dryRun);
    const signingKey = req.signCommits
      ? bitbucket?.host.commitSigningKey
      : undefined;
    if (req.signCommits && !signingKey)
      throw new InputValidationError(
        'signCommits',
        bitbucket
          ? `integrations.bitbucketServer for ${bitbucket.host.host} has no commitSigningKey`
          : "needs repoUrl: the signing key is the Bitbucket integration's commitSigningKey",
      );
    const urlsOf = (ref: BitbucketRepoRef) =>
      planRepositoryOutputs(bitbucket!.host, { ref, defaultBranch: branch });
    const optionsFor = (urls: { remoteUrl: string; sshUrl: string }) =>
      resolveFluxManifestOptions(
        {
          ...req.manifests,
          syncUrl:
            req.manifests.syncUrl ??
            (req.tokenAuth ? urls.remoteUrl : urls.sshUrl),
        },
        { fluxVersion: deps.settings.manifests.defaultVersion },
      );
    const planned = bitbucket
      ? urlsOf(bitbucket.ref)
      : { remoteUrl: '', sshUrl: ssh!.url };
    let options = optionsFor(planned);
    const operator = req.operator && {
      ...req.operator,
      version: req.operator.version ?? options.components.version,
    };

    const bundle = operator
      ? undefined
      : await loadFluxBundle(
          options.components.version,
          deps.settings.manifests,
          { signal, logger },
        );
    if (req.dryRun && operator)
      return {
        ...dryRunFluxInstance(options, operator, logger),
        syncUrl: options.sync.url,
      };
    if (req.dryRun) {
      const files = renderFluxManifests(bundle!.files, options);
      logger.info(
        `Dry run: generated the Flux manifests in ${
          files.dir
        } for "${branch}" of ${
          planned.remoteUrl || planned.sshUrl
        } (kustomization.yaml as for a folder without one); nothing was pushed`,
      );
      return {
        commitHash: '',
        changed: true,
        manifestsPath: files.dir,
        revision: pendingRevision(branch),
        syncUrl: options.sync.url,
        files: Object.fromEntries(
          [files.components, files.sync, files.kustomization].map(f => [
            f.path,
            f.content,
          ]),
        ),
      };
    }

    let transport: GitTransport;
    let prRepo: PullRequestRepository | undefined;
    if (bitbucket) {
      logger.info(`Using ${bitbucket.credentials}`);
      const { host, auth, credentials } = bitbucket;
      const client = new BitbucketServerClient(host, auth, {
        logger,
        redactor,
      });
      const located = await locateBitbucketRepository(client, bitbucket.ref, {
        signal,
        credentials,
      }).finally(() => client.close());
      prRepo = {
        host,
        auth,
        projectKey: located.projectKey,
        slug: located.repoSlug,
      };
      // The project key is known only now when repoUrl named the project by name.
      const urls = urlsOf(located.ref);
      options = optionsFor(urls);
      transport = bitbucketGitTransport(urls.remoteUrl, host, auth);
    } else {
      transport = new SshGitTransport({
        ...ssh!,
        knownHosts: ssh!.knownHosts!,
      });
    }
    const cluster = req.cluster || options.path.split('/').pop();
    const target = {
      transport,
      branch,
      pullRequest: req.pullRequest,
      cluster,
      bitbucket: prRepo,
    };
    const commitDeps = {
      logger,
      redactor,
      signal,
      checkpoint: deps.checkpoint,
    };
    const commitMessageAppendix = req.commitMessageAppendix || undefined;
    const { author, allowDowngrade } = req;
    const { workDir } = deps;
    if (operator) {
      const pushed = await pushOrPullRequest(
        {
          ...target,
          commits: fluxInstanceCommits({
            ...{ options, operator, author, commitMessageAppendix },
            ...{ signingKey, migrate: operator.migrate, workDir },
            cluster: cluster || 'cluster',
          }),
        },
        commitDeps,
      );
      return { ...pushed, syncUrl: options.sync.url };
    }
    const { kustomizationGenerated: _, ...result } =
      await pushFluxManifestsOrPullRequest(
        {
          ...target,
          ...{ author, commitMessageAppendix, signingKey, workDir },
          files: renderFluxManifests(bundle!.files, options),
          version: options.components.version,
          allowDowngrade,
        },
        commitDeps,
      );
    return { ...result, syncUrl: options.sync.url };
  } catch (error) {
    throw redactor.redactError(error);
  }
}

/** What flux:push-manifests needs of an SSH remote, checked before anything connects. */
function checkSshRemote(
  ssh: SshFleetRepository,
  redactor: Redactor,
  logger: EngineLogger,
  dryRun?: boolean,
) {
  redactor.add(ssh.privateKey).add(ssh.passphrase);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(ssh.privateKey))
    throw new InputValidationError(
      'sshPrivateKeySecret',
      'the task secret is not a PEM/OpenSSH private key',
    );
  if (!ssh.knownHosts?.trim()) {
    if (!dryRun)
      throw new InputValidationError(
        'knownHosts',
        'is required: known_hosts lines of the SSH server (strict host key checking)',
      );
    logger.info(
      'Dry run: no knownHosts given (flux:generate-key outputs them from its host key scan, which a dry run does not do); a real run requires them',
    );
  } else if (parseKnownHosts(ssh.knownHosts).length === 0) {
    throw new InputValidationError(
      'knownHosts',
      'holds no usable known_hosts line ("[host]:port type base64")',
    );
  }
}

/** Writes `gotk-components.yaml`: refused over a Flux Operator folder and over a newer Flux unless `allowDowngrade`. */
export async function writeComponentsManifest(
  tree: TreeEditor,
  files: FluxManifestFiles,
  version: string,
  opts: { allowDowngrade?: boolean; logger: EngineLogger },
): Promise<void> {
  const { path, content } = files.components;
  await refuseBootstrapOverInstance(tree, files.dir);
  if (await tree.exists(path)) {
    const found = componentsFluxVersion(await tree.read(path));
    checkFluxVersionChange(found, version, { where: `in ${path}`, ...opts });
  }
  tree.write(path, content);
}

/**
 * Writes `gotk-sync.yaml` and, unless the folder has a kustomization file (the user's stays), a
 * `kustomization.yaml` listing its manifests (`isKnownManifest`: no re-parse). True when generated.
 */
export async function writeSyncManifests(
  tree: TreeEditor,
  files: FluxManifestFiles,
  isKnownManifest: (path: string) => boolean | Promise<boolean>,
): Promise<boolean> {
  tree.write(files.sync.path, files.sync.content);
  for (const name of KUSTOMIZATION_FILE_NAMES)
    if (await tree.exists(`${files.dir}/${name}`)) return false;
  const resources = await scanKustomizationResources(tree, files.dir, {
    isKnownManifest,
  });
  tree.write(files.kustomization.path, generateKustomizationFile(resources));
  return true;
}

/** Inputs of {@link commitFluxManifests}. */
export interface CommitFluxManifestsInput {
  transport: GitTransport;
  files: FluxManifestFiles;
  /** Flux release, for the first commit's message. */
  version: string;
  branch: string;
  author: GitAuthor;
  commitMessageAppendix?: string;
  /** Armored OpenPGP private key (RSA) to sign both commits with. */
  signingKey?: string;
  workDir?: string;
  /** Push attempts per commit when the branch moves meanwhile. Default 5. */
  maxAttempts?: number;
  /** Replace a newer Flux version in Git (warns). Default false: refused. */
  allowDowngrade?: boolean;
}

/**
 * Bootstrap's two commits, `Add Flux <version> component manifests` then `Add Flux sync
 * manifests`, each push a checkpoint; identical content makes no commit; a branch that moved is
 * fetched again and the change redone on top (bounded). Closes the transport. Not in the
 * package's API, yet not tagged internal either: pullRequestMode's declarations name it, and
 * the declaration build strips what is tagged so.
 */
export async function commitFluxManifests(
  input: CommitFluxManifestsInput,
  deps: CommitDeps,
): Promise<
  Omit<PushFluxManifestsResult, 'syncUrl'> & { kustomizationGenerated: boolean }
> {
  const { transport, files, branch, author, signingKey } = input;
  const { logger, signal } = deps;
  const checkpoint = deps.checkpoint ?? runCheckpointDirectly;
  let session: GitPushSession | undefined;
  const open = async () =>
    (session ??= await GitPushSession.open({
      transport,
      branch,
      logger,
      workDir: input.workDir,
      maxAttempts: input.maxAttempts,
    }));
  const commit = async (
    what: string,
    message: string,
    edit: (tree: TreeEditor) => Promise<void>,
  ) => {
    const r = await (
      await open()
    ).commitAndPush({
      message: [message, input.commitMessageAppendix]
        .filter(Boolean)
        .join('\n\n'),
      author,
      signingKey,
      signal,
      edit,
    });
    logger.info(
      r.changed
        ? `Committed and pushed the ${what} to "${branch}" (${r.commit})`
        : `The ${what} are up to date`,
    );
    return { changed: r.changed, commit: r.commit, head: r.head, tree: r.tree };
  };
  const { dir } = files;
  try {
    logger.info(
      `Pushing Flux ${input.version} component manifests to ${files.components.path} on "${branch}" of ${transport.displayUrl}`,
    );
    const components = await checkpoint('push-components', () =>
      commit(
        'component manifests',
        `Add Flux ${input.version} component manifests`,
        tree =>
          writeComponentsManifest(tree, files, input.version, {
            allowDowngrade: input.allowDowngrade,
            logger,
          }),
      ),
    );
    logger.info(
      `Pushing Flux sync manifests to ${files.sync.path} on "${branch}"`,
    );
    const sync = await checkpoint('push-sync', async () => {
      let kustomizationGenerated = false;
      const r = await commit(
        'sync manifests',
        'Add Flux sync manifests',
        async tree => {
          // gotk-sync.yaml was written just now, and gotk-components.yaml is known Kubernetes
          // YAML when it is the very blob this session committed (no 3 MB re-parse).
          const pushed = session!.writtenBlob(files.components.path);
          kustomizationGenerated = await writeSyncManifests(
            tree,
            files,
            async p =>
              p === files.sync.path ||
              (p === files.components.path &&
                !!pushed &&
                pushed === (await tree.blobOid(p))),
          );
        },
      );
      logger.info(
        kustomizationGenerated
          ? `Generated ${files.kustomization.path}`
          : `Kept the existing kustomization file in ${dir}`,
      );
      return { ...r, kustomizationGenerated };
    });

    // What is on the branch (an existing kustomization.yaml is the user's).
    const current: Record<string, string> = {
      [files.components.path]: files.components.content,
      [files.sync.path]: files.sync.content,
    };
    const kustomization = await (
      await open()
    )
      .readFile(sync.tree, files.kustomization.path)
      // The tree is not in this session's repository (the step was restored from a checkpoint).
      .catch(() =>
        sync.kustomizationGenerated ? files.kustomization.content : undefined,
      );
    if (kustomization !== undefined)
      current[files.kustomization.path] = kustomization;

    const changed = components.changed || sync.changed;
    logger.info(
      changed
        ? `Flux manifests are on "${branch}" at ${sync.head}`
        : `Flux manifests on "${branch}" were already up to date (${sync.head})`,
    );
    return {
      commitHash: sync.head,
      componentsCommit: components.commit,
      syncCommit: sync.commit,
      changed,
      manifestsPath: dir,
      revision: `${branch}@sha1:${sync.head}`,
      kustomizationGenerated: !!sync.kustomizationGenerated,
      files: current,
    };
  } finally {
    if (session) await session.close();
    else await transport.close();
  }
}
