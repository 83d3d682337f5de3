import fs from 'node:fs';
import path from 'node:path';
import isoGit from 'isomorphic-git';
import isoHttp from 'isomorphic-git/http/node';
import { listBranchesSync } from '../git/cli';
import {
  commitFile,
  gitClient,
  gitOk,
  newLocalRepo,
  tempDirs,
} from '../git/testUtils';
import { newKey } from '../ssh/testKeys';
import { BitbucketDouble, startBitbucketDouble } from './double';
import { patternToRegExp } from './refmatch';
import { addUsersWithTokens, bearer, errorOf, restClient } from './testClient';

jest.setTimeout(90_000);

const BANNER = `remote: ${'-'.repeat(52)}`;
const CHECK =
  'remote: Check your branch permissions configuration with the project administrator.';

/** REST branch creation: `name` from main in FLUX/`slug`, as the token's user. */
const createBranch = (
  call: ReturnType<typeof restClient>,
  slug: string,
  name: string,
  token: string,
) =>
  call('POST', `/rest/api/1.0/projects/FLUX/repos/${slug}/branches`, {
    token,
    body: { name, startPoint: 'refs/heads/main' },
  });

describe("Bitbucket's branch permission patterns", () => {
  it.each([
    ['*', 'refs/heads/main', true],
    ['*', 'refs/tags/v1', true],
    ['main', 'refs/heads/main', true],
    ['main', 'refs/heads/stable/main', true],
    ['main', 'refs/heads/mainline', false],
    ['PROJECT-*', 'refs/heads/PROJECT-1234', true],
    ['PROJECT-*', 'refs/heads/stable/PROJECT-new', true],
    ['PROJECT-*', 'refs/tags/PROJECT-1.1', true],
    ['PROJECT-*', 'refs/heads/other', false],
    ['?.?', 'refs/heads/1.1', true],
    ['?.?', 'refs/heads/stable/2.X', true],
    ['?.?', 'refs/heads/10.1', false],
    ['tags/', 'refs/tags/project-1.1.0', true],
    ['tags/**', 'refs/heads/stable/tags/some_branch', true],
    ['tags/**', 'refs/heads/main', false],
    ['heads/**/master', 'refs/heads/master', true],
    ['heads/**/master', 'refs/heads/stable/master', true],
    ['heads/**/master', 'refs/tags/master', false],
    ['release/*', 'refs/heads/release/1.0', true],
    ['release/*', 'refs/heads/release/1.0/hotfix', false],
    ['release/**', 'refs/heads/release/1.0/hotfix', true],
    ['flux/*', 'refs/heads/flux/prod', true],
  ])('%s matches %s: %s', (pattern, ref, expected) => {
    expect(patternToRegExp(pattern).test(ref)).toBe(expected);
  });
});

