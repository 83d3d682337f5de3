import crypto from 'node:crypto';
import { commitFile, gitClient, gitOk, tempDirs } from '../git/testUtils';
import {
  BitbucketDouble,
  BitbucketOAuthClient,
  startBitbucketDouble,
} from './double';
import { bearer, errorOf, restClient } from './testClient';

jest.setTimeout(90_000);

const REDIRECT = 'http://127.0.0.1:7007/api/auth/bitbucketServer/handler/frame';
const KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2cOnY1BfQcWuvnh2Vw4ffbCkrhZ/HpmvbWZ0bSpAb flux-prod';

const pkce = () => {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto
    .createHash('sha256')
    .update(verifier)
    .digest('base64url');
  return { verifier, challenge };
};

/** Hidden inputs and the action of the first form of an HTML page. */
function formOf(htmlText: string) {
  const action = /<form[^>]*action="([^"]+)"/.exec(htmlText)?.[1] ?? '';
  const fields: Record<string, string> = {};
  for (const m of htmlText.matchAll(
    /<input type="hidden" name="([^"]+)" value="([^"]*)">/g,
  )) {
    fields[m[1]] = m[2]
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
  }
  return { action: action.replace(/&amp;/g, '&'), fields };
}

describe('Bitbucket double: OAuth 2.0 authorization server (incoming application links)', () => {
  let bb: BitbucketDouble;
  let call: ReturnType<typeof restClient>;
  let client: BitbucketOAuthClient;
  const tmp = tempDirs();

  const get = (url: string, cookie?: string) =>
    fetch(url, {
      redirect: 'manual',
      headers: cookie ? { Cookie: cookie } : {},
    });
  const postForm = (
    url: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ) =>
    fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        ...headers,
      },
      body: new URLSearchParams(form).toString(),
    });

  /** Signs in on the double's page and clicks "Allow": returns the redirect to the application. */
  async function consent(
    user: string,
    password: string,
    params: Record<string, string>,
    decision: 'allow' | 'deny' = 'allow',
  ): Promise<URL> {
    const start = await get(
      `${client.authorizeUrl}?${new URLSearchParams(params)}`,
    );
    expect(start.status).toBe(302);
    const toLogin = new URL(start.headers.get('location')!);
    expect(`${toLogin.origin}${toLogin.pathname}`).toBe(`${bb.baseUrl}/login`);
    const loginPage = await (await get(toLogin.toString())).text();
    expect(loginPage).toContain('id="j_username"');
    const login = await postForm(formOf(loginPage).action, {
      j_username: user,
      j_password: password,
      next: toLogin.searchParams.get('next')!,
    });
    expect(login.status).toBe(302);
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    expect(cookie).toMatch(/^BITBUCKETSESSIONID=/);
    const consentPage = await get(login.headers.get('location')!, cookie);
    expect(consentPage.status).toBe(200);
    const htmlText = await consentPage.text();
    expect(htmlText).toContain(`<strong id="current-user">${user}</strong>`);
    expect(htmlText).toMatch(
      /<button type="submit" name="decision" value="allow" id="allow">Allow<\/button>/,
    );
    const { action, fields } = formOf(htmlText);
    const decided = await postForm(
      action,
      { ...fields, decision },
      { Cookie: cookie },
    );
    expect(decided.status).toBe(302);
    return new URL(decided.headers.get('location')!);
  }

  const token = (
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ) =>
    postForm(client.tokenUrl, form, headers).then(async r => ({
      status: r.status,
      headers: r.headers,
      body: await r.json(),
    }));
  /** The token endpoint's answer to a refresh with the client's credentials. */
  const refresh = (refreshToken: string) =>
    token({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: client.clientId,
      client_secret: client.clientSecret,
    });
  /** The status of a REST GET of `path` with the access token. */
  const statusWith = async (path: string, accessToken: string) =>
    (await call('GET', path, { token: accessToken })).status;

  /** The whole flow with PKCE S256; returns the token response. */
  async function grant(user: string, password: string, scope: string) {
    const { verifier, challenge } = pkce();
    const back = await consent(user, password, {
      client_id: client.clientId,
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope,
      state: 'st-1',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    const t = await token({
      grant_type: 'authorization_code',
      code: back.searchParams.get('code')!,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: client.clientId,
      client_secret: client.clientSecret,
    });
    expect(t.status).toBe(200);
    return t.body;
  }

  beforeAll(async () => {
    bb = await startBitbucketDouble({ contextPath: '/bb' });
    call = restClient(bb);
    bb.addUser({
      name: 'alice',
      displayName: 'Alice Liddell',
      email: 'alice@example.com',
      password: 'alice-pw',
    });
    bb.addUser({ name: 'rita', password: 'rita-pw' });
    bb.addUser({ name: 'cora', password: 'cora-pw' });
    bb.addUser({ name: 'admin' });
    bb.grantGlobal('admin', 'ADMIN');
    bb.addToken({ token: 'admin-token', user: 'admin' });
    bb.addToken({ token: 'alice-http-token', user: 'alice' });
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.addProject({ key: 'OTHER', name: 'Other' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
    bb.grantProject('FLUX', { user: 'rita' }, 'PROJECT_WRITE');
    bb.grantProject('FLUX', { user: 'cora' }, 'REPO_CREATE');
    bb.createRepo('FLUX', 'fleet', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    bb.createRepo('OTHER', 'misc', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    client = bb.registerOAuthClient({
      name: 'Backstage',
      redirectUri: REDIRECT,
      scopes: ['PROJECT_ADMIN'],
    });
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  it('authorization code + PKCE (S256) with plain HTTP calls: login page, consent "Allow", code → access + refresh token', async () => {
    expect(client.authorizeUrl).toBe(
      `${bb.baseUrl}/rest/oauth2/latest/authorize`,
    );
    const t = await grant(
      'alice',
      'alice-pw',
      'PUBLIC_REPOS REPO_WRITE PROJECT_ADMIN',
    );
    expect(t).toEqual({
      access_token: expect.any(String),
      token_type: 'bearer',
      expires_in: 3600,
      refresh_token: expect.any(String),
      scope: 'PUBLIC_REPOS REPO_WRITE PROJECT_ADMIN',
    });
    // the identity calls of Backstage's Bitbucket Server auth provider
    const who = await fetch(`${bb.baseUrl}/plugins/servlet/applinks/whoami`, {
      headers: { Authorization: `Bearer ${t.access_token}` },
    });
    expect(who.status).toBe(200);
    expect(who.headers.get('x-ausername')).toBe('alice');
    expect(await who.text()).toBe('alice');
    const user = await call(
      'GET',
      '/rest/api/latest/users/alice?avatarSize=256',
      { token: t.access_token },
    );
    expect(user.body).toMatchObject({
      name: 'alice',
      id: expect.any(Number),
      displayName: 'Alice Liddell',
      emailAddress: 'alice@example.com',
      avatarUrl: '/bb/users/alice/avatar.png?s=256',
    });
    const avatar = await fetch(
      `${new URL(bb.baseUrl).origin}${user.body.avatarUrl}`,
    );
    expect(avatar.headers.get('content-type')).toBe('image/png');
    expect(bb.state().tokens.filter(x => x.kind === 'oauth')).toEqual([
      expect.objectContaining({
        user: 'alice',
        clientId: client.clientId,
        oauthScopes: ['PUBLIC_REPOS', 'REPO_WRITE', 'PROJECT_ADMIN'],
        expired: false,
      }),
    ]);
    // the state never holds token values or the client secret
    const dump = JSON.stringify(bb.state());
    expect(dump).not.toContain(t.access_token);
    expect(dump).not.toContain(t.refresh_token);
    expect(dump).not.toContain(client.clientSecret);
    // nor does the request log keep the password, the code exchange or the client secret
    const logged = JSON.stringify(
      bb.requests().map(r => ({ path: r.path, query: r.query, body: r.body })),
    );
    expect(logged).toContain('/j_atl_security_check');
    expect(logged).toContain('/rest/oauth2/latest/token');
    for (const secret of [
      'alice-pw',
      client.clientSecret,
      t.refresh_token,
      t.access_token,
    ])
      expect(logged).not.toContain(secret);
  });

  it('REST calls, git pushes and access-key writes with the token are made as that user (X-AUSERNAME, createdBy, audit)', async () => {
    const t = await grant('alice', 'alice-pw', 'PROJECT_ADMIN');
    const created = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
      token: t.access_token,
      body: { name: 'fleet-prod', defaultBranch: 'main' },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('x-ausername')).toBe('alice');
    const key = await call(
      'POST',
      '/rest/keys/1.0/projects/FLUX/repos/fleet-prod/ssh',
      {
        token: t.access_token,
        body: { key: { text: KEY }, permission: 'REPO_READ' },
      },
    );
    expect(key.status).toBe(201);
    const work = tmp.make('work');
    await gitOk(['init', '-q', '-b', 'main', work]);
    await commitFile(work, 'README.md', '# fleet\n');
    await gitOk([
      '-C',
      work,
      ...bearer(t.access_token),
      'push',
      '-q',
      created.body.links.clone.find((l: any) => l.name === 'http').href,
      'main',
    ]);
    const state = bb.state();
    expect(state.repos.find(r => r.slug === 'fleet-prod')).toMatchObject({
      createdBy: 'alice',
    });
    expect(state.accessKeys.find(k => k.slug === 'fleet-prod')).toMatchObject({
      createdBy: 'alice',
      label: 'flux-prod',
    });
    const via = `oauth:${client.clientId}`;
    const acts = state.audit
      .filter(a => a.slug === 'fleet-prod')
      .map(a => [a.action, a.actor, a.via]);
    expect(acts).toEqual([
      ['REPO_CREATED', 'alice', via],
      ['ACCESS_KEY_ADDED', 'alice', via],
      ['PUSH', 'alice', via],
    ]);
  });

  it('without PKCE, client credentials in the body (passport-oauth2) or as Basic; refresh rotates; expired tokens get 401', async () => {
    const back = await consent('alice', 'alice-pw', {
      client_id: client.clientId,
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope: 'REPO_READ',
      state: 'plain',
    });
    expect(back.searchParams.get('state')).toBe('plain');
    const basic = `Basic ${Buffer.from(
      `${client.clientId}:${client.clientSecret}`,
    ).toString('base64')}`;
    const first = await token(
      {
        grant_type: 'authorization_code',
        code: back.searchParams.get('code')!,
        redirect_uri: REDIRECT,
      },
      { Authorization: basic },
    );
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    const refreshed = await refresh(first.body.refresh_token);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.scope).toBe('REPO_READ');
    expect(refreshed.body.access_token).not.toBe(first.body.access_token);
    expect(refreshed.body.refresh_token).not.toBe(first.body.refresh_token);
    const spent = await refresh(first.body.refresh_token);
    expect(spent).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant' },
    });
    const ok = await call('GET', '/rest/api/1.0/projects/FLUX/repos/fleet', {
      token: refreshed.body.access_token,
    });
    expect(ok.status).toBe(200);
    expect(bb.expireOAuthTokens({ user: 'alice' })).toBeGreaterThan(0);
    const expired = await call(
      'GET',
      '/rest/api/1.0/projects/FLUX/repos/fleet',
      { token: refreshed.body.access_token },
    );
    expect(expired.status).toBe(401);
    expect(errorOf(expired).exceptionName).toBe(
      'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException',
    );
    const again = await refresh(refreshed.body.refresh_token);
    expect(again.status).toBe(200);
    expect(
      await statusWith(
        '/rest/api/1.0/projects/FLUX/repos/fleet',
        again.body.access_token,
      ),
    ).toBe(200);
  });

  it('token endpoint errors are OAuth 2.0 JSON (error, error_description); a replayed code revokes what it gave', async () => {
    const { verifier, challenge } = pkce();
    const back = await consent('alice', 'alice-pw', {
      client_id: client.clientId,
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope: 'REPO_READ',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    const code = back.searchParams.get('code')!;
    const creds = {
      client_id: client.clientId,
      client_secret: client.clientSecret,
    };
    const wrongSecret = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: client.clientId,
      client_secret: 'nope',
    });
    expect(wrongSecret).toMatchObject({
      status: 401,
      body: { error: 'invalid_client', error_description: expect.any(String) },
    });
    const noVerifier = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      ...creds,
    });
    expect(noVerifier).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant' },
    });
    expect(noVerifier.body.error_description).toMatch(/PKCE/);
    const badVerifier = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: pkce().verifier,
      ...creds,
    });
    expect(badVerifier).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant' },
    });
    const otherRedirect = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: 'http://127.0.0.1:1/x',
      code_verifier: verifier,
      ...creds,
    });
    expect(otherRedirect).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant' },
    });
    const unsupported = await token({
      grant_type: 'password',
      username: 'alice',
      password: 'alice-pw',
      ...creds,
    });
    expect(unsupported).toMatchObject({
      status: 400,
      body: { error: 'unsupported_grant_type' },
    });
    const good = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      ...creds,
    });
    expect(good.status).toBe(200);
    expect(
      await statusWith('/rest/api/1.0/projects/FLUX', good.body.access_token),
    ).toBe(200);
    const replay = await token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      ...creds,
    });
    expect(replay).toMatchObject({
      status: 400,
      body: {
        error: 'invalid_grant',
        error_description: 'The authorization code was already used.',
      },
    });
    expect(
      await statusWith('/rest/api/1.0/projects/FLUX', good.body.access_token),
    ).toBe(401);
  });

  it('authorize errors: unknown client or redirect → 400 page; bad scope, PKCE method or "Deny" → redirect with error and state', async () => {
    const unknownClient = await fetch(
      `${
        client.authorizeUrl
      }?client_id=nope&response_type=code&redirect_uri=${encodeURIComponent(
        REDIRECT,
      )}`,
      { redirect: 'manual' },
    );
    expect(unknownClient.status).toBe(400);
    const badRedirect = await fetch(
      `${client.authorizeUrl}?client_id=${
        client.clientId
      }&response_type=code&redirect_uri=${encodeURIComponent(
        'http://evil.example/cb',
      )}`,
      { redirect: 'manual' },
    );
    expect(badRedirect.status).toBe(400);
    const errorOfRedirect = async (params: Record<string, string>) => {
      const r = await fetch(
        `${client.authorizeUrl}?${new URLSearchParams({
          client_id: client.clientId,
          redirect_uri: REDIRECT,
          response_type: 'code',
          state: 's',
          ...params,
        })}`,
        { redirect: 'manual' },
      );
      expect(r.status).toBe(302);
      const loc = new URL(r.headers.get('location')!);
      expect(`${loc.origin}${loc.pathname}`).toBe(REDIRECT);
      return [loc.searchParams.get('error'), loc.searchParams.get('state')];
    };
    expect(await errorOfRedirect({ scope: 'REPO_READ WIKI' })).toEqual([
      'invalid_scope',
      's',
    ]);
    expect(await errorOfRedirect({ scope: 'SYSTEM_ADMIN' })).toEqual([
      'invalid_scope',
      's',
    ]); // beyond the link's scopes
    expect(await errorOfRedirect({ response_type: 'token' })).toEqual([
      'unsupported_response_type',
      's',
    ]);
    expect(
      await errorOfRedirect({
        code_challenge: pkce().challenge,
        code_challenge_method: 'S512',
      }),
    ).toEqual(['invalid_request', 's']);
    const denied = await consent(
      'alice',
      'alice-pw',
      {
        client_id: client.clientId,
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'REPO_READ',
        state: 'd',
      },
      'deny',
    );
    expect([
      denied.searchParams.get('error'),
      denied.searchParams.get('state'),
      denied.searchParams.get('code'),
    ]).toEqual(['access_denied', 'd', null]);
    // a wrong password shows the login page again; a consent post without the session's XSRF token is refused
    const wrong = await postForm(`${bb.baseUrl}/j_atl_security_check`, {
      j_username: 'alice',
      j_password: 'nope',
      next: '/bb/',
    });
    expect(wrong.status).toBe(200);
    expect(await wrong.text()).toContain(
      'Your username and password are incorrect',
    );
    const forged = await postForm(client.authorizeUrl, {
      client_id: client.clientId,
      redirect_uri: REDIRECT,
      response_type: 'code',
      decision: 'allow',
    });
    expect(forged.status).toBe(403);
  });

  it("scopes limit what a token may do, below the user's own permissions", async () => {
    const read = (await grant('alice', 'alice-pw', 'REPO_READ')).access_token;
    const write = (await grant('alice', 'alice-pw', 'REPO_WRITE')).access_token;
    const url = bb.cloneUrls('FLUX', 'fleet').http;
    const work = tmp.make('scoped');
    await gitOk([...bearer(read), 'clone', '-q', url, work]);
    await commitFile(work, 'x.txt', 'x\n');
    const refused = await gitClient([
      '-C',
      work,
      ...bearer(read),
      'push',
      url,
      'HEAD:refs/heads/scoped',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/403/);
    expect(
      (
        await gitClient([
          '-C',
          work,
          ...bearer(write),
          'push',
          url,
          'HEAD:refs/heads/scoped',
        ])
      ).code,
    ).toBe(0);
    const pr = await call(
      'POST',
      '/rest/api/1.0/projects/FLUX/repos/fleet/pull-requests',
      {
        token: read, // REPO_READ: "create and comment on pull requests"
        body: {
          title: 'scoped',
          fromRef: { id: 'refs/heads/scoped' },
          toRef: { id: 'refs/heads/main' },
        },
      },
    );
    expect(pr.status).toBe(201);
    const merge = await call(
      'POST',
      `/rest/api/1.0/projects/FLUX/repos/fleet/pull-requests/${pr.body.id}/merge?version=0`,
      { token: read },
    );
    expect(merge.status).toBe(401);
    for (const t of [read, write]) {
      const repo = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: t,
        body: { name: 'not-with-this-scope' },
      });
      expect(repo.status).toBe(401);
      expect(errorOf(repo)).toEqual({
        context: null,
        message: 'You are not permitted to create repositories in project FLUX',
        exceptionName: 'com.atlassian.bitbucket.AuthorisationException',
      });
      const keys = await call(
        'GET',
        '/rest/keys/1.0/projects/FLUX/repos/fleet/ssh',
        { token: t },
      );
      expect(keys.status).toBe(401);
    }
    expect(bb.state().repos.some(r => r.slug === 'not-with-this-scope')).toBe(
      false,
    );
  });

  it("a user without REPO_CREATE gets Bitbucket's 401 however wide the scope; REPO_CREATE users create and administer their repositories", async () => {
    const rita = (await grant('rita', 'rita-pw', 'PROJECT_ADMIN')).access_token;
    const refused = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
      token: rita,
      body: { name: 'rita-fleet' },
    });
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({
      errors: [
        {
          context: null,
          message:
            'You are not permitted to create repositories in project FLUX',
          exceptionName: 'com.atlassian.bitbucket.AuthorisationException',
        },
      ],
    });
    expect(refused.headers.get('x-ausername')).toBe('rita');
    expect(bb.state().repos.some(r => r.slug === 'rita-fleet')).toBe(false);
    const cora = (await grant('cora', 'cora-pw', 'PROJECT_ADMIN')).access_token;
    const created = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
      token: cora,
      body: { name: 'cora-fleet' },
    });
    expect(created.status).toBe(201);
    const addWriteKey = (slug: string) =>
      call('POST', `/rest/keys/1.0/projects/FLUX/repos/${slug}/ssh`, {
        token: cora,
        body: { key: { text: KEY }, permission: 'REPO_WRITE' },
      });
    const key = await addWriteKey('cora-fleet');
    expect(key.status).toBe(201);
    const elsewhere = await addWriteKey('fleet');
    expect(elsewhere.status).toBe(401);
  });

  it('whoami: the user for OAuth tokens and passwords; empty (and no X-AUSERNAME) for HTTP access tokens and anonymous callers', async () => {
    const who = async (headers: Record<string, string>) => {
      const r = await fetch(`${bb.baseUrl}/plugins/servlet/applinks/whoami`, {
        headers,
      });
      return [r.status, await r.text(), r.headers.get('x-ausername')];
    };
    expect(await who({})).toEqual([200, '', null]);
    expect(
      await who({
        Authorization: `Basic ${Buffer.from('alice:alice-pw').toString(
          'base64',
        )}`,
      }),
    ).toEqual([200, 'alice', 'alice']);
    expect(await who({ Authorization: 'Bearer alice-http-token' })).toEqual([
      200,
      '',
      null,
    ]);
    expect(await who({ Authorization: 'Bearer not-a-token' })).toEqual([
      200,
      '',
      null,
    ]);
  });
});

