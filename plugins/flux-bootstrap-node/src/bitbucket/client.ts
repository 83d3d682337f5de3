import type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
} from '../config/bitbucketServer';
import {
  HttpClient,
  HttpError,
  withSystemRoots,
  type HttpResponse,
} from '../http';
import { OperationAbortedError } from '../util/errors';
import { EngineLogger, silentLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import {
  BitbucketError,
  BitbucketErrorDetail,
  kindForStatus,
  parseErrorDetails,
  shortExceptionName,
} from './errors';
import type {
  BitbucketAccessKey,
  BitbucketBranch,
  BitbucketPage,
  BitbucketRepoPermission,
  BitbucketRepository,
  BitbucketUser,
} from './types';

export { parseRetryAfter } from '../http';

/** Options of {@link BitbucketServerClient}. @public */
export interface BitbucketClientOptions {
  logger?: EngineLogger;
  /** Secrets to keep out of errors and logs; the client adds its own credentials to it. */
  redactor?: Redactor;
  /** Per-request timeout; default `host.requestTimeoutMs` (30 s). */
  requestTimeoutMs?: number;
  /** Retries after the first attempt on 429, 5xx, connection resets and timeouts; default `host.retries` (4). */
  retries?: number;
  /** First backoff delay, doubled per attempt with jitter; default 500 ms. */
  baseDelayMs?: number;
  /** Upper bound of one backoff delay; default 10 s. */
  maxDelayMs?: number;
  /** A `Retry-After` longer than this fails at once instead of waiting; default 120 s. */
  maxRetryAfterMs?: number;
  /** Largest response body accepted; default 32 MiB. */
  maxResponseBytes?: number;
}

/** Query values; undefined values are left out. @public */
export type BitbucketQuery = Record<
  string,
  string | number | boolean | undefined
>;

/** Options of {@link BitbucketServerClient.request}. @public */
export interface BitbucketRequestOptions {
  query?: BitbucketQuery;
  /** JSON body (objects are serialised) or raw bytes. */
  body?: unknown;
  signal?: AbortSignal;
  /**
   * Statuses returned instead of thrown. 2xx are always accepted; e.g. `[404]` turns "not found"
   * into `{ status: 404 }` for an existence check.
   */
  expectedStatus?: number[];
  /** Extra request headers. */
  headers?: Record<string, string>;
  /**
   * Whether a failed attempt may be sent again. Default: GET, HEAD, PUT and DELETE are; a POST only
   * with `true` (the caller knows a repeat converges, e.g. a create answering 409 when done).
   */
  retry?: boolean;
  /** Return the raw body bytes instead of parsing JSON. */
  raw?: boolean;
}

/** The answer of {@link BitbucketServerClient.request}. @public */
export interface BitbucketResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * Headers that authenticate git over HTTPS exactly like the REST calls: `Bearer` for a token
 * (Bitbucket HTTP access tokens, personal or project/repository-scoped), `Basic` for a username
 * with a password or token. Never log the result.
 * @public
 */
export function gitHttpAuthHeaders(
  auth: BitbucketServerAuth,
): Record<string, string> {
  if ('token' in auth) return { Authorization: `Bearer ${auth.token}` };
  const basic = Buffer.from(
    `${auth.username}:${auth.password}`,
    'utf8',
  ).toString('base64');
  return { Authorization: `Basic ${basic}` };
}

/** The secret strings of an auth value (for a Redactor). @public */
export function authSecrets(auth: BitbucketServerAuth): string[] {
  const [, value] = gitHttpAuthHeaders(auth).Authorization.split(' ');
  return 'token' in auth ? [auth.token, value] : [auth.password, value];
}

const encodeSegment = (segment: string | number) =>
  encodeURIComponent(String(segment));

/**
 * Builds a path from a template and segments: `p('/rest/api/1.0/projects/{}/repos/{}', key, slug)`;
 * every segment is URL-encoded so that a name can never change the path.
 */
export function restPath(
  template: string,
  ...segments: Array<string | number>
): string {
  let i = 0;
  const out = template.replace(/\{\}/g, () => {
    if (i >= segments.length)
      throw new Error(`restPath: missing segment for ${template}`);
    return encodeSegment(segments[i++]);
  });
  if (i !== segments.length)
    throw new Error(`restPath: too many segments for ${template}`);
  return out;
}

function htmlTitle(text: string): string | undefined {
  const m = /<title[^>]*>([^<]{1,120})<\/title>/i.exec(text);
  return m ? m[1].trim().replace(/\s+/g, ' ') : undefined;
}

function looksLikeHtml(contentType: string | null, text: string): boolean {
  return (
    /text\/html|application\/xhtml/i.test(contentType ?? '') ||
    /^\s*<(!doctype|html|head|body)/i.test(text)
  );
}

const RETRY_ADVICE =
  'Bitbucket is unavailable or overloaded, try again later (re-running is safe: what was already done is reused)';

/**
 * REST client of one Bitbucket Server / Data Center host, on the engine's HTTP layer.
 *
 * - URLs are built from the host's `baseUrl` (which keeps the context path), so `/rest/api/1.0`,
 *   `/rest/keys/1.0` and `/scm/` all work under `https://host/bitbucket`.
 * - Auth: `Bearer` token or `Basic` username + password/token, sent to this server only.
 * - TLS: Node's roots plus the host's extra CA PEM; proxies as the layer has them.
 * - Retries (the layer's policy) 429 (honouring `Retry-After`), 5xx, resets and timeouts of
 *   requests safe to repeat; never other 4xx; no redirect is followed.
 * - Bitbucket's `{"errors":[…]}` bodies become {@link BitbucketError}s; an HTML page (wrong context
 *   path, SSO/proxy login page) is detected and explained. Credentials never appear in errors or logs.
 * @public
 */
export class BitbucketServerClient {
  readonly host: BitbucketServerHostConfig;
  /** Server root including the context path, no trailing slash. */
  readonly baseUrl: string;
  private readonly auth: BitbucketServerAuth;
  private readonly logger: EngineLogger;
  private readonly redactor: Redactor;
  private readonly http: HttpClient;
  private readonly origin: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly baseDelayMs: number;

  constructor(
    host: BitbucketServerHostConfig,
    auth: BitbucketServerAuth,
    opts: BitbucketClientOptions = {},
  ) {
    this.host = host;
    this.auth = auth;
    this.baseUrl = host.baseUrl.replace(/\/+$/, '');
    const parsed = new URL(this.baseUrl);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new Error(`Bitbucket base URL must be http(s): ${parsed.protocol}`);
    }
    this.origin = parsed.origin;
    this.redactor = opts.redactor ?? new Redactor();
    for (const secret of authSecrets(auth)) this.redactor.add(secret);
    this.timeoutMs = opts.requestTimeoutMs ?? host.requestTimeoutMs ?? 30_000;
    this.retries = opts.retries ?? host.retries ?? 4;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.http = new HttpClient({
      ...opts,
      tls: { ca: withSystemRoots(host.caPem) },
      timeoutMs: this.timeoutMs,
      retries: this.retries,
      baseDelayMs: this.baseDelayMs,
      redactor: this.redactor,
    });
    this.logger = this.redactor.wrapLogger(opts.logger ?? silentLogger);
  }

  /** `<baseUrl>/rest/api/1.0` */
  get apiBaseUrl(): string {
    return `${this.baseUrl}/rest/api/1.0`;
  }

  /** The redactor that knows this client's credentials (share it with whatever logs near it). */
  get secrets(): Redactor {
    return this.redactor;
  }

  /** The HTTPS clone URL Bitbucket uses for a repository: `<baseUrl>/scm/<key>/<slug>.git`. */
  scmUrl(projectKey: string, slug: string): string {
    return `${this.baseUrl}/scm/${encodeSegment(
      projectKey.toLowerCase(),
    )}/${encodeSegment(slug)}.git`;
  }

  /** Kept for callers; connections are pooled by the HTTP layer and close when idle. */
  close(): void {}

  /**
   * How git over HTTPS talks to this server like this client does, for the engine's git HTTP
   * client (`createGitHttpClient`): the Authorization header (only for a URL on this server's
   * origin: credentials never go elsewhere), the host's extra CA, the per-request timeout, and
   * retries of idempotent requests (ref discovery), logged like REST retries.
   */
  gitHttpSettings(gitUrl: string): {
    headers: Record<string, string>;
    caPem?: string;
    timeoutMs: number;
    getRetries: number;
    retryBaseDelayMs: number;
    onRetry: (reason: string, attempt: number, delayMs: number) => void;
  } {
    const url = new URL(gitUrl);
    if (url.username || url.password) {
      throw new BitbucketError('git URL must not carry credentials', {
        kind: 'bad-request',
      });
    }
    if (url.origin !== this.origin) {
      throw new BitbucketError(
        `git URL ${url.origin} is not on the Bitbucket server ${this.origin}; no credentials are sent there`,
        { kind: 'bad-request' },
      );
    }
    return {
      headers: gitHttpAuthHeaders(this.auth),
      caPem: this.host.caPem,
      timeoutMs: this.timeoutMs,
      getRetries: this.retries,
      retryBaseDelayMs: this.baseDelayMs,
      onRetry: (reason, attempt, delayMs) =>
        this.logger.warn(
          `git ${url.pathname} failed (${reason}); retry ${attempt} of ${this.retries} in ${delayMs} ms`,
        ),
    };
  }

  /**
   * One REST call. `path` is relative to the server root (context path included by the client),
   * e.g. `/rest/api/1.0/projects/FLUX`. Non-2xx answers not listed in `expectedStatus` throw a
   * {@link BitbucketError}.
   */
  async request<T = unknown>(
    method: string,
    path: string,
    opts: BitbucketRequestOptions = {},
  ): Promise<BitbucketResponse<T>> {
    if (!path.startsWith('/'))
      throw new Error(`Bitbucket path must start with "/": ${path}`);
    const url = new URL(`${this.baseUrl}${path}`);
    if (url.origin !== this.origin)
      throw new Error('Bitbucket path escapes the server');
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const verb = method.toUpperCase();
    const label = `${verb} ${url.pathname}${url.search}`;
    const headers: Record<string, string> = {
      Accept: 'application/json',
      ...opts.headers,
      ...gitHttpAuthHeaders(this.auth),
    };
    let body: Buffer | undefined;
    if (opts.body !== undefined) {
      body = Buffer.isBuffer(opts.body)
        ? opts.body
        : Buffer.from(JSON.stringify(opts.body), 'utf8');
      if (!Buffer.isBuffer(opts.body))
        headers['Content-Type'] ??= 'application/json';
    }
    // Bitbucket's XSRF check is skipped for REST clients that say so.
    if (verb !== 'GET' && verb !== 'HEAD')
      headers['X-Atlassian-Token'] ??= 'no-check';
    let res: HttpResponse;
    try {
      res = await this.http.request({
        method: verb,
        url,
        headers,
        body,
        signal: opts.signal,
        what: `Bitbucket ${label}`,
        idempotent: opts.retry === false ? false : opts.retry || undefined,
      });
    } catch (error) {
      throw this.errorFromException(error, label);
    }
    const ok = res.status >= 200 && res.status < 300;
    if (!ok && !(opts.expectedStatus ?? []).includes(res.status))
      throw this.errorFromResponse(res, label);
    return {
      status: res.status,
      headers: res.headers,
      body: opts.raw ? (res.body as T) : this.parseBody<T>(res, label),
    };
  }

  /** Every value of a paged list, page by page (`start`/`limit`/`isLastPage`/`nextPageStart`). */
  async *paginate<T>(
    path: string,
    opts: {
      query?: BitbucketQuery;
      signal?: AbortSignal;
      limit?: number;
      maxPages?: number;
    } = {},
  ): AsyncIterable<T> {
    const limit = opts.limit ?? 100;
    const maxPages = opts.maxPages ?? 10_000;
    let start = 0;
    for (let page = 0; page < maxPages; page++) {
      const { body, status } = await this.request<BitbucketPage<T> | undefined>(
        'GET',
        path,
        {
          query: { ...opts.query, start, limit },
          signal: opts.signal,
        },
      );
      if (status === 204 || !body) return;
      if (!Array.isArray(body.values)) {
        throw new BitbucketError(
          `Bitbucket GET ${path} did not answer with a paged list (no "values"); is ${this.host.apiBaseUrl} Bitbucket's REST API?`,
          { kind: 'unexpected-response', status, request: `GET ${path}` },
        );
      }
      for (const value of body.values) yield value;
      const next = body.nextPageStart;
      if (body.isLastPage !== false || typeof next !== 'number') return;
      if (next <= start) {
        throw new BitbucketError(
          `Bitbucket GET ${path} returned nextPageStart ${next} after start ${start}; refusing to loop`,
          { kind: 'unexpected-response', status, request: `GET ${path}` },
        );
      }
      start = next;
    }
    throw new BitbucketError(
      `Bitbucket GET ${path} has more than ${maxPages} pages`,
      {
        kind: 'unexpected-response',
        request: `GET ${path}`,
      },
    );
  }

  /** All values of a paged list. */
  async listAll<T>(
    path: string,
    opts: { query?: BitbucketQuery; signal?: AbortSignal; limit?: number } = {},
  ): Promise<T[]> {
    const out: T[] = [];
    for await (const value of this.paginate<T>(path, opts)) out.push(value);
    return out;
  }

  /**
   * The user the credentials belong to, from the `X-AUSERNAME`/`X-AUSERID` headers Bitbucket adds
   * to every authenticated answer. Invalid or expired credentials throw `unauthorized`.
   */
  async whoami(signal?: AbortSignal): Promise<{ name: string; id?: number }> {
    const res = await this.request(
      'GET',
      '/rest/api/1.0/application-properties',
      { signal },
    );
    const raw = res.headers.get('x-ausername');
    if (!raw) {
      throw new BitbucketError(
        `Bitbucket did not identify the user of the credentials (no X-AUSERNAME header on ${this.host.apiBaseUrl}/application-properties): the token or password is not accepted, or a proxy strips Bitbucket's headers`,
        {
          kind: 'unauthorized',
          status: res.status,
          request: 'GET /rest/api/1.0/application-properties',
        },
      );
    }
    let name = raw;
    try {
      name = decodeURIComponent(raw);
    } catch {
      // not encoded
    }
    const id = Number(res.headers.get('x-auserid'));
    return { name, id: Number.isFinite(id) && id > 0 ? id : undefined };
  }

  /** A user by slug; undefined when there is none. */
  async getUser(
    slug: string,
    signal?: AbortSignal,
  ): Promise<BitbucketUser | undefined> {
    const res = await this.request<BitbucketUser>(
      'GET',
      restPath('/rest/api/1.0/users/{}', slug),
      {
        signal,
        expectedStatus: [404],
      },
    );
    return res.status === 404 ? undefined : res.body;
  }

  /** A repository; undefined when it (or its project) does not exist. */
  async getRepository(
    projectKey: string,
    slug: string,
    signal?: AbortSignal,
  ): Promise<BitbucketRepository | undefined> {
    const res = await this.request<BitbucketRepository>(
      'GET',
      restPath('/rest/api/1.0/projects/{}/repos/{}', projectKey, slug),
      { signal, expectedStatus: [404] },
    );
    return res.status === 404 ? undefined : res.body;
  }

  /** Branches of a repository (an empty repository has none). */
  async listBranches(
    projectKey: string,
    slug: string,
    opts: { filterText?: string; signal?: AbortSignal; limit?: number } = {},
  ): Promise<BitbucketBranch[]> {
    return this.listAll<BitbucketBranch>(
      restPath('/rest/api/1.0/projects/{}/repos/{}/branches', projectKey, slug),
      {
        query: opts.filterText
          ? {
              filterText: opts.filterText,
              boostMatches: true,
              orderBy: 'ALPHABETICAL',
            }
          : { orderBy: 'ALPHABETICAL' },
        signal: opts.signal,
        limit: opts.limit,
      },
    );
  }

  /** The branch of that exact name, or undefined. */
  async getBranch(
    projectKey: string,
    slug: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<BitbucketBranch | undefined> {
    const branches = await this.listBranches(projectKey, slug, {
      filterText: branch,
      signal,
    });
    return branches.find(
      b => b.id === `refs/heads/${branch}` || (!b.id && b.displayId === branch),
    );
  }

  /** The commit a branch points at, or undefined when the branch does not exist (or the repo is empty). */
  async getBranchHead(
    projectKey: string,
    slug: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const b = await this.getBranch(projectKey, slug, branch, signal);
    return b ? b.latestCommit ?? b.latestChangeset : undefined;
  }

  /** Every SSH access key of a repository. */
  async listAccessKeys(
    projectKey: string,
    slug: string,
    signal?: AbortSignal,
  ): Promise<BitbucketAccessKey[]> {
    return this.listAll<BitbucketAccessKey>(
      restPath('/rest/keys/1.0/projects/{}/repos/{}/ssh', projectKey, slug),
      { signal },
    );
  }

  /** Registers an SSH access key on a repository (`text` is an authorized_keys line). */
  async addAccessKey(
    projectKey: string,
    slug: string,
    key: { text: string; label?: string; permission: BitbucketRepoPermission },
    signal?: AbortSignal,
  ): Promise<BitbucketAccessKey> {
    const res = await this.request<BitbucketAccessKey>(
      'POST',
      restPath('/rest/keys/1.0/projects/{}/repos/{}/ssh', projectKey, slug),
      {
        body: {
          key: {
            text: key.text.trim(),
            ...(key.label ? { label: key.label } : {}),
          },
          permission: key.permission,
        },
        signal,
      },
    );
    return res.body;
  }

  /** Removes an access key by its id; false when it was already gone. */
  async deleteAccessKey(
    projectKey: string,
    slug: string,
    id: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const res = await this.request(
      'DELETE',
      restPath(
        '/rest/keys/1.0/projects/{}/repos/{}/ssh/{}',
        projectKey,
        slug,
        id,
      ),
      { signal, expectedStatus: [404] },
    );
    return res.status !== 404;
  }

  private parseBody<T>(response: HttpResponse, label: string): T {
    if (response.status === 204 || response.body.length === 0)
      return undefined as T;
    const text = response.body.toString('utf8');
    const contentType = response.headers.get('content-type');
    if (looksLikeHtml(contentType, text)) {
      const title = htmlTitle(text);
      throw new BitbucketError(
        this.redactor.redact(
          `Bitbucket ${label} answered with an HTML page${
            title ? ` ("${title}")` : ''
          } instead of JSON (HTTP ${response.status}): ${
            this.host.apiBaseUrl
          } does not look like Bitbucket's REST API. ${CONTEXT_PATH_HINT}`,
        ),
        {
          kind: 'unexpected-response',
          status: response.status,
          request: label,
        },
      );
    }
    if (contentType && !/json/i.test(contentType) && !/^\s*[[{]/.test(text)) {
      return text as unknown as T;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new BitbucketError(
        `Bitbucket ${label} answered with invalid JSON (HTTP ${
          response.status
        }, ${contentType ?? 'no content type'})`,
        {
          kind: 'unexpected-response',
          status: response.status,
          request: label,
        },
      );
    }
  }

  private errorFromResponse(res: HttpResponse, label: string): BitbucketError {
    const { status } = res;
    const text = res.body.toString('utf8');
    if (status >= 300 && status < 400) {
      let where = res.headers.get('location') ?? 'an unknown location';
      try {
        const loc = new URL(where, this.baseUrl);
        loc.username = loc.password = loc.search = '';
        where = loc.toString();
      } catch {
        // keep as is
      }
      return new BitbucketError(
        this.redactor.redact(
          `Bitbucket ${label} was redirected (HTTP ${status}) to ${where}; redirects are not followed. Check the scheme, host and context path of integrations.bitbucketServer[].apiBaseUrl (${this.host.apiBaseUrl}).`,
        ),
        { kind: 'unexpected-response', status, request: label },
      );
    }
    const html = looksLikeHtml(res.headers.get('content-type'), text);
    let details: BitbucketErrorDetail[] = [];
    try {
      if (!html) details = parseErrorDetails(JSON.parse(text));
    } catch {
      // not JSON
    }
    let what = text.trim().slice(0, 200) || res.statusText || 'no details';
    if (details.length) {
      what = details
        .map(d => {
          const ex = shortExceptionName(d.exceptionName);
          return ex ? `${d.message} [${ex}]` : d.message;
        })
        .join('; ');
    } else if (html) {
      const title = htmlTitle(text);
      what = `an HTML page${
        title ? ` ("${title}")` : ''
      } instead of Bitbucket's JSON error. ${
        status === 404
          ? CONTEXT_PATH_HINT
          : 'A proxy or login page may be in front of Bitbucket.'
      }`;
    }
    let message = `Bitbucket ${label} failed with HTTP ${status}${
      res.statusText ? ` ${res.statusText}` : ''
    }: ${what}`;
    if (res.retryNote) message += `; ${res.retryNote}`;
    else if (res.attempts > 1)
      message += ` (gave up after ${res.attempts} attempts; ${RETRY_ADVICE})`;
    return new BitbucketError(this.redactor.redact(message), {
      kind:
        html && status === 404
          ? 'unexpected-response'
          : kindForStatus(status, details),
      status,
      request: label,
      details: details.map(d => ({
        ...d,
        message: this.redactor.redact(d.message),
      })),
    });
  }

  private errorFromException(error: unknown, label: string): Error {
    if (error instanceof OperationAbortedError) return error;
    if (!(error instanceof HttpError)) return this.redactor.redactError(error);
    const host = new URL(this.baseUrl).host;
    let message = `Bitbucket ${label}: cannot reach ${host} (${error.detail})`;
    if (error.kind === 'timeout')
      message = `Bitbucket ${label} got no answer within ${this.timeoutMs} ms`;
    if (error.kind === 'too-large')
      message = `Bitbucket ${label}: ${error.detail}`;
    if (error.kind === 'tls')
      message = `Bitbucket ${label}: TLS connection to ${host} failed (${error.detail}). If the server uses a private or self-signed CA, add its PEM as fluxBootstrap.bitbucketServer[].caData or caFile for host ${this.host.host}.`;
    if (error.attempts > 1)
      message += ` (gave up after ${error.attempts} attempts; ${RETRY_ADVICE})`;
    return new BitbucketError(this.redactor.redact(message), {
      kind:
        error.kind === 'timeout'
          ? 'timeout'
          : error.kind === 'too-large'
          ? 'unexpected-response'
          : 'network',
      request: label,
      code: error.code,
    });
  }
}

const CONTEXT_PATH_HINT =
  'If Bitbucket runs under a context path (e.g. https://host/bitbucket), integrations.bitbucketServer[].apiBaseUrl must include it (https://host/bitbucket/rest/api/1.0).';
