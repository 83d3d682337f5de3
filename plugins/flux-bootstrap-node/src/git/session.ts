import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import git, { Errors } from 'isomorphic-git';
import * as openpgp from 'openpgp';
import { silentLogger, type EngineLogger } from '../util/logger';
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
  changed: boolean;
  /** The pushed commit (absent when nothing changed). */
  commit?: string;
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

const httpStatusOf = (error: unknown) =>
  error instanceof Errors.HttpError
    ? (error.data as { statusCode?: number })?.statusCode
    : undefined;

function isTransient(error: unknown): boolean {
  const status = httpStatusOf(error);
  if (status !== undefined) return status === 429 || status >= 500;
  return isTransientNetworkCode((error as { code?: string })?.code);
}

/** Options of {@link GitPushSession.open}. @public */
export interface GitPushSessionOptions {
  transport: GitTransport;
  branch: string;
  logger?: EngineLogger;
  /** Parent folder of the temporary repository. Default: the OS temp dir. */
  workDir?: string;
  /** Push attempts per commit. Default 5. */
  maxAttempts?: number;
  /** First delay between attempts (doubles). Default 500 ms. */
  retryDelayMs?: number;
}

/** Commits onto a remote branch through a bare repository; redone when the branch moved (bounded). @public */
export class GitPushSession {
  /** The head this session pushed last: the remote's unless someone pushed since. */
  private pushedHead?: string;
  private readonly blobsOnRemote = new Map<string, string>();
  private readonly logger: EngineLogger;
  private readonly maxAttempts: number;
  private readonly where: string;

  private constructor(
    private readonly options: GitPushSessionOptions,
    private readonly gitdir: string,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.where = `${options.branch} of ${options.transport.displayUrl}`;
  }

  static async open(options: GitPushSessionOptions): Promise<GitPushSession> {
    const parent = options.workDir ?? os.tmpdir();
    await fsp.mkdir(parent, { recursive: true });
    const gitdir = await fsp.mkdtemp(path.join(parent, 'flux-bootstrap-git-'));
    await git.init({
      fs,
      dir: gitdir,
      bare: true,
      defaultBranch: 'flux-bootstrap-work',
    });
    return new GitPushSession(options, gitdir);
  }

  /** Reads a file at the given commit's tree (after a fetch or a commit of this session). */
  async readFile(
    treeOid: string,
    filePath: string,
  ): Promise<string | undefined> {
    const editor = new TreeEditor(this.gitdir, treeOid);
    return (await editor.exists(filePath)) ? editor.read(filePath) : undefined;
  }

  /** The blob id of a file this session committed (or found identical) on the remote branch. */
  writtenBlob(filePath: string): string | undefined {
    return this.blobsOnRemote.get(filePath);
  }

  /** The branch head (absent if new), the commit to build on, its tree and an editor over it. */
  async current(signal?: AbortSignal) {
    const { head, parent } = await this.base(signal);
    const { gitdir } = this;
    const tree = parent
      ? (await git.readCommit({ fs, gitdir, oid: parent })).commit.tree
      : undefined;
    return { head, parent, tree, editor: new TreeEditor(gitdir, tree) };
  }

  private async base(signal?: AbortSignal) {
    const { transport, branch } = this.options;
    // After our own push the head is known (if someone pushed since, the push fails and we fetch).
    const known = this.pushedHead;
    this.pushedHead = undefined;
    if (known) {
      this.logger.debug(`${this.where} is at ${known}, pushed by this session`);
      return { head: known, parent: known };
    }
    const refs = await transport.listRefs(signal);
    const head = refs.heads.get(branch);
    if (head) {
      this.logger.debug(`Fetching ${this.where}`);
      return {
        head,
        parent: await transport.fetch(this.gitdir, branch, signal),
      };
    }
    const { defaultBranch } = refs;
    if (defaultBranch && refs.heads.has(defaultBranch)) {
      this.logger.info(
        `Branch ${branch} does not exist in ${transport.displayUrl}; it will be created from ${defaultBranch}`,
      );
      return {
        parent: await transport.fetch(this.gitdir, defaultBranch, signal),
      };
    }
    const empty = refs.heads.size === 0;
    const state = empty
      ? 'The repository is empty'
      : `Branch ${branch} does not exist`;
    this.logger.info(`${state}; the first commit creates branch ${branch}`);
    return {};
  }

