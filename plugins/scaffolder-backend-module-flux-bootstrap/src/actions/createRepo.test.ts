import { execFileSync } from 'node:child_process';
import { ConfigReader } from '@backstage/config';
import {
  startBitbucketDouble,
  BitbucketDouble,
} from '@flux-bootstrap/test-peers';
import { runAction } from './__testUtils__/actionHarness';
import { createBitbucketCreateRepoAction } from './createRepo';
import { examples } from './createRepo.examples';
import yaml from 'yaml';

// Integration tests of bitbucket:create-repo against the Bitbucket Server double of
// @flux-bootstrap/test-peers (real git http-backend behind /scm, real sshd when asked for).

// Real git and a real HTTP server on a shared 2-core machine: generous per-test limits.
jest.setTimeout(60_000);

const INPUT_TOKEN = 'canary-input-token-3b9f07d1c2';
const INTEGRATION_TOKEN = 'canary-integration-token-a84e51';
const INTEGRATION_PASSWORD = 'canary-integration-password-5f27c9';
const PROJECT_TOKEN = 'canary-project-token-0d2e95';
const CANARIES = [
  INPUT_TOKEN,
  INTEGRATION_TOKEN,
  INTEGRATION_PASSWORD,
  PROJECT_TOKEN,
];

/** Everything that left the action: log lines, outputs and errors. Scanned for canaries at the end. */
const leaked: string[] = [];
/** Authorization headers Bitbucket received. */
const wireAuthorization: string[] = [];

type Json = Record<string, unknown>;

function configFor(
  bb: BitbucketDouble,
  extra: {
    caPem?: string;
    caFile?: string;
    sshHost?: string;
    token?: string | null;
    requireUser?: boolean;
  } = {},
) {
  return new ConfigReader({
    integrations: {
      bitbucketServer: [
        {
          host: bb.host,
          apiBaseUrl: bb.apiBaseUrl,
          ...(extra.token === null
            ? {}
            : { token: extra.token ?? INTEGRATION_TOKEN }),
        },
      ],
    },
    fluxBootstrap: {
      bitbucketServer: [
        {
          host: bb.host,
          ...(extra.caPem ? { caData: extra.caPem } : {}),
          ...(extra.caFile ? { caFile: extra.caFile } : {}),
          sshHost: extra.sshHost ?? 'bitbucket-ssh.example.com:7999',
          retries: 3,
        },
      ],
    },
    ...(extra.requireUser
      ? { scaffolder: { requireScmUserCredentials: true } }
      : {}),
  });
}

interface RunResult {
  outputs: Json;
  error?: Error;
  logs: string[];
  /** request-log index ranges covered by checkpoint functions, and the keys */
  checkpoints: { key: string; from: number; to: number }[];
}

async function run(
  bb: BitbucketDouble,
  input: Json,
  opts: {
    config?: ConfigReader;
    dryRun?: boolean;
    signal?: AbortSignal;
    store?: Map<string, unknown>;
  } = {},
): Promise<RunResult> {
  const checkpoints: RunResult['checkpoints'] = [];
  const r = await runAction(createBitbucketCreateRepoAction, input, {
    factoryOptions: { config: opts.config ?? configFor(bb) },
    secrets: { bitbucketToken: INPUT_TOKEN },
    dryRun: opts.dryRun,
    signal: opts.signal,
    produced: leaked,
    // Behaves like the scaffolder with task recovery: a key that succeeded before is not run again.
    async checkpoint({ key, fn }) {
      if (opts.store?.has(key)) return opts.store.get(key);
      const from = bb.requests().length;
      const value = await fn();
      checkpoints.push({ key, from, to: bb.requests().length });
      opts.store?.set(key, JSON.parse(JSON.stringify(value ?? {})));
      return value;
    },
  });
  return { outputs: r.outputs, error: r.error, logs: r.logs, checkpoints };
}

function mutations(bb: BitbucketDouble, from = 0) {
  return bb
    .requests()
    .slice(from)
    .filter(r => r.method !== 'GET' && !r.path.endsWith('/git-upload-pack'));
}

/** Proves that every request that changes something happened inside a checkpoint. */
function expectMutationsInsideCheckpoints(
  bb: BitbucketDouble,
  r: RunResult,
  from: number,
) {
  const all = bb.requests();
  for (let i = from; i < all.length; i++) {
    const req = all[i];
    const changes =
      req.method !== 'GET' && !req.path.endsWith('/git-upload-pack');
    if (!changes) continue;
    const inside = r.checkpoints.some(c => i >= c.from && i < c.to);
    if (!inside)
      throw new Error(
        `${req.method} ${req.path} was sent outside any checkpoint`,
      );
  }
}

function gitLsRemote(
  bb: BitbucketDouble,
  projectKey: string,
  slug: string,
): Record<string, string> {
  const out = execFileSync(
    'git',
    ['ls-remote', '--symref', bb.repoPath(projectKey, slug)],
    { encoding: 'utf8' },
  );
  const refs: Record<string, string> = {};
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [a, b] = line.split('\t');
    refs[b] = a;
  }
  return refs;
}

function repoState(bb: BitbucketDouble, projectKey: string, slug: string) {
  return bb
    .state()
    .repos.find(r => r.projectKey === projectKey && r.slug === slug);
}

