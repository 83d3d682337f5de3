import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import git from 'isomorphic-git';
import isoHttp from 'isomorphic-git/http/node';
import { canConnect } from '../common/net';
import {
  commitFile,
  gitClient,
  gitOk,
  newLocalRepo,
  tempDirs,
} from '../git/testUtils';
import { BitbucketDouble, startBitbucketDouble } from './double';

jest.setTimeout(60_000);

function seed(bb: BitbucketDouble) {
  bb.addUser({ name: 'alice' });
  bb.addToken({ token: 'alice-token', user: 'alice' });
  bb.addUser({ name: 'rita' });
  bb.addToken({ token: 'rita-token', user: 'rita' });
  bb.addProject({ key: 'FLUX', name: 'Flux' });
  bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
  bb.grantProject('FLUX', { user: 'rita' }, 'PROJECT_READ');
}

describe('Bitbucket double: context path and TLS', () => {
  let bb: BitbucketDouble;
  const tmp = tempDirs();
  beforeAll(async () => {
    bb = await startBitbucketDouble({ contextPath: '/bitbucket', tls: true });
    seed(bb);
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  const get = (
    url: string,
    headers: Record<string, string> = {},
    ca: string | null = bb.caPem!,
  ) =>
    new Promise<{
      status: number;
      body: string;
      headers: Record<string, unknown>;
    }>((resolve, reject) => {
      https
        .get(url, { ca: ca ?? undefined, headers, agent: false }, res => {
          let body = '';
          res.on('data', c => (body += c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, body, headers: res.headers }),
          );
        })
        .on('error', reject);
    });

  it('serves everything below the context path over HTTPS signed by its own CA', async () => {
    expect(bb.baseUrl).toBe(`https://127.0.0.1:${bb.port}/bitbucket`);
    expect(bb.apiBaseUrl).toBe(`${bb.baseUrl}/rest/api/1.0`);
    expect(bb.host).toBe(`127.0.0.1:${bb.port}`);
    const ok = await get(`${bb.apiBaseUrl}/projects/FLUX`, {
      Authorization: 'Bearer alice-token',
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).links.self[0].href).toBe(
      `${bb.baseUrl}/projects/FLUX`,
    );
    // a client that forgets the context path gets an HTML page, like a real reverse proxy would answer
    const root = await get(
      `https://127.0.0.1:${bb.port}/rest/api/1.0/projects/FLUX`,
      { Authorization: 'Bearer alice-token' },
    );
    expect(root.status).toBe(404);
    expect(root.headers['content-type']).toMatch(/text\/html/);
    expect(root.body).toMatch(/^<!DOCTYPE html>/);
    await expect(
      get(`${bb.apiBaseUrl}/projects/FLUX`, {}, null),
    ).rejects.toThrow(/self[- ]signed|certificate/i);
    const paths = bb.requests().map(r => r.path);
    expect(paths).toEqual([
      '/rest/api/1.0/projects/FLUX',
      '/rest/api/1.0/projects/FLUX',
    ]);
  });

  it('git over HTTPS at <ctx>/scm/<key>/<slug>.git works for the git CLI given the CA, on the same bare repo REST reads', async () => {
    const created = JSON.parse(
      await new Promise<string>((resolve, reject) => {
        const req = https.request(
          `${bb.apiBaseUrl}/projects/FLUX/repos`,
          {
            method: 'POST',
            ca: bb.caPem,
            headers: {
              Authorization: 'Bearer alice-token',
              'Content-Type': 'application/json',
            },
          },
          res => {
            let b = '';
            res.on('data', c => (b += c));
            res.on('end', () => resolve(b));
          },
        );
        req.on('error', reject);
        req.end(
          JSON.stringify({
            name: 'secure',
            scmId: 'git',
            defaultBranch: 'main',
          }),
        );
      }),
    );
    const httpUrl = created.links.clone.find(
      (l: any) => l.name === 'http',
    ).href;
    expect(httpUrl).toBe(`${bb.baseUrl}/scm/flux/secure.git`);
    const src = tmp.make();
    const sha = await newLocalRepo(src);
    const auth = ['-c', 'http.extraHeader=Authorization: Bearer alice-token'];
    const noCa = await gitClient(['-C', src, ...auth, 'push', httpUrl, 'main']);
    expect(noCa.code).not.toBe(0);
    await gitOk([
      '-C',
      src,
      ...auth,
      '-c',
      `http.sslCAInfo=${bb.caFile}`,
      'push',
      '-q',
      httpUrl,
      'main',
    ]);
    const branches = await get(
      `${bb.apiBaseUrl}/projects/FLUX/repos/secure/branches`,
      { Authorization: 'Bearer rita-token' },
    );
    expect(JSON.parse(branches.body).values[0].latestCommit).toBe(sha);
  });
  it('drops (resets) a connection over TLS too, instead of answering', async () => {
    bb.clearRequests();
    bb.injectFault({ path: '/rest/api/1.0/projects/FLUX', drop: true });
    const err = await get(`${bb.apiBaseUrl}/projects/FLUX`, {
      Authorization: 'Bearer alice-token',
    }).catch(e => e);
    expect(err).toMatchObject({ code: 'ECONNRESET' });
    expect(bb.requests().map(r => r.status)).toEqual([0]);
    const ok = await get(`${bb.apiBaseUrl}/projects/FLUX`, {
      Authorization: 'Bearer alice-token',
    });
    expect(ok.status).toBe(200);
  });
});

describe('Bitbucket double: git over HTTP permissions (real git http-backend behind /scm)', () => {
  let bb: BitbucketDouble;
  const tmp = tempDirs();
  beforeAll(async () => {
    bb = await startBitbucketDouble();
    seed(bb);
    bb.createRepo('FLUX', 'fleet', {
      initialCommit: true,
      defaultBranch: 'main',
    });
    bb.createRepo('FLUX', 'open', {
      initialCommit: true,
      defaultBranch: 'main',
      public: true,
    });
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  it('isomorphic-git clones and pushes with Basic user:token; the push shows in REST', async () => {
    const dir = tmp.make();
    const url = bb.cloneUrls('FLUX', 'fleet').http;
    await git.clone({
      fs,
      http: isoHttp,
      dir,
      url,
      onAuth: () => ({ username: 'alice', password: 'alice-token' }),
    });
    fs.writeFileSync(path.join(dir, 'x.yaml'), 'x: 1\n');
    await git.add({ fs, dir, filepath: 'x.yaml' });
    const sha = await git.commit({
      fs,
      dir,
      message: 'Add x',
      author: { name: 'Flux', email: 'flux@example.com' },
    });
    await git.push({
      fs,
      http: isoHttp,
      dir,
      remote: 'origin',
      ref: 'main',
      headers: { Authorization: 'Bearer alice-token' },
    });
    const r = await fetch(
      `${bb.apiBaseUrl}/projects/FLUX/repos/fleet/commits?until=main&limit=1`,
      { headers: { Authorization: 'Bearer rita-token' } },
    );
    const body = await r.json();
    expect(body.values[0]).toMatchObject({
      id: sha,
      message: 'Add x',
      author: { name: 'Flux', emailAddress: 'flux@example.com' },
    });
    const pushes = bb
      .requests()
      .filter(q => q.path.endsWith('/git-receive-pack'));
    expect(pushes.map(p => [p.status, p.user])).toEqual([[200, 'alice']]);
  });

  it('anonymous: 401 with WWW-Authenticate for private repos, clone allowed for public ones; REPO_READ users get 403 on push', async () => {
    const anon = await fetch(
      `${bb.cloneUrls('FLUX', 'fleet').http}/info/refs?service=git-upload-pack`,
    );
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect(
      await gitOk(['ls-remote', bb.cloneUrls('FLUX', 'open').http]),
    ).toMatch(/refs\/heads\/main/);
    const anonPush = await fetch(
      `${bb.cloneUrls('FLUX', 'open').http}/info/refs?service=git-receive-pack`,
    );
    expect(anonPush.status).toBe(401);
    const clone = tmp.make();
    await gitOk([
      '-c',
      'http.extraHeader=Authorization: Bearer rita-token',
      'clone',
      '-q',
      bb.cloneUrls('FLUX', 'fleet').http,
      clone,
    ]);
    await commitFile(clone, 'y', 'y');
    const push = await gitClient([
      '-C',
      clone,
      '-c',
      'http.extraHeader=Authorization: Bearer rita-token',
      'push',
      'origin',
      'HEAD:main',
    ]);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/403/);
    const badUser = await gitClient([
      'ls-remote',
      bb
        .cloneUrls('FLUX', 'fleet')
        .http.replace('http://', 'http://git:alice-token@'),
    ]);
    expect(badUser.code).not.toBe(0);
    const missing = await fetch(
      `${bb.baseUrl}/scm/flux/nope.git/info/refs?service=git-upload-pack`,
      { headers: { Authorization: 'Bearer alice-token' } },
    );
    expect(missing.status).toBe(404);
  });
});

describe('Bitbucket double: test controls', () => {
  let bb: BitbucketDouble;
  beforeAll(async () => {
    bb = await startBitbucketDouble();
    seed(bb);
  });
  afterAll(async () => bb.stop());
  beforeEach(() => {
    bb.clearFaults();
    bb.clearRequests();
  });
  const get = (p: string) =>
    fetch(`${bb.apiBaseUrl}${p}`, {
      headers: { Authorization: 'Bearer alice-token' },
    });

  it('injects a status with Retry-After for N matching requests, then behaves normally', async () => {
    bb.injectFault({
      method: 'GET',
      path: '/rest/api/1.0/projects/FLUX',
      status: 429,
      retryAfter: 3,
      times: 2,
    });
    const r1 = await get('/projects/FLUX');
    expect(r1.status).toBe(429);
    expect(r1.headers.get('retry-after')).toBe('3');
    expect((await r1.json()).errors[0]).toMatchObject({
      context: null,
      message: expect.any(String),
    });
    expect((await get('/projects/FLUX')).status).toBe(429);
    expect((await get('/projects/FLUX')).status).toBe(200);
    bb.injectFault({ path: /\/repos$/, status: 503 });
    const post = await fetch(`${bb.apiBaseUrl}/projects/FLUX/repos`, {
      method: 'POST',
      headers: {
        Authorization: 'Bearer alice-token',
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ name: 'never-created' }),
    });
    expect(post.status).toBe(503);
    expect(bb.state().repos).toEqual([]);
    expect(bb.requests().map(r => r.status)).toEqual([429, 429, 200, 503]);
  });

  it('echoes the request credentials in an injected error when asked (REST and git)', async () => {
    bb.injectFault({
      path: '/rest/api/1.0/projects/FLUX',
      status: 401,
      echoCredentials: true,
    });
    const r = await get('/projects/FLUX');
    expect(r.status).toBe(401);
    expect((await r.json()).errors[0].message).toBe(
      'You are not permitted to access this resource (request header Authorization: Bearer alice-token; credential alice-token)',
    );
    bb.createRepo('FLUX', 'echo', { initialCommit: true });
    bb.injectFault({
      path: '/scm/flux/echo.git/info/refs',
      status: 500,
      echoCredentials: true,
    });
    const g = await fetch(
      `${bb.cloneUrls('FLUX', 'echo').http}/info/refs?service=git-upload-pack`,
      {
        headers: { Authorization: 'Bearer alice-token' },
      },
    );
    expect(g.status).toBe(500);
    expect(await g.text()).toContain('credential alice-token');
  });

  it('matches by method and by path prefix, and clearFaults() removes pending faults', async () => {
    bb.injectFault({
      method: 'POST',
      path: '/rest/api/1.0/projects/FLUX',
      status: 500,
    });
    expect((await get('/projects/FLUX')).status).toBe(200);
    bb.injectFault({ path: '/rest/api/1.0/users/*', status: 502, times: 5 });
    expect((await get('/users/alice')).status).toBe(502);
    bb.clearFaults();
    expect((await get('/users/alice')).status).toBe(200);
  });

  it('delays a response, and drops the connection', async () => {
    bb.injectFault({ path: '/rest/api/1.0/projects/FLUX', delayMs: 1000 });
    let slowDone = false;
    const slow = get('/projects/FLUX').then(r => {
      slowDone = true;
      return r;
    });
    // a request sent later overtakes the delayed one
    expect((await get('/users/alice')).status).toBe(200);
    expect(slowDone).toBe(false);
    expect((await slow).status).toBe(200);
    bb.injectFault({ path: '/rest/api/1.0/projects/FLUX', drop: true });
    await expect(get('/projects/FLUX')).rejects.toThrow();
    expect((await get('/projects/FLUX')).status).toBe(200);
    expect(bb.requests().map(r => [r.path, r.status])).toEqual([
      ['/rest/api/1.0/projects/FLUX', 200],
      ['/rest/api/1.0/users/alice', 200],
      ['/rest/api/1.0/projects/FLUX', 0],
      ['/rest/api/1.0/projects/FLUX', 200],
    ]);
  });

  it('fails git operations too (faults on /scm paths)', async () => {
    bb.createRepo('FLUX', 'faulty', { initialCommit: true });
    bb.injectFault({ path: '/scm/flux/faulty.git/info/refs', status: 500 });
    const url = bb.cloneUrls('FLUX', 'faulty').http;
    const auth = ['-c', 'http.extraHeader=Authorization: Bearer alice-token'];
    expect((await gitClient([...auth, 'ls-remote', url])).code).not.toBe(0);
    expect((await gitClient([...auth, 'ls-remote', url])).code).toBe(0);
  });

  it('logs every request in order with method, path, query, headers, body and status', async () => {
    await fetch(`${bb.apiBaseUrl}/projects/FLUX/repos?limit=5`, {
      headers: { Authorization: 'Bearer alice-token' },
    });
    await fetch(`${bb.apiBaseUrl}/projects/FLUX/repos`, {
      method: 'POST',
      headers: {
        Authorization: 'Bearer alice-token',
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ name: 'logged' }),
    });
    const log = bb.requests();
    expect(log).toHaveLength(2);
    expect(log[0]).toMatchObject({
      method: 'GET',
      path: '/rest/api/1.0/projects/FLUX/repos',
      query: { limit: '5' },
      status: 200,
      user: 'alice',
    });
    expect(log[0].body).toBeUndefined();
    expect(log[1]).toMatchObject({
      method: 'POST',
      status: 201,
      body: '{"name":"logged"}',
    });
    expect(log[1].headers['content-type']).toBe('application/json');
    bb.clearRequests();
    expect(bb.requests()).toEqual([]);
  });

  it('state() is a JSON snapshot of users, projects, repos (branches from disk), keys, permissions and tokens without secrets', async () => {
    bb.createRepo('FLUX', 'snap', {
      initialCommit: true,
      defaultBranch: 'trunk',
    });
    bb.addAccessKey(
      'FLUX',
      'snap',
      {
        text: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGs3nl1bcIwdvRjNv0BHmj/Ax8HO1xtk9YJ1X4NOr2gK flux',
      },
      'REPO_READ',
    );
    const s = bb.state();
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    const repo = s.repos.find(r => r.slug === 'snap')!;
    expect(repo).toMatchObject({
      projectKey: 'FLUX',
      name: 'snap',
      defaultBranch: 'trunk',
      branches: [
        {
          name: 'trunk',
          latestCommit: expect.stringMatching(/^[0-9a-f]{40}$/),
        },
      ],
    });
    expect(repo.path).toBe(bb.repoPath('FLUX', 'snap'));
    expect(s.accessKeys).toEqual([
      {
        id: expect.any(Number),
        text: expect.stringContaining('ssh-ed25519'),
        label: 'flux',
        permission: 'REPO_READ',
        projectKey: 'FLUX',
        slug: 'snap',
      },
    ]);
    expect(s.userPermissions.project).toEqual(
      expect.arrayContaining([
        { projectKey: 'FLUX', user: 'alice', permission: 'PROJECT_ADMIN' },
      ]),
    );
    expect(JSON.stringify(s)).not.toContain('alice-token');
  });

  it('stop() closes the server, its connections and removes the repositories', async () => {
    const other = await startBitbucketDouble();
    other.addProject({ key: 'X', name: 'X' });
    other.createRepo('X', 'r');
    const root = other.reposRoot;
    const keepAlive = net.connect(other.port, '127.0.0.1');
    await new Promise(r => keepAlive.once('connect', r));
    const closed = new Promise(r => keepAlive.once('close', r));
    await other.stop();
    await closed;
    expect(await canConnect(other.port)).toBe(false);
    expect(fs.existsSync(root)).toBe(false);
  });
});
