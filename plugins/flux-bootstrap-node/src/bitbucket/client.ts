import type http from 'node:http';
import type https from 'node:https';
import type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
} from '../config/bitbucketServer';
import { EngineLogger, silentLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import { combineSignals, sleep } from '../util/async';
import { isTransientNetworkCode, OperationAbortedError } from '../util/errors';
import {
  BitbucketError,
  BitbucketErrorDetail,
  kindForStatus,
  parseErrorDetails,
  shortExceptionName,
} from './errors';
import {
  createAgent,
  RawResponse,
  ResponseTooLargeError,
  sendOnce,
} from './transport';
import type {
  BitbucketAccessKey,
  BitbucketBranch,
  BitbucketPage,
  BitbucketRepoPermission,
  BitbucketRepository,
  BitbucketUser,
} from './types';

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
  /** Set false for a request that must not be repeated. Default true. */
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

const TLS_CODES =
  /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_|EPROTO)/;

function encodeSegment(segment: string | number): string {
  return encodeURIComponent(String(segment));
}

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

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(
  value: string | null,
  now = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (!Number.isNaN(date)) return Math.max(0, date - now);
  return undefined;
}

function htmlTitle(text: string): string | undefined {
  const m = /<title[^>]*>([^<]{1,120})<\/title>/i.exec(text);
  return m ? m[1].trim().replace(/\s+/g, ' ') : undefined;
}

function looksLikeHtml(contentType: string | null, text: string): boolean {
  if (contentType && /text\/html|application\/xhtml/i.test(contentType))
    return true;
  return /^\s*<(!doctype|html|head|body)/i.test(text);
}

interface AttemptFailure {
  error: BitbucketError;
  retryable: boolean;
  retryAfterMs?: number;
}

