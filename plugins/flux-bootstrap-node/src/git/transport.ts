import fs from 'node:fs';
import git, { Errors } from 'isomorphic-git';
import type { GitHttpResponse, HttpClient } from 'isomorphic-git';
import { gitHttpAuthHeaders } from '../bitbucket/client';
import type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
} from '../config/bitbucketServer';
import { createGitHttpClient } from './httpClient';
import { branchProtectionError } from './pushRejection';

/** What the remote holds right now. @public */
export interface RemoteRefs {
  /** Branch name → commit. */
  heads: Map<string, string>;
  /** The default branch (HEAD symref) when the server says. */
  defaultBranch?: string;
}

/** Result of pushing one commit to a branch. @public */
export type PushOutcome =
  | { status: 'ok' }
  | { status: 'conflict'; reason: string };

/** How commits travel: HTTPS through isomorphic-git, SSH through the system git. @public */
export interface GitTransport {
  /** The remote URL as it may appear in logs (no credentials). */
  readonly displayUrl: string;
  listRefs(signal?: AbortSignal): Promise<RemoteRefs>;
  /** Fetches `refs/heads/<branch>` (depth 1) into `gitdir`; returns the fetched commit. */
  fetch(gitdir: string, branch: string, signal?: AbortSignal): Promise<string>;
  /** Pushes `oid` to `refs/heads/<branch>` without force; a moved branch is a conflict. */
  push(
    gitdir: string,
    oid: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<PushOutcome>;
  /** Releases temporary files (keys). Safe to call twice. */
  close(): Promise<void>;
}

const CONFLICT =
  /non-fast-forward|fetch first|stale info|failed to lock|cannot lock ref|failed to update ref|is at [0-9a-f]+ but expected|incorrect old value/i;

/** Push rejections that mean "the branch moved": fetch, redo, retry. @public */
export const isConflictMessage = (text: string): boolean => CONFLICT.test(text);

/** Options of {@link HttpsGitTransport}. @public */
export interface HttpsGitTransportOptions {
  /** `https://host/scm/KEY/repo.git` (http:// is accepted for plain-HTTP servers). */
  url: string;
  /** Authorization headers (Bearer or Basic) sent with every git request. */
  headers: Record<string, string>;
  caPem?: string;
  timeoutMs?: number;
}

const isAdvertisement = (req: { method?: string; url: string }) =>
  (req.method ?? 'GET').toUpperCase() === 'GET' &&
  /\/info\/refs\?service=git-upload-pack$/.test(req.url);

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Git over HTTPS with isomorphic-git and the engine's HTTP client (custom CA, timeouts, abort). @public */
export class HttpsGitTransport implements GitTransport {
  readonly displayUrl: string;
  /** listRefs' ref advertisement, reused once (for 10 s) by the fetch right after it. */
  private advertisement?: {
    url: string;
    at: number;
    response: Omit<GitHttpResponse, 'body'>;
    body: Uint8Array;
  };

  constructor(private readonly options: HttpsGitTransportOptions) {
    const u = new URL(options.url);
    if (u.username || u.password) {
      throw new Error(
        'the git URL must not carry credentials; they are sent as headers',
      );
    }
    this.displayUrl = u.toString();
  }

  /** The engine's HTTP client; `advertisement` keeps or reuses the ref advertisement. */
  private http(
    signal: AbortSignal | undefined,
    advertisement?: 'keep' | 'reuse',
  ): HttpClient {
    const inner = createGitHttpClient({
      caPem: this.options.caPem,
      timeoutMs: this.options.timeoutMs,
      signal,
    });
    return {
      request: async req => {
        const kept = advertisement === 'reuse' ? this.advertisement : undefined;
        if (advertisement === 'reuse') this.advertisement = undefined;
        if (
          kept?.url === req.url &&
          isAdvertisement(req) &&
          Date.now() - kept.at < 10_000
        )
          return { ...kept.response, body: once(kept.body) };
        const res = await inner.request(req);
        if (
          advertisement !== 'keep' ||
          !isAdvertisement(req) ||
          res.statusCode !== 200
        )
          return res;
        const chunks: Uint8Array[] = [];
        for await (const chunk of res.body ?? []) chunks.push(chunk);
        const { body: _streamed, ...response } = res;
        const body = Buffer.concat(chunks);
        this.advertisement = { url: req.url, at: Date.now(), response, body };
        return { ...response, body: once(body) };
      },
    };
  }

  async listRefs(signal?: AbortSignal): Promise<RemoteRefs> {
    // Protocol v1: the GET of the ref advertisement that fetch reuses.
    const refs = await git.listServerRefs({
      http: this.http(signal, 'keep'),
      url: this.options.url,
      headers: this.options.headers,
      protocolVersion: 1,
      symrefs: true,
    });
    const heads = new Map<string, string>();
    let defaultBranch: string | undefined;
    const branchOf = (ref = '') => /^refs\/heads\/(.+)$/.exec(ref)?.[1];
    for (const { ref, oid, target } of refs) {
      if (ref === 'HEAD') defaultBranch = branchOf(target);
      else if (branchOf(ref)) heads.set(branchOf(ref)!, oid);
    }
    return { heads, defaultBranch };
  }

  async fetch(
    gitdir: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const { url, headers } = this.options;
    await git.addRemote({ fs, gitdir, remote: 'origin', url, force: true });
    const result = await git.fetch({
      fs,
      http: this.http(signal, 'reuse'),
      gitdir,
      remote: 'origin',
      ref: branch,
      remoteRef: branch,
      singleBranch: true,
      depth: 1,
      tags: false,
      headers,
    });
    if (!result.fetchHead)
      throw new Error(`the remote has no branch ${branch}`);
    return result.fetchHead;
  }

  async push(
    gitdir: string,
    oid: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<PushOutcome> {
    this.advertisement = undefined;
    const ref = 'refs/heads/flux-bootstrap-push';
    await git.writeRef({ fs, gitdir, ref, value: oid, force: true });
    let remote = '';
    try {
      await git.push({
        fs,
        onMessage: text => void (remote += text),
        http: this.http(signal),
        gitdir,
        url: this.options.url,
        ref,
        remoteRef: `refs/heads/${branch}`,
        headers: this.options.headers,
      });
      return { status: 'ok' };
    } catch (e) {
      if (
        e instanceof Errors.PushRejectedError &&
        (e.data as { reason?: string })?.reason === 'not-fast-forward'
      ) {
        return { status: 'conflict', reason: 'non-fast-forward' };
      }
      if (e instanceof Errors.GitPushError && isConflictMessage(e.message)) {
        return { status: 'conflict', reason: e.message.trim() };
      }
      const refs = (e as { data?: { result?: { refs?: any } } }).data?.result
        ?.refs;
      const status = String(refs?.[`refs/heads/${branch}`]?.error ?? '');
      throw branchProtectionError(branch, this.displayUrl, status, remote) ?? e;
    }
  }

  async close(): Promise<void> {}
}

/**
 * Git over HTTPS to a Bitbucket host: the credentials' Authorization header, the host's CA and
 * its request timeout, at least 60 s (a pack takes longer than a REST call).
 */
export function bitbucketGitTransport(
  url: string,
  host: BitbucketServerHostConfig,
  auth: BitbucketServerAuth,
): HttpsGitTransport {
  return new HttpsGitTransport({
    url,
    headers: gitHttpAuthHeaders(auth),
    caPem: host.caPem,
    timeoutMs: Math.max(60_000, host.requestTimeoutMs),
  });
}