function groupPerms(bb: BitbucketDouble, projectKey: string, slug: string) {
  return bb
    .state()
    .groupPermissions.repo.filter(
      p => p.projectKey === projectKey && p.slug === slug,
    )
    .map(p => `${p.group}=${p.permission}`)
    .sort();
}

describe('bitbucket:create-repo', () => {
  let bb: BitbucketDouble;

  beforeAll(async () => {
    bb = await startBitbucketDouble();
    bb.addUser({
      name: 'alice',
      displayName: 'Alice Admin',
      email: 'alice@example.com',
    });
    bb.addUser({ name: 'bob' });
    bb.addUser({ name: 'carol' });
    bb.addGroup('flux-admins', ['alice']);
    bb.addGroup('developers', ['bob']);
    bb.addGroup('flux-admins-extra');
    bb.addProject({ key: 'FLUX', name: 'Flux Fleet' });
    bb.addProject({ key: 'UNI', name: 'unity' });
    // 150 projects whose names contain "unity" and sort before it: the exact match is on page 2.
    for (let i = 0; i < 150; i++) {
      bb.addProject({
        key: `CMT${i}`,
        name: `Community ${String(i).padStart(3, '0')}`,
        public: true,
      });
    }
    for (const key of ['FLUX', 'UNI'])
      bb.grantProject(key, { user: 'alice' }, 'PROJECT_ADMIN');
    bb.grantProject('FLUX', { user: 'carol' }, 'PROJECT_READ');
    bb.addToken({ token: INPUT_TOKEN, user: 'alice' });
    bb.addToken({ token: INTEGRATION_TOKEN, user: 'alice' });
    bb.addToken({ token: 'carol-token-5521', user: 'carol' });
    bb.addToken({ token: 'expired-token-0042', user: 'alice', expired: true });
  });

  afterAll(async () => {
    wireAuthorization.push(...bb.requests().map(q => q.headers.authorization));
    await bb?.stop();
  });

  beforeEach(() => {
    bb.clearFaults();
  });

  it('creates a private project repository with groups, verified, and the default branch', async () => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=fleet-infra`,
      description: 'Flux fleet',
      groups: [
        { name: 'flux-admins', permission: 'REPO_ADMIN' },
        { name: 'developers' },
      ],
      token: INPUT_TOKEN,
    });
    expect(r.error).toBeUndefined();
    expect(r.outputs).toEqual({
      remoteUrl: `${bb.baseUrl}/scm/flux/fleet-infra.git`,
      sshUrl: 'ssh://git@bitbucket-ssh.example.com:7999/flux/fleet-infra.git',
      repoContentsUrl: `${bb.baseUrl}/projects/FLUX/repos/fleet-infra/browse`,
      projectKey: 'FLUX',
      repoSlug: 'fleet-infra',
      defaultBranch: 'main',
      created: true,
      tokenOwner: 'alice',
    });
    const create = bb
      .requests()
      .slice(from)
      .find(
        q =>
          q.method === 'POST' && q.path === '/rest/api/1.0/projects/FLUX/repos',
      )!;
    expect(JSON.parse(create.body!)).toEqual({
      name: 'fleet-infra',
      scmId: 'git',
      public: false,
      defaultBranch: 'main',
      description: 'Flux fleet',
    });
    const repo = repoState(bb, 'FLUX', 'fleet-infra')!;
    expect(repo.public).toBe(false);
    expect(repo.branches.map(b => b.name)).toEqual(['main']);
    expect(repo.defaultBranch).toBe('main');
    expect(groupPerms(bb, 'FLUX', 'fleet-infra')).toEqual([
      'developers=REPO_WRITE',
      'flux-admins=REPO_ADMIN',
    ]);
    // each grant is read back after it was set
    const permReads = bb
      .requests()
      .slice(from)
      .filter(
        q =>
          q.path ===
          '/rest/api/1.0/projects/FLUX/repos/fleet-infra/permissions/groups',
      )
      .map(q => `${q.method} ${q.query.filter ?? q.query.name}`);
    expect(permReads).toEqual([
      'GET flux-admins',
      'PUT flux-admins',
      'GET flux-admins',
      'GET developers',
      'PUT developers',
      'GET developers',
    ]);
    // the branch really exists in the bare repository: the next step can fetch and push on top of it
    const refs = gitLsRemote(bb, 'FLUX', 'fleet-infra');
    expect(refs['refs/heads/main']).toMatch(/^[0-9a-f]{40}$/);
    expect(refs.HEAD).toBe(refs['refs/heads/main']);
    const log = execFileSync(
      'git',
      [
        '--git-dir',
        bb.repoPath('FLUX', 'fleet-infra'),
        'log',
        '--format=%an <%ae>|%s',
        'main',
      ],
      {
        encoding: 'utf8',
      },
    );
    expect(log.trim()).toBe('Alice Admin <alice@example.com>|Initial commit');
    expectMutationsInsideCheckpoints(bb, r, from);
    expect(r.checkpoints.map(c => c.key)).toEqual([
      'repository.flux.fleet-infra',
      'group-permission.flux.fleet-infra.flux-admins',
      'group-permission.flux.fleet-infra.developers',
      'default-branch.flux.fleet-infra.main',
    ]);
  });

  it('converges over three runs: one repository, one permission per group, no error', async () => {
    const input = {
      repoUrl: `${bb.host}?project=FLUX&repo=converge`,
      groups: [{ name: 'flux-admins', permission: 'REPO_WRITE' }],
    };
    const first = await run(bb, input);
    expect(first.error).toBeUndefined();
    expect(first.outputs.created).toBe(true);
    const head = gitLsRemote(bb, 'FLUX', 'converge')['refs/heads/main'];
    for (let i = 0; i < 2; i++) {
      const from = bb.requests().length;
      const again = await run(bb, input);
      expect(again.error).toBeUndefined();
      expect(again.outputs).toEqual({ ...first.outputs, created: false });
      // nothing left to change: only reads
      expect(mutations(bb, from)).toEqual([]);
    }
    expect(
      bb
        .state()
        .repos.filter(r => r.projectKey === 'FLUX' && r.slug === 'converge'),
    ).toHaveLength(1);
    expect(groupPerms(bb, 'FLUX', 'converge')).toEqual([
      'flux-admins=REPO_WRITE',
    ]);
    expect(gitLsRemote(bb, 'FLUX', 'converge')['refs/heads/main']).toBe(head);
  });

  it('with task recovery, completed checkpoints are not run again', async () => {
    const store = new Map<string, unknown>();
    const input = {
      repoUrl: `${bb.host}?project=FLUX&repo=recovered`,
      groups: [{ name: 'developers' }],
    };
    const first = await run(bb, input, { store });
    expect(first.error).toBeUndefined();
    const from = bb.requests().length;
    const resumed = await run(bb, input, { store });
    expect(resumed.error).toBeUndefined();
    // the recovered task reports what the first attempt did
    expect(resumed.outputs).toEqual(first.outputs);
    expect(resumed.outputs.created).toBe(true);
    expect(mutations(bb, from)).toEqual([]);
  });

  it('converges a group whose permission was changed by hand', async () => {
    const input = {
      repoUrl: `${bb.host}?project=FLUX&repo=regrant`,
      groups: [{ name: 'developers', permission: 'REPO_READ' }],
    };
    expect((await run(bb, input)).error).toBeUndefined();
    bb.grantRepo('FLUX', 'regrant', { group: 'developers' }, 'REPO_ADMIN');
    expect((await run(bb, input)).error).toBeUndefined();
    expect(groupPerms(bb, 'FLUX', 'regrant')).toEqual(['developers=REPO_READ']);
  });

  it('creates a personal repository after checking the token belongs to its owner', async () => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=~alice&repo=My Fleet`,
      token: INPUT_TOKEN,
    });
    expect(r.error).toBeUndefined();
    expect(r.outputs).toMatchObject({
      projectKey: '~ALICE',
      repoSlug: 'my-fleet',
      remoteUrl: `${bb.baseUrl}/scm/~alice/my-fleet.git`,
      sshUrl: 'ssh://git@bitbucket-ssh.example.com:7999/~alice/my-fleet.git',
      repoContentsUrl: `${bb.baseUrl}/users/alice/repos/my-fleet/browse`,
      created: true,
    });
    const calls = bb.requests().slice(from);
    const identity = calls.findIndex(
      q => q.path === '/rest/api/1.0/application-properties',
    );
    const create = calls.findIndex(q => q.method === 'POST');
    expect(identity).toBeGreaterThanOrEqual(0);
    expect(identity).toBeLessThan(create);
    expect(
      repoState(bb, '~ALICE', 'my-fleet')?.branches.map(b => b.name),
    ).toEqual(['main']);
  });

  it('refuses a personal repository of somebody else before creating anything', async () => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=~bob&repo=fleet`,
      token: INPUT_TOKEN,
    });
    expect(r.error?.message).toMatch(/personal repository of "bob"/);
    expect(r.error?.message).toMatch(/belong to "alice"/);
    expect(mutations(bb, from)).toEqual([]);
    expect(bb.state().repos.some(x => x.projectKey === '~BOB')).toBe(false);
  });

  it('finds a project by exact name across pages, never by substring', async () => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=unity&repo=by-name`,
    });
    expect(r.error).toBeUndefined();
    expect(r.outputs.projectKey).toBe('UNI');
    const lookups = bb
      .requests()
      .slice(from)
      .filter(
        q => q.path === '/rest/api/1.0/projects' && q.query.name === 'unity',
      );
    expect(lookups.map(q => q.query.start)).toEqual(['0', '100']);
    expect(
      bb
        .state()
        .repos.filter(x => x.slug === 'by-name')
        .map(x => x.projectKey),
    ).toEqual(['UNI']);
  });

  it('accepts a project name with spaces and a key in any case', async () => {
    const byName = await run(bb, {
      repoUrl: `${bb.host}?project=Flux Fleet&repo=spaced`,
    });
    expect(byName.error).toBeUndefined();
    expect(byName.outputs.projectKey).toBe('FLUX');
    const byLowerKey = await run(bb, {
      repoUrl: `${bb.host}?project=flux&repo=spaced`,
    });
    expect(byLowerKey.error).toBeUndefined();
    expect(byLowerKey.outputs).toEqual({ ...byName.outputs, created: false });
  });

  it('says so when the project does not exist, naming near matches', async () => {
    const from = bb.requests().length;
    const r = await run(bb, { repoUrl: `${bb.host}?project=Communit&repo=x` });
    expect(r.error?.name).toBe('NotFoundError'); // a BitbucketError of kind not-found
    expect(r.error?.message).toMatch(/Project "Communit" was not found/);
    expect(r.error?.message).toMatch(/Community 000 \(CMT0\)/);
    expect(mutations(bb, from)).toEqual([]);
  });

  it('creates a public repository with public sent explicitly', async () => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=open`,
      private: false,
    });
    expect(r.error).toBeUndefined();
    const create = bb
      .requests()
      .slice(from)
      .find(q => q.method === 'POST' && q.path.endsWith('/repos'))!;
    expect(JSON.parse(create.body!).public).toBe(true);
    expect(repoState(bb, 'FLUX', 'open')?.public).toBe(true);
  });

  it('creates a default branch other than main and makes it the default', async () => {
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=prod-fleet`,
      defaultBranch: 'production',
    });
    expect(r.error).toBeUndefined();
    expect(r.outputs.defaultBranch).toBe('production');
    const repo = repoState(bb, 'FLUX', 'prod-fleet')!;
    expect(repo.branches.map(b => b.name)).toEqual(['production']);
    expect(repo.defaultBranch).toBe('production');
  });

  it('reuses an existing empty repository and gives it the branch', async () => {
    bb.createRepo('FLUX', 'empty-one', { defaultBranch: 'master' });
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=empty-one`,
    });
    expect(r.error).toBeUndefined();
    expect(r.outputs.created).toBe(false);
    const repo = repoState(bb, 'FLUX', 'empty-one')!;
    expect(repo.branches.map(b => b.name)).toEqual(['main']);
    expect(repo.defaultBranch).toBe('main');
  });

  it('adds a missing branch to a non-empty repository from its default branch, leaving the default alone', async () => {
    bb.createRepo('FLUX', 'legacy', {
      defaultBranch: 'master',
      initialCommit: true,
    });
    const masterHead = gitLsRemote(bb, 'FLUX', 'legacy')['refs/heads/master'];
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=legacy`,
      defaultBranch: 'main',
    });
    expect(r.error).toBeUndefined();
    const refs = gitLsRemote(bb, 'FLUX', 'legacy');
    expect(refs['refs/heads/main']).toBe(masterHead);
    expect(repoState(bb, 'FLUX', 'legacy')?.defaultBranch).toBe('master');
  });

  it('tells a missing permission apart, naming the permission and the project', async () => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=not-allowed`,
      token: 'carol-token-5521',
    });
    expect(r.error?.message).toMatch(/may not create repositories in FLUX/);
    expect(r.error?.message).toMatch(/REPO_CREATE/);
    expect(r.error?.message).toMatch(/PROJECT_ADMIN/);
    expect(r.error?.message).toMatch(/project FLUX/);
    expect(r.error?.message).toMatch(/the token input/i);
    expect(r.error?.message).not.toContain('carol-token-5521');
    expect((r.error as any).kind).toBe('forbidden');
    expect(repoState(bb, 'FLUX', 'not-allowed')).toBeUndefined();
    expect(mutations(bb, from).map(q => q.status)).toEqual([401]);
  });

  it('names a group that does not exist, and a missing REPO_ADMIN for grants', async () => {
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=groupless`,
      groups: [{ name: 'nobody-here' }],
    });
    expect(r.error?.message).toMatch(/Group "nobody-here" does not exist/);

    // bob may push to an existing repository but not administer it
    bb.createRepo('FLUX', 'write-only', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    bb.grantRepo('FLUX', 'write-only', { user: 'bob' }, 'REPO_WRITE');
    bb.addToken({ token: 'bob-token-7781', user: 'bob' });
    const from = bb.requests().length;
    const denied = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=write-only`,
      groups: [{ name: 'developers' }],
      token: 'bob-token-7781',
    });
    expect(denied.error?.message).toMatch(
      /may not grant group "developers" REPO_WRITE/,
    );
    expect(denied.error?.message).toMatch(
      /needs REPO_ADMIN on repository FLUX\/write-only/,
    );
    expect((denied.error as any).kind).toBe('forbidden');
    // listing a repository's permissions already needs REPO_ADMIN: nothing is attempted
    expect(mutations(bb, from)).toEqual([]);
    expect(groupPerms(bb, 'FLUX', 'write-only')).toEqual([]);
  });

  it('tells a 403 (as some proxies answer) apart as a missing permission, not retried', async () => {
    const from = bb.requests().length;
    bb.injectFault({
      method: 'POST',
      path: '/rest/api/1.0/projects/FLUX/repos',
      status: 403,
    });
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=proxy-denied`,
    });
    expect((r.error as any)?.kind).toBe('forbidden');
    expect(r.error?.message).toMatch(/may not create repositories in FLUX/);
    expect(r.error?.message).toMatch(/REPO_CREATE/);
    expect(r.error?.message).toMatch(/on project FLUX \(HTTP 403\)/);
    expect(r.error?.message).toMatch(/token of integrations\.bitbucketServer/);
    expect(r.error?.message).not.toMatch(/invalid, expired or revoked/);
    expect(mutations(bb, from).map(q => q.status)).toEqual([403]);
    expect(repoState(bb, 'FLUX', 'proxy-denied')).toBeUndefined();
  });

  it('authenticates with the integration username and password (Basic), for REST and the git push', async () => {
    bb.addUser({
      name: 'dave',
      displayName: 'Dave Deploy',
      email: 'dave@example.com',
      password: INTEGRATION_PASSWORD,
    });
    bb.grantProject('FLUX', { user: 'dave' }, 'PROJECT_ADMIN');
    const basic = new ConfigReader({
      integrations: {
        bitbucketServer: [
          {
            host: bb.host,
            apiBaseUrl: bb.apiBaseUrl,
            username: 'dave',
            password: INTEGRATION_PASSWORD,
          },
        ],
      },
    });
    const from = bb.requests().length;
    const r = await run(
      bb,
      { repoUrl: `${bb.host}?project=FLUX&repo=basic-auth` },
      { config: basic },
    );
    expect(r.error).toBeUndefined();
    expect(r.outputs.created).toBe(true);
    const calls = bb.requests().slice(from);
    const expected = `Basic ${Buffer.from(
      `dave:${INTEGRATION_PASSWORD}`,
    ).toString('base64')}`;
    // every request carried dave's credentials, the git push included
    expect(calls.length).toBeGreaterThan(3);
    expect(calls.every(q => q.headers.authorization === expected)).toBe(true);
    expect(
      calls.some(
        q =>
          q.path === '/scm/flux/basic-auth.git/git-receive-pack' &&
          q.status === 200,
      ),
    ).toBe(true);
    expect(
      repoState(bb, 'FLUX', 'basic-auth')?.branches.map(b => b.name),
    ).toEqual(['main']);
    const log = execFileSync(
      'git',
      [
        '--git-dir',
        bb.repoPath('FLUX', 'basic-auth'),
        'log',
        '--format=%an <%ae>',
        'main',
      ],
      { encoding: 'utf8' },
    );
    expect(log.trim()).toBe('Dave Deploy <dave@example.com>');
    expect(r.logs.join('\n')).toMatch(/username and password of integrations/);

    // a wrong password is reported as bad credentials, without the password
    const wrong = await run(
      bb,
      { repoUrl: `${bb.host}?project=FLUX&repo=basic-auth` },
      {
        config: new ConfigReader({
          integrations: {
            bitbucketServer: [
              {
                host: bb.host,
                apiBaseUrl: bb.apiBaseUrl,
                username: 'dave',
                password: `${INTEGRATION_PASSWORD}-wrong`,
              },
            ],
          },
        }),
      },
    );
    expect((wrong.error as any)?.kind).toBe('unauthorized');
    expect(wrong.error?.message).toMatch(
      /rejected the username and password of integrations/,
    );
  });

  it('tells an invalid or expired token apart', async () => {
    const expired = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=x1`,
      token: 'expired-token-0042',
    });
    expect(expired.error?.message).toMatch(/rejected the token input/);
    expect(expired.error?.message).toMatch(/invalid, expired or revoked/);
    expect(expired.error?.message).not.toContain('expired-token-0042');
    expect((expired.error as any).kind).toBe('unauthorized');
  });

  it('retries injected 429 and 5xx answers', async () => {
    const from = bb.requests().length;
    bb.injectFault({
      method: 'GET',
      path: '/rest/api/1.0/projects/FLUX',
      status: 429,
      retryAfter: 1,
    });
    bb.injectFault({
      method: 'POST',
      path: '/rest/api/1.0/projects/FLUX/repos',
      status: 503,
      times: 2,
    });
    bb.injectFault({
      method: 'POST',
      path: /\/scm\/flux\/retried\.git\/git-receive-pack$/,
      status: 502,
    });
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=retried`,
    });
    const calls = bb.requests().slice(from);
    const statuses = (m: string, p: string) =>
      calls.filter(q => q.method === m && q.path === p).map(q => q.status);
    expect(statuses('GET', '/rest/api/1.0/projects/FLUX')).toEqual([429, 200]);
    expect(statuses('POST', '/rest/api/1.0/projects/FLUX/repos')).toEqual([
      503, 503, 201,
    ]);
    expect(r.logs.some(l => /retry 1 of 3 in 1000 ms/.test(l))).toBe(true);
    // a git push is not repeated blindly: the 502 fails the step…
    expect(r.error?.message).toMatch(/branch "main"/);
    expect(statuses('POST', '/scm/flux/retried.git/git-receive-pack')).toEqual([
      502,
    ]);
    // …and a re-run converges: the repository is reused and the branch created
    const again = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=retried`,
    });
    expect(again.error).toBeUndefined();
    expect(again.outputs.created).toBe(false);
    expect(repoState(bb, 'FLUX', 'retried')?.branches.map(b => b.name)).toEqual(
      ['main'],
    );
  });

  it.each([400, 404])('does not retry %s', async status => {
    const from = bb.requests().length;
    bb.injectFault({
      method: 'POST',
      path: '/rest/api/1.0/projects/FLUX/repos',
      status,
    });
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=no-retry-${status}`,
    });
    expect(r.error?.message).toMatch(new RegExp(`HTTP ${status}`));
    expect(
      bb
        .requests()
        .slice(from)
        .filter(q => q.method === 'POST'),
    ).toHaveLength(1);
    expect(repoState(bb, 'FLUX', `no-retry-${status}`)).toBeUndefined();
  });

  it('dry-run sends no request and returns the outputs it would produce', async () => {
    const from = bb.requests().length;
    const r = await run(
      bb,
      {
        repoUrl: `${bb.host}?project=flux&repo=Dry Run`,
        defaultBranch: 'develop',
        groups: [{ name: 'developers' }],
      },
      { dryRun: true },
    );
    expect(r.error).toBeUndefined();
    expect(bb.requests().length).toBe(from);
    expect(r.outputs).toEqual({
      remoteUrl: `${bb.baseUrl}/scm/flux/dry-run.git`,
      sshUrl: 'ssh://git@bitbucket-ssh.example.com:7999/flux/dry-run.git',
      repoContentsUrl: `${bb.baseUrl}/projects/FLUX/repos/dry-run/browse`,
      projectKey: 'FLUX',
      repoSlug: 'dry-run',
      defaultBranch: 'develop',
      created: false,
    });
    expect(r.logs.some(l => /no request sent/.test(l))).toBe(true);
  });

  it.each([
    ['missing project', (h: string) => `${h}?repo=fleet`, /missing project/],
    ['missing repo', (h: string) => `${h}?project=FLUX`, /missing repo/],
    [
      'a host not in integrations',
      () => 'bitbucket.evil.example.com?project=FLUX&repo=fleet',
      /not one of the configured/,
    ],
    [
      'credentials in the URL',
      (h: string) => `alice:${INPUT_TOKEN}@${h}?project=FLUX&repo=fleet`,
      /must not contain credentials/,
    ],
    [
      'a scheme',
      (h: string) => `https://${h}?project=FLUX&repo=fleet`,
      /without a scheme/,
    ],
    [
      'a slash in the repo name',
      (h: string) => `${h}?project=FLUX&repo=a/b`,
      /invalid repo name/,
    ],
  ])(
    'rejects a repoUrl with %s before any request',
    async (_what, url, message) => {
      const from = bb.requests().length;
      const r = await run(bb, { repoUrl: url(bb.host) });
      expect(r.error?.name).toBe('InputError');
      expect(r.error?.message).toMatch(/repoUrl/);
      expect(r.error?.message).toMatch(message);
      expect(bb.requests().length).toBe(from);
    },
  );

  it.each([
    ['a bad branch', { defaultBranch: 'main..x' }, /defaultBranch/],
    [
      'a ref instead of a branch',
      { defaultBranch: 'refs/heads/main' },
      /defaultBranch/,
    ],
    [
      'a bad permission',
      { groups: [{ name: 'g', permission: 'PROJECT_ADMIN' }] },
      /groups\[0\]\.permission/,
    ],
    [
      'a group listed twice',
      { groups: [{ name: 'g' }, { name: 'g' }] },
      /groups\[1\]\.name/,
    ],
    [
      'a group without a name',
      { groups: [{ permission: 'REPO_READ' }] },
      /"groups\[0\]\.name": is required/,
    ],
    [
      'a description over 1000 characters',
      { description: 'x'.repeat(1001) },
      /"description"/,
    ],
    [
      'a string for a boolean',
      { private: 'no' },
      /"private": must be of type boolean/,
    ],
    ['a string for tokenAuth', { tokenAuth: 'yes' }, /"tokenAuth"/],
  ])('rejects %s before any request', async (_what, extra, message) => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=fleet`,
      ...extra,
    });
    expect(r.error?.name).toBe('InputError');
    expect(r.error?.message).toMatch(message);
    expect(bb.requests().length).toBe(from);
  });

  it('requires the token input when scaffolder.requireScmUserCredentials is on', async () => {
    const from = bb.requests().length;
    const r = await run(
      bb,
      { repoUrl: `${bb.host}?project=FLUX&repo=fleet` },
      { config: configFor(bb, { requireUser: true }) },
    );
    expect(r.error?.name).toBe('InputError');
    expect(r.error?.message).toMatch(/token/);
    expect(bb.requests().length).toBe(from);
  });

  it('stops when the task is cancelled', async () => {
    const controller = new AbortController();
    bb.injectFault({
      method: 'GET',
      path: '/rest/api/1.0/projects/FLUX',
      status: 503,
      retryAfter: 60,
    });
    const pending = run(
      bb,
      { repoUrl: `${bb.host}?project=FLUX&repo=cancelled` },
      { signal: controller.signal },
    );
    while (
      !bb
        .requests()
        .some(q => q.status === 503 && q.path === '/rest/api/1.0/projects/FLUX')
    ) {
      await new Promise(res => setTimeout(res, 10));
    }
    controller.abort();
    const r = await pending;
    expect(r.error?.message).toMatch(/Cancelled/);
    expect(repoState(bb, 'FLUX', 'cancelled')).toBeUndefined();
  });

  it('gives every omitted input its documented default; inputs a template left empty count as omitted', async () => {
    for (const [repo, unset] of [
      ['defaults', {}],
      ['defaults-empty', { description: '', private: null, groups: null }],
    ] as const) {
      const from = bb.requests().length;
      const r = await run(bb, {
        repoUrl: `${bb.host}?project=FLUX&repo=${repo}`,
        defaultBranch: repo === 'defaults' ? undefined : '',
        ...unset,
      });
      expect(r.error).toBeUndefined();
      const calls = bb.requests().slice(from);
      const create = calls.find(q => q.method === 'POST')!;
      // private: true, defaultBranch: main, no description
      expect(JSON.parse(create.body!)).toEqual({
        name: repo,
        scmId: 'git',
        public: false,
        defaultBranch: 'main',
      });
      // groups: none
      expect(calls.filter(q => q.path.includes('/permissions/'))).toEqual([]);
      expect(r.outputs).toMatchObject({ defaultBranch: 'main', created: true });
      expect(repoState(bb, 'FLUX', repo)?.public).toBe(false);
    }
  });

  it('with tokenAuth checks first that the credentials belong to a user, and outputs that user', async () => {
    const from = bb.requests().length;
    const r = await run(bb, {
      repoUrl: `${bb.host}?project=FLUX&repo=token-auth`,
      token: INPUT_TOKEN,
      tokenAuth: true,
    });
    expect(r.error).toBeUndefined();
    expect(r.outputs).toMatchObject({ created: true, tokenOwner: 'alice' });
    const calls = bb.requests().slice(from);
    const who = calls.findIndex(q => q.path === '/rest/api/1.0/users/alice');
    expect(calls[0].path).toBe('/rest/api/1.0/application-properties');
    expect(who).toBeGreaterThan(0);
    expect(who).toBeLessThan(calls.findIndex(q => q.method !== 'GET'));
    expect(r.logs.join('\n')).toMatch(
      /Flux will sign in over HTTPS as "alice", the owner of the token input/,
    );
  });

  it('with tokenAuth refuses a project access token (it has no user) before anything changes; without tokenAuth it is used', async () => {
    const { user } = bb.addProjectToken({
      token: PROJECT_TOKEN,
      project: 'FLUX',
      permission: 'PROJECT_ADMIN',
    });
    const input = {
      repoUrl: `${bb.host}?project=FLUX&repo=project-token`,
      token: PROJECT_TOKEN,
    };
    const from = bb.requests().length;
    const refused = await run(bb, { ...input, tokenAuth: true });
    expect(refused.error?.name).toBe('InputError');
    expect((refused.error as any).field).toBe('token');
    expect(refused.error?.message).toMatch(
      new RegExp(`^Invalid input "token": the token input act as "${user}"`),
    );
    expect(refused.error?.message).toMatch(
      /project or repository HTTP access token/,
    );
    expect(refused.error?.message).toMatch(/personal HTTP access token/);
    expect(mutations(bb, from)).toEqual([]);
    expect(repoState(bb, 'FLUX', 'project-token')).toBeUndefined();

    const used = await run(bb, input);
    expect(used.error).toBeUndefined();
    expect(used.outputs).toMatchObject({ created: true, tokenOwner: user });
  });

  it('dry-runs tokenAuth without a request, saying it would check the owner', async () => {
    const from = bb.requests().length;
    const r = await run(
      bb,
      { repoUrl: `${bb.host}?project=FLUX&repo=dry-owner`, tokenAuth: true },
      { dryRun: true },
    );
    expect(r.error).toBeUndefined();
    expect(bb.requests().length).toBe(from);
    expect(r.outputs.tokenOwner).toBeUndefined();
    expect(r.logs.join('\n')).toMatch(
      /would check that the credentials belong to a user/,
    );
  });

  it('has examples that parse as template steps of this action', () => {
    expect(examples).toHaveLength(3);
    for (const e of examples) {
      const doc = yaml.parse(e.example);
      expect(doc.steps[0].action).toBe('bitbucket:create-repo');
      expect(doc.steps[0].input.repoUrl).toMatch(/\?project=.+&repo=.+/);
    }
  });
});

describe('bitbucket:create-repo against other server setups', () => {
  it('works under a context path (REST, and git over /scm)', async () => {
    const bb = await startBitbucketDouble({ contextPath: '/bitbucket' });
    try {
      bb.addUser({ name: 'alice' });
      bb.addProject({ key: 'FLUX', name: 'Flux' });
      bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
      bb.addToken({ token: INTEGRATION_TOKEN, user: 'alice' });
      expect(bb.apiBaseUrl).toMatch(/\/bitbucket\/rest\/api\/1\.0$/);
      const r = await run(bb, {
        repoUrl: `${bb.host}?project=FLUX&repo=fleet`,
      });
      expect(r.error).toBeUndefined();
      expect(r.outputs.remoteUrl).toBe(`${bb.baseUrl}/scm/flux/fleet.git`);
      expect(r.outputs.remoteUrl).toContain('/bitbucket/scm/');
      expect(repoState(bb, 'FLUX', 'fleet')?.branches.map(b => b.name)).toEqual(
        ['main'],
      );
      // nothing went to the root (which answers HTML pages)
      expect(
        bb
          .requests()
          .every(q => q.status !== 404 || q.path.startsWith('/rest/')),
      ).toBe(true);

      // an apiBaseUrl without the context path gets Bitbucket's HTML 404 page: explained
      const wrong = new ConfigReader({
        integrations: {
          bitbucketServer: [
            {
              host: bb.host,
              apiBaseUrl: `${bb.baseUrl.replace(
                '/bitbucket',
                '',
              )}/rest/api/1.0`,
              token: INTEGRATION_TOKEN,
            },
          ],
        },
      });
      const w = await run(
        bb,
        { repoUrl: `${bb.host}?project=FLUX&repo=fleet` },
        { config: wrong },
      );
      expect(w.error?.message).toMatch(/HTML page/);
      expect(w.error?.message).toMatch(/context path/);
    } finally {
      await bb.stop();
    }
  });

  it('trusts a custom CA over TLS and fails closed without it', async () => {
    const bb = await startBitbucketDouble({ tls: true });
    try {
      bb.addUser({ name: 'alice' });
      bb.addProject({ key: 'FLUX', name: 'Flux' });
      bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
      bb.addToken({ token: INTEGRATION_TOKEN, user: 'alice' });
      expect(bb.baseUrl).toMatch(/^https:/);

      const without = await run(
        bb,
        { repoUrl: `${bb.host}?project=FLUX&repo=fleet` },
        { config: configFor(bb) },
      );
      expect(without.error?.message).toMatch(/TLS/);
      expect(without.error?.message).toMatch(/caData or caFile/);
      expect(bb.requests()).toHaveLength(0);
      expect(process.env.NODE_TLS_REJECT_UNAUTHORIZED).toBeUndefined();

      const r = await run(
        bb,
        { repoUrl: `${bb.host}?project=FLUX&repo=fleet` },
        { config: configFor(bb, { caPem: bb.caPem }) },
      );
      expect(r.error).toBeUndefined();
      expect(r.outputs.remoteUrl).toBe(`${bb.baseUrl}/scm/flux/fleet.git`);
      // the initial commit went over git-over-HTTPS with the same CA
      expect(repoState(bb, 'FLUX', 'fleet')?.branches.map(b => b.name)).toEqual(
        ['main'],
      );

      // the same CA read from a file (fluxBootstrap.bitbucketServer[].caFile)
      expect(bb.caFile).toBeDefined();
      const fromFile = await run(
        bb,
        { repoUrl: `${bb.host}?project=FLUX&repo=fleet-from-file` },
        { config: configFor(bb, { caFile: bb.caFile }) },
      );
      expect(fromFile.error).toBeUndefined();
      expect(fromFile.outputs.created).toBe(true);
      expect(
        repoState(bb, 'FLUX', 'fleet-from-file')?.branches.map(b => b.name),
      ).toEqual(['main']);
    } finally {
      await bb.stop();
    }
  });

  it('picks clone links by name and puts the configured SSH host and port in sshUrl', async () => {
    const bb = await startBitbucketDouble({ ssh: true });
    try {
      bb.addUser({ name: 'alice' });
      bb.addProject({ key: 'FLUX', name: 'Flux' });
      bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
      bb.addToken({ token: INTEGRATION_TOKEN, user: 'alice' });
      const r = await run(
        bb,
        { repoUrl: `${bb.host}?project=FLUX&repo=fleet` },
        { config: configFor(bb, { sshHost: bb.ssh!.host }) },
      );
      expect(r.error).toBeUndefined();
      const urls = bb.cloneUrls('FLUX', 'fleet');
      expect(r.outputs.remoteUrl).toBe(urls.http);
      expect(r.outputs.sshUrl).toBe(urls.ssh);
      expect(r.outputs.sshUrl).toMatch(
        new RegExp(
          `^ssh://[^@]+@127\\.0\\.0\\.1:${bb.ssh!.port}/flux/fleet\\.git$`,
        ),
      );

      const moved = await run(
        bb,
        { repoUrl: `${bb.host}?project=FLUX&repo=fleet` },
        { config: configFor(bb, { sshHost: 'git.example.com:7999' }) },
      );
      expect(moved.outputs.sshUrl).toBe(
        `ssh://${bb.ssh!.user}@git.example.com:7999/flux/fleet.git`,
      );
    } finally {
      await bb.stop();
    }
  });
});

describe('bitbucket:create-repo secrets', () => {
  it('lets the canary tokens appear in no log line, output or error of the tests above', () => {
    // both canaries really travelled to Bitbucket, so the scan below proves something
    expect(wireAuthorization).toContain(`Bearer ${INPUT_TOKEN}`);
    expect(wireAuthorization).toContain(`Bearer ${INTEGRATION_TOKEN}`);
    expect(wireAuthorization).toContain(
      `Basic ${Buffer.from(`dave:${INTEGRATION_PASSWORD}`).toString('base64')}`,
    );
    expect(leaked.length).toBeGreaterThan(50);
    for (const canary of CANARIES) {
      const forms = [
        canary,
        Buffer.from(canary).toString('base64'),
        Buffer.from(`alice:${canary}`).toString('base64'),
        Buffer.from(`dave:${canary}`).toString('base64'),
      ];
      for (const text of leaked)
        for (const f of forms) expect(text).not.toContain(f);
    }
  });
});