/**
 * REST client of one Bitbucket Server / Data Center host.
 *
 * - URLs are built from the host's `baseUrl` (which keeps the context path), so `/rest/api/1.0`,
 *   `/rest/keys/1.0` and `/scm/` all work under `https://host/bitbucket`.
 * - Auth: `Bearer` token or `Basic` username + password/token.
 * - TLS: Node's roots plus the host's extra CA PEM, per client (no global setting).
 * - Retries 429 (honouring `Retry-After`), 5xx, connection resets and timeouts with bounded
 *   exponential backoff; never other 4xx. Each attempt has its own timeout; the caller's
 *   AbortSignal stops everything at once.
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
  private readonly agent: http.Agent | https.Agent;
  private readonly origin: string;
  private readonly opts: Required<
    Pick<
      BitbucketClientOptions,
      | 'requestTimeoutMs'
      | 'retries'
      | 'baseDelayMs'
      | 'maxDelayMs'
      | 'maxRetryAfterMs'
      | 'maxResponseBytes'
    >
  >;

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
    this.logger = this.redactor.wrapLogger(opts.logger ?? silentLogger);
    this.agent = createAgent(this.baseUrl, host.caPem);
    this.opts = {
      requestTimeoutMs:
        opts.requestTimeoutMs ?? host.requestTimeoutMs ?? 30_000,
      retries: opts.retries ?? host.retries ?? 4,
      baseDelayMs: opts.baseDelayMs ?? 500,
      maxDelayMs: opts.maxDelayMs ?? 10_000,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 120_000,
      maxResponseBytes: opts.maxResponseBytes ?? 32 * 1024 * 1024,
    };
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

  /** Releases pooled connections. */
  close(): void {
    this.agent.destroy();
  }

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
      timeoutMs: this.opts.requestTimeoutMs,
      getRetries: this.opts.retries,
      retryBaseDelayMs: this.opts.baseDelayMs,
      onRetry: (reason, attempt, delayMs) =>
        this.logger.warn(
          `git ${url.pathname} failed (${reason}); retry ${attempt} of ${this.opts.retries} in ${delayMs} ms`,
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
    const url = this.buildUrl(path, opts.query);
    const label = `${method.toUpperCase()} ${url.pathname}${url.search}`;
    let body: Buffer | undefined;
    const headers: Record<string, string> = {
      Accept: 'application/json',
      ...opts.headers,
    };
    if (opts.body !== undefined) {
      if (Buffer.isBuffer(opts.body)) body = opts.body;
      else {
        body = Buffer.from(JSON.stringify(opts.body), 'utf8');
        headers['Content-Type'] ??= 'application/json';
      }
    }
    if (method.toUpperCase() !== 'GET' && method.toUpperCase() !== 'HEAD') {
      // Bitbucket's XSRF check is skipped for REST clients that say so.
      headers['X-Atlassian-Token'] ??= 'no-check';
    }
    const response = await this.exchange(
      method.toUpperCase(),
      url,
      headers,
      body,
      opts,
      label,
    );
    const expected = opts.expectedStatus ?? [];
    const ok = response.status >= 200 && response.status < 300;
    if (!ok && !expected.includes(response.status)) {
      throw this.errorFromResponse(response, label).error;
    }
    if (opts.raw)
      return {
        status: response.status,
        headers: response.headers,
        body: response.body as unknown as T,
      };
    return {
      status: response.status,
      headers: response.headers,
      body: this.parseBody<T>(response, label),
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

  // ---------------------------------------------------------------------------------------------

  private buildUrl(path: string, query?: BitbucketQuery): URL {
    if (!path.startsWith('/')) {
      throw new Error(`Bitbucket path must start with "/": ${path}`);
    }
    const url = new URL(`${this.baseUrl}${path}`);
    if (url.origin !== this.origin)
      throw new Error('Bitbucket path escapes the server');
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return url;
  }

  private async exchange(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Buffer | undefined,
    opts: { signal?: AbortSignal; retry?: boolean },
    label: string,
    maxBytes = this.opts.maxResponseBytes,
  ): Promise<RawResponse> {
    const retries = opts.retry === false ? 0 : this.opts.retries;
    const allHeaders: Record<string, string> = {
      'User-Agent': 'flux-bootstrap-backstage',
      ...headers,
    };
    if (url.origin === this.origin)
      Object.assign(allHeaders, gitHttpAuthHeaders(this.auth));
    for (let attempt = 0; ; attempt++) {
      if (opts.signal?.aborted) {
        throw new OperationAbortedError(
          `Cancelled while calling Bitbucket (${label})`,
        );
      }
      const attemptSignal = combineSignals(
        [opts.signal],
        this.opts.requestTimeoutMs,
      );
      let failure: AttemptFailure;
      try {
        const response = await sendOnce({
          url,
          method,
          headers: allHeaders,
          body,
          agent: this.agent,
          signal: attemptSignal.signal,
          maxBytes,
        });
        if (
          response.status < 400 &&
          !(response.status >= 300 && response.status < 400)
        ) {
          this.logger.debug(`Bitbucket ${label} → ${response.status}`);
          return response;
        }
        if (response.status >= 300 && response.status < 400) return response;
        failure = this.errorFromResponse(response, label);
        if (!failure.retryable) return response;
      } catch (error) {
        if (opts.signal?.aborted) {
          throw new OperationAbortedError(
            `Cancelled while calling Bitbucket (${label})`,
          );
        }
        failure = this.errorFromException(
          error,
          label,
          attemptSignal.timedOut(),
        );
      } finally {
        attemptSignal.dispose();
      }
      if (!failure.retryable || attempt >= retries) {
        if (attempt > 0) {
          // Retries exhausted on a transient failure: say what to do about it.
          const advice = failure.retryable
            ? '; Bitbucket is unavailable or overloaded, try again later (re-running is safe: what was already done is reused)'
            : '';
          throw new BitbucketError(
            `${failure.error.message} (gave up after ${
              attempt + 1
            } attempts${advice})`,
            {
              kind: failure.error.kind,
              status: failure.error.status,
              details: failure.error.details,
              request: failure.error.request,
              code: failure.error.code,
            },
          );
        }
        throw failure.error;
      }
      let delayMs: number;
      if (failure.retryAfterMs !== undefined) {
        if (failure.retryAfterMs > this.opts.maxRetryAfterMs) {
          throw new BitbucketError(
            `${
              failure.error.message
            }; Bitbucket asks to retry after ${Math.ceil(
              failure.retryAfterMs / 1000,
            )} s, longer than the ${Math.round(
              this.opts.maxRetryAfterMs / 1000,
            )} s this client waits`,
            {
              kind: failure.error.kind,
              status: failure.error.status,
              details: failure.error.details,
              request: label,
            },
          );
        }
        delayMs = failure.retryAfterMs;
      } else {
        const backoff = Math.min(
          this.opts.maxDelayMs,
          this.opts.baseDelayMs * 2 ** attempt,
        );
        delayMs = Math.round(backoff / 2 + (Math.random() * backoff) / 2);
      }
      this.logger.warn(
        `Bitbucket ${label} failed (${
          failure.error.status ?? failure.error.code ?? failure.error.kind
        }); retry ${attempt + 1} of ${retries} in ${delayMs} ms`,
      );
      try {
        await sleep(delayMs, opts.signal);
      } catch {
        throw new OperationAbortedError(
          `Cancelled while calling Bitbucket (${label})`,
        );
      }
    }
  }

  private parseBody<T>(response: RawResponse, label: string): T {
    if (response.status === 204 || response.body.length === 0)
      return undefined as T;
    const text = response.body.toString('utf8');
    const contentType = response.headers.get('content-type');
    if (looksLikeHtml(contentType, text)) {
      throw new BitbucketError(
        this.redactor.redact(
          `Bitbucket ${label} answered with an HTML page${
            htmlTitle(text) ? ` ("${htmlTitle(text)}")` : ''
          } instead of JSON (HTTP ${response.status}): ${
            this.host.apiBaseUrl
          } does not look like Bitbucket's REST API. ${this.contextPathHint()}`,
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

  private contextPathHint(): string {
    return `If Bitbucket runs under a context path (e.g. https://host/bitbucket), integrations.bitbucketServer[].apiBaseUrl must include it (https://host/bitbucket/rest/api/1.0).`;
  }

  private errorFromResponse(
    response: RawResponse,
    label: string,
  ): AttemptFailure {
    const { status } = response;
    const text = response.body.toString('utf8');
    const contentType = response.headers.get('content-type');
    if (status >= 300 && status < 400) {
      let where = response.headers.get('location') ?? 'an unknown location';
      try {
        const loc = new URL(where, this.baseUrl);
        loc.username = '';
        loc.password = '';
        loc.search = '';
        where = loc.toString();
      } catch {
        // keep as is
      }
      return {
        retryable: false,
        error: new BitbucketError(
          this.redactor.redact(
            `Bitbucket ${label} was redirected (HTTP ${status}) to ${where}; redirects are not followed. Check the scheme, host and context path of integrations.bitbucketServer[].apiBaseUrl (${this.host.apiBaseUrl}).`,
          ),
          { kind: 'unexpected-response', status, request: label },
        ),
      };
    }
    let details: BitbucketErrorDetail[] = [];
    let html = false;
    if (looksLikeHtml(contentType, text)) html = true;
    else {
      try {
        details = parseErrorDetails(JSON.parse(text));
      } catch {
        details = [];
      }
    }
    const kind = kindForStatus(status, details);
    const retryable =
      status === 429 || (status >= 500 && status !== 501 && status !== 505);
    let what: string;
    if (details.length) {
      what = details
        .map(d => {
          const ex = shortExceptionName(d.exceptionName);
          return ex ? `${d.message} [${ex}]` : d.message;
        })
        .join('; ');
    } else if (html) {
      const title = htmlTitle(text);
      const hint =
        status === 404
          ? this.contextPathHint()
          : 'A proxy or login page may be in front of Bitbucket.';
      what = `an HTML page${
        title ? ` ("${title}")` : ''
      } instead of Bitbucket's JSON error. ${hint}`;
    } else {
      what = text.trim().slice(0, 200) || response.statusText || 'no details';
    }
    const message = this.redactor.redact(
      `Bitbucket ${label} failed with HTTP ${status}${
        response.statusText ? ` ${response.statusText}` : ''
      }: ${what}`,
    );
    const safeDetails = details.map(d => ({
      context: d.context,
      exceptionName: d.exceptionName,
      message: this.redactor.redact(d.message),
    }));
    return {
      retryable,
      retryAfterMs:
        status === 429 || status === 503
          ? parseRetryAfter(response.headers.get('retry-after'))
          : undefined,
      error: new BitbucketError(message, {
        kind: html && status === 404 ? 'unexpected-response' : kind,
        status,
        details: safeDetails,
        request: label,
      }),
    };
  }

  private errorFromException(
    error: unknown,
    label: string,
    timedOut: boolean,
  ): AttemptFailure {
    if (timedOut) {
      return {
        retryable: true,
        error: new BitbucketError(
          `Bitbucket ${label} got no answer within ${this.opts.requestTimeoutMs} ms`,
          { kind: 'timeout', request: label },
        ),
      };
    }
    if (error instanceof ResponseTooLargeError) {
      return {
        retryable: false,
        error: new BitbucketError(`Bitbucket ${label}: ${error.message}`, {
          kind: 'unexpected-response',
          request: label,
        }),
      };
    }
    const e = error as { code?: string; message?: string };
    const code = e?.code;
    const reason = this.redactor.redact(e?.message ?? String(error));
    if (code && TLS_CODES.test(code)) {
      return {
        retryable: false,
        error: new BitbucketError(
          `Bitbucket ${label}: TLS connection to ${
            new URL(this.baseUrl).host
          } failed (${code}: ${reason}). If the server uses a private or self-signed CA, add its PEM as fluxBootstrap.bitbucketServer[].caData or caFile for host ${
            this.host.host
          }.`,
          { kind: 'network', request: label, code },
        ),
      };
    }
    const retryable =
      !!code &&
      (isTransientNetworkCode(code) || /socket hang up/i.test(reason));
    return {
      retryable: retryable || /socket hang up/i.test(reason),
      error: new BitbucketError(
        `Bitbucket ${label}: cannot reach ${new URL(this.baseUrl).host} (${
          code ?? 'error'
        }: ${reason})`,
        { kind: 'network', request: label, code },
      ),
    };
  }
}
