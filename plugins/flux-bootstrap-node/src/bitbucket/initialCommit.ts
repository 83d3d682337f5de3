import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import git from 'isomorphic-git';
import type { BitbucketServerClient } from './client';
import { BitbucketError, BitbucketErrorKind } from './errors';
import { createGitHttpClient } from '../git/httpClient';
import { isAbortError } from '../util/errors';

/**
 * Creates a branch in an empty repository with one empty-tree commit, pushed against `0000…`:
 * receive-pack accepts it only while the branch does not exist, so it never overwrites work and
 * of two concurrent runs one wins (the other gets a `conflict`). Returns the commit id.
 */
export async function pushInitialCommit(
  client: BitbucketServerClient,
  opts: {
    /** HTTPS clone URL of the repository (`…/scm/<key>/<slug>.git`). */
    cloneUrl: string;
    branch: string;
    author: { name: string; email: string };
    signal?: AbortSignal;
  },
): Promise<string> {
  const { branch, cloneUrl, signal } = opts;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'flux-bootstrap-init-'));
  const ref = `refs/heads/${branch}`;
  const refused = (why: string, kind: BitbucketErrorKind) =>
    new BitbucketError(
      client.secrets.redact(
        `Bitbucket refused to create branch "${branch}" by push: ${why}`,
      ),
      { kind },
    );
  const pushError = (error: unknown): Error => {
    if (isAbortError(error)) return error as Error;
    if (error instanceof BitbucketError) {
      const message = `git push that creates branch "${branch}" failed: ${error.message}`;
      return new BitbucketError(message, error);
    }
    const e = error as {
      code?: string;
      message?: string;
      data?: { statusCode?: number };
    };
    const status = e?.data?.statusCode;
    const why = client.secrets.redact(e?.message ?? String(error));
    if (e?.code === 'PushRejectedError') return refused(why, 'conflict');
    if (status === 401 || status === 403) {
      return new BitbucketError(
        `Bitbucket refused the git push that creates branch "${branch}" (HTTP ${status}): the credentials need write access (REPO_WRITE) to the repository over HTTPS`,
        { kind: status === 401 ? 'unauthorized' : 'forbidden', status },
      );
    }
    const kind = status && status >= 500 ? 'server' : 'network';
    const message = `git push of branch "${branch}" failed: ${why}`;
    return new BitbucketError(message, { kind, status });
  };
  try {
    await git.init({ fs, dir, defaultBranch: branch });
    const who = {
      ...opts.author,
      timestamp: Math.floor(Date.now() / 1000),
      timezoneOffset: 0,
    };
    const oid = await git.writeCommit({
      fs,
      dir,
      commit: {
        message: 'Initial commit\n',
        tree: await git.writeTree({ fs, dir, tree: [] }),
        parent: [],
        author: who,
        committer: who,
      },
    });
    await git.writeRef({ fs, dir, ref, value: oid, force: true });
    // This server's trust, credentials, timeout and ref-discovery retries; a pack upload is
    // never repeated blindly.
    const { headers, ...http } = client.gitHttpSettings(cloneUrl);
    const result = await git
      .push({
        fs,
        http: createGitHttpClient({ ...http, signal }),
        headers,
        dir,
        url: cloneUrl,
        ref,
        remoteRef: ref,
        signal,
      })
      .catch(error => {
        throw pushError(error);
      });
    const refResult = result.refs?.[ref];
    if (!result.ok || (refResult && !refResult.ok)) {
      const why = refResult?.error ?? result.error ?? 'rejected';
      const conflict = /exist|stale|fetch first|non-fast-forward/i.test(why);
      throw refused(why, conflict ? 'conflict' : 'bad-request');
    }
    return oid;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
