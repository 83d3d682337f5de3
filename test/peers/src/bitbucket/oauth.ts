import crypto from 'node:crypto';
import type http from 'node:http';
import {
  BitbucketState,
  OAUTH_SCOPES,
  OAuthClient,
  OAuthScope,
  oauthRank,
  Principal,
  Token,
  User,
} from './model';
import type { LinkContext } from './render';

/** Name of the session cookie of the double's login page (Bitbucket's). */
export const SESSION_COOKIE = 'BITBUCKETSESSIONID';

export interface OAuthOptions {
  /** Lifetime of access tokens (`expires_in`), seconds. */
  accessTokenTtlSeconds: number;
  /** Lifetime of authorization codes, seconds. */
  codeTtlSeconds: number;
}

interface AuthCode {
  clientId: string;
  user: string;
  scopes: OAuthScope[];
  /** The redirect_uri given to /authorize, which /token must repeat. */
  redirectUri?: string;
  challenge?: string;
  method?: 'S256' | 'plain';
  expiresAt: number;
  used: boolean;
  /** Access token ids issued from this code (revoked if the code is replayed). */
  issued: string[];
}

interface RefreshToken {
  clientId: string;
  user: string;
  scopes: OAuthScope[];
  /** Ids of the access tokens of this grant (revoked together). */
  accessTokenId: string;
}

interface Session {
  user: string;
  /** XSRF token of the session's forms (Bitbucket's `atl_token`). */
  xsrf: string;
}

const SCOPE_TEXT: Record<OAuthScope, string> = {
  PUBLIC_REPOS: 'View public projects and repositories',
  ACCOUNT_WRITE: 'Update your account',
  REPO_READ: 'View projects and repositories',
  REPO_WRITE: 'Update projects and repositories',
  REPO_ADMIN: 'Administer repositories',
  PROJECT_ADMIN: 'Administer projects',
  ADMIN_WRITE: 'Administer Bitbucket',
  SYSTEM_ADMIN: 'Administer the system',
};

const html = (s: string) =>
  s.replace(
    /[&<>"']/g,
    c =>
      ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[
        c
      ]!),
  );

const page = (title: string, body: string) =>
  `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${html(
    title,
  )} - Bitbucket</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}label{display:block;margin:.6em 0}
button{margin-right:.6em;padding:.4em 1.2em}.error{color:#b00}</style></head>
<body><h1>${html(title)}</h1>
${body}
</body></html>
`;

/** A string parameter of a form/query/JSON body. */
type Params = Record<string, string>;

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

const PKCE_RE = /^[A-Za-z0-9._~-]{43,128}$/;

/**
 * The OAuth 2.0 authorization server of Bitbucket Data Center's incoming application links:
 * `/rest/oauth2/latest/authorize` (authorization code, with or without PKCE S256/plain; the
 * user signs in on `/login` and allows on a consent page), `/rest/oauth2/latest/token`
 * (`authorization_code` and `refresh_token` grants; client credentials by Basic auth or in the
 * parameters; OAuth 2.0 JSON errors), and `/plugins/servlet/applinks/whoami`.
 */
export class BitbucketOAuth {
  private codes = new Map<string, AuthCode>();
  private refresh = new Map<string, RefreshToken>();
  private sessions = new Map<string, Session>();

  constructor(
    private readonly state: BitbucketState,
    private readonly links: () => LinkContext,
    private readonly contextPath: string,
    private readonly opts: OAuthOptions,
  ) {}

  /** Registers an incoming application link; returns its (generated unless given) credentials. */
  registerClient(c: {
    name?: string;
    clientId?: string;
    clientSecret?: string;
    redirectUris: string[];
    scopes?: OAuthScope[];
  }): OAuthClient {
    if (c.redirectUris.length === 0)
      throw new Error('Bitbucket double: an OAuth client needs a redirect URI');
    for (const s of c.scopes ?? [])
      if (!OAUTH_SCOPES.includes(s))
        throw new Error(`Bitbucket double: unknown OAuth scope ${s}`);
    const client: OAuthClient = {
      clientId: c.clientId ?? crypto.randomBytes(16).toString('hex'),
      clientSecret:
        c.clientSecret ?? crypto.randomBytes(32).toString('base64url'),
      name: c.name ?? 'Backstage',
      redirectUris: [...c.redirectUris],
      scopes: c.scopes ?? ['PROJECT_ADMIN', 'ACCOUNT_WRITE'],
    };
    this.state.oauthClients = this.state.oauthClients.filter(
      x => x.clientId !== client.clientId,
    );
    this.state.oauthClients.push(client);
    return client;
  }

