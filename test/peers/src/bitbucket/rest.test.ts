import { gitOk, newLocalRepo, commitFile, tempDirs } from '../git/testUtils';
import { headRefSync } from '../git/cli';
import { BitbucketDouble, startBitbucketDouble } from './double';

jest.setTimeout(60_000);

interface Res {
  status: number;
  headers: Headers;
  body: any;
}

function client(bb: BitbucketDouble) {
  return async (
    method: string,
    path: string,
    opts: {
      token?: string;
      basic?: [string, string];
      body?: unknown;
      auth?: string;
    } = {},
  ): Promise<Res> => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.basic)
      headers.Authorization = `Basic ${Buffer.from(
        opts.basic.join(':'),
      ).toString('base64')}`;
    if (opts.auth) headers.Authorization = opts.auth;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(`${bb.baseUrl}${path}`, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await r.text();
    let body: any = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: r.status, headers: r.headers, body };
  };
}

const errorOf = (r: Res) => r.body?.errors?.[0];

describe('Bitbucket double REST API', () => {
  let bb: BitbucketDouble;
  let call: ReturnType<typeof client>;
  const tmp = tempDirs();

  beforeAll(async () => {
    bb = await startBitbucketDouble();
    call = client(bb);
    bb.addUser({
      name: 'admin',
      displayName: 'Admin Istrator',
      email: 'admin@example.com',
    });
    bb.grantGlobal('admin', 'ADMIN');
    bb.addToken({ token: 'admin-token', user: 'admin' });
    bb.addUser({ name: 'alice', displayName: 'Alice Liddell' });
    bb.addToken({ token: 'alice-token', user: 'alice' });
    bb.addUser({ name: 'bob' });
    bb.addToken({ token: 'bob-token', user: 'bob' });
    bb.addUser({ name: 'carol' });
    bb.addToken({ token: 'carol-token', user: 'carol' });
    bb.addUser({ name: 'ghost', active: false });
    bb.addToken({ token: 'ghost-token', user: 'ghost' });
    bb.addGroup('platform', ['bob']);
    bb.addGroup('platform-admins', []);
    bb.addGroup('readers', ['carol']);
    bb.addProject({ key: 'FLUX', name: 'Flux Fleet', description: 'GitOps' });
    bb.addProject({ key: 'COMM', name: 'Community' });
    bb.addProject({ key: 'SECRET', name: 'Secret stuff' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
    bb.grantProject('COMM', { user: 'alice' }, 'PROJECT_READ');
    bb.grantProject('FLUX', { group: 'platform' }, 'PROJECT_WRITE');
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  describe('authentication and identity', () => {
    it('answers authenticated calls with X-AUSERNAME / X-AUSERID, for Bearer and Basic user:token', async () => {
      const bearer = await call('GET', '/rest/api/1.0/projects/FLUX', {
        token: 'alice-token',
      });
      expect(bearer.status).toBe(200);
      expect(bearer.headers.get('x-ausername')).toBe('alice');
      const alice = bb.state().users.find(u => u.name === 'alice')!;
      expect(bearer.headers.get('x-auserid')).toBe(String(alice.id));
      const basic = await call('GET', '/rest/api/1.0/projects/FLUX', {
        basic: ['alice', 'alice-token'],
      });
      expect(basic.status).toBe(200);
      expect(basic.headers.get('x-ausername')).toBe('alice');
      const anonymous = await call(
        'GET',
        '/rest/api/1.0/application-properties',
      );
      expect(anonymous.status).toBe(200);
      expect(anonymous.body.displayName).toBe('Bitbucket');
      expect(anonymous.headers.get('x-ausername')).toBeNull();
    });

    it('refuses unknown, expired and foreign tokens and inactive users with 401 IncorrectPasswordAuthenticationException', async () => {
      bb.addToken({ token: 'expired-token', user: 'alice', expired: true });
      for (const opts of [
        { token: 'no-such-token' },
        { token: 'expired-token' },
        { basic: ['bob', 'alice-token'] as [string, string] },
        { basic: ['git', 'alice-token'] as [string, string] },
        { token: 'ghost-token' },
        { auth: 'Negotiate abc' },
      ]) {
        const r = await call('GET', '/rest/api/1.0/projects', opts);
        expect(r.status).toBe(401);
        expect(r.body).toEqual({
          errors: [
            {
              context: null,
              message:
                'Authentication failed. Please check your credentials and try again.',
              exceptionName:
                'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException',
            },
          ],
        });
        expect(r.headers.get('x-ausername')).toBeNull();
      }
    });

    it('answers a missing permission with 401 AuthorisationException (anonymous or authenticated)', async () => {
      const anon = await call('GET', '/rest/api/1.0/projects/SECRET');
      expect(anon.status).toBe(401);
      expect(errorOf(anon)).toEqual({
        context: null,
        message: 'You are not permitted to access this resource',
        exceptionName: 'com.atlassian.bitbucket.AuthorisationException',
      });
      const bob = await call('GET', '/rest/api/1.0/projects/SECRET', {
        token: 'bob-token',
      });
      expect(bob.status).toBe(401);
      expect(errorOf(bob).exceptionName).toBe(
        'com.atlassian.bitbucket.AuthorisationException',
      );
      expect(bob.headers.get('x-ausername')).toBe('bob');
    });

    it('GET /users/{slug} returns the user; an unknown one 404 NoSuchUserException', async () => {
      const r = await call('GET', '/rest/api/1.0/users/Alice', {
        token: 'bob-token',
      });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({
        name: 'alice',
        emailAddress: 'alice@example.com',
        active: true,
        displayName: 'Alice Liddell',
        id: expect.any(Number),
        slug: 'alice',
        type: 'NORMAL',
        links: { self: [{ href: `${bb.baseUrl}/users/alice` }] },
      });
      const missing = await call('GET', '/rest/api/1.0/users/nobody', {
        token: 'bob-token',
      });
      expect(missing.status).toBe(404);
      expect(errorOf(missing)).toEqual({
        context: null,
        message: 'User nobody does not exist.',
        exceptionName: 'com.atlassian.bitbucket.user.NoSuchUserException',
      });
    });
  });

  describe('projects', () => {
    it('lists visible projects, filters by name substring, and pages every list (default limit 25)', async () => {
      const visible = await call('GET', '/rest/api/1.0/projects', {
        token: 'alice-token',
      });
      expect(visible.body.values.map((p: any) => p.key)).toEqual([
        'COMM',
        'FLUX',
      ]);
      const byName = await call('GET', '/rest/api/1.0/projects?name=unity', {
        token: 'admin-token',
      });
      expect(byName.body.values.map((p: any) => p.name)).toEqual(['Community']);
      expect(byName.body).toMatchObject({
        size: 1,
        limit: 25,
        isLastPage: true,
        start: 0,
      });
      expect(byName.body.nextPageStart).toBeUndefined();

      for (let i = 0; i < 30; i++)
        bb.addProject({
          key: `P${String(i).padStart(2, '0')}`,
          name: `Paged ${String(i).padStart(2, '0')}`,
        });
      const first = await call('GET', '/rest/api/1.0/projects?name=paged', {
        token: 'admin-token',
      });
      expect(first.body).toMatchObject({
        size: 25,
        limit: 25,
        isLastPage: false,
        start: 0,
        nextPageStart: 25,
      });
      const second = await call(
        'GET',
        `/rest/api/1.0/projects?name=paged&start=${first.body.nextPageStart}`,
        { token: 'admin-token' },
      );
      expect(second.body).toMatchObject({
        size: 5,
        isLastPage: true,
        start: 25,
      });
      const all = [...first.body.values, ...second.body.values].map(
        (p: any) => p.key,
      );
      expect(new Set(all).size).toBe(30);
      const small = await call(
        'GET',
        '/rest/api/1.0/projects?name=paged&limit=7&start=7',
        { token: 'admin-token' },
      );
      expect(small.body).toMatchObject({
        size: 7,
        limit: 7,
        start: 7,
        nextPageStart: 14,
        isLastPage: false,
      });
    });

    it('GET /projects/{key} (case-insensitive) and personal ~USER projects', async () => {
      const r = await call('GET', '/rest/api/1.0/projects/flux', {
        token: 'alice-token',
      });
      expect(r.body).toEqual({
        key: 'FLUX',
        id: expect.any(Number),
        name: 'Flux Fleet',
        description: 'GitOps',
        public: false,
        type: 'NORMAL',
        links: { self: [{ href: `${bb.baseUrl}/projects/FLUX` }] },
      });
      const personal = await call('GET', '/rest/api/1.0/projects/~alice', {
        token: 'alice-token',
      });
      expect(personal.status).toBe(200);
      expect(personal.body).toMatchObject({
        key: '~ALICE',
        type: 'PERSONAL',
        name: 'Alice Liddell',
        owner: { name: 'alice', slug: 'alice' },
      });
      const missing = await call('GET', '/rest/api/1.0/projects/NOPE', {
        token: 'alice-token',
      });
      expect(missing.status).toBe(404);
      expect(errorOf(missing)).toEqual({
        context: null,
        message: 'Project NOPE does not exist.',
        exceptionName: 'com.atlassian.bitbucket.project.NoSuchProjectException',
      });
    });
  });

  describe('repositories', () => {
    it('creates a repository: 201 with slug, project, links.self and links.clone to the real git HTTP peer', async () => {
      const r = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-token',
        body: {
          name: 'Fleet Infra',
          scmId: 'git',
          defaultBranch: 'main',
          public: false,
          description: 'clusters',
        },
      });
      expect(r.status).toBe(201);
      expect(r.headers.get('x-ausername')).toBe('alice');
      expect(r.body).toMatchObject({
        slug: 'fleet-infra',
        name: 'Fleet Infra',
        description: 'clusters',
        scmId: 'git',
        state: 'AVAILABLE',
        forkable: true,
        public: false,
        project: { key: 'FLUX', name: 'Flux Fleet' },
        links: {
          self: [
            { href: `${bb.baseUrl}/projects/FLUX/repos/fleet-infra/browse` },
          ],
          clone: [
            { name: 'http', href: `${bb.baseUrl}/scm/flux/fleet-infra.git` },
          ],
        },
      });
      expect(headRefSync(bb.repoPath('FLUX', 'fleet-infra'))).toBe(
        'refs/heads/main',
      );
      const get = await call(
        'GET',
        '/rest/api/1.0/projects/FLUX/repos/Fleet-Infra',
        { token: 'bob-token' },
      );
      expect(get.status).toBe(200);
      expect(get.body.id).toBe(r.body.id);
    });

    it('409 when the slug is taken, 400 for invalid names or scmId, 401 without PROJECT_ADMIN', async () => {
      await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-token',
        body: { name: 'dup', scmId: 'git' },
      });
      const dup = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-token',
        body: { name: 'DUP', scmId: 'git' },
      });
      expect(dup.status).toBe(409);
      expect(errorOf(dup)).toMatchObject({
        context: 'name',
        message: 'This repository URL is already taken.',
      });
      for (const name of ['-dash', 'a/b', '', 'x'.repeat(129), 'emoji☃']) {
        const bad = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
          token: 'alice-token',
          body: { name },
        });
        expect(bad.status).toBe(400);
        expect(errorOf(bad).context).toBe('name');
      }
      const scm = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-token',
        body: { name: 'hg-repo', scmId: 'hg' },
      });
      expect(scm.status).toBe(400);
      expect(errorOf(scm).context).toBe('scmId');
      const branch = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-token',
        body: { name: 'badbranch', defaultBranch: 'a..b' },
      });
      expect(branch.status).toBe(400);
      const writer = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'bob-token',
        body: { name: 'by-bob' },
      });
      expect(writer.status).toBe(401);
      expect(errorOf(writer).exceptionName).toBe(
        'com.atlassian.bitbucket.AuthorisationException',
      );
      expect(bb.state().repos.map(r => r.slug)).not.toContain('by-bob');
    });

    it('slugs: lower case, spaces become hyphens; public flag and default branch honoured (default: master)', async () => {
      const r = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-token',
        body: { name: 'My Public.Repo_1', public: true },
      });
      expect(r.body).toMatchObject({ slug: 'my-public.repo_1', public: true });
      expect(headRefSync(bb.repoPath('FLUX', 'my-public.repo_1'))).toBe(
        'refs/heads/master',
      );
      const anon = await call(
        'GET',
        '/rest/api/1.0/projects/FLUX/repos/my-public.repo_1',
      );
      expect(anon.status).toBe(200);
    });

    it('personal repositories: the owner creates in ~USER, others get 401', async () => {
      const own = await call('POST', '/rest/api/1.0/projects/~alice/repos', {
        token: 'alice-token',
        body: { name: 'notes', scmId: 'git' },
      });
      expect(own.status).toBe(201);
      expect(own.body.project).toMatchObject({
        key: '~ALICE',
        type: 'PERSONAL',
      });
      expect(own.body.links.clone).toEqual([
        { name: 'http', href: `${bb.baseUrl}/scm/~alice/notes.git` },
      ]);
      expect(own.body.links.self).toEqual([
        { href: `${bb.baseUrl}/users/alice/repos/notes/browse` },
      ]);
      const other = await call('POST', '/rest/api/1.0/projects/~alice/repos', {
        token: 'bob-token',
        body: { name: 'intruder' },
      });
      expect(other.status).toBe(401);
    });

    it('lists repositories of a project (paged, only visible ones) and deletes with 202', async () => {
      bb.createRepo('COMM', 'one');
      bb.createRepo('COMM', 'two');
      bb.createRepo('COMM', 'three');
      const page1 = await call(
        'GET',
        '/rest/api/1.0/projects/COMM/repos?limit=2',
        { token: 'alice-token' },
      );
      expect(page1.body).toMatchObject({
        size: 2,
        limit: 2,
        isLastPage: false,
        nextPageStart: 2,
      });
      const page2 = await call(
        'GET',
        '/rest/api/1.0/projects/COMM/repos?limit=2&start=2',
        { token: 'alice-token' },
      );
      expect(page2.body).toMatchObject({ size: 1, isLastPage: true });
      expect(
        [...page1.body.values, ...page2.body.values]
          .map((r: any) => r.slug)
          .sort(),
      ).toEqual(['one', 'three', 'two']);
      const forbidden = await call(
        'DELETE',
        '/rest/api/1.0/projects/COMM/repos/two',
        { token: 'alice-token' },
      );
      expect(forbidden.status).toBe(401);
      const del = await call(
        'DELETE',
        '/rest/api/1.0/projects/COMM/repos/two',
        { token: 'admin-token' },
      );
      expect(del.status).toBe(202);
      const gone = await call('GET', '/rest/api/1.0/projects/COMM/repos/two', {
        token: 'admin-token',
      });
      expect(gone.status).toBe(404);
      expect(errorOf(gone)).toEqual({
        context: null,
        message: 'Repository COMM/two does not exist.',
        exceptionName:
          'com.atlassian.bitbucket.repository.NoSuchRepositoryException',
      });
    });
  });

  describe('branches, default branch and commits come from the bare repository on disk', () => {
    const base = '/rest/api/1.0/projects/FLUX/repos/gitops';
    let pushUrl: string;
    let work: string;
    let first: string;

    beforeAll(async () => {
      const r = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-token',
        body: { name: 'gitops', defaultBranch: 'main' },
      });
      pushUrl = r.body.links.clone[0].href.replace(
        'http://',
        'http://alice:alice-token@',
      );
      work = tmp.make();
    });

    it('an empty repository: default-branch is the configured one, branches/default is 404 NoDefaultBranchException, no branches', async () => {
      const configured = await call('GET', `${base}/default-branch`, {
        token: 'bob-token',
      });
      expect(configured.status).toBe(200);
      expect(configured.body).toEqual({
        id: 'refs/heads/main',
        displayId: 'main',
        type: 'BRANCH',
      });
      const legacy = await call('GET', `${base}/branches/default`, {
        token: 'bob-token',
      });
      expect(legacy.status).toBe(404);
      expect(errorOf(legacy)).toEqual({
        context: null,
        message:
          'refs/heads/main is set as the default branch, but this branch does not exist',
        exceptionName:
          'com.atlassian.bitbucket.repository.NoDefaultBranchException',
      });
      const branches = await call('GET', `${base}/branches`, {
        token: 'bob-token',
      });
      expect(branches.body).toEqual({
        size: 0,
        limit: 25,
        isLastPage: true,
        values: [],
        start: 0,
      });
      const commits = await call('GET', `${base}/commits`, {
        token: 'bob-token',
      });
      expect(commits.body.values).toEqual([]);
      const missing = await call('GET', `${base}/commits?until=main`, {
        token: 'bob-token',
      });
      expect(missing.status).toBe(404);
      expect(errorOf(missing).exceptionName).toBe(
        'com.atlassian.bitbucket.commit.NoSuchCommitException',
      );
    });

    it('after a git push: branches (filterText, latestCommit, isDefault), branches/default and commits?until=', async () => {
      first = await newLocalRepo(work);
      const second = await commitFile(
        work,
        'clusters/dev/flux-system/gotk-sync.yaml',
        'kind: Kustomization\n',
        'Add Flux sync manifests',
      );
      await gitOk([
        '-C',
        work,
        'push',
        '-q',
        pushUrl,
        'main:main',
        'main:feature/x',
      ]);
      const branches = await call('GET', `${base}/branches?filterText=mai`, {
        token: 'bob-token',
      });
      expect(branches.body.values).toEqual([
        {
          id: 'refs/heads/main',
          displayId: 'main',
          type: 'BRANCH',
          latestCommit: second,
          latestChangeset: second,
          isDefault: true,
        },
      ]);
      const all = await call('GET', `${base}/branches?orderBy=ALPHABETICAL`, {
        token: 'bob-token',
      });
      expect(
        all.body.values.map((b: any) => [b.displayId, b.isDefault]),
      ).toEqual([
        ['feature/x', false],
        ['main', true],
      ]);
      const def = await call('GET', `${base}/branches/default`, {
        token: 'bob-token',
      });
      expect(def.body).toMatchObject({
        id: 'refs/heads/main',
        displayId: 'main',
        latestCommit: second,
        isDefault: true,
      });
      const commits = await call('GET', `${base}/commits?until=main&limit=1`, {
        token: 'bob-token',
      });
      expect(commits.body).toMatchObject({
        size: 1,
        limit: 1,
        isLastPage: false,
        nextPageStart: 1,
        start: 0,
      });
      expect(commits.body.values[0]).toEqual({
        id: second,
        displayId: second.slice(0, 11),
        author: { name: 'Test Client', emailAddress: 'client@example.com' },
        authorTimestamp: expect.any(Number),
        committer: { name: 'Test Client', emailAddress: 'client@example.com' },
        committerTimestamp: expect.any(Number),
        message: 'Add Flux sync manifests',
        parents: [{ id: first, displayId: first.slice(0, 11) }],
      });
      const page2 = await call(
        'GET',
        `${base}/commits?until=refs/heads/main&limit=1&start=1`,
        { token: 'bob-token' },
      );
      expect(page2.body.values.map((c: any) => c.id)).toEqual([first]);
      expect(page2.body.isLastPage).toBe(true);
      const since = await call(
        'GET',
        `${base}/commits?until=main&since=${first}`,
        { token: 'bob-token' },
      );
      expect(since.body.values.map((c: any) => c.id)).toEqual([second]);
    });

    it('creates branches (POST …/branches) from a start point; 409 for an existing one; needs REPO_WRITE', async () => {
      const created = await call('POST', `${base}/branches`, {
        token: 'bob-token',
        body: { name: 'refs/heads/release', startPoint: 'refs/heads/main' },
      });
      expect(created.status).toBe(200);
      expect(created.body).toMatchObject({
        id: 'refs/heads/release',
        displayId: 'release',
        isDefault: false,
      });
      const dup = await call('POST', `${base}/branches`, {
        token: 'bob-token',
        body: { name: 'release', startPoint: 'main' },
      });
      expect(dup.status).toBe(409);
      const badStart = await call('POST', `${base}/branches`, {
        token: 'bob-token',
        body: { name: 'x', startPoint: 'nope' },
      });
      expect(badStart.status).toBe(404);
      bb.grantRepo('FLUX', 'gitops', { user: 'carol' }, 'REPO_READ');
      const reader = await call('POST', `${base}/branches`, {
        token: 'carol-token',
        body: { name: 'y', startPoint: 'main' },
      });
      expect(reader.status).toBe(401);
      const refs = await gitOk(['ls-remote', pushUrl]);
      expect(refs).toMatch(/refs\/heads\/release/);
      expect(refs).not.toMatch(/refs\/heads\/y\b/);
    });

    it('PUT default-branch / branches/default moves HEAD of the bare repository (REPO_ADMIN)', async () => {
      const denied = await call('PUT', `${base}/default-branch`, {
        token: 'bob-token',
        body: { id: 'refs/heads/release' },
      });
      expect(denied.status).toBe(401);
      const ok = await call('PUT', `${base}/default-branch`, {
        token: 'alice-token',
        body: { id: 'refs/heads/release' },
      });
      expect(ok.status).toBe(204);
      expect(headRefSync(bb.repoPath('FLUX', 'gitops'))).toBe(
        'refs/heads/release',
      );
      const legacy = await call('PUT', `${base}/branches/default`, {
        token: 'alice-token',
        body: { id: 'refs/heads/main' },
      });
      expect(legacy.status).toBe(204);
      expect(
        (await call('GET', `${base}/default-branch`, { token: 'bob-token' }))
          .body.displayId,
      ).toBe('main');
      const clone = tmp.make();
      await gitOk(['clone', '-q', pushUrl, clone]);
      expect(
        (
          await gitOk(['-C', clone, 'rev-parse', '--abbrev-ref', 'HEAD'])
        ).trim(),
      ).toBe('main');
    });

    it('can answer 204 for an empty default branch (documented behaviour) when configured', async () => {
      const other = await startBitbucketDouble({
        emptyDefaultBranchStatus: 204,
      });
      try {
        other.addUser({ name: 'u' });
        other.grantGlobal('u', 'ADMIN');
        other.addToken({ token: 't', user: 'u' });
        other.addProject({ key: 'P', name: 'P' });
        other.createRepo('P', 'empty');
        const r = await client(other)(
          'GET',
          '/rest/api/1.0/projects/P/repos/empty/branches/default',
          { token: 't' },
        );
        expect(r.status).toBe(204);
        expect(r.body).toBeUndefined();
      } finally {
        await other.stop();
      }
    });
  });

  describe('group and user permissions', () => {
    it('repository group permissions: PUT, GET (filter, paged), DELETE, and they grant access over git', async () => {
      bb.createRepo('SECRET', 'vault', {
        initialCommit: true,
        defaultBranch: 'main',
      });
      const base =
        '/rest/api/1.0/projects/SECRET/repos/vault/permissions/groups';
      const url = bb
        .cloneUrls('SECRET', 'vault')
        .http.replace('http://', 'http://carol:carol-token@');
      const before = await gitOk(['ls-remote', url]).catch(e => String(e));
      expect(before).toMatch(/failed/);
      const put = await call(
        'PUT',
        `${base}?name=readers&permission=REPO_READ`,
        { token: 'admin-token' },
      );
      expect(put.status).toBe(204);
      expect(await gitOk(['ls-remote', url])).toMatch(/refs\/heads\/main/);
      await call(
        'PUT',
        `${base}?name=platform&name=platform-admins&permission=REPO_WRITE`,
        { token: 'admin-token' },
      );
      const filtered = await call('GET', `${base}?filter=platform`, {
        token: 'admin-token',
      });
      expect(filtered.body).toEqual({
        size: 2,
        limit: 25,
        isLastPage: true,
        start: 0,
        values: [
          { group: { name: 'platform' }, permission: 'REPO_WRITE' },
          { group: { name: 'platform-admins' }, permission: 'REPO_WRITE' },
        ],
      });
      const bad = await call(
        'PUT',
        `${base}?name=readers&permission=PROJECT_READ`,
        { token: 'admin-token' },
      );
      expect(bad.status).toBe(400);
      const unknown = await call(
        'PUT',
        `${base}?name=nope&permission=REPO_READ`,
        { token: 'admin-token' },
      );
      expect(unknown.status).toBe(404);
      expect(errorOf(unknown).exceptionName).toBe(
        'com.atlassian.bitbucket.user.NoSuchGroupException',
      );
      const notAdmin = await call('GET', base, { token: 'bob-token' });
      expect(notAdmin.status).toBe(401);
      const del = await call('DELETE', `${base}?name=readers`, {
        token: 'admin-token',
      });
      expect(del.status).toBe(204);
      expect(
        (await call('GET', `${base}?filter=readers`, { token: 'admin-token' }))
          .body.values,
      ).toEqual([]);
      expect(await gitOk(['ls-remote', url]).catch(e => String(e))).toMatch(
        /failed/,
      );
      expect(bb.state().groupPermissions.repo).toEqual([
        {
          projectKey: 'SECRET',
          slug: 'vault',
          group: 'platform',
          permission: 'REPO_WRITE',
        },
        {
          projectKey: 'SECRET',
          slug: 'vault',
          group: 'platform-admins',
          permission: 'REPO_WRITE',
        },
      ]);
    });

    it('project group and user permissions', async () => {
      const base = '/rest/api/1.0/projects/FLUX/permissions';
      const list = await call('GET', `${base}/groups`, {
        token: 'alice-token',
      });
      expect(list.body.values).toEqual([
        { group: { name: 'platform' }, permission: 'PROJECT_WRITE' },
      ]);
      expect(
        (
          await call(
            'PUT',
            `${base}/groups?name=readers&permission=PROJECT_READ`,
            { token: 'alice-token' },
          )
        ).status,
      ).toBe(204);
      expect(
        (
          await call('GET', '/rest/api/1.0/projects/FLUX', {
            token: 'carol-token',
          })
        ).status,
      ).toBe(200);
      const users = await call('GET', `${base}/users?filter=ali`, {
        token: 'alice-token',
      });
      expect(users.body.values).toEqual([
        {
          user: expect.objectContaining({ name: 'alice' }),
          permission: 'PROJECT_ADMIN',
        },
      ]);
      expect(
        (await call('GET', `${base}/groups`, { token: 'bob-token' })).status,
      ).toBe(401);
      expect(
        (
          await call('DELETE', `${base}/groups?name=readers`, {
            token: 'alice-token',
          })
        ).status,
      ).toBe(204);
    });
  });

  describe('per-token permissions', () => {
    it('a token limited to a project, or to read, cannot act beyond it', async () => {
      bb.addToken({
        token: 'alice-flux-only',
        user: 'alice',
        permissions: [{ project: 'FLUX' }],
      });
      bb.addToken({
        token: 'alice-read-only',
        user: 'alice',
        projectPermission: 'PROJECT_READ',
        repoPermission: 'REPO_READ',
      });
      expect(
        (
          await call('GET', '/rest/api/1.0/projects/COMM', {
            token: 'alice-flux-only',
          })
        ).status,
      ).toBe(401);
      expect(
        (
          await call('GET', '/rest/api/1.0/projects/FLUX', {
            token: 'alice-flux-only',
          })
        ).status,
      ).toBe(200);
      const create = await call('POST', '/rest/api/1.0/projects/FLUX/repos', {
        token: 'alice-read-only',
        body: { name: 'ro' },
      });
      expect(create.status).toBe(401);
      expect(create.headers.get('x-ausername')).toBe('alice');
      const url = bb.cloneUrls('FLUX', 'gitops').http;
      expect(
        await gitOk([
          '-c',
          'http.extraHeader=Authorization: Bearer alice-read-only',
          'ls-remote',
          url,
        ]),
      ).toMatch(/refs\/heads\/main/);
      const src = tmp.make();
      await newLocalRepo(src);
      const push = await gitOk([
        '-C',
        src,
        '-c',
        'http.extraHeader=Authorization: Bearer alice-read-only',
        'push',
        url,
        'main:refs/heads/ro',
      ]).catch(e => String(e));
      expect(push).toMatch(/403/);
    });
  });

  describe('access keys (/rest/keys/1.0/…/ssh)', () => {
    const base = '/rest/keys/1.0/projects/FLUX/repos/gitops/ssh';
    const keyA =
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGs3nl1bcIwdvRjNv0BHmj/Ax8HO1xtk9YJ1X4NOr2gK';
    const keyB =
      'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCs7V3a7bbZTAKt1vYCya0QmjA/I10XtYA7hFfwBjJyfIzwqu+pjM30vQLmogVsHAKmt+2H/6mm+20L9BPUkdWw=';

    it('adds (201 {key:{id,text,label},repository,permission}), lists (paged), refuses a duplicate (409), deletes (204)', async () => {
      const added = await call('POST', base, {
        token: 'alice-token',
        body: {
          key: {
            text: `${keyA}\n flux-system-main`,
            label: 'flux-system-main',
          },
          permission: 'REPO_READ',
        },
      });
      expect(added.status).toBe(201);
      expect(added.body).toEqual({
        key: {
          id: expect.any(Number),
          text: `${keyA} flux-system-main`,
          label: 'flux-system-main',
          algorithmType: 'ED25519',
          bitLength: 256,
          createdDate: expect.any(Number),
        },
        repository: expect.objectContaining({
          slug: 'gitops',
          project: expect.objectContaining({ key: 'FLUX' }),
        }),
        permission: 'REPO_READ',
      });
      const dup = await call('POST', base, {
        token: 'alice-token',
        body: { key: { text: keyA }, permission: 'REPO_WRITE' },
      });
      expect(dup.status).toBe(409);
      expect(errorOf(dup).exceptionName).toBe(
        'com.atlassian.bitbucket.ssh.DuplicateSshKeyException',
      );
      const second = await call('POST', base, {
        token: 'alice-token',
        body: { key: { text: `${keyB} ci@host` }, permission: 'REPO_WRITE' },
      });
      expect(second.body.key).toMatchObject({
        label: 'ci@host',
        algorithmType: 'ECDSA',
        bitLength: 256,
      });
      const elsewhere = await call(
        'POST',
        '/rest/keys/1.0/projects/FLUX/repos/fleet-infra/ssh',
        {
          token: 'alice-token',
          body: { key: { text: keyA }, permission: 'REPO_READ' },
        },
      );
      expect(elsewhere.status).toBe(201);
      expect(elsewhere.body.key.id).toBe(added.body.key.id);

      const page1 = await call('GET', `${base}?limit=1`, {
        token: 'alice-token',
      });
      expect(page1.body).toMatchObject({
        size: 1,
        limit: 1,
        isLastPage: false,
        nextPageStart: 1,
      });
      expect(page1.body.values[0].key.label).toBe('flux-system-main');
      const page2 = await call('GET', `${base}?limit=1&start=1`, {
        token: 'alice-token',
      });
      expect(page2.body).toMatchObject({ size: 1, isLastPage: true });
      expect(page2.body.values[0]).toMatchObject({
        permission: 'REPO_WRITE',
        key: { label: 'ci@host' },
      });

      const del = await call('DELETE', `${base}/${added.body.key.id}`, {
        token: 'alice-token',
      });
      expect(del.status).toBe(204);
      const again = await call('DELETE', `${base}/${added.body.key.id}`, {
        token: 'alice-token',
      });
      expect(again.status).toBe(404);
      expect(
        (await call('GET', base, { token: 'alice-token' })).body.values.map(
          (v: any) => v.key.label,
        ),
      ).toEqual(['ci@host']);
      expect(
        bb
          .state()
          .accessKeys.filter(k => k.slug === 'fleet-infra')
          .map(k => k.id),
      ).toEqual([added.body.key.id]);
    });

    it('validates the key and permission (400) and needs REPO_ADMIN (401)', async () => {
      const badKey = await call('POST', base, {
        token: 'alice-token',
        body: { key: { text: 'ssh-rsa notbase64!' }, permission: 'REPO_READ' },
      });
      expect(badKey.status).toBe(400);
      const badPerm = await call('POST', base, {
        token: 'alice-token',
        body: { key: { text: keyA }, permission: 'REPO_ADMIN' },
      });
      expect(badPerm.status).toBe(400);
      expect(errorOf(badPerm).context).toBe('permission');
      const notAdmin = await call('GET', base, { token: 'bob-token' });
      expect(notAdmin.status).toBe(401);
    });
  });

  describe('other resources', () => {
    it('POST /projects needs PROJECT_CREATE; 409 for a taken key', async () => {
      expect(
        (
          await call('POST', '/rest/api/1.0/projects', {
            token: 'bob-token',
            body: { key: 'NEW', name: 'New' },
          })
        ).status,
      ).toBe(401);
      bb.grantGlobal('bob', 'PROJECT_CREATE');
      const created = await call('POST', '/rest/api/1.0/projects', {
        token: 'bob-token',
        body: { key: 'NEW', name: 'New', description: 'd' },
      });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        key: 'NEW',
        name: 'New',
        description: 'd',
        type: 'NORMAL',
      });
      expect(
        (
          await call('POST', '/rest/api/1.0/projects/NEW/repos', {
            token: 'bob-token',
            body: { name: 'r' },
          })
        ).status,
      ).toBe(201);
      const dup = await call('POST', '/rest/api/1.0/projects', {
        token: 'bob-token',
        body: { key: 'new', name: 'Other' },
      });
      expect(dup.status).toBe(409);
      const bad = await call('POST', '/rest/api/1.0/projects', {
        token: 'bob-token',
        body: { key: '1X', name: 'Bad' },
      });
      expect(bad.status).toBe(400);
      expect(errorOf(bad).context).toBe('key');
    });

    it('PUT /projects/{key}/repos/{slug} updates description and visibility (REPO_ADMIN)', async () => {
      bb.createRepo('FLUX', 'editable');
      expect(
        (
          await call('PUT', '/rest/api/1.0/projects/FLUX/repos/editable', {
            token: 'bob-token',
            body: { public: true },
          })
        ).status,
      ).toBe(401);
      const r = await call(
        'PUT',
        '/rest/api/1.0/projects/FLUX/repos/editable',
        {
          token: 'alice-token',
          body: { description: 'now public', public: true },
        },
      );
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        slug: 'editable',
        description: 'now public',
        public: true,
      });
      expect(
        (await call('GET', '/rest/api/1.0/projects/FLUX/repos/editable'))
          .status,
      ).toBe(200);
    });

    it('GET /repos searches visible repositories by name; branch-utils deletes branches', async () => {
      const found = await call('GET', '/rest/api/1.0/repos?name=editable', {
        token: 'carol-token',
      });
      expect(found.body.values.map((r: any) => r.slug)).toEqual(['editable']);
      const hidden = await call('GET', '/rest/api/1.0/repos?name=vault', {
        token: 'carol-token',
      });
      expect(hidden.body.values).toEqual([]);
      bb.createRepo('FLUX', 'branchy', {
        initialCommit: true,
        defaultBranch: 'main',
      });
      await call('POST', '/rest/api/1.0/projects/FLUX/repos/branchy/branches', {
        token: 'alice-token',
        body: { name: 'tmp', startPoint: 'main' },
      });
      const del = await call(
        'DELETE',
        '/rest/branch-utils/1.0/projects/FLUX/repos/branchy/branches',
        { token: 'alice-token', body: { name: 'refs/heads/tmp' } },
      );
      expect(del.status).toBe(204);
      const left = await call(
        'GET',
        '/rest/api/1.0/projects/FLUX/repos/branchy/branches',
        { token: 'alice-token' },
      );
      expect(left.body.values.map((b: any) => b.displayId)).toEqual(['main']);
    });
  });

  it('refuses form-like state changes without X-Atlassian-Token (403 XSRF check failed) and sends nothing to the repos', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${bb.apiBaseUrl}/projects/FLUX/repos`, {
        method: 'POST',
        headers: { Authorization: 'Bearer alice-token', ...headers },
        body: JSON.stringify({ name: 'xsrf' }),
      });
    const refused = await post({ 'Content-Type': 'text/plain' });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toBe('XSRF check failed');
    expect(bb.state().repos.map(r => r.slug)).not.toContain('xsrf');
    const unsupported = await post({
      'Content-Type': 'text/plain',
      'X-Atlassian-Token': 'no-check',
    });
    expect(unsupported.status).toBe(415);
    const ok = await post({ 'Content-Type': 'application/json' });
    expect(ok.status).toBe(201);
  });

  it('unknown REST resources are 404 with Bitbucket error bodies; bad JSON is 400', async () => {
    const r = await call('GET', '/rest/api/1.0/nothing-here', {
      token: 'alice-token',
    });
    expect(r.status).toBe(404);
    expect(r.body.errors).toHaveLength(1);
    const bad = await fetch(`${bb.apiBaseUrl}/projects/FLUX/repos`, {
      method: 'POST',
      headers: {
        Authorization: 'Bearer alice-token',
        'Content-Type': 'application/json',
      },
      body: '{not json',
    });
    expect(bad.status).toBe(400);
    expect((await bad.json()).errors[0].message).toMatch(/JSON/);
  });
});
