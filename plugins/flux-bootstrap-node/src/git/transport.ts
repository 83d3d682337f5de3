import fs from 'node:fs';
import git, { Errors } from 'isomorphic-git';
import type {
  GitHttpRequest,
  GitHttpResponse,
  HttpClient,
} from 'isomorphic-git';
import { createGitHttpClient } from './httpClient';

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

/**
 * How commits travel: fetch a branch head into a local bare repository, push a commit to a
 * branch. HTTPS uses isomorphic-git; SSH uses the system git (see SshGitTransport).
 * @public
 */
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

/** Push rejections that mean "the branch moved": fetch, redo, retry. @public */
export function isConflictMessage(text: string): boolean {
  return /non-fast-forward|fetch first|stale info|failed to lock|cannot lock ref|failed to update ref|is at [0-9a-f]+ but expected|incorrect old value/i.test(
    text,
  );
}

/** Options of {@link HttpsGitTransport}. @public */
export interface HttpsGitTransportOptions {
  /** `https://host/scm/KEY/repo.git` (http:// is accepted for plain-HTTP servers). */
  url: string;
  /** Authorization headers (Bearer or Basic) sent with every git request. */
  headers: Record<string, string>;
  caPem?: string;
  timeoutMs?: number;
}

/** The ref advertisement of `git-upload-pack` kept from listRefs for the fetch that follows. */
interface KeptAdvertisement {
  url: string;
  at: number;
  response: Omit<GitHttpResponse, 'body'>;
  body: Uint8Array;
}

/** How long a kept advertisement stands in for a new one: the fetch follows at once. */
const ADVERTISEMENT_REUSE_MS = 10_000;

function isUploadPackAdvertisement(req: GitHttpRequest): boolean {
  return (
    (req.method ?? 'GET').toUpperCase() === 'GET' &&
    /\/info\/refs\?service=git-upload-pack$/.test(req.url)
  );
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Git over HTTPS with isomorphic-git and the engine's HTTP client (custom CA, timeouts, abort). @public */
export class HttpsGitTransport implements GitTransport {
  readonly displayUrl: string;
  private advertisement?: KeptAdvertisement;

  constructor(private readonly options: HttpsGitTransportOptions) {
    const u = new URL(options.url);
    if (u.username || u.password) {
      throw new Error(
        'the git URL must not carry credentials; they are sent as headers',
      );
    }
    this.displayUrl = u.toString();
  }

  private http(signal?: AbortSignal) {
    return createGitHttpClient({
      caPem: this.options.caPem,
      timeoutMs: this.options.timeoutMs,
      signal,
    });
  }

  /**
   * listRefs keeps the upload-pack ref advertisement it fetched, and the fetch right after it
   * (isomorphic-git asks for the same advertisement first) gets it from memory: one request
   * less per commit. Kept once, for a few seconds.
   */
  private keepingAdvertisement(inner: HttpClient): HttpClient {
    return {
      request: async req => {
        const res = await inner.request(req);
        if (!isUploadPackAdvertisement(req) || res.statusCode !== 200)
          return res;
        const chunks: Uint8Array[] = [];
        for await (const chunk of res.body ?? []) chunks.push(chunk);
        const body = Buffer.concat(chunks);
        const { body: _streamed, ...response } = res;
        this.advertisement = { url: req.url, at: Date.now(), response, body };
        return { ...response, body: once(body) };
      },
    };
  }

  private reusingAdvertisement(inner: HttpClient): HttpClient {
    return {
      request: async req => {
        const kept = this.advertisement;
        this.advertisement = undefined;
        if (
          kept &&
          isUploadPackAdvertisement(req) &&
          kept.url === req.url &&
          Date.now() - kept.at < ADVERTISEMENT_REUSE_MS
        ) {
          return { ...kept.response, body: once(kept.body) };
        }
        return inner.request(req);
      },
    };
  }

  async listRefs(signal?: AbortSignal): Promise<RemoteRefs> {
    const info = await git.getRemoteInfo({
      http: this.keepingAdvertisement(this.http(signal)),
      url: this.options.url,
      headers: this.options.headers,
    });
    // isomorphic-git nests branch names with slashes: { clusters: { staging: oid } }.
    const heads = new Map<string, string>();
    const flatten = (node: unknown, prefix: string) => {
      if (typeof node === 'string') heads.set(prefix, node);
      else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node))
          flatten(v, prefix ? `${prefix}/${k}` : k);
      }
    };
    flatten(info.refs?.heads ?? {}, '');
    const head = typeof info.HEAD === 'string' ? info.HEAD : undefined;
    return {
      heads,
      defaultBranch: head?.startsWith('refs/heads/')
        ? head.slice('refs/heads/'.length)
        : undefined,
    };
  }

  async fetch(
    gitdir: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<string> {
    await git.addRemote({
      fs,
      gitdir,
      remote: 'origin',
      url: this.options.url,
      force: true,
    });
    const result = await git.fetch({
      fs,
      http: this.reusingAdvertisement(this.http(signal)),
      gitdir,
      remote: 'origin',
      ref: branch,
      remoteRef: branch,
      singleBranch: true,
      depth: 1,
      tags: false,
      headers: this.options.headers,
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
    const localRef = 'refs/heads/flux-bootstrap-push';
    await git.writeRef({ fs, gitdir, ref: localRef, value: oid, force: true });
    try {
      await git.push({
        fs,
        http: this.http(signal),
        gitdir,
        url: this.options.url,
        ref: localRef,
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
      throw e;
    }
  }

  async close(): Promise<void> {}
}
