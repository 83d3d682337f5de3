import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import git from 'isomorphic-git';
import { GitPushSession, type GitAuthor } from '../git/session';
import type { GitTransport } from '../git/transport';
import { TreeEditor } from '../git/tree';
import { runCheckpointDirectly } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import { silentLogger } from '../util/logger';
import type { DecommissionDeps } from './shared';

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

/** Every file under `dir` of a tree (pending edits included), sorted. */
async function filesUnder(tree: TreeEditor, dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await tree.list(dir)) {
    const full = `${dir}/${entry.name}`;
    if (entry.type === 'dir') files.push(...(await filesUnder(tree, full)));
    else files.push(full);
  }
  return files.sort();
}

/** The branch head and the files under the path, read without a session (nothing is pushed). */
async function listRemoteFiles(
  options: RemoveClusterPathOptions,
  signal?: AbortSignal,
): Promise<{ head: string; files: string[] }> {
  const parent = options.workDir ?? os.tmpdir();
  await fsp.mkdir(parent, { recursive: true });
  const gitdir = await fsp.mkdtemp(path.join(parent, 'flux-bootstrap-git-'));
  try {
    await git.init({ fs, dir: gitdir, bare: true });
    const head = await options.transport.fetch(gitdir, options.branch, signal);
    const { tree } = (await git.readCommit({ fs, gitdir, oid: head })).commit;
    const files = await filesUnder(new TreeEditor(gitdir, tree), options.path);
    return { head, files };
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
  deps: DecommissionDeps = {},
): Promise<RemoveClusterPathResult> {
  const { signal } = deps;
  const { transport, branch, cluster } = options;
  const logger = deps.logger ?? silentLogger;
  const step = deps.checkpoint ?? runCheckpointDirectly;
  if (options.path === '' || options.path === '.') {
    throw new InputValidationError(
      'path',
      "must be the cluster's folder (e.g. clusters/my-cluster), not the repository root",
    );
  }
  const where = `${options.path}/ on "${branch}" of ${transport.displayUrl}`;
  const message = `Remove Flux from ${cluster}`;
  if (options.dryRun) {
    try {
      const refs = await transport.listRefs(signal);
      const { head, files } = refs.heads.has(branch)
        ? await listRemoteFiles(options, signal)
        : { head: undefined, files: [] };
      const listed = `${files.length} file(s) of ${where}`;
      logger.info(
        files.length === 0
          ? `Dry run: ${where} holds no file; nothing to remove`
          : `Dry run: would remove ${listed} in one commit "${message}": ${files.join(
              ', ',
            )}`,
      );
      return { files, head, changed: false };
    } finally {
      await transport.close();
    }
  }
  return step('remove-cluster-path', async () => {
    const session = await GitPushSession.open({
      transport,
      branch,
      logger,
      workDir: options.workDir,
    });
    try {
      if (!(await transport.listRefs(signal)).heads.has(branch)) {
        logger.info(
          `Branch "${branch}" does not exist in ${transport.displayUrl}: nothing to remove`,
        );
        return { files: [], changed: false };
      }
      let files: string[] = [];
      const appendix = options.commitMessageAppendix;
      const pushed = await session.commitAndPush({
        message: appendix ? `${message}\n\n${appendix}` : message,
        author: options.author,
        signingKey: options.signingKey,
        signal,
        edit: async tree => {
          files = await filesUnder(tree, options.path);
          if (files.length > 0) tree.remove(options.path);
        },
      });
      const { head, changed, commit } = pushed;
      const removed = `${files.length} file(s) of ${where} in commit ${commit}`;
      logger.info(
        changed
          ? `Removed ${removed}: ${files.join(', ')}`
          : `${where} holds no file: nothing to remove`,
      );
      return { files, head, changed, ...(commit ? { commit } : {}) };
    } finally {
      await session.close();
    }
  });
}
