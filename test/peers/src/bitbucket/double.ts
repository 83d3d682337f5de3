import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { parseAuthorization } from '../common/auth';
import { makeTempDir, removeDir } from '../common/fs';
import { closeServer, listenLoopback, trackSockets } from '../common/net';
import { createTestPki } from '../common/tls';
import { gitServiceOf, runGitHttpBackend } from '../git/httpBackend';
import type { SshdInstance } from '../ssh/sshd';
import { addCondition } from './defaultReviewers';
import { badCredentials, EX, faultError, RestError } from './errors';
import { hookScripts, installHooks, parseUpdates, PUSH_ENV } from './hooks';
import {
  BitbucketState,
  GlobalPermission,
  MatcherType,
  MergeChecks,
  OAuthScope,
  ParticipantStatus,
  Principal,
  ProjectPermission,
  RepoPermission,
  RestrictionType,
  slugify,
  Token,
} from './model';
import { BitbucketOAuth } from './oauth';
import { matcherOf } from './refmatch';
import { BitbucketRest } from './rest';
import type { LinkContext } from './render';
import {
  addRestriction,
  checkPush,
  PushActor,
  rejectionText,
} from './restrictions';
import { startBitbucketSsh } from './ssh';

/** One request the double received (REST, git over HTTP, or an SSH git command). */
export interface BitbucketRequestLogEntry {
  /** HTTP method, or `SSH` for a git command over SSH. */
  method: string;
  /** Path without the context path, e.g. `/rest/api/1.0/projects/FLUX/repos` or `/scm/flux/fleet.git/info/refs`. */
  path: string;
  query: Record<string, string>;
  /** Request headers, lower-case names. */
  headers: Record<string, string>;
  /** Request body (REST calls only; git pack data is not recorded). */
  body?: string;
  /** Status sent (0 when the connection was dropped by an injected fault). */
  status: number;
  /** Name of the authenticated user, if any. */
  user?: string;
}

/** A fault to inject into matching requests. */
export interface BitbucketFault {
  /** HTTP method to match (any when omitted); `SSH` matches git commands over SSH. */
  method?: string;
  /** Path without the context path: exact string (a trailing `*` matches a prefix) or a RegExp. */
  path: string | RegExp;
  /** Answer with this status and Bitbucket's error body instead of handling the request. */
  status?: number;
  /** Value of the `Retry-After` header (seconds) sent with `status`. */
  retryAfter?: number;
  /** Wait this long before answering (or before handling normally when nothing else is set). */
  delayMs?: number;
  /** Reset the connection without answering. */
  drop?: boolean;
  /** How many matching requests the fault applies to (default 1). */
  times?: number;
  /**
   * With `status`: the error message echoes the request's `Authorization` header and the bare
   * credential, as careless servers and proxies do — to test that clients redact what they are
   * sent back.
   */
  echoCredentials?: boolean;
}

/** Text of an error that echoes the request's credentials (see `BitbucketFault.echoCredentials`). */
function echoOf(authorization: string | undefined): string {
  if (!authorization) return ' (the request had no Authorization header)';
  const bare = authorization.replace(/^\S+\s+/, '');
  return ` (request header Authorization: ${authorization}; credential ${bare})`;
}

export interface BitbucketDoubleOptions {
  /** e.g. `/bitbucket`: everything (REST, /scm) is served below it. */
  contextPath?: string;
  /** Serve HTTPS with a self-signed CA (returned as `caPem`). */
  tls?: boolean;
  /**
   * Also start a real OpenSSH sshd for git over SSH, authorised by the access keys. `keySource`:
   * `command` (default when root) = sshd's AuthorizedKeysCommand asks the double; `file` (the only
   * choice without root) = the double rewrites an authorized_keys file whenever keys change.
   */
  ssh?: boolean | { keySource?: 'command' | 'file' };
  /** Default branch of repositories created without one (Bitbucket's default: `master`). */
  defaultBranchName?: string;
  /** What `GET …/branches/default` answers for an empty repository: 404 (observed) or 204 (documented). */
  emptyDefaultBranchStatus?: 404 | 204;
  /** Bitbucket version reported by `/rest/api/1.0/application-properties`. */
  version?: string;
  /** The request log keeps at most this many entries, dropping the oldest (default 50000; long-running sandboxes). */
  maxLogEntries?: number;
  /** OAuth 2.0 server: lifetime of access tokens (`expires_in`, default 3600 s) and of codes (default 600 s). */
  oauth?: { accessTokenTtlSeconds?: number; codeTtlSeconds?: number };
  /** Refuse OAuth 2.0 tokens on `/rest/branch-permissions` (some 8.x docs say Bitbucket does). Default false. */
  refuseOAuthOnBranchPermissions?: boolean;
}

/** An incoming application link (OAuth 2.0 client) registered with {@link BitbucketDouble.registerOAuthClient}. */
export interface BitbucketOAuthClient {
  clientId: string;
  clientSecret: string;
  /** `<baseUrl>/rest/oauth2/latest/authorize` */
  authorizeUrl: string;
  /** `<baseUrl>/rest/oauth2/latest/token` */
  tokenUrl: string;
}

