import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import git, { Errors } from 'isomorphic-git';
import { pgp } from '@isomorphic-git/pgp-plugin';
import type { EngineLogger } from '../util/logger';
import { silentLogger } from '../util/logger';
import { sleep } from '../util/async';
import {
  FluxBootstrapError,
  isAbortError,
  isTransientNetworkCode,
  OperationAbortedError,
  throwIfAborted,
} from '../util/errors';
import { TreeEditor } from './tree';
import type { GitTransport } from './transport';

/** Commit author (also the committer). @public */
export interface GitAuthor {
  name: string;
  email: string;
}

/** What one {@link GitPushSession.commitAndPush} did. @public */
export interface CommitAndPushResult {
  /** True when a commit was pushed. */
  changed: boolean;
  /** The pushed commit (absent when nothing changed). */
  commit?: string;
  /** The branch head after the call. */
  head: string;
  /** Tree of the head (for reading files back). */
  tree: string;
  /** True when the branch did not exist and this call created it. */
  createdBranch: boolean;
  /** Push attempts (1 unless the branch moved meanwhile). */
  attempts: number;
}

/** Options of {@link GitPushSession.commitAndPush}. @public */
export interface CommitAndPushOptions {
  message: string;
  author: GitAuthor;
  /** Armored OpenPGP private key (RSA) to sign the commit with. */
  signingKey?: string;
  /** Applies the change to the branch head's tree. Called again after a rejected push. */
  edit: (tree: TreeEditor) => Promise<void>;
  signal?: AbortSignal;
}

/** The branch kept moving: every attempt was rejected as non-fast-forward (a `ConflictError`). @public */
export class GitPushConflictError extends FluxBootstrapError {
  constructor(branch: string, attempts: number) {
    super(
      'ConflictError',
      `the branch ${branch} kept changing while pushing: ${attempts} attempts were rejected as non-fast-forward`,
    );
  }
}

/** The git server refused the credentials (an `AuthenticationError`). @public */
export class GitAuthError extends FluxBootstrapError {
  constructor(message: string) {
    super('AuthenticationError', message);
  }
}

/** The git server kept failing (5xx, 429, resets, timeouts) until the attempts ran out. @public */
export class GitServerUnavailableError extends FluxBootstrapError {
  constructor(message: string, cause?: unknown) {
    super('ServiceUnavailableError', message, cause);
  }
}

function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof Errors.HttpError) {
    return (error.data as { statusCode?: number })?.statusCode;
  }
  return undefined;
}

function isTransient(error: unknown): boolean {
  const status = httpStatusOf(error);
  if (status !== undefined) return status === 429 || status >= 500;
  const e = error as { code?: string; name?: string };
  return isTransientNetworkCode(e?.code) || e?.name === 'GitHttpTimeoutError';
}

/**
 * One local bare repository used to commit onto a remote branch without a working tree:
 * fetch the head (depth 1), edit its tree, commit, push. A push rejected because the branch
 * moved is redone on top of the new head (bounded); transient network errors are retried too.
 * @public
 */
export class GitPushSession {
  /** The branch head this session pushed last: the remote's head unless someone pushed since. */
  private pushedHead?: string;
  /** Blobs of files this session wrote that are on the remote branch: path → blob id. */
  private readonly blobsOnRemote = new Map<string, string>();

  private constructor(
    private readonly transport: GitTransport,
    private readonly branch: string,
    private readonly gitdir: string,
    private readonly logger: EngineLogger,
    private readonly maxAttempts: number,
    private readonly retryDelayMs: number,
  ) {}

  static async open(options: {
    transport: GitTransport;
    branch: string;
    logger?: EngineLogger;
    /** Parent folder of the temporary repository. Default: the OS temp dir. */
    workDir?: string;
    /** Push attempts per commit. Default 5. */
    maxAttempts?: number;
    /** First delay between attempts (doubles). Default 500 ms. */
    retryDelayMs?: number;
  }): Promise<GitPushSession> {
    const parent = options.workDir ?? os.tmpdir();
    await fsp.mkdir(parent, { recursive: true });
    const gitdir = await fsp.mkdtemp(path.join(parent, 'flux-bootstrap-git-'));
    await git.init({
      fs,
      dir: gitdir,
      bare: true,
      defaultBranch: 'flux-bootstrap-work',
    });
    return new GitPushSession(
      options.transport,
      options.branch,
      gitdir,
      options.logger ?? silentLogger,
      Math.max(1, options.maxAttempts ?? 5),
      options.retryDelayMs ?? 500,
    );
  }

  /** Reads a file at the given commit's tree (after a fetch or a commit of this session). */
  async readFile(
    treeOid: string,
    filePath: string,
  ): Promise<string | undefined> {
    const editor = new TreeEditor(this.gitdir, treeOid);
    return (await editor.exists(filePath)) ? editor.read(filePath) : undefined;
  }

  /**
   * The blob id of a file this session committed (or found identical) at `filePath`, when that
   * commit is on the remote branch: callers that generated the file know its content without
   * reading it back.
   */
  writtenBlob(filePath: string): string | undefined {
    return this.blobsOnRemote.get(filePath);
  }

