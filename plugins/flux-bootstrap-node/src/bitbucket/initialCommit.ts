import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import git from 'isomorphic-git';
import type { HttpClient } from 'isomorphic-git';
import type { BitbucketServerClient } from './client';
import { BitbucketError } from './errors';
import { isAbortError } from '../util/errors';

/**
 * An isomorphic-git HTTP client that goes through a {@link BitbucketServerClient}: same TLS trust
 * (extra CA), same credentials (sent only to that server), per-request timeout and AbortSignal.
 * `info/refs` discovery GETs are retried like REST calls; pack uploads are not (a push is not
 * repeated blindly).
 * @public
 */
export function createBitbucketGitHttp(
  client: BitbucketServerClient,
  signal?: AbortSignal,
): HttpClient {
  return {
    async request({ url, method = 'GET', headers = {}, body }) {
      let payload: Buffer | undefined;
      if (body) {
        const chunks: Buffer[] = [];
        for await (const chunk of body as AsyncIterable<Uint8Array>)
          chunks.push(Buffer.from(chunk));
        payload = Buffer.concat(chunks);
      }
      const res = await client.gitRequest({
        url,
        method,
        headers,
        body: payload,
        signal,
        retry: method === 'GET',
      });
      const responseHeaders: Record<string, string> = {};
      res.headers.forEach((value, name) => {
        responseHeaders[name] = value;
      });
      const bytes = new Uint8Array(res.body);
      return {
        url,
        method,
        statusCode: res.status,
        statusMessage: res.statusText,
        headers: responseHeaders,
        body: (async function* iterate() {
          yield bytes;
        })(),
      };
    },
  };
}

/** Options of {@link pushInitialCommit}. @public */
export interface InitialCommitOptions {
  /** HTTPS clone URL of the repository (`…/scm/<key>/<slug>.git`). */
  cloneUrl: string;
  branch: string;
  message?: string;
  author: { name: string; email: string };
  signal?: AbortSignal;
}

/**
 * Creates a branch in an empty repository by pushing one commit with an empty tree to it.
 *
 * The push announces the old value `0000…` for the branch, so git's receive-pack only accepts it
 * while the branch does not exist: it can never overwrite anybody's work, and two concurrent
 * runs cannot both win. Returns the new commit id; throws a BitbucketError of kind `conflict`
 * when the branch appeared meanwhile (callers re-read it and carry on).
 * @public
 */
export async function pushInitialCommit(
  client: BitbucketServerClient,
  opts: InitialCommitOptions,
): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-bootstrap-init-'));
  try {
    await git.init({ fs, dir, defaultBranch: opts.branch });
    const tree = await git.writeTree({ fs, dir, tree: [] });
    const now = Math.floor(Date.now() / 1000);
    const who = {
      name: opts.author.name,
      email: opts.author.email,
      timestamp: now,
      timezoneOffset: 0,
    };
    const oid = await git.writeCommit({
      fs,
      dir,
      commit: {
        message: `${(opts.message ?? 'Initial commit').trim()}\n`,
        tree,
        parent: [],
        author: who,
        committer: who,
      },
    });
    await git.writeRef({
      fs,
      dir,
      ref: `refs/heads/${opts.branch}`,
      value: oid,
      force: true,
    });
    let result;
    try {
      result = await git.push({
        fs,
        http: createBitbucketGitHttp(client, opts.signal),
        dir,
        url: opts.cloneUrl,
        ref: `refs/heads/${opts.branch}`,
        remoteRef: `refs/heads/${opts.branch}`,
        force: false,
        signal: opts.signal,
      });
    } catch (error) {
      throw mapPushError(error, opts.branch, client);
    }
    const refResult = result.refs?.[`refs/heads/${opts.branch}`];
    if (!result.ok || (refResult && !refResult.ok)) {
      const why = refResult?.error ?? result.error ?? 'rejected';
      throw new BitbucketError(
        client.secrets.redact(
          `Bitbucket refused to create branch "${opts.branch}" by push: ${why}`,
        ),
        {
          kind: /exist|stale|fetch first|non-fast-forward/i.test(why)
            ? 'conflict'
            : 'bad-request',
        },
      );
    }
    return oid;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function mapPushError(
  error: unknown,
  branch: string,
  client: BitbucketServerClient,
): Error {
  if (error instanceof BitbucketError) {
    return new BitbucketError(
      `git push that creates branch "${branch}" failed: ${error.message}`,
      {
        kind: error.kind,
        status: error.status,
        details: error.details,
        request: error.request,
        code: error.code,
      },
    );
  }
  const e = error as {
    name?: string;
    code?: string;
    message?: string;
    data?: { statusCode?: number };
  };
  if (isAbortError(error)) {
    return error as Error;
  }
  const status = e?.data?.statusCode;
  const message = client.secrets.redact(e?.message ?? String(error));
  if (e?.code === 'PushRejectedError') {
    return new BitbucketError(
      `Bitbucket refused to create branch "${branch}" by push: ${message}`,
      {
        kind: 'conflict',
      },
    );
  }
  if (status === 401 || status === 403) {
    return new BitbucketError(
      `Bitbucket refused the git push that creates branch "${branch}" (HTTP ${status}): the credentials need write access (REPO_WRITE) to the repository over HTTPS`,
      { kind: status === 401 ? 'unauthorized' : 'forbidden', status },
    );
  }
  return new BitbucketError(
    `git push of branch "${branch}" failed: ${message}`,
    {
      kind: status && status >= 500 ? 'server' : 'network',
      status,
    },
  );
}