export interface BitbucketSshInfo {
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  /** The login user of SSH clone URLs (`git` when running as root, else the current user). */
  user: string;
  hostKeys: { type: string; publicKey: string; fingerprint: string }[];
  /** known_hosts lines for all host keys (`[127.0.0.1]:PORT type base64`). */
  knownHosts: string;
  /** How sshd learns the access keys: AuthorizedKeysCommand (root) or a rewritten authorized_keys file. */
  keySource: 'command' | 'file';
}

export interface BitbucketDouble {
  /** `http(s)://127.0.0.1:PORT[/ctx]` */
  baseUrl: string;
  /** baseUrl + `/rest/api/1.0` */
  apiBaseUrl: string;
  /** `127.0.0.1:PORT` — value for integrations.bitbucketServer[].host */
  host: string;
  port: number;
  contextPath: string;
  /** When `tls`: the self-signed CA to trust. */
  caPem?: string;
  /** When `tls`: a file holding `caPem` (for `git -c http.sslCAInfo=…`). */
  caFile?: string;
  ssh?: BitbucketSshInfo;
  /** Folder holding the bare repositories (`<root>/<project key lower-case>/<slug>.git`). */
  reposRoot: string;
  repoPath(projectKey: string, slug: string): string;
  /** Clone URLs of a repository (same values as `links.clone`). */
  cloneUrls(projectKey: string, slug: string): { http: string; ssh?: string };
  addUser(u: {
    name: string;
    displayName?: string;
    email?: string;
    password?: string;
    active?: boolean;
  }): void;
  addGroup(name: string, members?: string[]): void;
  addProject(p: {
    key: string;
    name: string;
    description?: string;
    public?: boolean;
  }): void;
  grantGlobal(user: string, permission: GlobalPermission): void;
  grantProject(
    projectKey: string,
    who: { user?: string; group?: string },
    permission: ProjectPermission,
  ): void;
  grantRepo(
    projectKey: string,
    slug: string,
    who: { user?: string; group?: string },
    permission: RepoPermission,
  ): void;
  /** Registers an HTTP access token of `user`. `permissions` limits it to these projects/repositories. */
  addToken(t: {
    token: string;
    user: string;
    permissions?: { project?: string; repo?: string }[];
    projectPermission?: ProjectPermission;
    repoPermission?: RepoPermission;
    name?: string;
    expired?: boolean;
  }): void;
  /** Creates a repository directly (no REST call, not logged). */
  createRepo(
    projectKey: string,
    name: string,
    opts?: {
      defaultBranch?: string;
      public?: boolean;
      initialCommit?: boolean;
      description?: string;
    },
  ): { slug: string; path: string };
  /** Registers an SSH access key on a repository directly (no REST call). Returns the key id. */
  addAccessKey(
    projectKey: string,
    slug: string,
    key: { text: string; label?: string },
    permission: 'REPO_READ' | 'REPO_WRITE',
  ): number;
  /**
   * Registers an HTTP access token of a project (or of one repository, with `repo`): it has no
   * user of its own but a service user (returned), works only as `Authorization: Bearer`, and
   * acts with `permission` on that project/repository only.
   */
  addProjectToken(t: {
    token: string;
    project: string;
    repo?: string;
    permission:
      | 'PROJECT_READ'
      | 'PROJECT_WRITE'
      | 'PROJECT_ADMIN'
      | 'REPO_READ'
      | 'REPO_WRITE'
      | 'REPO_ADMIN';
    name?: string;
    expired?: boolean;
  }): { id: string; user: string };
  /**
   * Adds a branch restriction directly (no REST call): project level when `slug` is undefined.
   * `matcher`: a branch (`main`, `refs/heads/main`), a pattern (`release/*`), or `{type, id}`.
   * `users`/`groups`/`accessKeys` are exempt. Returns the restriction id.
   */
  addRestriction(
    projectKey: string,
    slug: string | undefined,
    r: {
      type: RestrictionType;
      matcher: string | { type: MatcherType; id: string };
      users?: string[];
      groups?: string[];
      accessKeys?: number[];
    },
  ): number;
  removeRestriction(id: number): void;
  /**
   * Adds a default-reviewer condition directly: project level when `slug` is undefined;
   * `source`/`target` default to any branch. Returns the condition id.
   */
  addDefaultReviewers(
    projectKey: string,
    slug: string | undefined,
    c: {
      source?: string | { type: MatcherType; id: string };
      target?: string | { type: MatcherType; id: string };
      reviewers: string[];
      requiredApprovals?: number;
    },
  ): number;
  /** Sets a repository's merge checks (minimum approvals, no "needs work"). */
  setMergeChecks(projectKey: string, slug: string, checks: MergeChecks): void;
  /** Sets a reviewer's status on a pull request directly (as if they reviewed it). */
  setReviewerStatus(
    projectKey: string,
    slug: string,
    pullRequestId: number,
    user: string,
    status: ParticipantStatus,
  ): void;
  /**
   * Registers an incoming application link offering OAuth 2.0 (authorization code, PKCE).
   * `scopes` = what the link may request (default PROJECT_ADMIN and ACCOUNT_WRITE, which imply
   * the lower ones). Credentials are generated unless given.
   */
  registerOAuthClient(c: {
    redirectUri: string | string[];
    name?: string;
    clientId?: string;
    clientSecret?: string;
    scopes?: OAuthScope[];
  }): BitbucketOAuthClient;
  /** Expires OAuth access tokens now (all, or of a user / client); returns how many. */
  expireOAuthTokens(filter?: { user?: string; clientId?: string }): number;
  /** Revokes OAuth access and refresh tokens (all, or of a user / client); returns how many access tokens. */
  revokeOAuthTokens(filter?: { user?: string; clientId?: string }): number;
  /**
   * Gives the sshd new host keys on the same port (a re-keyed server or a man in the middle);
   * `ssh.hostKeys` and `ssh.knownHosts` are updated in place.
   */
  rotateSshHostKeys(): Promise<BitbucketSshInfo>;
  injectFault(f: BitbucketFault): void;
  clearFaults(): void;
  requests(): BitbucketRequestLogEntry[];
  clearRequests(): void;
  state(): ReturnType<BitbucketState['snapshot']>;
  stop(): Promise<void>;
}