  /** Marks OAuth access tokens expired (all, or of a user / client); returns how many. */
  expireTokens(filter: { user?: string; clientId?: string } = {}): number {
    let n = 0;
    for (const t of this.tokensOf(filter)) {
      t.expiresAt = Date.now() - 1;
      n++;
    }
    return n;
  }

  /** Revokes OAuth access and refresh tokens (all, or of a user / client); returns how many access tokens. */
  revokeTokens(filter: { user?: string; clientId?: string } = {}): number {
    const gone = new Set(this.tokensOf(filter).map(t => t.id));
    this.state.tokens = this.state.tokens.filter(t => !gone.has(t.id));
    for (const [k, r] of this.refresh)
      if (
        (!filter.user || r.user === filter.user.toLowerCase()) &&
        (!filter.clientId || r.clientId === filter.clientId)
      )
        this.refresh.delete(k);
    return gone.size;
  }

  private tokensOf(filter: { user?: string; clientId?: string }): Token[] {
    return this.state.tokens.filter(
      t =>
        t.kind === 'oauth' &&
        (!filter.user || t.user === filter.user.toLowerCase()) &&
        (!filter.clientId || t.clientId === filter.clientId),
    );
  }

  /** The user of a browser session cookie, if any. */
  sessionPrincipal(cookieHeader: string | undefined): Principal | undefined {
    const sid = parseCookies(cookieHeader)[SESSION_COOKIE];
    const s = sid ? this.sessions.get(sid) : undefined;
    const user = s ? this.state.user(s.user) : undefined;
    return user && user.active ? { user, session: true } : undefined;
  }

  private session(req: http.IncomingMessage) {
    const sid = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    const s = sid ? this.sessions.get(sid) : undefined;
    const user = s ? this.state.user(s.user) : undefined;
    return s && user && user.active ? { s, user } : undefined;
  }