  async commitAndPush(
    options: CommitAndPushOptions,
  ): Promise<CommitAndPushResult> {
    const { signal } = options;
    const { transport, branch } = this.options;
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal, `pushing to ${this.where}`);
      try {
        const current = await this.current(signal);
        const { head, parent, tree: baseTree, editor } = current;
        await options.edit(editor);
        const tree = await editor.build();
        const done = { tree, createdBranch: !head, attempts: attempt };
        if (parent && tree === baseTree && head) {
          // Nothing to push: the files are there. The head was only read, not pushed by this
          // session, so the next commit lists the refs again.
          this.remember(editor);
          return { ...done, changed: false, head: parent };
        }
        const { name, email } = options.author;
        const timestamp = Math.floor(Date.now() / 1000);
        const person = { name, email, timestamp, timezoneOffset: 0 };
        // With an unchanged tree only the branch is new: push the parent as it is.
        const commit =
          parent && tree === baseTree
            ? undefined
            : await git.commit({
                fs,
                gitdir: this.gitdir,
                message: options.message,
                author: person,
                committer: person,
                tree,
                parent: parent ? [parent] : [],
                ref: 'refs/heads/flux-bootstrap-work',
                ...(options.signingKey
                  ? { signingKey: options.signingKey, onSign: signCommit }
                  : {}),
              });
        const pushed = commit ?? parent!;
        const outcome = await transport.push(
          this.gitdir,
          pushed,
          branch,
          signal,
        );
        if (outcome.status === 'ok') {
          this.remember(editor, pushed);
          return { ...done, changed: !!commit, commit, head: pushed };
        }
        if (attempt >= this.maxAttempts)
          throw new GitPushConflictError(branch, attempt);
        const next = `attempt ${attempt + 1} of ${this.maxAttempts}`;
        this.logger.warn(
          `Git conflict: ${this.where} moved while pushing (${outcome.reason}); fetching it again and redoing the change (${next})`,
        );
      } catch (error) {
        this.giveUpOn(error, attempt, signal);
      }
      const delay = (this.options.retryDelayMs ?? 500) * 2 ** (attempt - 1);
      const jittered = Math.round(delay / 2 + (Math.random() * delay) / 2);
      await sleep(jittered, undefined, { signal }).catch(() =>
        throwIfAborted(signal, `pushing to ${this.where}`),
      );
    }
  }

  /** Throws what ends the attempts (cancel, refused credentials, a lasting failure); logs a retry otherwise. */
  private giveUpOn(error: unknown, attempt: number, signal?: AbortSignal) {
    const url = this.options.transport.displayUrl;
    if (error instanceof GitPushConflictError) throw error;
    if (signal?.aborted || isAbortError(error)) {
      throw error instanceof OperationAbortedError
        ? error
        : new OperationAbortedError(`Cancelled while pushing to ${this.where}`);
    }
    const status = httpStatusOf(error);
    if (status === 401 || status === 403) {
      throw new GitAuthError(
        `the git server refused the credentials for ${url} (HTTP ${status}); the token needs write access to the repository`,
      );
    }
    if (status === 404) {
      throw new FluxBootstrapError(
        'NotFoundError',
        `the repository ${url} was not found (HTTP 404)`,
      );
    }
    if (!isTransient(error)) throw error;
    const message = (error as Error).message;
    if (attempt >= this.maxAttempts) {
      throw new GitServerUnavailableError(
        `Talking to ${url} failed ${attempt} times, the last time with ${message}: the git server or the network keeps failing. Try again later; re-running is safe (commits already pushed are found and not made again).`,
        error,
      );
    }
    const next = `attempt ${attempt + 1} of ${this.maxAttempts}`;
    this.logger.warn(
      `Talking to ${url} failed (${message}); retrying (${next})`,
    );
  }

  /** The remote branch holds the files the editor wrote; this session pushed it to `pushed`. */
  private remember(editor: TreeEditor, pushed?: string): void {
    this.pushedHead = pushed;
    for (const [filePath, oid] of editor.writtenBlobs())
      this.blobsOnRemote.set(filePath, oid);
  }

  async close(): Promise<void> {
    await fsp.rm(this.gitdir, { recursive: true, force: true });
    await this.options.transport.close();
  }
}

/** A detached, armoured OpenPGP signature over the commit payload, as `git commit -S` makes it. */
export async function signCommit({
  payload,
  secretKey,
}: {
  payload: string;
  secretKey: string;
}): Promise<{ signature: string }> {
  const signature = await openpgp.sign({
    message: await openpgp.createMessage({
      binary: new TextEncoder().encode(payload),
    }),
    signingKeys: await openpgp.readPrivateKey({ armoredKey: secretKey }),
    detached: true,
  });
  return { signature };
}