describe('Bitbucket double: branch permissions REST API (/rest/branch-permissions/2.0)', () => {
  let bb: BitbucketDouble;
  let call: ReturnType<typeof restClient>;
  let keyId: number;
  const base = '/rest/branch-permissions/2.0/projects/FLUX/repos/fleet';
  const postRestriction = (body: unknown, token = 'alice-token') =>
    call('POST', `${base}/restrictions`, { token, body });

  beforeAll(async () => {
    bb = await startBitbucketDouble({ contextPath: '/bitbucket' });
    call = restClient(bb);
    addUsersWithTokens(bb, 'alice', 'bob');
    bb.addUser({ name: 'carol' });
    bb.addGroup('release-managers', ['carol']);
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
    bb.grantProject('FLUX', { user: 'bob' }, 'PROJECT_WRITE');
    bb.createRepo('FLUX', 'fleet', { defaultBranch: 'main' });
    bb.createRepo('FLUX', 'other', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    keyId = bb.addAccessKey(
      'FLUX',
      'fleet',
      {
        text: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2cOnY1BfQcWuvnh2Vw4ffbCkrhZ/HpmvbWZ0bSpAb flux',
        label: 'flux',
      },
      'REPO_WRITE',
    );
  });
  afterAll(() => bb.stop());

  it("creates one restriction (application/json) and renders Atlassian's RestRefRestriction", async () => {
    const r = await postRestriction({
      type: 'pull-request-only',
      matcher: { id: 'refs/heads/main', type: { id: 'BRANCH' } },
      users: ['carol'],
      groups: ['release-managers'],
      accessKeys: [keyId],
    });
    expect(r.status).toBe(200);
    const repo = (
      await call('GET', '/rest/api/1.0/projects/FLUX/repos/fleet', {
        token: 'alice-token',
      })
    ).body;
    expect(r.body).toEqual({
      id: expect.any(Number),
      type: 'pull-request-only',
      scope: { type: 'REPOSITORY', resourceId: repo.id },
      matcher: {
        id: 'refs/heads/main',
        displayId: 'main',
        type: { id: 'BRANCH', name: 'Branch' },
        active: true,
      },
      users: [
        expect.objectContaining({
          name: 'carol',
          slug: 'carol',
          type: 'NORMAL',
        }),
      ],
      groups: ['release-managers'],
      accessKeys: [
        {
          key: expect.objectContaining({ id: keyId, label: 'flux' }),
          permission: 'REPO_WRITE',
        },
      ],
    });
    const got = await call('GET', `${base}/restrictions/${r.body.id}`, {
      token: 'alice-token',
    });
    expect(got.body).toEqual(r.body);
    // the same type and matcher again updates it in place (same id)
    const again = await postRestriction({
      type: 'pull-request-only',
      matcher: { id: 'main', type: { id: 'BRANCH' } },
      userSlugs: ['carol'],
    });
    expect(again.body.id).toBe(r.body.id);
    expect(again.body.groups).toEqual([]);
    await call('DELETE', `${base}/restrictions/${r.body.id}`, {
      token: 'alice-token',
    });
  });

  it('creates many with application/vnd.atl.bitbucket.bulk+json; lists them paged and filtered; deletes with 204', async () => {
    const bulk = await call('POST', `${base}/restrictions`, {
      token: 'alice-token',
      contentType: 'application/vnd.atl.bitbucket.bulk+json',
      body: [
        {
          type: 'read-only',
          matcher: { id: 'release/*', type: { id: 'PATTERN' } },
        },
        {
          type: 'no-deletes',
          matcher: { id: 'refs/heads/main', type: { id: 'BRANCH' } },
        },
        {
          type: 'fast-forward-only',
          matcher: { id: 'refs/heads/main', type: { id: 'BRANCH' } },
        },
        {
          type: 'pull-request-only',
          matcher: { id: 'FEATURE', type: { id: 'MODEL_CATEGORY' } },
        },
      ],
    });
    expect(bulk.status).toBe(200);
    expect(
      bulk.body.map((x: any) => [
        x.type,
        x.matcher.type.id,
        x.matcher.displayId,
      ]),
    ).toEqual([
      ['read-only', 'PATTERN', 'release/*'],
      ['no-deletes', 'BRANCH', 'main'],
      ['fast-forward-only', 'BRANCH', 'main'],
      ['pull-request-only', 'MODEL_CATEGORY', 'Feature'],
    ]);
    const page1 = await call('GET', `${base}/restrictions?limit=3`, {
      token: 'alice-token',
    });
    expect(page1.body).toMatchObject({
      size: 3,
      limit: 3,
      isLastPage: false,
      nextPageStart: 3,
      start: 0,
    });
    const page2 = await call('GET', `${base}/restrictions?limit=3&start=3`, {
      token: 'alice-token',
    });
    expect(page2.body).toMatchObject({ size: 1, isLastPage: true, start: 3 });
    expect(page2.body.nextPageStart).toBeUndefined();
    const byType = await call(
      'GET',
      `${base}/restrictions?type=no-deletes&type=read-only`,
      {
        token: 'alice-token',
      },
    );
    expect(byType.body.values.map((x: any) => x.type).sort()).toEqual([
      'no-deletes',
      'read-only',
    ]);
    const byMatcher = await call(
      'GET',
      `${base}/restrictions?matcherType=BRANCH&matcherId=refs/heads/main`,
      { token: 'alice-token' },
    );
    expect(byMatcher.body.values.map((x: any) => x.type)).toEqual([
      'no-deletes',
      'fast-forward-only',
    ]);
    const noType = await call('GET', `${base}/restrictions?matcherId=main`, {
      token: 'alice-token',
    });
    expect(noType.status).toBe(400);
    expect(errorOf(noType).context).toBe('matcherId');
    for (const x of bulk.body) {
      const d = await call('DELETE', `${base}/restrictions/${x.id}`, {
        token: 'alice-token',
      });
      expect(d.status).toBe(204);
    }
    const gone = await call('GET', `${base}/restrictions/${bulk.body[0].id}`, {
      token: 'alice-token',
    });
    expect(gone.status).toBe(404);
    expect(errorOf(gone).exceptionName).toMatch(
      /NoSuchRefRestrictionException$/,
    );
  });

  it('validates every request of a bulk before storing any (400 naming the field)', async () => {
    const bad = await call('POST', `${base}/restrictions`, {
      token: 'alice-token',
      contentType: 'application/vnd.atl.bitbucket.bulk+json',
      body: [
        { type: 'read-only', matcher: { id: 'main', type: { id: 'BRANCH' } } },
        {
          type: 'read-only',
          matcher: { id: 'main', type: { id: 'BRANCH' } },
          users: ['nobody'],
        },
      ],
    });
    expect(bad.status).toBe(400);
    expect(errorOf(bad)).toMatchObject({
      context: 'users',
      message: 'User "nobody" does not exist.',
    });
    const wrongType = await postRestriction({
      type: 'no-pushes',
      matcher: { id: 'main', type: { id: 'BRANCH' } },
    });
    expect(errorOf(wrongType).context).toBe('type');
    const wrongMatcher = await postRestriction({
      type: 'read-only',
      matcher: { id: 'main', type: { id: 'BRANCHES' } },
    });
    expect(errorOf(wrongMatcher).context).toBe('matcher.type');
    const arrayAsJson = await postRestriction([
      { type: 'read-only', matcher: { id: 'main', type: { id: 'BRANCH' } } },
    ]);
    expect(arrayAsJson.status).toBe(400);
    expect(bb.state().restrictions).toEqual([]);
  });

  it('needs REPO_ADMIN (repository) / PROJECT_ADMIN (project): others get 401 AuthorisationException', async () => {
    const asWriter = await call('GET', `${base}/restrictions`, {
      token: 'bob-token',
    });
    expect(asWriter.status).toBe(401);
    expect(errorOf(asWriter).exceptionName).toBe(
      'com.atlassian.bitbucket.AuthorisationException',
    );
    const create = await postRestriction(
      {
        type: 'read-only',
        matcher: { id: 'main', type: { id: 'BRANCH' } },
      },
      'bob-token',
    );
    expect(create.status).toBe(401);
    const anonymous = await call('GET', `${base}/restrictions`);
    expect(anonymous.status).toBe(401);
    const project = await call(
      'GET',
      '/rest/branch-permissions/latest/projects/FLUX/restrictions',
      {
        token: 'bob-token',
      },
    );
    expect(project.status).toBe(401);
    expect(bb.state().restrictions).toEqual([]);
  });

  it('project-level restrictions live at /projects/{key}/restrictions and are not listed per repository', async () => {
    const p = await call(
      'POST',
      '/rest/branch-permissions/latest/projects/FLUX/restrictions',
      {
        token: 'alice-token',
        body: {
          type: 'read-only',
          matcher: { id: 'refs/heads/frozen', type: { id: 'BRANCH' } },
        },
      },
    );
    expect(p.status).toBe(200);
    expect(p.body.scope).toEqual({
      type: 'PROJECT',
      resourceId: expect.any(Number),
    });
    const repoList = await call('GET', `${base}/restrictions`, {
      token: 'alice-token',
    });
    expect(repoList.body.values).toEqual([]);
    const projectList = await call(
      'GET',
      '/rest/branch-permissions/2.0/projects/FLUX/restrictions',
      {
        token: 'alice-token',
      },
    );
    expect(projectList.body.values.map((x: any) => x.id)).toEqual([p.body.id]);
    // a repository path does not reach a project-level id
    const viaRepo = await call('GET', `${base}/restrictions/${p.body.id}`, {
      token: 'alice-token',
    });
    expect(viaRepo.status).toBe(404);
    // REST branch creation honours it (in every repository of the project)
    const branch = await createBranch(call, 'other', 'frozen', 'alice-token');
    expect(branch.status).toBe(401);
    expect(errorOf(branch)).toMatchObject({
      message: 'Branch refs/heads/frozen is read-only.',
      exceptionName: 'com.atlassian.bitbucket.AuthorisationException',
    });
    bb.removeRestriction(p.body.id);
    expect(bb.state().restrictions).toEqual([]);
  });
});

describe('Bitbucket double: branch permissions enforced on git pushes (a real pre-receive hook, HTTP and SSH)', () => {
  let bb: BitbucketDouble;
  const tmp = tempDirs();
  let work: string;
  let httpUrl: string;
  let sshUrl: string;
  let knownHosts: string;
  const keys: Record<string, { file: string; pub: string; id?: number }> = {};

  const sshEnv = (key: string) => ({
    GIT_SSH_COMMAND: [
      'ssh -F /dev/null -i',
      key,
      '-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes',
      `-o UserKnownHostsFile=${knownHosts} -o GlobalKnownHostsFile=/dev/null`,
    ].join(' '),
  });
  const head = (branch: string) =>
    listBranchesSync(bb.repoPath('FLUX', 'fleet')).find(b => b.name === branch)
      ?.sha;
  const push = (token: string, ...refspecs: string[]) =>
    gitClient(['-C', work, ...bearer(token), 'push', httpUrl, ...refspecs]);

  beforeAll(async () => {
    bb = await startBitbucketDouble({ ssh: true });
    addUsersWithTokens(bb, 'alice', 'bob', 'carol', 'dave');
    bb.addGroup('release-managers', ['dave']);
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
    for (const u of ['bob', 'carol', 'dave'])
      bb.grantProject('FLUX', { user: u }, 'PROJECT_WRITE');
    bb.createRepo('FLUX', 'fleet', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    const urls = bb.cloneUrls('FLUX', 'fleet');
    httpUrl = urls.http;
    sshUrl = urls.ssh!;
    const keysDir = tmp.make('ssh-keys');
    for (const name of ['deploy', 'exempt']) {
      keys[name] = await newKey(keysDir, name);
      keys[name].id = bb.addAccessKey(
        'FLUX',
        'fleet',
        { text: keys[name].pub, label: name },
        'REPO_WRITE',
      );
    }
    knownHosts = path.join(keysDir, 'known_hosts');
    fs.writeFileSync(knownHosts, bb.ssh!.knownHosts);
    work = tmp.make('work');
    // (-c before the subcommand: a clone would keep the header in its config)
    await gitOk([...bearer('alice-token'), 'clone', '-q', httpUrl, work]);
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  it("pull-request-only: a direct push to main is declined by the hook with Bitbucket's text, over HTTP", async () => {
    const id = bb.addRestriction('FLUX', 'fleet', {
      type: 'pull-request-only',
      matcher: 'main',
      users: ['carol'],
      groups: ['release-managers'],
      accessKeys: [keys.exempt.id!],
    });
    const before = head('main');
    await commitFile(
      work,
      'clusters/prod/flux-system/gotk-sync.yaml',
      'kind: Kustomization\n',
    );
    const r = await push('bob-token', 'HEAD:refs/heads/main');
    expect(r.code).not.toBe(0);
    const lines = r.stderr.split('\n').map(l => l.trimEnd());
    const start = lines.indexOf(BANNER);
    expect(lines.slice(start, start + 4)).toEqual([
      BANNER,
      'remote: Branch refs/heads/main can only be modified through pull requests.',
      CHECK,
      BANNER,
    ]);
    expect(r.stderr).toMatch(
      /! \[remote rejected\] HEAD -> main \(pre-receive hook declined\)/,
    );
    expect(head('main')).toBe(before);
    // creating a branch is not restricted (only changes to existing ones)
    const feature = await push('bob-token', 'HEAD:refs/heads/flux/prod');
    expect(feature.code).toBe(0);
    // exempt: a listed user and a member of a listed group
    const exemptUser = await push('carol-token', 'HEAD:refs/heads/main');
    expect(exemptUser.code).toBe(0);
    await commitFile(work, 'b.txt', 'b\n');
    const exemptGroup = await push('dave-token', 'HEAD:refs/heads/main');
    expect(exemptGroup.code).toBe(0);
    expect(head('main')).not.toBe(before);
    const audit = bb
      .state()
      .audit.filter(a => a.action === 'PUSH' || a.action === 'PUSH_REJECTED');
    expect(audit.map(a => [a.action, a.actor, a.via])).toEqual([
      ['PUSH_REJECTED', 'bob', 'http-access-token'],
      ['PUSH', 'bob', 'http-access-token'],
      ['PUSH', 'carol', 'http-access-token'],
      ['PUSH', 'dave', 'http-access-token'],
    ]);
    expect(audit[0].details).toEqual({
      refs: [
        {
          ref: 'refs/heads/main',
          old: before,
          new: expect.stringMatching(/^[0-9a-f]{40}$/),
        },
      ],
      restrictions: [{ ref: 'refs/heads/main', type: 'pull-request-only' }],
    });
    bb.removeRestriction(id);
  });

  it('pull-request-only over SSH: an access key is declined the same way unless the restriction exempts it', async () => {
    const id = bb.addRestriction('FLUX', 'fleet', {
      type: 'pull-request-only',
      matcher: 'refs/heads/main',
      accessKeys: [keys.exempt.id!],
    });
    const before = head('main');
    await commitFile(work, 'c.txt', 'c\n');
    const r = await gitClient(
      ['-C', work, 'push', sshUrl, 'HEAD:refs/heads/main'],
      {
        env: sshEnv(keys.deploy.file),
      },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'remote: Branch refs/heads/main can only be modified through pull requests.',
    );
    expect(r.stderr).toContain(CHECK);
    expect(r.stderr).toMatch(
      /! \[remote rejected\] HEAD -> main \(pre-receive hook declined\)/,
    );
    expect(head('main')).toBe(before);
    const ok = await gitClient(
      ['-C', work, 'push', sshUrl, 'HEAD:refs/heads/main'],
      {
        env: sshEnv(keys.exempt.file),
      },
    );
    expect(ok.code).toBe(0);
    const audit = bb
      .state()
      .audit.filter(a => a.action.startsWith('PUSH'))
      .slice(-2);
    expect(audit.map(a => [a.action, a.accessKeyId, a.via])).toEqual([
      ['PUSH_REJECTED', keys.deploy.id, 'access-key'],
      ['PUSH', keys.exempt.id, 'access-key'],
    ]);
    bb.removeRestriction(id);
  });

  it('no-deletes, fast-forward-only and read-only (project level, pattern) each decline what they forbid', async () => {
    const noDeletes = bb.addRestriction('FLUX', 'fleet', {
      type: 'no-deletes',
      matcher: 'flux/*',
    });
    const del = await push('bob-token', ':refs/heads/flux/prod');
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain(
      'remote: Branch refs/heads/flux/prod cannot be deleted.',
    );
    expect(del.stderr).toMatch(
      /\[remote rejected\] flux\/prod \(pre-receive hook declined\)/,
    );
    expect(head('flux/prod')).toBeDefined();
    bb.removeRestriction(noDeletes);

    const ffOnly = bb.addRestriction('FLUX', 'fleet', {
      type: 'fast-forward-only',
      matcher: 'main',
    });
    const before = head('main')!;
    await gitOk(['-C', work, 'reset', '-q', '--hard', 'HEAD~1']);
    await commitFile(work, 'rewrite.txt', 'rewritten\n');
    const force = await push('bob-token', '+HEAD:refs/heads/main');
    expect(force.code).not.toBe(0);
    expect(force.stderr).toContain(
      'remote: Branch refs/heads/main cannot be rewritten',
    );
    expect(head('main')).toBe(before);
    await gitOk([
      '-C',
      work,
      ...bearer('bob-token'),
      'fetch',
      '-q',
      httpUrl,
      'main',
    ]);
    await gitOk(['-C', work, 'reset', '-q', '--hard', 'FETCH_HEAD']);
    await commitFile(work, 'forward.txt', 'forward\n');
    expect((await push('bob-token', 'HEAD:refs/heads/main')).code).toBe(0);
    bb.removeRestriction(ffOnly);

    const readOnly = bb.addRestriction('FLUX', undefined, {
      type: 'read-only',
      matcher: 'release/*',
    });
    const create = await push('bob-token', 'HEAD:refs/heads/release/1.0');
    expect(create.code).not.toBe(0);
    expect(create.stderr).toContain(
      'remote: Branch refs/heads/release/1.0 is read-only.',
    );
    expect(head('release/1.0')).toBeUndefined();
    const call = restClient(bb);
    const viaRest = await createBranch(
      call,
      'fleet',
      'release/1.0',
      'bob-token',
    );
    expect(viaRest.status).toBe(401);
    expect(errorOf(viaRest).message).toBe(
      'Branch refs/heads/release/1.0 is read-only.',
    );
    bb.removeRestriction(readOnly);
  });

  it('a push of several refs is declined as a whole when one of them is forbidden (pre-receive is all or nothing)', async () => {
    const id = bb.addRestriction('FLUX', 'fleet', {
      type: 'pull-request-only',
      matcher: 'main',
    });
    await commitFile(work, 'd.txt', 'd\n');
    const r = await push(
      'bob-token',
      'HEAD:refs/heads/main',
      'HEAD:refs/heads/flux/staging',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /\[remote rejected\] HEAD -> main \(pre-receive hook declined\)/,
    );
    expect(r.stderr).toMatch(
      /\[remote rejected\] HEAD -> flux\/staging \(pre-receive hook declined\)/,
    );
    expect(head('flux/staging')).toBeUndefined();
    bb.removeRestriction(id);
  });

  it("isomorphic-git (the engine's HTTPS client) gets the per-ref error and Bitbucket's text on its message callback", async () => {
    const id = bb.addRestriction('FLUX', 'fleet', {
      type: 'pull-request-only',
      matcher: 'main',
    });
    await gitOk([
      '-C',
      work,
      ...bearer('bob-token'),
      'fetch',
      '-q',
      httpUrl,
      'main',
    ]);
    await gitOk(['-C', work, 'checkout', '-q', '-B', 'iso', 'FETCH_HEAD']);
    await commitFile(work, 'iso.txt', 'iso\n');
    const messages: string[] = [];
    let error: unknown;
    try {
      await isoGit.push({
        fs,
        http: isoHttp,
        dir: work,
        url: httpUrl,
        ref: 'iso',
        remoteRef: 'refs/heads/main',
        headers: { Authorization: 'Bearer bob-token' },
        onMessage: m => void messages.push(m),
      });
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string }).code).toBe('GitPushError');
    expect(
      (error as { data?: any }).data.result.refs['refs/heads/main'],
    ).toEqual({
      ok: false,
      error: 'pre-receive hook declined',
    });
    expect(messages.join('')).toContain(
      'Branch refs/heads/main can only be modified through pull requests.',
    );
    bb.removeRestriction(id);
  });

  it('a local push into the bare repository on disk (test setup) is not checked', async () => {
    const id = bb.addRestriction('FLUX', 'fleet', {
      type: 'read-only',
      matcher: '*',
    });
    const local = tmp.make('local');
    await newLocalRepo(local, 'main');
    await gitOk([
      '-C',
      local,
      'push',
      '-q',
      bb.repoPath('FLUX', 'fleet'),
      'main:refs/heads/seeded',
    ]);
    expect(head('seeded')).toBeDefined();
    bb.removeRestriction(id);
  });
});
