import { GitPushSession, type GitAuthor } from '../git/session';
import type { GitTransport } from '../git/transport';
import type { TreeEditor } from '../git/tree';
import { InputValidationError } from '../util/errors';
import { withDefaults, type DecommissionDeps } from './shared';

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

/** Removes the cluster's folder from the branch in one commit (none when it is gone). @public */
export async function removeClusterPath(
  options: RemoveClusterPathOptions,
  deps: DecommissionDeps = {},
): Promise<RemoveClusterPathResult> {
  const { transport, branch, cluster } = options;
  const { signal, logger, step } = withDefaults(deps);
  if (options.path === '' || options.path === '.') {
    throw new InputValidationError(
      'path',
      "must be the cluster's folder (e.g. clusters/my-cluster), not the repository root",
    );
  }
  const where = `${options.path}/ on "${branch}" of ${transport.displayUrl}`;
  const message = `Remove Flux from ${cluster}`;
  const run = async (): Promise<RemoveClusterPathResult> => {
    const session = await GitPushSession.open({
      transport,
      branch,
      logger,
      workDir: options.workDir,
    });
    try {
      const empty = `${where} holds no file; nothing to remove`;
      if (!(await transport.listRefs(signal)).heads.has(branch)) {
        logger.info(
          options.dryRun
            ? `Dry run: ${empty}`
            : `Branch "${branch}" does not exist in ${transport.displayUrl}: nothing to remove`,
        );
        return { files: [], changed: false };
      }
      if (options.dryRun) {
        const { head, editor } = await session.current(signal);
        const files = await filesUnder(editor, options.path);
        const listed = `${files.length} file(s) of ${where}`;
        const commit = `one commit "${message}": ${files.join(', ')}`;
        logger.info(
          files.length === 0
            ? `Dry run: ${empty}`
            : `Dry run: would remove ${listed} in ${commit}`,
        );
        return { files, head, changed: false };
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
  };
  return options.dryRun ? run() : step('remove-cluster-path', run);
}
