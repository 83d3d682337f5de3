import type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
} from '../config/bitbucketServer';
import {
  HttpClient,
  HttpError,
  withSystemRoots,
  type HttpClientOptions,
  type HttpResponse,
} from '../http';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import {
  BitbucketError,
  BitbucketErrorDetail,
  BitbucketErrorKind,
  kindForStatus,
  parseErrorDetails,
} from './errors';
import type {
  BitbucketAccessKey,
  BitbucketBranch,
  BitbucketPage,
  BitbucketRepoPermission,
  BitbucketRepository,
  BitbucketUser,
} from './types';

/** Options of {@link BitbucketServerClient}; timeout and retries default to the host's. @public */
export interface BitbucketClientOptions
  extends Pick<
    HttpClientOptions,
    | 'logger'
    | 'redactor'
    | 'retries'
    | 'baseDelayMs'
    | 'maxDelayMs'
    | 'maxRetryAfterMs'
    | 'maxResponseBytes'
  > {
  requestTimeoutMs?: number;
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
  /** Statuses returned instead of thrown (2xx always are), e.g. `[404]` for an existence check. */
  expectedStatus?: number[];
  headers?: Record<string, string>;
  /** May a failed attempt be sent again? Default: all but POST (`true`: a repeat converges). */
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

/** `Bearer` for a token, `Basic` for a username and password: for REST and git. @public */
export function gitHttpAuthHeaders(
  auth: BitbucketServerAuth,
): Record<string, string> {
  if ('token' in auth) return { Authorization: `Bearer ${auth.token}` };
  const basic = Buffer.from(`${auth.username}:${auth.password}`).toString(
    'base64',
  );
  return { Authorization: `Basic ${basic}` };
}

/** The secret strings of an auth value (for a Redactor). @public */
export function authSecrets(auth: BitbucketServerAuth): string[] {
  const [, value] = gitHttpAuthHeaders(auth).Authorization.split(' ');
  return 'token' in auth ? [auth.token, value] : [auth.password, value];
}

/** `restPath('/rest/api/1.0/projects/{}', key)`: each segment URL-encoded (a name never changes the path). */
export function restPath(
  template: string,
  ...segments: Array<string | number>
): string {
  let i = 0;
  return template.replace(/\{\}/g, () =>
    encodeURIComponent(String(segments[i++])),
  );
}

/** `/rest/<api>/projects/<key>/repos/<slug><suffix>`, key and slug URL-encoded. */
export function repoPath(
  projectKey: string,
  slug: string,
  suffix = '',
  api = 'api/1.0',
): string {
  const path = restPath(`/rest/${api}/projects/{}/repos/{}`, projectKey, slug);
  return `${path}${suffix}`;
}

/** `an HTML page ("<title>")` when the answer is a web page (wrong context path, login page). */
function htmlPage(res: HttpResponse): string | undefined {
  const text = res.body.toString('utf8');
  const type = res.headers.get('content-type') ?? '';
  if (
    !/text\/html|application\/xhtml/i.test(type) &&
    !/^\s*<(!doctype|html|head|body)/i.test(text)
  )
    return undefined;
  const title = /<title[^>]*>([^<]{1,120})<\/title>/i.exec(text)?.[1];
  return `an HTML page${
    title ? ` ("${title.trim().replace(/\s+/g, ' ')}")` : ''
  }`;
}

/** `X-AUSERNAME` is URL-encoded (`alice%40corp`). */
function decodeHeader(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

const CONTEXT_PATH_HINT =
  'If Bitbucket runs under a context path (e.g. https://host/bitbucket), integrations.bitbucketServer[].apiBaseUrl must include it (https://host/bitbucket/rest/api/1.0).';
const MAX_PAGES = 10_000;
const gaveUp = (attempts: number) =>
  attempts > 1
    ? ` (gave up after ${attempts} attempts; Bitbucket is unavailable or overloaded, try again later (re-running is safe: what was already done is reused))`
    : '';

/**
 * REST client of one Bitbucket Server / Data Center host on the engine's HTTP layer: keeps the
 * context path, sends credentials to this server only, trusts the host's CA, follows no
 * redirects, turns `{"errors":[…]}` bodies and HTML pages into {@link BitbucketError}s without
 * credentials, and remembers the user named in `X-AUSERNAME`.
 * @public
 */
export class BitbucketServerClient {
  readonly host: BitbucketServerHostConfig;
  /** Server root including the context path, no trailing slash. */
  readonly baseUrl: string;
  private readonly redactor: Redactor;
  private readonly logger: EngineLogger;
  private readonly http: HttpClient;
  private readonly origin: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly baseDelayMs?: number;
  private user?: string;
  private owner?: Promise<{ name: string; user?: BitbucketUser }>;

  constructor(
    host: BitbucketServerHostConfig,
    private readonly auth: BitbucketServerAuth,
    opts: BitbucketClientOptions = {},
  ) {
    this.host = host;
    this.baseUrl = host.baseUrl.replace(/\/+$/, '');
    const parsed = new URL(this.baseUrl);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
      throw new Error(`Bitbucket base URL must be http(s): ${parsed.protocol}`);
    this.origin = parsed.origin;
    this.redactor = opts.redactor ?? new Redactor();
    for (const secret of authSecrets(auth)) this.redactor.add(secret);
    this.logger = this.redactor.wrapLogger(opts.logger ?? silentLogger);
    this.timeoutMs = opts.requestTimeoutMs ?? host.requestTimeoutMs ?? 30_000;
    this.retries = opts.retries ?? host.retries ?? 4;
    this.baseDelayMs = opts.baseDelayMs;
    this.http = new HttpClient({
      ...opts,
      tls: { ca: withSystemRoots(host.caPem) },
      timeoutMs: this.timeoutMs,
      retries: this.retries,
      redactor: this.redactor,
    });
  }

  /** The redactor that knows this client's credentials (share it with whatever logs near it). */
  get secrets(): Redactor {
    return this.redactor;
  }

  /** The user Bitbucket named in `X-AUSERNAME` on an answer so far (undefined before any). */
  get authenticatedUser(): string | undefined {
    return this.user;
  }

  /** The HTTPS clone URL Bitbucket uses for a repository: `<baseUrl>/scm/<key>/<slug>.git`. */
  scmUrl(projectKey: string, slug: string): string {
    const path = restPath('/scm/{}/{}.git', projectKey.toLowerCase(), slug);
    return `${this.baseUrl}${path}`;
  }

  /** Nothing to release: the HTTP layer pools connections and closes idle ones. */
  close(): void {}

  /** Git over HTTPS to this server as this client talks REST: credentials (this server only), CA, timeout, retries. */
  gitHttpSettings(gitUrl: string): {
    headers: Record<string, string>;
    caPem?: string;
    timeoutMs: number;
    getRetries: number;
    retryBaseDelayMs?: number;
    onRetry: (reason: string, attempt: number, delayMs: number) => void;
  } {
    const url = new URL(gitUrl);
    let refused: string | undefined;
    if (url.username || url.password)
      refused = 'git URL must not carry credentials';
    else if (url.origin !== this.origin)
      refused = `git URL ${url.origin} is not on the Bitbucket server ${this.origin}; no credentials are sent there`;
    if (refused) throw new BitbucketError(refused, { kind: 'bad-request' });
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

  /** One REST call to `path` under the server root (`/rest/api/1.0/…`); a non-2xx answer not expected throws. */
  async request<T = unknown>(
    method: string,
    path: string,
    opts: BitbucketRequestOptions = {},
  ): Promise<BitbucketResponse<T>> {
    const url = new URL(`${this.baseUrl}${path}`);
    if (!path.startsWith('/') || url.origin !== this.origin)
      throw new Error(`Bitbucket path must stay on the server: ${path}`);
    for (const [k, v] of Object.entries(opts.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const verb = method.toUpperCase();
    const label = `${verb} ${url.pathname}${url.search}`;
    const json = opts.body !== undefined && !Buffer.isBuffer(opts.body);
    const headers: Record<string, string> = {
      Accept: 'application/json',
      ...(json ? { 'Content-Type': 'application/json' } : {}),
      // Bitbucket's XSRF check is skipped for REST clients that say so.
      ...(verb === 'GET' || verb === 'HEAD'
        ? {}
        : { 'X-Atlassian-Token': 'no-check' }),
      ...opts.headers,
      ...gitHttpAuthHeaders(this.auth),
    };
    let res: HttpResponse;
    try {
      res = await this.http.request({
        method: verb,
        url,
        headers,
        body: json ? JSON.stringify(opts.body) : (opts.body as Buffer),
        signal: opts.signal,
        what: `Bitbucket ${label}`,
        idempotent: opts.retry === false ? false : opts.retry || undefined,
      });
    } catch (error) {
      throw this.errorFromException(error, label);
    }
    const user = res.headers.get('x-ausername');
    if (user) this.user = decodeHeader(user);
    if (res.status >= 300 && !opts.expectedStatus?.includes(res.status))
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
    opts: { query?: BitbucketQuery; signal?: AbortSignal; limit?: number } = {},
  ): AsyncIterable<T> {
    const fail = (why: string, status?: number) =>
      this.fail(`GET ${path}`, why, 'unexpected-response', status);
    const { signal, limit = 100 } = opts;
    let start = 0;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query = { ...opts.query, start, limit };
      const { body, status } = await this.request<BitbucketPage<T> | undefined>(
        'GET',
        path,
        { query, signal },
      );
      if (status === 204 || !body) return;
      if (!Array.isArray(body.values)) {
        throw fail(
          `did not answer with a paged list (no "values"); is ${this.host.apiBaseUrl} Bitbucket's REST API?`,
          status,
        );
      }
      yield* body.values;
      const next = body.nextPageStart;
      if (body.isLastPage !== false || typeof next !== 'number') return;
      if (next <= start) {
        throw fail(
          `returned nextPageStart ${next} after start ${start}; refusing to loop`,
          status,
        );
      }
      start = next;
    }
    throw fail(`has more than ${MAX_PAGES} pages`);
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

  /** The user of the credentials (`X-AUSERNAME`/`X-AUSERID`); bad credentials throw `unauthorized`. */
  async whoami(signal?: AbortSignal): Promise<{ name: string; id?: number }> {
    const path = '/rest/api/1.0/application-properties';
    const res = await this.request('GET', path, { signal });
    const raw = res.headers.get('x-ausername');
    if (!raw) {
      throw new BitbucketError(
        `Bitbucket did not identify the user of the credentials (no X-AUSERNAME header on ${this.host.apiBaseUrl}/application-properties): the token or password is not accepted, or a proxy strips Bitbucket's headers`,
        { kind: 'unauthorized', status: res.status, request: `GET ${path}` },
      );
    }
    const id = Number(res.headers.get('x-auserid'));
    return {
      name: decodeHeader(raw),
      id: Number.isFinite(id) && id > 0 ? id : undefined,
    };
  }

  /**
   * The name the credentials act as (`X-AUSERNAME`) and that user, asked once per client. `user`
   * is undefined for the service user of a project or repository HTTP access token: `GET
   * /users/{name}` does not list it (404), or it may not read users (401 AuthorisationException).
   */
  currentUser(
    signal?: AbortSignal,
  ): Promise<{ name: string; user?: BitbucketUser }> {
    this.owner ??= (async () => {
      const name = this.user ?? (await this.whoami(signal)).name;
      const user = await this.getUser(name, signal).catch(error => {
        if (error instanceof BitbucketError && error.kind === 'forbidden')
          return undefined;
        throw error;
      });
      return { name, user };
    })();
    this.owner.catch(() => (this.owner = undefined));
    return this.owner;
  }

  /** The answer to `method path`, or undefined on 404. */
  private async unless404<T>(
    method: string,
    path: string,
    opts: BitbucketRequestOptions = {},
  ) {
    const res = await this.request<T>(method, path, {
      ...opts,
      expectedStatus: [404],
    });
    return res.status === 404 ? undefined : res;
  }

  /** A user by slug; undefined when there is none. */
  async getUser(slug: string, signal?: AbortSignal) {
    const path = restPath('/rest/api/1.0/users/{}', slug);
    return (await this.unless404<BitbucketUser>('GET', path, { signal }))?.body;
  }

  /** A repository; undefined when it (or its project) does not exist. */
  async getRepository(projectKey: string, slug: string, signal?: AbortSignal) {
    const path = repoPath(projectKey, slug);
    return (await this.unless404<BitbucketRepository>('GET', path, { signal }))
      ?.body;
  }

  /** The branch of that exact name, or undefined. */
  async getBranch(
    projectKey: string,
    slug: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<BitbucketBranch | undefined> {
    const query = {
      filterText: branch,
      boostMatches: true,
      orderBy: 'ALPHABETICAL',
    };
    const branches = await this.listAll<BitbucketBranch>(
      repoPath(projectKey, slug, '/branches'),
      { query, signal },
    );
    return branches.find(
      b => b.id === `refs/heads/${branch}` || (!b.id && b.displayId === branch),
    );
  }

  /** The commit a branch points at; undefined when there is no such branch. */
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
  listAccessKeys(projectKey: string, slug: string, signal?: AbortSignal) {
    return this.listAll<BitbucketAccessKey>(
      repoPath(projectKey, slug, '/ssh', 'keys/1.0'),
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
    const { text, label, permission } = key;
    const body = {
      key: { text: text.trim(), ...(label ? { label } : {}) },
      permission,
    };
    const path = repoPath(projectKey, slug, '/ssh', 'keys/1.0');
    return (
      await this.request<BitbucketAccessKey>('POST', path, { body, signal })
    ).body;
  }

  /** Removes an access key by its id; false when it was already gone. */
  async deleteAccessKey(
    projectKey: string,
    slug: string,
    id: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const path = repoPath(projectKey, slug, `/ssh/${id}`, 'keys/1.0');
    return !!(await this.unless404('DELETE', path, { signal }));
  }

  /** A BitbucketError about request `label`, its message redacted. */
  private fail(
    label: string,
    what: string,
    kind: BitbucketErrorKind,
    status?: number,
    details?: BitbucketErrorDetail[],
  ): BitbucketError {
    const message = this.redactor.redact(`Bitbucket ${label} ${what}`);
    return new BitbucketError(message, {
      kind,
      status,
      request: label,
      details,
    });
  }

  private parseBody<T>(res: HttpResponse, label: string): T {
    if (res.status === 204 || res.body.length === 0) return undefined as T;
    const { status } = res;
    const html = htmlPage(res);
    if (html) {
      throw this.fail(
        label,
        `answered with ${html} instead of JSON (HTTP ${status}): ${this.host.apiBaseUrl} does not look like Bitbucket's REST API. ${CONTEXT_PATH_HINT}`,
        'unexpected-response',
        status,
      );
    }
    const text = res.body.toString('utf8');
    const type = res.headers.get('content-type');
    if (type && !/json/i.test(type) && !/^\s*[[{]/.test(text))
      return text as unknown as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      const what = `answered with invalid JSON (HTTP ${status}, ${
        type ?? 'no content type'
      })`;
      throw this.fail(label, what, 'unexpected-response', status);
    }
  }

  private errorFromResponse(res: HttpResponse, label: string): BitbucketError {
    const { status, statusText } = res;
    if (status < 400) {
      const location = res.headers.get('location') ?? '';
      let where = 'an unknown location';
      if (URL.canParse(location, this.baseUrl)) {
        const loc = new URL(location, this.baseUrl);
        loc.username = loc.password = loc.search = '';
        where = loc.toString();
      }
      const what = `was redirected (HTTP ${status}) to ${where}; redirects are not followed. Check the scheme, host and context path of integrations.bitbucketServer[].apiBaseUrl (${this.host.apiBaseUrl}).`;
      return this.fail(label, what, 'unexpected-response', status);
    }
    const html = htmlPage(res);
    let details: BitbucketErrorDetail[] = [];
    try {
      if (!html) details = parseErrorDetails(JSON.parse(res.body.toString()));
    } catch {
      // not JSON
    }
    details = details.map(d => ({
      ...d,
      message: this.redactor.redact(d.message),
    }));
    let what =
      res.body.toString('utf8').trim().slice(0, 200) ||
      statusText ||
      'no details';
    if (details.length) {
      what = details
        .map(d => {
          const ex = d.exceptionName?.split('.').pop();
          return ex ? `${d.message} [${ex}]` : d.message;
        })
        .join('; ');
    } else if (html) {
      what = `${html} instead of Bitbucket's JSON error. ${
        status === 404
          ? CONTEXT_PATH_HINT
          : 'A proxy or login page may be in front of Bitbucket.'
      }`;
    }
    const failed = `failed with HTTP ${status}${
      statusText ? ` ${statusText}` : ''
    }: ${what}${res.retryNote ? `; ${res.retryNote}` : gaveUp(res.attempts)}`;
    const kind =
      html && status === 404
        ? 'unexpected-response'
        : kindForStatus(status, details);
    return this.fail(label, failed, kind, status, details);
  }

  private errorFromException(error: unknown, label: string): Error {
    if (error instanceof OperationAbortedError) return error;
    if (!(error instanceof HttpError)) return this.redactor.redactError(error);
    const host = new URL(this.origin).host;
    const messages: Record<string, string> = {
      timeout: ` got no answer within ${this.timeoutMs} ms`,
      'too-large': `: ${error.detail}`,
      tls: `: TLS connection to ${host} failed (${error.detail}). If the server uses a private or self-signed CA, add its PEM as fluxBootstrap.bitbucketServer[].caData or caFile for host ${this.host.host}.`,
    };
    const kinds: Record<string, BitbucketErrorKind> = {
      timeout: 'timeout',
      'too-large': 'unexpected-response',
    };
    const what =
      messages[error.kind] ?? `: cannot reach ${host} (${error.detail})`;
    const message = `Bitbucket ${label}${what}${gaveUp(error.attempts)}`;
    return new BitbucketError(this.redactor.redact(message), {
      kind: kinds[error.kind] ?? 'network',
      request: label,
      code: error.code,
    });
  }
}
