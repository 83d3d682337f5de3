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
  const dir = options.path
    ? `${options.path}/${options.namespace}`
    : options.namespace;
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
 * flux:push-manifests: writes what `flux bootstrap` writes to the fleet repository in flux's two
 * commits, over HTTPS to Bitbucket or over SSH. Checks what the schema cannot (the signing key,
 * the private key, known_hosts) before any request, derives the sync URL from where the
 * repository is, and pushes each commit in a checkpoint.
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
    if (req.signCommits && !signingKey) {
      throw new InputValidationError(
        'signCommits',
        bitbucket
          ? `integrations.bitbucketServer for ${bitbucket.host.host} has no commitSigningKey`
          : "needs repoUrl: the signing key is the Bitbucket integration's commitSigningKey",
      );
    }
    const urlsOf = (ref: BitbucketRepoRef) =>
      planRepositoryOutputs(bitbucket!.host, {
        ref,
        defaultBranch: branch,
      });
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
    // Where the repository is, without a request: planned from repoUrl, or the ssh URL.
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
    let located:
      | Awaited<ReturnType<typeof locateBitbucketRepository>>
      | undefined;
    if (bitbucket) {
      logger.info(`Using ${bitbucket.credentials}`);
      const client = new BitbucketServerClient(bitbucket.host, bitbucket.auth, {
        logger,
        redactor,
      });
      located = await locateBitbucketRepository(client, bitbucket.ref, {
        signal,
        credentials: bitbucket.credentials,
      }).finally(() => client.close());
      // The project key is known only now when repoUrl named the project by name.
      const urls = urlsOf(located.ref);
      options = optionsFor(urls);
      transport = bitbucketGitTransport(
        urls.remoteUrl,
        bitbucket.host,
        bitbucket.auth,
      );
    } else {
      const { url, privateKey, passphrase, knownHosts } = ssh!;
      transport = new SshGitTransport({
        url,
        privateKey,
        passphrase,
        knownHosts: knownHosts!,
      });
    }
    const cluster = req.cluster || options.path.split('/').pop();
    const prRepo = bitbucket &&
      located && {
        host: bitbucket.host,
        auth: bitbucket.auth,
        projectKey: located.projectKey,
        slug: located.repoSlug,
      };
    if (operator) {
      const pushed = await pushOrPullRequest(
        {
          transport,
          branch,
          pullRequest: req.pullRequest,
          cluster,
          bitbucket: prRepo,
          commits: fluxInstanceCommits({
            options,
            operator,
            author: req.author,
            commitMessageAppendix: req.commitMessageAppendix || undefined,
            signingKey,
            migrate: operator.migrate,
            workDir: deps.workDir,
            cluster: cluster || 'cluster',
          }),
        },
        { logger, redactor, signal, checkpoint: deps.checkpoint },
      );
      return { ...pushed, syncUrl: options.sync.url };
    }
    const { kustomizationGenerated: _, ...result } =
      await pushFluxManifestsOrPullRequest(
        {
          transport,
          files: renderFluxManifests(bundle!.files, options),
          version: options.components.version,
          branch,
          author: req.author,
          commitMessageAppendix: req.commitMessageAppendix || undefined,
          signingKey,
          workDir: deps.workDir,
          allowDowngrade: req.allowDowngrade,
          pullRequest: req.pullRequest,
          cluster,
          bitbucket: prRepo,
        },
        { logger, redactor, signal, checkpoint: deps.checkpoint },
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
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(ssh.privateKey)) {
    throw new InputValidationError(
      'sshPrivateKeySecret',
      'the task secret is not a PEM/OpenSSH private key',
    );
  }
  if (!ssh.knownHosts?.trim()) {
    if (!dryRun) {
      throw new InputValidationError(
        'knownHosts',
        'is required: known_hosts lines of the SSH server (strict host key checking)',
      );
    }
    // Their usual source, flux:generate-key's knownHosts output, comes from a host key scan,
    // which a dry run does not do; nothing connects in a dry run either.
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

/**
 * Writes `gotk-components.yaml` as bootstrap does: refused over a Flux Operator folder (there is
 * no way back) and over a newer Flux unless `allowDowngrade` (then it warns).
 */
export async function writeComponentsManifest(
  tree: TreeEditor,
  files: FluxManifestFiles,
  version: string,
  opts: { allowDowngrade?: boolean; logger: EngineLogger },
): Promise<void> {
  const { path, content } = files.components;
  await refuseBootstrapOverInstance(tree, files.dir);
  if (await tree.exists(path))
    checkFluxVersionChange(
      componentsFluxVersion(await tree.read(path)),
      version,
      {
        where: `in ${path}`,
        ...opts,
      },
    );
  tree.write(path, content);
}

/**
 * Writes `gotk-sync.yaml` and, unless the folder has a kustomization file (the user's stays),
 * a `kustomization.yaml` listing the manifests the folder holds, as flux bootstrap does;
 * `isKnownManifest` spares re-parsing files known to be Kubernetes YAML. True when generated.
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
 * The two commits of bootstrap: `Add Flux <version> component manifests` (gotk-components.yaml),
 * then `Add Flux sync manifests` (gotk-sync.yaml, and kustomization.yaml when the folder has no
 * kustomization file: users' patches survive). Each push is one checkpoint; identical content
 * makes no commit; a branch that moves meanwhile is fetched again and the change redone on top
 * (bounded). The transport is closed at the end. Not exported from the package (the
 * pull-request mode's declarations refer to it, so it is not stripped as internal).
 */
export async function commitFluxManifests(
  input: CommitFluxManifestsInput,
  deps: {
    logger: EngineLogger;
    signal?: AbortSignal;
    checkpoint?: CheckpointFn;
  },
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
    const appendix = input.commitMessageAppendix;
    const r = await (
      await open()
    ).commitAndPush({
      message: appendix ? `${message}\n\n${appendix}` : message,
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
    // What a checkpoint keeps of a push (public data).
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

    // Read back what is on the branch (an existing kustomization.yaml is the user's).
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