interface ActiveFault extends BitbucketFault {
  remaining: number;
}

const MAX_BODY = 10 * 1024 * 1024;

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new RestError(413, 'Request body too large', null));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Resets a client connection (TCP RST). Over TLS the request's socket is a TLSSocket, whose
 * `resetAndDestroy()` throws ERR_INVALID_HANDLE_TYPE: the TCP socket under it is reset instead.
 */
function resetConnection(socket: unknown): void {
  const s = socket as {
    resetAndDestroy?: () => void;
    destroy: () => void;
    _parent?: { resetAndDestroy?: () => void; destroy: () => void };
  };
  for (const target of [s, s._parent]) {
    if (typeof target?.resetAndDestroy !== 'function') continue;
    try {
      target.resetAndDestroy();
      s.destroy();
      return;
    } catch {
      // a TLS socket: try the TCP socket under it
    }
  }
  s.destroy();
}

const HTML_PAGE = (title: string) =>
  `<!DOCTYPE html><html><head><title>${title} - Bitbucket</title></head><body><h1>${title}</h1></body></html>\n`;

/**
 * Starts the Bitbucket Server / Data Center double on 127.0.0.1 (random port): the REST API
 * (Atlassian's documented shapes, errors, paging, permissions), git over smart HTTP at
 * `/scm/<key>/<slug>.git` served by the real `git http-backend`, and optionally a real sshd
 * authorised by the repositories' access keys — all three over the same bare repositories.
 */