describe('Bitbucket double: project and repository HTTP access tokens (no user of their own)', () => {
  let bb: BitbucketDouble;
  let call: ReturnType<typeof restClient>;
  const tmp = tempDirs();

  beforeAll(async () => {
    bb = await startBitbucketDouble();
    call = restClient(bb);
    bb.addUser({ name: 'admin' });
    bb.grantGlobal('admin', 'ADMIN');
    bb.addToken({ token: 'admin-token', user: 'admin' });
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.addProject({ key: 'OTHER', name: 'Other' });
    bb.createRepo('FLUX', 'fleet', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    bb.createRepo('FLUX', 'second', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    bb.createRepo('OTHER', 'misc', {
      defaultBranch: 'main',
      initialCommit: true,
    });
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  it('answer with a service user the users API does not know, work only as Bearer, and only on their project or repository', async () => {
    const project = bb.addProjectToken({
      token: 'flux-project-token',
      project: 'FLUX',
      permission: 'PROJECT_WRITE',
      name: 'Flux bootstrap',
    });
    const repoToken = bb.addProjectToken({
      token: 'fleet-repo-token',
      project: 'FLUX',
      repo: 'fleet',
      permission: 'REPO_READ',
    });
    const r = await call('GET', '/rest/api/1.0/projects/FLUX/repos/fleet', {
      token: 'flux-project-token',
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-ausername')).toBe(project.user);
    const lookup = await call('GET', `/rest/api/1.0/users/${project.user}`, {
      token: 'admin-token',
    });
    expect(lookup.status).toBe(404);
    const who = await fetch(`${bb.baseUrl}/plugins/servlet/applinks/whoami`, {
      headers: { Authorization: 'Bearer flux-project-token' },
    });
    expect([await who.text(), who.headers.get('x-ausername')]).toEqual([
      '',
      null,
    ]);
    const basic = await call('GET', '/rest/api/1.0/projects/FLUX/repos/fleet', {
      basic: [project.user, 'flux-project-token'],
    });
    expect(basic.status).toBe(401);
    const other = await call('GET', '/rest/api/1.0/projects/OTHER/repos/misc', {
      token: 'flux-project-token',
    });
    expect(other.status).toBe(401);
    const createRepo = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
      token: 'flux-project-token',
      body: { name: 'x' },
    });
    expect(createRepo.status).toBe(401); // PROJECT_WRITE, not PROJECT_ADMIN

    const work = tmp.make('w');
    await gitOk([
      ...bearer('flux-project-token'),
      'clone',
      '-q',
      bb.cloneUrls('FLUX', 'second').http,
      work,
    ]);
    await commitFile(work, 'a.txt', 'a\n');
    expect(
      (
        await gitClient([
          '-C',
          work,
          ...bearer('flux-project-token'),
          'push',
          bb.cloneUrls('FLUX', 'second').http,
          'HEAD:main',
        ])
      ).code,
    ).toBe(0);
    const readOnly = await gitClient([
      '-C',
      work,
      ...bearer('fleet-repo-token'),
      'push',
      bb.cloneUrls('FLUX', 'fleet').http,
      'HEAD:refs/heads/x',
    ]);
    expect(readOnly.code).not.toBe(0);
    const notItsRepo = await call(
      'GET',
      '/rest/api/1.0/projects/FLUX/repos/second',
      { token: 'fleet-repo-token' },
    );
    expect(notItsRepo.status).toBe(401);
    expect(
      (
        await call('GET', '/rest/api/1.0/projects/FLUX/repos/fleet', {
          token: 'fleet-repo-token',
        })
      ).status,
    ).toBe(200);

    const state = bb.state();
    expect(
      state.tokens.filter(t => t.kind !== 'http').map(t => [t.kind, t.user]),
    ).toEqual([
      ['project', project.user],
      ['repository', repoToken.user],
    ]);
    expect(
      state.serviceUsers.map(u => [u.name, u.type, u.displayName]),
    ).toEqual([
      [project.user, 'SERVICE', 'Flux bootstrap'],
      [repoToken.user, 'SERVICE', 'fleet token'],
    ]);
    expect(state.audit.find(a => a.action === 'PUSH')).toMatchObject({
      actor: project.user,
      via: 'project-access-token',
    });
  });
});