  /**
   * Handles the OAuth, login, whoami and avatar paths; returns the status sent, or undefined
   * when the path is not one of them. `p` is the path below the context path.
   */
  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    p: string,
    url: URL,
    rawBody: () => Promise<Buffer>,
    whoami: () => Principal | undefined,
  ): Promise<number | undefined> {
    const M = req.method ?? 'GET';
    if (/^\/rest\/oauth2\/(latest|1\.0)\/authorize$/.test(p)) {
      if (M === 'GET')
        return this.authorize(req, res, Object.fromEntries(url.searchParams));
      if (M === 'POST')
        return this.decide(req, res, await this.form(req, rawBody));
      return this.text(res, 405, 'Method not allowed');
    }
    if (/^\/rest\/oauth2\/(latest|1\.0)\/token$/.test(p)) {
      if (M !== 'POST') return this.text(res, 405, 'Method not allowed');
      const params: Params = {
        ...Object.fromEntries(url.searchParams),
        ...(await this.form(req, rawBody)),
      };
      return this.token(req, res, params);
    }
    if (p === '/login' && M === 'GET')
      return this.loginPage(res, url.searchParams.get('next') ?? '', '');
    if (p === '/j_atl_security_check' && M === 'POST')
      return this.login(res, await this.form(req, rawBody));
    if (p === '/plugins/servlet/applinks/whoami' && M === 'GET') {
      // the user of an OAuth token, a password or a browser session; HTTP access tokens get an
      // empty answer (observed on 8.19), and so does an anonymous caller — always 200
      const who = whoami();
      const named =
        who && (!who.token || who.token.kind === 'oauth')
          ? who.user
          : undefined;
      res.writeHead(200, {
        'Content-Type': 'text/plain;charset=UTF-8',
        ...(named ? { 'X-AUSERNAME': encodeURIComponent(named.name) } : {}),
      });
      res.end(named ? named.name : '');
      return 200;
    }
    const avatar = /^\/users\/([^/]+)\/avatar\.png$/.exec(p);
    if (avatar && M === 'GET') {
      if (!this.state.user(avatar[1])) return this.text(res, 404, 'Not found');
      // a 1×1 transparent PNG
      res.writeHead(200, { 'Content-Type': 'image/png' });
      res.end(
        Buffer.from(
          'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
          'base64',
        ),
      );
      return 200;
    }
    return undefined;
  }

  private text(res: http.ServerResponse, status: number, msg: string) {
    res
      .writeHead(status, { 'Content-Type': 'text/plain;charset=UTF-8' })
      .end(`${msg}\n`);
    return status;
  }

  private htmlPage(
    res: http.ServerResponse,
    status: number,
    title: string,
    body: string,
    headers: Record<string, string | string[]> = {},
  ) {
    res.writeHead(status, {
      'Content-Type': 'text/html;charset=UTF-8',
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(page(title, body));
    return status;
  }

  private async form(
    req: http.IncomingMessage,
    rawBody: () => Promise<Buffer>,
  ): Promise<Params> {
    const raw = (await rawBody()).toString('utf8');
    if (!raw) return {};
    const ct = String(req.headers['content-type'] ?? '');
    if (/json/i.test(ct)) {
      try {
        const o = JSON.parse(raw) as Record<string, unknown>;
        return Object.fromEntries(
          Object.entries(o).map(([k, v]) => [k, String(v)]),
        );
      } catch {
        return {};
      }
    }
    return Object.fromEntries(new URLSearchParams(raw));
  }

  private redirect(
    res: http.ServerResponse,
    location: string,
    headers: Record<string, string | string[]> = {},
  ) {
    res.writeHead(302, { Location: location, ...headers }).end();
    return 302;
  }

  private withParams(uri: string, params: Params) {
    const u = new URL(uri);
    for (const [k, v] of Object.entries(params))
      if (v !== undefined) u.searchParams.set(k, v);
    return u.toString();
  }

  /** Validates an authorization request; returns the request, or sends the error and returns its status. */
  private validateAuthorize(
    res: http.ServerResponse,
    q: Params,
  ):
    | {
        client: OAuthClient;
        redirectUri: string;
        explicitRedirect: boolean;
        scopes: OAuthScope[];
        challenge?: string;
        method?: 'S256' | 'plain';
      }
    | number {
    const client = this.state.oauthClients.find(
      c => c.clientId === q.client_id,
    );
    if (!client)
      return this.htmlPage(
        res,
        400,
        'Invalid OAuth request',
        '<p class="error">The client_id does not belong to an application link of this Bitbucket.</p>',
      );
    const explicitRedirect = !!q.redirect_uri;
    const redirectUri = q.redirect_uri || client.redirectUris[0];
    if (!client.redirectUris.includes(redirectUri))
      return this.htmlPage(
        res,
        400,
        'Invalid OAuth request',
        '<p class="error">The redirect_uri does not match the redirect URL of the application link.</p>',
      );
    const fail = (error: string, description: string) =>
      this.redirect(
        res,
        this.withParams(redirectUri, {
          error,
          error_description: description,
          ...(q.state !== undefined ? { state: q.state } : {}),
        }),
      );
    if (q.response_type !== 'code')
      return fail(
        'unsupported_response_type',
        'Only the authorization code flow (response_type=code) is supported.',
      );
    const requested = (q.scope ?? '')
      .split(/[\s,]+/)
      .filter(Boolean)
      .map(s => s.toUpperCase());
    const scopes = (
      requested.length ? requested : ['PUBLIC_REPOS']
    ) as OAuthScope[];
    const unknown = scopes.filter(s => !OAUTH_SCOPES.includes(s));
    if (unknown.length)
      return fail('invalid_scope', `Unknown scope(s): ${unknown.join(' ')}`);
    const allowedRank = oauthRank(client.scopes);
    const refused = scopes.filter(
      s =>
        (s === 'ACCOUNT_WRITE' && !client.scopes.includes('ACCOUNT_WRITE')) ||
        oauthRank([s]) > allowedRank,
    );
    if (refused.length)
      return fail(
        'invalid_scope',
        `The application link does not allow the scope(s): ${refused.join(
          ' ',
        )}`,
      );
    let method: 'S256' | 'plain' | undefined;
    if (q.code_challenge !== undefined) {
      const m = q.code_challenge_method ?? 'plain';
      if (m !== 'S256' && m !== 'plain')
        return fail(
          'invalid_request',
          'code_challenge_method must be S256 or plain.',
        );
      if (!PKCE_RE.test(q.code_challenge))
        return fail('invalid_request', 'The code_challenge is malformed.');
      method = m;
    } else if (q.code_challenge_method !== undefined) {
      return fail(
        'invalid_request',
        'code_challenge_method was given without a code_challenge.',
      );
    }
    return {
      client,
      redirectUri,
      explicitRedirect,
      scopes: [...new Set(scopes)],
      challenge: q.code_challenge,
      method,
    };
  }

  private authorize(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    q: Params,
  ): number {
    const v = this.validateAuthorize(res, q);
    if (typeof v === 'number') return v;
    const current = this.session(req);
    const base = this.links().baseUrl;
    if (!current) {
      const next = `${
        this.contextPath
      }/rest/oauth2/latest/authorize?${new URLSearchParams(q).toString()}`;
      return this.redirect(
        res,
        `${base}/login?next=${encodeURIComponent(next)}`,
      );
    }
    const hidden = Object.entries({ ...q, atl_token: current.s.xsrf })
      .map(
        ([k, val]) =>
          `<input type="hidden" name="${html(k)}" value="${html(val)}">`,
      )
      .join('\n');
    const scopes = v.scopes
      .map(s => `<li><strong>${html(s)}</strong>: ${html(SCOPE_TEXT[s])}</li>`)
      .join('\n');
    return this.htmlPage(
      res,
      200,
      `Allow ${v.client.name} to access your account?`,
      `<p>Signed in as <strong id="current-user">${html(
        current.user.name,
      )}</strong>.</p>
<p><strong>${html(
        v.client.name,
      )}</strong> wants to access your Bitbucket account with these permissions:</p>
<ul id="scopes">${scopes}</ul>
<form method="post" action="${html(`${base}/rest/oauth2/latest/authorize`)}">
${hidden}
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>`,
    );
  }

  private decide(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    form: Params,
  ): number {
    const current = this.session(req);
    if (!current || form.atl_token !== current.s.xsrf)
      return this.htmlPage(
        res,
        403,
        'XSRF check failed',
        '<p class="error">Your session expired or the form was not sent by this page. Start again.</p>',
      );
    const { decision, atl_token: _xsrf, ...q } = form;
    const v = this.validateAuthorize(res, q);
    if (typeof v === 'number') return v;
    if (decision !== 'allow') {
      return this.redirect(
        res,
        this.withParams(v.redirectUri, {
          error: 'access_denied',
          error_description: 'The user denied the request.',
          ...(q.state !== undefined ? { state: q.state } : {}),
        }),
      );
    }
    const code = crypto.randomBytes(24).toString('base64url');
    this.codes.set(code, {
      clientId: v.client.clientId,
      user: current.user.slug,
      scopes: v.scopes,
      redirectUri: v.explicitRedirect ? v.redirectUri : undefined,
      challenge: v.challenge,
      method: v.method,
      expiresAt: Date.now() + this.opts.codeTtlSeconds * 1000,
      used: false,
      issued: [],
    });
    this.state.record(
      { user: current.user, session: true },
      'OAUTH_AUTHORIZED',
      {
        details: { clientId: v.client.clientId, scopes: v.scopes },
      },
    );
    return this.redirect(
      res,
      this.withParams(v.redirectUri, {
        code,
        ...(q.state !== undefined ? { state: q.state } : {}),
      }),
    );
  }

  private loginPage(res: http.ServerResponse, next: string, error: string) {
    return this.htmlPage(
      res,
      200,
      'Log in',
      `${error ? `<p class="error" id="login-error">${html(error)}</p>` : ''}
<form method="post" action="${html(
        `${this.links().baseUrl}/j_atl_security_check`,
      )}">
<label for="j_username">Username <input id="j_username" name="j_username" autocomplete="username"></label>
<label for="j_password">Password <input id="j_password" name="j_password" type="password" autocomplete="current-password"></label>
<input type="hidden" name="next" value="${html(next)}">
<button type="submit" id="submit">Log in</button>
</form>`,
    );
  }

  private login(res: http.ServerResponse, form: Params): number {
    const user = this.state.user(form.j_username ?? '');
    const next = form.next ?? '';
    if (
      !user ||
      !user.active ||
      user.password === undefined ||
      user.password !== form.j_password
    ) {
      this.state.record(undefined, 'LOGIN_FAILED', {
        details: { username: form.j_username ?? '' },
      });
      return this.loginPage(
        res,
        next,
        'Your username and password are incorrect. Please try again.',
      );
    }
    const sid = crypto.randomBytes(24).toString('hex');
    this.sessions.set(sid, {
      user: user.slug,
      xsrf: crypto.randomBytes(16).toString('hex'),
    });
    this.state.record({ user, session: true }, 'LOGIN');
    // only a path of this Bitbucket may be the target (no open redirect)
    const safeNext =
      next.startsWith(`${this.contextPath}/`) && !next.startsWith('//')
        ? next
        : `${this.contextPath}/`;
    const origin = new URL(this.links().baseUrl).origin;
    return this.redirect(res, `${origin}${safeNext}`, {
      'Set-Cookie': `${SESSION_COOKIE}=${sid}; Path=${
        this.contextPath || '/'
      }; HttpOnly; SameSite=Lax`,
    });
  }

  /** 400 `invalid_grant` (RFC 6749 §5.2) with `description`. */
  private invalidGrant(res: http.ServerResponse, description: string) {
    return this.tokenError(res, 400, 'invalid_grant', description);
  }

  private tokenError(
    res: http.ServerResponse,
    status: number,
    error: string,
    description: string,
    headers: Record<string, string> = {},
  ) {
    res.writeHead(status, {
      'Content-Type': 'application/json;charset=UTF-8',
      'Cache-Control': 'no-store',
      Pragma: 'no-cache',
      ...headers,
    });
    res.end(JSON.stringify({ error, error_description: description }));
    return status;
  }

  private issue(
    res: http.ServerResponse,
    client: OAuthClient,
    user: User,
    scopes: OAuthScope[],
  ): { status: number; tokenId: string } {
    const access: Token = {
      id: this.state.newTokenId(),
      name: `${client.name} (OAuth 2.0)`,
      token: crypto.randomBytes(32).toString('base64url'),
      kind: 'oauth',
      user: user.slug,
      oauthScopes: scopes,
      clientId: client.clientId,
      expiresAt: Date.now() + this.opts.accessTokenTtlSeconds * 1000,
    };
    this.state.tokens.push(access);
    const refresh = crypto.randomBytes(32).toString('base64url');
    this.refresh.set(refresh, {
      clientId: client.clientId,
      user: user.slug,
      scopes,
      accessTokenId: access.id,
    });
    res.writeHead(200, {
      'Content-Type': 'application/json;charset=UTF-8',
      'Cache-Control': 'no-store',
      Pragma: 'no-cache',
    });
    res.end(
      JSON.stringify({
        access_token: access.token,
        token_type: 'bearer',
        expires_in: this.opts.accessTokenTtlSeconds,
        refresh_token: refresh,
        scope: scopes.join(' '),
      }),
    );
    return { status: 200, tokenId: access.id };
  }

  private token(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    params: Params,
  ): number {
    // client authentication: HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or parameters
    let clientId = params.client_id;
    let clientSecret = params.client_secret;
    const auth = req.headers.authorization;
    let viaHeader = false;
    if (auth && /^basic\s+/i.test(auth)) {
      const decoded = Buffer.from(
        auth.replace(/^basic\s+/i, ''),
        'base64',
      ).toString('utf8');
      const i = decoded.indexOf(':');
      if (i > 0) {
        const dec = (s: string) => {
          try {
            return decodeURIComponent(s.replace(/\+/g, ' '));
          } catch {
            return s;
          }
        };
        clientId = dec(decoded.slice(0, i));
        clientSecret = dec(decoded.slice(i + 1));
        viaHeader = true;
      }
    }
    const client = this.state.oauthClients.find(c => c.clientId === clientId);
    if (
      !clientId ||
      !clientSecret ||
      !client ||
      client.clientSecret !== clientSecret
    )
      return this.tokenError(
        res,
        401,
        'invalid_client',
        'Client authentication failed: unknown client_id or wrong client_secret.',
        viaHeader ? { 'WWW-Authenticate': 'Basic realm="OAuth 2.0"' } : {},
      );
    const grant = params.grant_type;
    if (!grant)
      return this.tokenError(
        res,
        400,
        'invalid_request',
        'grant_type is required.',
      );
    if (grant === 'authorization_code') {
      if (!params.code)
        return this.tokenError(
          res,
          400,
          'invalid_request',
          'code is required.',
        );
      const code = this.codes.get(params.code);
      if (!code || code.clientId !== client.clientId)
        return this.invalidGrant(res, 'The authorization code is invalid.');
      if (code.used) {
        // a replayed code: revoke what it gave (RFC 6749 §4.1.2)
        const gone = new Set(code.issued);
        this.state.tokens = this.state.tokens.filter(t => !gone.has(t.id));
        for (const [k, r] of this.refresh)
          if (gone.has(r.accessTokenId)) this.refresh.delete(k);
        return this.invalidGrant(
          res,
          'The authorization code was already used.',
        );
      }
      if (code.expiresAt < Date.now())
        return this.invalidGrant(res, 'The authorization code has expired.');
      if (
        code.redirectUri !== undefined &&
        params.redirect_uri !== code.redirectUri
      )
        return this.invalidGrant(
          res,
          'redirect_uri does not match the one of the authorization request.',
        );
      if (code.challenge !== undefined) {
        const verifier = params.code_verifier ?? '';
        const expected =
          code.method === 'S256'
            ? crypto.createHash('sha256').update(verifier).digest('base64url')
            : verifier;
        if (!PKCE_RE.test(verifier) || expected !== code.challenge)
          return this.invalidGrant(
            res,
            'PKCE verification failed: the code_verifier does not match the code_challenge.',
          );
      }
      const user = this.state.user(code.user);
      if (!user || !user.active)
        return this.invalidGrant(res, 'The user is inactive.');
      code.used = true;
      const r = this.issue(res, client, user, code.scopes);
      code.issued.push(r.tokenId);
      this.state.record({ user }, 'OAUTH_TOKEN_ISSUED', {
        via: `oauth:${client.clientId}`,
        details: { clientId: client.clientId, scopes: code.scopes },
      });
      return r.status;
    }
    if (grant === 'refresh_token') {
      const rt = params.refresh_token
        ? this.refresh.get(params.refresh_token)
        : undefined;
      if (!params.refresh_token)
        return this.tokenError(
          res,
          400,
          'invalid_request',
          'refresh_token is required.',
        );
      if (!rt || rt.clientId !== client.clientId)
        return this.invalidGrant(
          res,
          'The refresh token is invalid or was revoked.',
        );
      let scopes = rt.scopes;
      if (params.scope) {
        const asked = params.scope
          .split(/[\s,]+/)
          .filter(Boolean) as OAuthScope[];
        if (asked.some(s => !rt.scopes.includes(s)))
          return this.tokenError(
            res,
            400,
            'invalid_scope',
            'A refreshed token cannot have scopes the grant did not have.',
          );
        scopes = asked;
      }
      const user = this.state.user(rt.user);
      if (!user || !user.active)
        return this.invalidGrant(res, 'The user is inactive.');
      // refresh tokens rotate: the old one is spent
      this.refresh.delete(params.refresh_token);
      const r = this.issue(res, client, user, scopes);
      this.state.record({ user }, 'OAUTH_TOKEN_REFRESHED', {
        via: `oauth:${client.clientId}`,
        details: { clientId: client.clientId, scopes },
      });
      return r.status;
    }
    return this.tokenError(
      res,
      400,
      'unsupported_grant_type',
      `grant_type ${grant} is not supported (use authorization_code or refresh_token).`,
    );
  }
}