export async function startBitbucketDouble(
  opts: BitbucketDoubleOptions = {},
): Promise<BitbucketDouble> {
  const contextPath = normaliseContextPath(opts.contextPath);
  const tmp = makeTempDir('peer-bitbucket');
  fs.chmodSync(tmp, 0o755);
  const reposRoot = path.join(tmp, 'repos');
  fs.mkdirSync(reposRoot, { mode: 0o755 });
  fs.chmodSync(reposRoot, 0o755);
  const state = new BitbucketState(
    reposRoot,
    opts.defaultBranchName ?? 'master',
  );
  const log: BitbucketRequestLogEntry[] = [];
  let faults: ActiveFault[] = [];
  const maxLog = opts.maxLogEntries ?? 50_000;
  let requestCounter = 0;
  const record = (e: BitbucketRequestLogEntry) => {
    requestCounter++;
    log.push(e);
    if (log.length > maxLog) log.splice(0, log.length - maxLog);
  };
  const internalSecret = crypto.randomBytes(16).toString('hex');
  const pki = opts.tls ? await createTestPki() : undefined;
  let caFile: string | undefined;
  if (pki) {
    caFile = path.join(tmp, 'ca.crt');
    fs.writeFileSync(caFile, pki.caPem);
  }
  let sshd: SshdInstance | undefined;
  let sshInfo: BitbucketSshInfo | undefined;
  let baseUrl = '';
  const links = (): LinkContext => ({
    baseUrl,
    sshHost: sshInfo?.host,
    sshUser: sshInfo?.user ?? 'git',
  });
  const rest = new BitbucketRest(state, links, {
    emptyDefaultBranchStatus: opts.emptyDefaultBranchStatus ?? 404,
    maxPageLimit: 1000,
    version: opts.version ?? '8.19.1',
    refuseOAuthOnBranchPermissions: opts.refuseOAuthOnBranchPermissions,
  });
  const oauth = new BitbucketOAuth(state, links, contextPath, {
    accessTokenTtlSeconds: opts.oauth?.accessTokenTtlSeconds ?? 3600,
    codeTtlSeconds: opts.oauth?.codeTtlSeconds ?? 600,
  });

  /** Pushes in flight (git receive-pack started by the double), by the id its hooks send back. */
  const pushes = new Map<
    string,
    {
      repoId: number;
      principal?: Principal;
      accessKeyId?: number;
      created: number;
    }
  >();
  const newPush = (p: {
    repoId: number;
    principal?: Principal;
    accessKeyId?: number;
  }): string => {
    const now = Date.now();
    for (const [k, v] of pushes)
      if (now - v.created > 30 * 60_000) pushes.delete(k);
    const id = crypto.randomBytes(16).toString('hex');
    pushes.set(id, { ...p, created: now });
    return id;
  };

  const sshAuth = {
    authorizedKeys: (_user: string, _key: string) => '',
    authorize: (_key: string, _cmd: string) => 'DENY ssh is not enabled',
    refresh: () => {},
  };

  const takeFault = (method: string, p: string): ActiveFault | undefined => {
    const f = faults.find(
      x =>
        x.remaining > 0 &&
        (!x.method || x.method.toUpperCase() === method.toUpperCase()) &&
        faultPathMatches(x.path, p),
    );
    if (f) f.remaining--;
    return f;
  };

  const expired = (t: Token) =>
    !!t.expired || (t.expiresAt !== undefined && t.expiresAt <= Date.now());
  /** Resolves the caller; `undefined` = anonymous; throws 401 on bad credentials. */
  const authenticate = (header: string | undefined): Principal | undefined => {
    const auth = parseAuthorization(header);
    if (!auth) return undefined;
    if (auth.scheme === 'invalid') throw badCredentials();
    if (auth.scheme === 'bearer') {
      const t = state.tokens.find(x => x.token === auth.token);
      const user = t && state.tokenOwner(t.user);
      if (!t || expired(t) || !user || !user.active) throw badCredentials();
      return { user, token: t };
    }
    const user = state.user(auth.user);
    if (!user || !user.active) throw badCredentials();
    // personal HTTP access tokens also work as the password of Basic auth; OAuth tokens and
    // project/repository tokens only as Bearer
    const t = state.tokens.find(
      x =>
        x.token === auth.password &&
        x.user.toLowerCase() === user.slug &&
        (x.kind ?? 'http') === 'http',
    );
    if (t && !expired(t)) return { user, token: t };
    if (user.password !== undefined && user.password === auth.password)
      return { user };
    throw badCredentials();
  };

  const sendError = (
    res: http.ServerResponse,
    err: RestError,
    extra: Record<string, string> = {},
  ) => {
    res.writeHead(err.status, {
      'Content-Type': 'application/json;charset=UTF-8',
      ...extra,
      ...err.headers,
    });
    res.end(JSON.stringify(err.body()));
  };

  const handleGit = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    p: string,
    rawQuery: string,
    entry: BitbucketRequestLogEntry,
  ): Promise<number> => {
    const m = /^\/scm\/([^/]+)\/([^/]+?)(?:\.git)?(\/.*)$/.exec(p);
    const text = (
      status: number,
      msg: string,
      headers: Record<string, string> = {},
    ) => {
      res
        .writeHead(status, {
          'Content-Type': 'text/plain;charset=UTF-8',
          ...headers,
        })
        .end(`${msg}\n`);
      return status;
    };
    if (!m) return text(404, 'Repository not found');
    const [, key, slug, gitPath] = m;
    let principal: Principal | undefined;
    try {
      principal = authenticate(req.headers.authorization);
    } catch {
      return text(401, 'Authentication failed', {
        'WWW-Authenticate': 'Basic realm="Atlassian Bitbucket"',
      });
    }
    if (principal) {
      entry.user = principal.user.name;
      res.setHeader('X-AUSERNAME', encodeURIComponent(principal.user.name));
      res.setHeader('X-AUSERID', String(principal.user.id));
    }
    const repo = state.repo(key, slug);
    const service = gitServiceOf(gitPath, rawQuery);
    const need = service === 'receive-pack' ? 2 : 1;
    const level = repo ? state.repoLevel(principal, repo) : 0;
    if (level < need) {
      if (!principal) {
        return text(401, 'Authentication required', {
          'WWW-Authenticate': 'Basic realm="Atlassian Bitbucket"',
        });
      }
      if (!repo || level === 0)
        return text(
          404,
          `Repository ${key}/${slug} does not exist or you may not see it`,
        );
      return text(
        403,
        `You are not permitted to push to ${repo.projectKey}/${repo.slug}`,
      );
    }
    if (!repo) return text(404, 'Repository not found');
    const relative = path.relative(reposRoot, repo.path);
    // the receive-pack POST runs the hooks: they tell the double which push this is
    const env =
      service === 'receive-pack' && /\/git-receive-pack$/.test(gitPath)
        ? { [PUSH_ENV]: newPush({ repoId: repo.id, principal }) }
        : undefined;
    return runGitHttpBackend(req, res, {
      projectRoot: reposRoot,
      pathInfo: `/${relative}${gitPath}`,
      queryString: rawQuery,
      remoteUser: principal?.user.name,
      env,
    });
  };

  /** The repository hooks' calls: `pre-receive` checks branch permissions, `post-receive` records the push. */
  const handleHook = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    hook: string,
    url: URL,
  ) => {
    const push = pushes.get(url.searchParams.get('push') ?? '');
    const updates = parseUpdates((await readBody(req)).toString('utf8'));
    const repo = push && state.repos.get(push.repoId);
    if (!push || !repo) {
      res
        .writeHead(200, { 'Content-Type': 'text/plain' })
        .end('REJECT\nThe Bitbucket double does not know this push.\n');
      return;
    }
    const actor: PushActor = push.accessKeyId
      ? { accessKeyId: push.accessKeyId }
      : { user: push.principal?.user };
    const refs = updates.map(u => ({
      ref: u.ref,
      old: u.oldSha,
      new: u.newSha,
    }));
    const who = {
      projectKey: repo.projectKey,
      slug: repo.slug,
      ...(push.accessKeyId !== undefined
        ? { accessKeyId: push.accessKeyId, via: 'access-key' }
        : {}),
    };
    if (hook === 'pre-receive') {
      const violations = checkPush(state, repo, actor, updates);
      if (violations.length) {
        pushes.delete(url.searchParams.get('push')!);
        state.record(push.principal, 'PUSH_REJECTED', {
          ...who,
          details: {
            refs,
            restrictions: violations.map(v => ({ ref: v.ref, type: v.type })),
          },
        });
        res
          .writeHead(200, { 'Content-Type': 'text/plain' })
          .end(`REJECT\n${rejectionText(violations)}\n`);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK\n');
      return;
    }
    if (hook === 'post-receive') {
      pushes.delete(url.searchParams.get('push')!);
      state.record(push.principal, 'PUSH', { ...who, details: { refs } });
      await rest.pullRequests.sync(repo);
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK\n');
      return;
    }
    res.writeHead(404).end();
  };

  const handleInternal = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    sub: string,
    url: URL,
  ) => {
    const hook = /^\/hooks\/(pre-receive|post-receive)$/.exec(sub);
    if (hook) {
      await handleHook(req, res, hook[1], url);
      return;
    }
    if (!sshd) {
      res.writeHead(404).end();
      return;
    }
    if (sub === '/ssh/authorized-keys') {
      const body = sshAuth.authorizedKeys(
        url.searchParams.get('user') ?? '',
        url.searchParams.get('key') ?? '',
      );
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(body);
      return;
    }
    if (sub === '/ssh/authorize') {
      const out = sshAuth.authorize(
        url.searchParams.get('key') ?? '',
        url.searchParams.get('cmd') ?? '',
      );
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`${out}\n`);
      return;
    }
    res.writeHead(404).end();
  };

  /** HTML pages behind the browse links of repositories and pull requests. */
  const browsePage = (p: string): string | undefined => {
    const m =
      /^\/(?:projects|users)\/([^/]+)\/repos\/([^/]+)\/(browse|pull-requests\/(\d+)(?:\/overview)?)$/.exec(
        p,
      );
    if (!m) return undefined;
    const key = p.startsWith('/users/') ? `~${m[1]}` : m[1];
    const repo = state.repo(key, m[2]);
    if (!repo) return undefined;
    if (m[3] === 'browse') return HTML_PAGE(`${repo.projectKey}/${repo.slug}`);
    const pr = state.pullRequests.find(
      x => x.repoId === repo.id && x.id === Number(m[4]),
    );
    if (!pr) return undefined;
    const esc = (t: string) =>
      t.replace(/[&<>"]/g, c => `&#${c.charCodeAt(0)};`);
    return `<!DOCTYPE html><html><head><title>Pull Request #${pr.id}: ${esc(
      pr.title,
    )} - Bitbucket</title></head><body><h1>${esc(
      pr.title,
    )}</h1><p id="pr-state">${pr.state}</p><p>${esc(pr.fromRef)} → ${esc(
      pr.toRef,
    )}</p></body></html>\n`;
  };

  const handler = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rawPath = url.pathname;
    const internalPrefix = `/__peer/${internalSecret}`;
    if (rawPath.startsWith(`${internalPrefix}/`)) {
      try {
        await handleInternal(
          req,
          res,
          rawPath.slice(internalPrefix.length),
          url,
        );
      } catch (e) {
        if (!res.headersSent)
          res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(
          `REJECT\nInternal error in the Bitbucket double: ${String(e)}\n`,
        );
      }
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      headers[k] = Array.isArray(v) ? v.join(', ') : String(v ?? '');
    let p: string;
    try {
      p = decodeURIComponent(rawPath);
    } catch {
      p = rawPath;
    }
    const inContext =
      !contextPath || p === contextPath || p.startsWith(`${contextPath}/`);
    if (contextPath && inContext) p = p.slice(contextPath.length) || '/';
    const entry: BitbucketRequestLogEntry = {
      method: req.method ?? 'GET',
      path: p,
      query: Object.fromEntries(url.searchParams.entries()),
      headers,
      status: 0,
    };
    record(entry);
    res.setHeader(
      'X-AREQUESTID',
      `@${crypto
        .randomBytes(4)
        .toString('hex')
        .toUpperCase()}x${requestCounter}`,
    );
    try {
      if (!inContext) {
        entry.status = 404;
        res
          .writeHead(404, { 'Content-Type': 'text/html;charset=UTF-8' })
          .end(HTML_PAGE('Page not found'));
        return;
      }
      const fault = takeFault(entry.method, p);
      if (fault?.delayMs) await new Promise(r => setTimeout(r, fault.delayMs));
      if (fault?.drop) {
        entry.status = 0;
        resetConnection(req.socket);
        return;
      }
      if (fault?.status) {
        entry.status = fault.status;
        if (!p.startsWith('/rest/')) {
          res
            .writeHead(fault.status, {
              'Content-Type': 'text/plain',
              ...(fault.retryAfter !== undefined
                ? { 'Retry-After': String(fault.retryAfter) }
                : {}),
            })
            .end(
              `Injected failure ${fault.status}${
                fault.echoCredentials ? echoOf(req.headers.authorization) : ''
              }\n`,
            );
          return;
        }
        const err = faultError(fault.status, fault.retryAfter);
        sendError(
          res,
          fault.echoCredentials
            ? new RestError(
                err.status,
                `${err.message}${echoOf(req.headers.authorization)}`,
                err.exceptionName,
                err.context,
                err.headers,
              )
            : err,
        );
        return;
      }
      if (p.startsWith('/scm/')) {
        entry.status = await handleGit(req, res, p, url.search.slice(1), entry);
        return;
      }
      // OAuth 2.0 (authorize, token: form posts without XSRF header), login, whoami, avatars
      // (their bodies carry passwords, codes and client secrets: not kept in the request log)
      let bodyCache: Buffer | undefined;
      const rawBody = async () => {
        bodyCache ??= await readBody(req);
        return bodyCache;
      };
      const oauthStatus = await oauth.handle(req, res, p, url, rawBody, () => {
        try {
          return (
            authenticate(req.headers.authorization) ??
            oauth.sessionPrincipal(req.headers.cookie)
          );
        } catch {
          return undefined;
        }
      });
      if (oauthStatus !== undefined) {
        entry.status = oauthStatus;
        for (const k of [
          'client_secret',
          'code',
          'code_verifier',
          'refresh_token',
        ])
          if (entry.query[k] !== undefined) entry.query[k] = '***';
        return;
      }
      if (!p.startsWith('/rest/')) {
        const page = browsePage(p);
        if (req.method === 'GET' && page) {
          entry.status = 200;
          res
            .writeHead(200, { 'Content-Type': 'text/html;charset=UTF-8' })
            .end(page);
          return;
        }
        if (req.method === 'GET' && (p === '/' || p === '')) {
          entry.status = 200;
          res
            .writeHead(200, { 'Content-Type': 'text/html;charset=UTF-8' })
            .end(HTML_PAGE('Bitbucket'));
          return;
        }
        entry.status = 404;
        res
          .writeHead(404, { 'Content-Type': 'text/html;charset=UTF-8' })
          .end(HTML_PAGE('Page not found'));
        return;
      }
      const raw = await readBody(req);
      if (raw.length) entry.body = raw.toString('utf8');
      let principal: Principal | undefined;
      try {
        principal = authenticate(req.headers.authorization);
      } catch (e) {
        if (e instanceof RestError) {
          entry.status = e.status;
          sendError(res, e);
          return;
        }
        throw e;
      }
      if (principal) entry.user = principal.user.name;
      const identity: Record<string, string> = principal
        ? {
            'X-AUSERNAME': encodeURIComponent(principal.user.name),
            'X-AUSERID': String(principal.user.id),
          }
        : {};
      let body: unknown;
      const ct = String(req.headers['content-type'] ?? '');
      // Atlassian's XSRF protection: a state-changing request with a content type a browser form
      // could send is refused unless it carries `X-Atlassian-Token: no-check`.
      if (
        entry.method !== 'GET' &&
        /^(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)/i.test(
          ct,
        ) &&
        String(req.headers['x-atlassian-token'] ?? '').toLowerCase() !==
          'no-check'
      ) {
        entry.status = 403;
        res.writeHead(403, {
          'Content-Type': 'text/plain;charset=UTF-8',
          ...identity,
        });
        res.end('XSRF check failed');
        return;
      }
      if (raw.length) {
        if (!/json/i.test(ct) && ct !== '') {
          const err = new RestError(
            415,
            `Unsupported content type ${ct}; use application/json`,
            null,
          );
          entry.status = 415;
          sendError(res, err, identity);
          return;
        }
        try {
          body = JSON.parse(entry.body!);
        } catch {
          const err = new RestError(
            400,
            'The request body could not be parsed as JSON.',
            EX.badRequest,
          );
          entry.status = 400;
          sendError(res, err, identity);
          return;
        }
      }
      try {
        const r = await rest.handle({
          method: entry.method,
          path: p,
          query: url.searchParams,
          body,
          principal,
          contentType: ct,
        });
        if (entry.method !== 'GET') sshAuth.refresh();
        entry.status = r.status;
        if (r.body === undefined) {
          res.writeHead(r.status, { ...identity, ...r.headers }).end();
        } else {
          res.writeHead(r.status, {
            'Content-Type': 'application/json;charset=UTF-8',
            ...identity,
            ...r.headers,
          });
          res.end(JSON.stringify(r.body));
        }
      } catch (e) {
        const err =
          e instanceof RestError
            ? e
            : new RestError(
                500,
                `Internal error in the Bitbucket double: ${String(e)}`,
                null,
              );
        entry.status = err.status;
        sendError(res, err, identity);
      }
    } catch (e) {
      entry.status = 500;
      if (!res.headersSent)
        res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`Internal error in the Bitbucket double: ${String(e)}\n`);
    }
  };

  const server = pki
    ? https.createServer(
        { key: pki.keyPem, cert: pki.certPem },
        (q, s) => void handler(q, s),
      )
    : http.createServer((q, s) => void handler(q, s));
  server.keepAliveTimeout = 5000;
  const sockets = trackSockets(server);
  const port = await listenLoopback(server);
  baseUrl = `${pki ? 'https' : 'http'}://127.0.0.1:${port}${contextPath}`;
  const internalUrl = `${baseUrl.replace(
    contextPath,
    '',
  )}/__peer/${internalSecret}`;
  const hooks = hookScripts({ internalUrl, caFile });
  state.onRepoInit = repoPath => installHooks(repoPath, hooks);

  if (opts.ssh) {
    try {
      const started = await startBitbucketSsh({
        keySource:
          typeof opts.ssh === 'object' ? opts.ssh.keySource : undefined,
        state,
        internalUrl,
        insecureCa: pki ? caFile : undefined,
        log: record,
        takeFault: p => takeFault('SSH', p),
        newPush: (repoId, accessKeyId) => newPush({ repoId, accessKeyId }),
      });
      sshd = started.sshd;
      sshInfo = started.info;
      sshAuth.authorizedKeys = started.authorizedKeys;
      sshAuth.authorize = started.authorize;
      sshAuth.refresh = started.refreshAuthorizedKeysFile;
    } catch (e) {
      await closeServer(server, sockets);
      removeDir(tmp);
      throw e;
    }
  }

  const grantTarget = (who: { user?: string; group?: string }) => {
    if (!!who.user === !!who.group)
      throw new Error(
        'Bitbucket double: grant needs exactly one of user or group',
      );
    if (who.user)
      return { kind: 'user' as const, id: state.requireUser(who.user).slug };
    if (!state.groups.has(who.group!))
      throw new Error(
        `Bitbucket double: unknown group ${who.group} (call addGroup first)`,
      );
    return { kind: 'group' as const, id: who.group! };
  };
  const projectOrThrow = (key: string) => {
    const p = state.project(key);
    if (!p)
      throw new Error(
        `Bitbucket double: unknown project ${key} (call addProject first)`,
      );
    return p;
  };
  const repoOrThrow = (key: string, slug: string) => {
    const r = state.repo(key, slug);
    if (!r)
      throw new Error(`Bitbucket double: unknown repository ${key}/${slug}`);
    return r;
  };

  return {
    baseUrl,
    apiBaseUrl: `${baseUrl}/rest/api/1.0`,
    host: `127.0.0.1:${port}`,
    port,
    contextPath,
    caPem: pki?.caPem,
    caFile,
    ssh: sshInfo,
    async rotateSshHostKeys() {
      if (!sshd || !sshInfo)
        throw new Error('Bitbucket double: started without ssh');
      await sshd.replaceHostKeys();
      sshInfo.hostKeys = sshd.hostKeys;
      sshInfo.knownHosts = sshd.knownHosts;
      return sshInfo;
    },
    reposRoot,
    repoPath: (key, slug) =>
      state.repoDiskPath(state.project(key)?.key ?? key, slug),
    cloneUrls(key, slug) {
      const r = repoOrThrow(key, slug);
      const l = links();
      const k = r.projectKey.toLowerCase();
      return {
        http: `${l.baseUrl}/scm/${k}/${r.slug}.git`,
        ssh: l.sshHost
          ? `ssh://${l.sshUser}@${l.sshHost}/${k}/${r.slug}.git`
          : undefined,
      };
    },
    addUser: u => void state.addUser(u),
    addGroup: (name, members) => state.addGroup(name, members),
    addProject: p => void state.addProject(p),
    grantGlobal(user, permission) {
      state.globalPerms.set(state.requireUser(user).slug, permission);
    },
    grantProject(key, who, permission) {
      const p = projectOrThrow(key);
      const t = grantTarget(who);
      const store =
        t.kind === 'user' ? state.projectUserPerms : state.projectGroupPerms;
      if (!store.has(p.key)) store.set(p.key, new Map());
      store.get(p.key)!.set(t.id, permission);
    },
    grantRepo(key, slug, who, permission) {
      const r = repoOrThrow(key, slug);
      const t = grantTarget(who);
      const store =
        t.kind === 'user' ? state.repoUserPerms : state.repoGroupPerms;
      if (!store.has(r.id)) store.set(r.id, new Map());
      store.get(r.id)!.set(t.id, permission);
    },
    addToken(t) {
      const user = state.requireUser(t.user);
      const token: Token = {
        id: state.newTokenId(),
        name: t.name ?? `token-${state.tokens.length + 1}`,
        token: t.token,
        user: user.slug,
        scopes: t.permissions,
        projectPermission: t.projectPermission,
        repoPermission: t.repoPermission,
        expired: t.expired,
      };
      state.tokens = state.tokens.filter(x => x.token !== t.token);
      state.tokens.push(token);
    },
    createRepo(key, name, o = {}) {
      const p = projectOrThrow(key);
      const slug = slugify(name);
      if (state.repo(p.key, slug))
        throw new Error(
          `Bitbucket double: repository ${p.key}/${slug} already exists`,
        );
      const r = state.createRepo(p, {
        name,
        slug,
        description: o.description,
        public: o.public,
        defaultBranch: o.defaultBranch,
        initialCommit: o.initialCommit,
      });
      return { slug: r.slug, path: r.path };
    },
    addAccessKey(key, slug, k, permission) {
      const r = repoOrThrow(key, slug);
      const parts = k.text.trim().split(/\s+/);
      if (parts.length < 2)
        throw new Error('Bitbucket double: invalid public key text');
      let existing = state.keyByBlob(parts[1]);
      if (!existing) {
        const label = k.label ?? parts.slice(2).join(' ');
        existing = {
          id: state.newKeyId(),
          text: [parts[0], parts[1], label].filter(Boolean).join(' '),
          label,
          type: parts[0],
          blob: parts[1],
          createdDate: Date.now(),
        };
        state.keys.set(existing.id, existing);
      }
      state.keyGrants.push({ keyId: existing.id, repoId: r.id, permission });
      sshAuth.refresh();
      return existing.id;
    },
    addProjectToken(t) {
      const project = projectOrThrow(t.project);
      const repo = t.repo ? repoOrThrow(project.key, t.repo) : undefined;
      const isRepoPerm = t.permission.startsWith('REPO_');
      if (!repo && isRepoPerm)
        throw new Error(
          'Bitbucket double: a project token takes a PROJECT_* permission',
        );
      if (repo && !isRepoPerm)
        throw new Error(
          'Bitbucket double: a repository token takes a REPO_* permission',
        );
      const id = state.newTokenId();
      const name = t.name ?? `${repo ? repo.slug : project.key} token`;
      const bot = state.addServiceUser(
        `${(repo
          ? `${project.key}-${repo.slug}`
          : project.key
        ).toLowerCase()}-access-token-${id.slice(-4)}`,
        name,
      );
      const level = t.permission.replace(/^(PROJECT|REPO)_/, '');
      const token: Token = {
        id,
        name,
        token: t.token,
        kind: repo ? 'repository' : 'project',
        user: bot.slug,
        // limited to its project / repository; a project token covers the project's repositories
        scopes: [{ project: project.key, repo: repo?.slug }],
        projectPermission: repo
          ? 'PROJECT_READ'
          : (`PROJECT_${level}` as ProjectPermission),
        repoPermission: `REPO_${level}` as RepoPermission,
        expired: t.expired,
      };
      state.tokens = state.tokens.filter(x => x.token !== t.token);
      state.tokens.push(token);
      return { id, user: bot.name };
    },
    addRestriction(key, slug, r) {
      const project = projectOrThrow(key);
      const repo = slug ? repoOrThrow(project.key, slug) : undefined;
      const created = addRestriction(
        state,
        repo
          ? { type: 'REPOSITORY', projectKey: project.key, repoId: repo.id }
          : { type: 'PROJECT', projectKey: project.key },
        {
          type: r.type,
          matcher: matcherOf(r.matcher),
          users: r.users,
          groups: r.groups,
          accessKeyIds: r.accessKeys,
        },
      );
      return created.id;
    },
    removeRestriction(id) {
      state.restrictions = state.restrictions.filter(r => r.id !== id);
    },
    addDefaultReviewers(key, slug, c) {
      const project = projectOrThrow(key);
      const repo = slug ? repoOrThrow(project.key, slug) : undefined;
      const any = { type: 'ANY_REF' as const, id: 'ANY_REF_MATCHER_ID' };
      return addCondition(
        state,
        repo
          ? { type: 'REPOSITORY', projectKey: project.key, repoId: repo.id }
          : { type: 'PROJECT', projectKey: project.key },
        {
          sourceMatcher: c.source ? matcherOf(c.source) : any,
          targetMatcher: c.target ? matcherOf(c.target) : any,
          reviewers: c.reviewers,
          requiredApprovals: c.requiredApprovals,
        },
      ).id;
    },
    setMergeChecks(key, slug, checks) {
      state.mergeChecks.set(repoOrThrow(key, slug).id, { ...checks });
    },
    setReviewerStatus(key, slug, id, user, status) {
      const repo = repoOrThrow(key, slug);
      const pr = state.pullRequests.find(
        x => x.repoId === repo.id && x.id === id,
      );
      if (!pr)
        throw new Error(
          `Bitbucket double: no pull request ${key}/${slug}#${id}`,
        );
      const u = state.requireUser(user);
      let part = pr.participants.find(x => x.user === u.slug);
      if (!part) {
        part = { user: u.slug, role: 'PARTICIPANT', status: 'UNAPPROVED' };
        pr.participants.push(part);
      }
      part.status = status;
      if (status !== 'UNAPPROVED') part.lastReviewedCommit = pr.fromCommit;
    },
    registerOAuthClient(c) {
      const client = oauth.registerClient({
        name: c.name,
        clientId: c.clientId,
        clientSecret: c.clientSecret,
        redirectUris: Array.isArray(c.redirectUri)
          ? c.redirectUri
          : [c.redirectUri],
        scopes: c.scopes,
      });
      return {
        clientId: client.clientId,
        clientSecret: client.clientSecret,
        authorizeUrl: `${baseUrl}/rest/oauth2/latest/authorize`,
        tokenUrl: `${baseUrl}/rest/oauth2/latest/token`,
      };
    },
    expireOAuthTokens: filter => oauth.expireTokens(filter),
    revokeOAuthTokens: filter => oauth.revokeTokens(filter),
    injectFault(f) {
      faults.push({ ...f, remaining: f.times ?? 1 });
    },
    clearFaults() {
      faults = [];
    },
    requests: () =>
      log.map(e => ({
        ...e,
        query: { ...e.query },
        headers: { ...e.headers },
      })),
    clearRequests() {
      log.length = 0;
    },
    state: () => state.snapshot(),
    async stop() {
      await sshd?.stop();
      await closeServer(server, sockets);
      removeDir(tmp);
    },
  };
}

function faultPathMatches(pattern: string | RegExp, p: string): boolean {
  if (typeof pattern !== 'string') return pattern.test(p);
  if (pattern.endsWith('*')) return p.startsWith(pattern.slice(0, -1));
  return pattern === p;
}

function normaliseContextPath(ctx: string | undefined): string {
  if (!ctx || ctx === '/') return '';
  const c = `/${ctx.replace(/^\/+|\/+$/g, '')}`;
  if (!/^(\/[A-Za-z0-9._-]+)+$/.test(c))
    throw new Error(`Bitbucket double: invalid context path ${ctx}`);
  return c;
}