  async commitAndPush(
    options: CommitAndPushOptions,
  ): Promise<CommitAndPushResult> {
    const { signal } = options;
    const where = `${this.branch} of ${this.transport.displayUrl}`;
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal, `pushing to ${where}`);
      // Right after this session's own push the remote head is known and its commit is here:
      // no need to list the refs and fetch it again. If someone pushed meanwhile, the push is
      // rejected as non-fast-forward and the next attempt fetches.
      const knownHead = this.pushedHead;
      this.pushedHead = undefined;
      try {
        let head: string | undefined;
        let parent: string | undefined;
        if (knownHead) {
          head = knownHead;
          parent = knownHead;
          this.logger.debug(
            `${where} is at ${knownHead}, pushed by this session`,
          );
        } else {
          const refs = await this.transport.listRefs(signal);
          head = refs.heads.get(this.branch);
          if (head) {
            this.logger.debug(`Fetching ${where}`);
            parent = await this.transport.fetch(
              this.gitdir,
              this.branch,
              signal,
            );
          } else if (refs.defaultBranch && refs.heads.has(refs.defaultBranch)) {
            this.logger.info(
              `Branch ${this.branch} does not exist in ${this.transport.displayUrl}; it will be created from ${refs.defaultBranch}`,
            );
            parent = await this.transport.fetch(
              this.gitdir,
              refs.defaultBranch,
              signal,
            );
          } else {
            this.logger.info(
              `${
                refs.heads.size === 0
                  ? 'The repository is empty'
                  : `Branch ${this.branch} does not exist`
              }; the first commit creates branch ${this.branch}`,
            );
          }
        }
        const baseTree = parent
          ? (await git.readCommit({ fs, gitdir: this.gitdir, oid: parent }))
              .commit.tree
          : undefined;
        const editor = new TreeEditor(this.gitdir, baseTree);
        await options.edit(editor);
        const tree = await editor.build();

        let commit: string | undefined;
        let pushOid: string;
        if (parent && tree === baseTree) {
          if (head) {
            // Nothing to push: the files are there. The head was only read, not pushed by
            // this session, so the next commit lists the refs again.
            this.remember(editor);
            return {
              changed: false,
              head: parent,
              tree,
              createdBranch: false,
              attempts: attempt,
            };
          }
          pushOid = parent; // only the branch is new
        } else {
          const when = {
            timestamp: Math.floor(Date.now() / 1000),
            timezoneOffset: 0,
          };
          const person = {
            name: options.author.name,
            email: options.author.email,
            ...when,
          };
          commit = await git.commit({
            fs,
            gitdir: this.gitdir,
            message: options.message,
            author: person,
            committer: person,
            tree,
            parent: parent ? [parent] : [],
            ref: 'refs/heads/flux-bootstrap-work',
            ...(options.signingKey
              ? { signingKey: options.signingKey, onSign: pgp.sign }
              : {}),
          });
          pushOid = commit;
        }
        const outcome = await this.transport.push(
          this.gitdir,
          pushOid,
          this.branch,
          signal,
        );
        if (outcome.status === 'ok') {
          this.remember(editor, pushOid);
          return {
            changed: !!commit,
            commit,
            head: pushOid,
            tree,
            createdBranch: !head,
            attempts: attempt,
          };
        }
        if (attempt >= this.maxAttempts)
          throw new GitPushConflictError(this.branch, attempt);
        this.logger.warn(
          `Git conflict: ${where} moved while pushing (${
            outcome.reason
          }); fetching it again and redoing the change (attempt ${
            attempt + 1
          } of ${this.maxAttempts})`,
        );
      } catch (error) {
        if (error instanceof GitPushConflictError) throw error;
        if (signal?.aborted || isAbortError(error)) {
          throw error instanceof OperationAbortedError
            ? error
            : new OperationAbortedError(`Cancelled while pushing to ${where}`);
        }
        const status = httpStatusOf(error);
        if (status === 401 || status === 403) {
          throw new GitAuthError(
            `the git server refused the credentials for ${this.transport.displayUrl} (HTTP ${status}); the token needs write access to the repository`,
          );
        }
        if (status === 404) {
          throw new Error(
            `the repository ${this.transport.displayUrl} was not found (HTTP 404)`,
          );
        }
        if (!isTransient(error)) throw error;
        if (attempt >= this.maxAttempts) {
          throw new GitServerUnavailableError(
            `Talking to ${
              this.transport.displayUrl
            } failed ${attempt} times, the last time with ${
              (error as Error).message
            }: the git server or the network keeps failing. Try again later; re-running is safe (commits already pushed are found and not made again).`,
            error,
          );
        }
        this.logger.warn(
          `Talking to ${this.transport.displayUrl} failed (${
            (error as Error).message
          }); retrying (attempt ${attempt + 1} of ${this.maxAttempts})`,
        );
      }
      const delay = this.retryDelayMs * 2 ** (attempt - 1);
      await sleep(Math.round(delay / 2 + (Math.random() * delay) / 2), signal);
    }
  }

  /** The remote branch holds the files the editor wrote; this session pushed it to `pushed`. */
  private remember(editor: TreeEditor, pushed?: string): void {
    this.pushedHead = pushed;
    for (const [filePath, oid] of editor.writtenBlobs())
      this.blobsOnRemote.set(filePath, oid);
  }

  async close(): Promise<void> {
    await fsp.rm(this.gitdir, { recursive: true, force: true });
    await this.transport.close();
  }
}
