import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import git from 'isomorphic-git';
import { GitPushSession, type GitAuthor } from '../git/session';
import type { GitTransport } from '../git/transport';
import { TreeEditor } from '../git/tree';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';

/** Options of {@link removeClusterPath}. @public */
export interface RemoveClusterPathOptions {
  transport: GitTransport;
  branch: string;
  /** The cluster's folder, normalised (`clusters/my-cluster`); never the repository root. */
  path: string;
  /** Cluster name, for the commit message `Remove Flux from <cluster>`. */
  cluster: string;
  author: GitAuthor;
  /** Text appended to the commit message after a blank line. */
  commitMessageAppendix?: string;
  /** Armored OpenPGP private key (RSA) to sign the commit with. */
  signingKey?: string;
  /** List the files that would be removed; push nothing. */
  dryRun?: boolean;
  /** Parent folder of the temporary repository. */
  workDir?: string;
}

/** Outcome of {@link removeClusterPath}. @public */
export interface RemoveClusterPathResult {
  /** The files under the path on the branch (removed, or to be removed in a dry run). */
  files: string[];
  /** The commit that removed them, when one was pushed. */
  commit?: string;
  /** Branch head afterwards (before, in a dry run); absent when the branch does not exist. */
  head?: string;
  changed: boolean;
}

/** `Remove Flux from <cluster>`, with the optional appendix after a blank line. @public */
export function removeClusterPathMessage(
  cluster: string,
  appendix?: string,
): string {
  const base = `Remove Flux from ${cluster}`;
  return appendix ? `${base}\n\n${appendix}` : base;
}

/** Every file under `dir` of a tree (pending edits included), sorted. */
async function filesUnder(tree: TreeEditor, dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string) => {
    for (const entry of await tree.list(at)) {
      const full = `${at}/${entry.name}`;
      if (entry.type === 'dir') await walk(full);
      else out.push(full);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Reads the branch head's tree without a session (nothing is pushed): for dry runs. */
async function listRemoteFiles(
  options: RemoveClusterPathOptions,
  signal?: AbortSignal,
): Promise<{ head?: string; files: string[] }> {
  const refs = await options.transport.listRefs(signal);
  const head = refs.heads.get(options.branch);
  if (!head) return { files: [] };
  const parent = options.workDir ?? os.tmpdir();
  await fsp.mkdir(parent, { recursive: true });
  const gitdir = await fsp.mkdtemp(path.join(parent, 'flux-bootstrap-git-'));
  try {
    await git.init({ fs, dir: gitdir, bare: true });
    const commit = await options.transport.fetch(
      gitdir,
      options.branch,
      signal,
    );
    const { tree } = (await git.readCommit({ fs, gitdir, oid: commit })).commit;
    return {
      head: commit,
      files: await filesUnder(new TreeEditor(gitdir, tree), options.path),
    };
  } finally {
    await fsp.rm(gitdir, { recursive: true, force: true });
  }
}

/**
 * Removes a decommissioned cluster's folder (`clusters/<name>`: Flux's manifests and whatever
 * else the cluster synced) from the fleet repository's branch in one commit,
 * `Remove Flux from <cluster>`; other clusters' folders are untouched. No commit when the folder
 * is already gone (a second run changes nothing); a branch that moves meanwhile is fetched again
 * and the removal redone on top. A dry run lists the files and pushes nothing.
 *
 * The commit is made by a {@link GitPushSession} on `branch`: a pull-request mode pushes the same
 * edit to a topic branch and opens the pull request from it.
 * @public
 */
export async function removeClusterPath(
  options: RemoveClusterPathOptions,
  deps: {
    logger?: EngineLogger;
    signal?: AbortSignal;
    checkpoint?: CheckpointFn;
  } = {},
): Promise<RemoveClusterPathResult> {
  const { signal } = deps;
  const logger = deps.logger ?? silentLogger;
  const step = deps.checkpoint ?? runCheckpointDirectly;
  if (options.path === '' || options.path === '.') {
    throw new InputValidationError(
      'path',
      "must be the cluster's folder (e.g. clusters/my-cluster), not the repository root",
    );
  }
  const where = `${options.path}/ on "${options.branch}" of ${options.transport.displayUrl}`;
  if (options.dryRun) {
    const { head, files } = await listRemoteFiles(options, signal).finally(() =>
      options.transport.close(),
    );
    logger.info(
      files.length === 0
        ? `Dry run: ${where} holds no file; nothing to remove`
        : `Dry run: would remove ${
            files.length
          } file(s) of ${where} in one commit "${removeClusterPathMessage(
            options.cluster,
          )}": ${files.join(', ')}`,
    );
    return { files, head, changed: false };
  }
  return step('remove-cluster-path', async () => {
    const session = await GitPushSession.open({
      transport: options.transport,
      branch: options.branch,
      logger,
      workDir: options.workDir,
    });
    try {
      const refs = await options.transport.listRefs(signal);
      if (!refs.heads.has(options.branch)) {
        logger.info(
          `Branch "${options.branch}" does not exist in ${options.transport.displayUrl}: nothing to remove`,
        );
        return { files: [], changed: false };
      }
      let files: string[] = [];
      const pushed = await session.commitAndPush({
        message: removeClusterPathMessage(
          options.cluster,
          options.commitMessageAppendix,
        ),
        author: options.author,
        signingKey: options.signingKey,
        signal,
        edit: async tree => {
          files = await filesUnder(tree, options.path);
          if (files.length > 0) tree.remove(options.path);
        },
      });
      logger.info(
        pushed.changed
          ? `Removed ${files.length} file(s) of ${where} in commit ${
              pushed.commit
            }: ${files.join(', ')}`
          : `${where} holds no file: nothing to remove`,
      );
      return {
        files,
        head: pushed.head,
        changed: pushed.changed,
        ...(pushed.commit ? { commit: pushed.commit } : {}),
      };
    } finally {
      await session.close();
    }
  });
}
