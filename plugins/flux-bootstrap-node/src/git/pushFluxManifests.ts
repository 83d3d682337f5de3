import {
  FluxBundleFiles,
  generateComponentsManifest,
} from '../manifests/components';
import {
  generateKustomizationFile,
  KUSTOMIZATION_FILE_NAMES,
  scanKustomizationResources,
} from '../manifests/kustomization';
import type { ResolvedFluxManifestOptions } from '../manifests/options';
import { generateSyncManifest } from '../manifests/sync';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import {
  checkFluxVersionChange,
  componentsFluxVersion,
} from '../upgrade/fluxVersions';
import { silentLogger, type EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import {
  GitPushSession,
  type CommitAndPushResult,
  type GitAuthor,
} from './session';
import type { GitTransport } from './transport';

/** Where flux's files live: `<path>/<namespace>/`. @public */
export function fluxManifestsDir(path: string, namespace: string): string {
  return path ? `${path}/${namespace}` : namespace;
}

/** The three files bootstrap writes, as repository paths. @public */
export interface FluxManifestFiles {
  /** `<path>/<ns>` */
  dir: string;
  components: { path: string; content: string };
  sync: { path: string; content: string };
  /** Path of kustomization.yaml; content as generated for a folder that has none yet. */
  kustomization: { path: string; content: string };
}

/**
 * Renders `gotk-components.yaml`, `gotk-sync.yaml` and the `kustomization.yaml` flux writes for a
 * fresh folder. Pure: no I/O. Used for previews (dry-run) and by {@link pushFluxManifests}.
 * @public
 */
export function renderFluxManifests(
  bundle: FluxBundleFiles,
  options: ResolvedFluxManifestOptions,
): FluxManifestFiles {
  const dir = fluxManifestsDir(options.path, options.namespace);
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

/** Common options of the two flux commits. @public */
export interface FluxCommitOptions {
  session: GitPushSession;
  /** Cluster path, normalised (`''` for the repository root). */
  path: string;
  namespace: string;
  author: GitAuthor;
  commitMessageAppendix?: string;
  signingKey?: string;
  signal?: AbortSignal;
  logger?: EngineLogger;
  branch: string;
}

/** One of flux's two commits, logged. */
async function fluxCommit(
  options: FluxCommitOptions,
  what: string,
  message: string,
  edit: Parameters<GitPushSession['commitAndPush']>[0]['edit'],
): Promise<CommitAndPushResult> {
  const { commitMessageAppendix: appendix, session } = options;
  const result = await session.commitAndPush({
    message: appendix ? `${message}\n\n${appendix}` : message,
    author: options.author,
    signingKey: options.signingKey,
    signal: options.signal,
    edit,
  });
  (options.logger ?? silentLogger).info(
    result.changed
      ? `Committed and pushed the ${what} to "${options.branch}" (${result.commit})`
      : `The ${what} are up to date`,
  );
  return result;
}

/**
 * Commit 1 of bootstrap: `<path>/<ns>/gotk-components.yaml`, message
 * `Add Flux <version> component manifests`. No commit when the file is already identical.
 * @public
 */
export async function pushComponentsCommit(
  options: FluxCommitOptions & {
    version: string;
    content: string;
    /** Replace a newer Flux version in Git (warns). Default false: refused, nothing pushed. */
    allowDowngrade?: boolean;
  },
): Promise<CommitAndPushResult> {
  const path = `${fluxManifestsDir(
    options.path,
    options.namespace,
  )}/gotk-components.yaml`;
  return fluxCommit(
    options,
    'component manifests',
    `Add Flux ${options.version} component manifests`,
    async tree => {
      if (await tree.exists(path)) {
        checkFluxVersionChange(
          componentsFluxVersion(await tree.read(path)),
          options.version,
          {
            where: `in ${path}`,
            allowDowngrade: options.allowDowngrade,
            logger: options.logger,
          },
        );
      }
      tree.write(path, options.content);
    },
  );
}

/**
 * Commit 2 of bootstrap: `<path>/<ns>/gotk-sync.yaml`, plus `kustomization.yaml` listing the
 * folder's manifests when the folder has no kustomization file yet (an existing one is kept, so
 * users' patches survive). Message `Add Flux sync manifests`.
 * @public
 */
export async function pushSyncCommit(
  options: FluxCommitOptions & { content: string },
): Promise<CommitAndPushResult & { kustomizationGenerated: boolean }> {
  const dir = fluxManifestsDir(options.path, options.namespace);
  const syncPath = `${dir}/gotk-sync.yaml`;
  const componentsPath = `${dir}/gotk-components.yaml`;
  let kustomizationGenerated = false;
  const result = await fluxCommit(
    options,
    'sync manifests',
    'Add Flux sync manifests',
    async tree => {
      kustomizationGenerated = false;
      tree.write(syncPath, options.content);
      for (const name of KUSTOMIZATION_FILE_NAMES) {
        if (await tree.exists(`${dir}/${name}`)) return;
      }
      // The files flux generates are Kubernetes YAML: gotk-sync.yaml written just now, and
      // gotk-components.yaml when it is the very blob this session committed (no 3 MB re-parse).
      const resources = await scanKustomizationResources(tree, dir, {
        isKnownManifest: async path =>
          path === syncPath ||
          (path === componentsPath &&
            !!options.session.writtenBlob(path) &&
            options.session.writtenBlob(path) === (await tree.blobOid(path))),
      });
      tree.write(
        `${dir}/kustomization.yaml`,
        generateKustomizationFile(resources),
      );
      kustomizationGenerated = true;
    },
  );
  return { ...result, kustomizationGenerated };
}

/** Inputs of {@link pushFluxManifests}. @public */
export interface PushFluxManifestsOptions {
  transport: GitTransport;
  bundle: FluxBundleFiles;
  options: ResolvedFluxManifestOptions;
  author: GitAuthor;
  commitMessageAppendix?: string;
  /** Armored OpenPGP private key (RSA) to sign both commits with. */
  signingKey?: string;
  /** Parent folder of the temporary repository. */
  workDir?: string;
  /** Push attempts per commit when the branch moves meanwhile. Default 5. */
  maxAttempts?: number;
  /** Replace a newer Flux version in Git (warns). Default false: refused. */
  allowDowngrade?: boolean;
}

/** Collaborators of {@link pushFluxManifests}. @public */
export interface PushFluxManifestsDeps {
  logger: EngineLogger;
  redactor?: Redactor;
  signal?: AbortSignal;
  /** Wraps each push (`ctx.checkpoint` in an action); default: run it. */
  checkpoint?: CheckpointFn;
}

/** Outcome of {@link pushFluxManifests}: public data only. @public */
export interface PushFluxManifestsResult {
  commitHash: string;
  /** Commit of `Add Flux <version> component manifests`, when one was made. */
  componentsCommit?: string;
  /** Commit of `Add Flux sync manifests`, when one was made. */
  syncCommit?: string;
  changed: boolean;
  /** `<path>/<ns>` */
  manifestsPath: string;
  /** `<branch>@sha1:<commitHash>`, the form Flux reports. */
  revision: string;
  /** True when kustomization.yaml was written by this run (the folder had none). */
  kustomizationGenerated: boolean;
  files: Record<string, string>;
}

/**
 * Writes what `flux bootstrap` writes to the fleet repository, as flux does it: commit 1
 * `Add Flux <version> component manifests` (gotk-components.yaml), commit 2
 * `Add Flux sync manifests` (gotk-sync.yaml, and kustomization.yaml when the folder has none).
 * Each push is one checkpoint; identical content makes no commit; a branch that moves meanwhile
 * is fetched again and the change redone on top (bounded). Errors and logs are redacted.
 * @public
 */
export async function pushFluxManifests(
  input: PushFluxManifestsOptions,
  deps: PushFluxManifestsDeps,
): Promise<PushFluxManifestsResult> {
  const redactor = deps.redactor ?? new Redactor();
  const logger = redactor.wrapLogger(deps.logger);
  const checkpoint = deps.checkpoint ?? runCheckpointDirectly;
  const { options, transport } = input;
  const files = renderFluxManifests(input.bundle, options);
  const { branch } = options;

  let session: GitPushSession | undefined;
  const open = async () =>
    (session ??= await GitPushSession.open({
      transport,
      branch,
      logger,
      workDir: input.workDir,
      maxAttempts: input.maxAttempts,
    }));
  const common = {
    path: options.path,
    namespace: options.namespace,
    author: input.author,
    commitMessageAppendix: input.commitMessageAppendix,
    signingKey: input.signingKey,
    signal: deps.signal,
    logger,
    branch,
  };
  /** What a checkpoint keeps of a push (public data). */
  const kept = (r: CommitAndPushResult) => ({
    changed: r.changed,
    commit: r.commit,
    head: r.head,
    tree: r.tree,
  });

  try {
    logger.info(
      `Pushing Flux ${options.components.version} component manifests to ${files.components.path} on "${branch}" of ${transport.displayUrl}`,
    );
    const components = await checkpoint('push-components', async () =>
      kept(
        await pushComponentsCommit({
          ...common,
          session: await open(),
          version: options.components.version,
          content: files.components.content,
          allowDowngrade: input.allowDowngrade,
        }),
      ),
    );
    logger.info(
      `Pushing Flux sync manifests to ${files.sync.path} on "${branch}"`,
    );
    const sync = await checkpoint('push-sync', async () => {
      const r = await pushSyncCommit({
        ...common,
        session: await open(),
        content: files.sync.content,
      });
      logger.info(
        r.kustomizationGenerated
          ? `Generated ${files.kustomization.path}`
          : `Kept the existing kustomization file in ${files.dir}`,
      );
      return { ...kept(r), kustomizationGenerated: r.kustomizationGenerated };
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
      manifestsPath: files.dir,
      revision: `${branch}@sha1:${sync.head}`,
      kustomizationGenerated: !!sync.kustomizationGenerated,
      files: current,
    };
  } catch (error) {
    throw redactor.redactError(error);
  } finally {
    if (session) await session.close();
    else await transport.close();
  }
}
