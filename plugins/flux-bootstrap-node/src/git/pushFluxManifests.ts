import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import {
  FluxBundleFiles,
  generateComponentsManifest,
} from '../manifests/components';
import { generateKustomizationFile } from '../manifests/kustomization';
import type { ResolvedFluxManifestOptions } from '../manifests/options';
import { generateSyncManifest } from '../manifests/sync';
import type { EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import {
  fluxManifestsDir,
  pushComponentsCommit,
  pushSyncCommit,
} from './fluxCommits';
import { GitAuthor, GitPushSession } from './session';
import type { GitTransport } from './transport';

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
  return {
    dir,
    components: {
      path: `${dir}/gotk-components.yaml`,
      content: generateComponentsManifest(bundle, options.components),
    },
    sync: {
      path: `${dir}/gotk-sync.yaml`,
      content: generateSyncManifest(options.sync),
    },
    kustomization: {
      path: `${dir}/kustomization.yaml`,
      content: generateKustomizationFile([
        'gotk-components.yaml',
        'gotk-sync.yaml',
      ]),
    },
  };
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
  /** Branch head after both pushes. */
  commitHash: string;
  /** Commit of `Add Flux <version> component manifests`, when one was made. */
  componentsCommit?: string;
  /** Commit of `Add Flux sync manifests`, when one was made. */
  syncCommit?: string;
  /** True when at least one commit was pushed. */
  changed: boolean;
  /** `<path>/<ns>` */
  manifestsPath: string;
  /** `<branch>@sha1:<commitHash>`, the form Flux reports. */
  revision: string;
  /** True when kustomization.yaml was written by this run (the folder had none). */
  kustomizationGenerated: boolean;
  /** The three files as they are on the branch now. */
  files: Record<string, string>;
}

interface PushStep {
  changed: boolean;
  commit?: string;
  head: string;
  tree: string;
  kustomizationGenerated?: boolean;
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
  const checkpoint: CheckpointFn = deps.checkpoint ?? runCheckpointDirectly;
  const { options } = input;
  const files = renderFluxManifests(input.bundle, options);
  const version = options.components.version;
  const branch = options.branch;

  let session: GitPushSession | undefined;
  const open = async () => {
    session ??= await GitPushSession.open({
      transport: input.transport,
      branch,
      logger,
      workDir: input.workDir,
      maxAttempts: input.maxAttempts,
    });
    return session;
  };
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

  try {
    logger.info(
      `Pushing Flux ${version} component manifests to ${files.components.path} on "${branch}" of ${input.transport.displayUrl}`,
    );
    const components = await checkpoint<PushStep>(
      `push-components`,
      async () => {
        const r = await pushComponentsCommit({
          ...common,
          session: await open(),
          version,
          content: files.components.content,
        });
        return {
          changed: r.changed,
          commit: r.commit,
          head: r.head,
          tree: r.tree,
        };
      },
    );
    logger.info(
      `Pushing Flux sync manifests to ${files.sync.path} on "${branch}"`,
    );
    const sync = await checkpoint<PushStep>(`push-sync`, async () => {
      const r = await pushSyncCommit({
        ...common,
        session: await open(),
        content: files.sync.content,
      });
      if (r.kustomizationGenerated)
        logger.info(`Generated ${files.kustomization.path}`);
      else logger.info(`Kept the existing kustomization file in ${files.dir}`);
      return {
        changed: r.changed,
        commit: r.commit,
        head: r.head,
        tree: r.tree,
        kustomizationGenerated: r.kustomizationGenerated,
      };
    });

    // Read back what is on the branch (an existing kustomization.yaml is the user's).
    const current: Record<string, string> = {
      [files.components.path]: files.components.content,
      [files.sync.path]: files.sync.content,
    };
    const s = await open();
    try {
      const kustomization = await s.readFile(
        sync.tree,
        files.kustomization.path,
      );
      if (kustomization !== undefined)
        current[files.kustomization.path] = kustomization;
    } catch {
      // The tree is not in this session's repository (the step was restored from a checkpoint).
      if (sync.kustomizationGenerated)
        current[files.kustomization.path] = files.kustomization.content;
    }

    const changed = components.changed || sync.changed;
    const commitHash = sync.head;
    logger.info(
      changed
        ? `Flux manifests are on "${branch}" at ${commitHash}`
        : `Flux manifests on "${branch}" were already up to date (${commitHash})`,
    );
    return {
      commitHash,
      componentsCommit: components.commit,
      syncCommit: sync.commit,
      changed,
      manifestsPath: files.dir,
      revision: `${branch}@sha1:${commitHash}`,
      kustomizationGenerated: !!sync.kustomizationGenerated,
      files: current,
    };
  } catch (error) {
    throw redactor.redactError(error);
  } finally {
    if (session) await session.close();
    else await input.transport.close();
  }
}
