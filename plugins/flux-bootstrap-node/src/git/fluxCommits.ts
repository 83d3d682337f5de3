import {
  generateKustomizationFile,
  KUSTOMIZATION_FILE_NAMES,
  scanKustomizationResources,
} from '../manifests/kustomization';
import type { EngineLogger } from '../util/logger';
import { silentLogger } from '../util/logger';
import type { CommitAndPushResult, GitAuthor, GitPushSession } from './session';

/** Where flux's files live: `<path>/<namespace>/`. @public */
export function fluxManifestsDir(path: string, namespace: string): string {
  return path ? `${path}/${namespace}` : namespace;
}

/** flux's commit messages, with the optional appendix after a blank line. @public */
export function fluxCommitMessage(
  kind: 'components' | 'sync',
  version: string,
  appendix?: string,
): string {
  const base =
    kind === 'components'
      ? `Add Flux ${version} component manifests`
      : 'Add Flux sync manifests';
  return appendix ? `${base}\n\n${appendix}` : base;
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

/**
 * Commit 1 of bootstrap: `<path>/<ns>/gotk-components.yaml`, message
 * `Add Flux <version> component manifests`. No commit when the file is already identical.
 * @public
 */
export async function pushComponentsCommit(
  options: FluxCommitOptions & { version: string; content: string },
): Promise<CommitAndPushResult> {
  const logger = options.logger ?? silentLogger;
  const file = `${fluxManifestsDir(
    options.path,
    options.namespace,
  )}/gotk-components.yaml`;
  const result = await options.session.commitAndPush({
    message: fluxCommitMessage(
      'components',
      options.version,
      options.commitMessageAppendix,
    ),
    author: options.author,
    signingKey: options.signingKey,
    signal: options.signal,
    edit: async tree => tree.write(file, options.content),
  });
  if (result.changed) {
    logger.info(
      `Committed and pushed the component manifests to "${options.branch}" (${result.commit})`,
    );
  } else {
    logger.info('The component manifests are up to date');
  }
  return result;
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
  const logger = options.logger ?? silentLogger;
  const dir = fluxManifestsDir(options.path, options.namespace);
  let kustomizationGenerated = false;
  const result = await options.session.commitAndPush({
    message: fluxCommitMessage('sync', '', options.commitMessageAppendix),
    author: options.author,
    signingKey: options.signingKey,
    signal: options.signal,
    edit: async tree => {
      kustomizationGenerated = false;
      const syncPath = `${dir}/gotk-sync.yaml`;
      tree.write(syncPath, options.content);
      for (const name of KUSTOMIZATION_FILE_NAMES) {
        if (await tree.exists(`${dir}/${name}`)) return;
      }
      // The two files flux generates are Kubernetes YAML: gotk-sync.yaml written just now, and
      // gotk-components.yaml when it is the very blob this session committed (no 3 MB re-parse).
      const componentsPath = `${dir}/gotk-components.yaml`;
      const resources = await scanKustomizationResources(tree, dir, {
        isKnownManifest: async path => {
          if (path === syncPath) return true;
          if (path !== componentsPath) return false;
          const written = options.session.writtenBlob(path);
          return !!written && written === (await tree.blobOid(path));
        },
      });
      tree.write(
        `${dir}/kustomization.yaml`,
        generateKustomizationFile(resources),
      );
      kustomizationGenerated = true;
    },
  });
  if (result.changed) {
    logger.info(
      `Committed and pushed the sync manifests to "${options.branch}" (${result.commit})`,
    );
  } else {
    logger.info('The sync manifests are up to date');
  }
  return { ...result, kustomizationGenerated };
}
