import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  FLUX_UPGRADE_VERSIONS,
  peerGitEnv,
  PEER_GIT_CONFIG,
  run as runProcess,
  serveFluxUpgradeBundles,
  startBitbucketDouble,
  startFaultProxy,
  startFluxSimulator,
  startKubeApiserver,
  type BitbucketDouble,
  type FaultProxy,
  type FluxSimulator,
  type KubeApiserver,
} from '@flux-bootstrap/test-peers';
import {
  BitbucketServerClient,
  bitbucketPullRequestLookup,
  createKubeClient,
  FluxStatusReader,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  actionConfig,
  configCluster,
  actionRunner,
} from './__testUtils__/actionHarness';
import { seedProject, bareGit, clusterWrites } from './__testUtils__/peers';
import { createFluxInstallAction } from './install';
import { createFluxPushManifestsAction } from './pushManifests';

/*
 * Issue 16 through the actions, on real peers: the Bitbucket double (real git http-backend, a
 * real pre-receive hook enforcing a `pull-request-only` restriction on main, pull requests with
 * real merge commits), a private kube-apiserver behind a recording proxy and the Flux simulator
 * in self-management mode (`apply: true`).
 *
 * - a direct push to the protected main fails with Bitbucket's reason, and the cluster is untouched;
 * - pullRequest: one pull request holding both Flux commits; a re-run opens no second one;
 * - flux:install installs at once, logs "waiting for pull request #1 to be merged: <url>", the
 *   status reader (real cluster + Bitbucket) says awaiting-merge with the reviewers; the merge
 *   through the REST API lets the task finish with revision = the merge commit; status ready;
 * - a re-run after the merge opens nothing and pushes nothing.
 */

jest.setTimeout(600_000);

const TOKEN = 'canary-prmode-token-8a41f0c2d9';
const BOB = 'canary-prmode-bob-3e9b77a1f0';
const CAROL = 'canary-prmode-carol-c0ffee4711';
const PROJECT = 'FLEET';
const { from: FROM } = FLUX_UPGRADE_VERSIONS;
const NS = 'flux-system';

let kube: KubeApiserver;
let proxy: FaultProxy;
let bb: BitbucketDouble;
let bundles: Awaited<ReturnType<typeof serveFluxUpgradeBundles>>;
let sim: FluxSimulator | undefined;
let slug: string;
let cacheDir: string;
const produced: string[] = [];

function config() {
  return actionConfig({
    extra: { backend: { baseUrl: 'http://127.0.0.1:7007' } },
    bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl },
    fluxBootstrap: {
      bitbucketServer: [{ host: bb.host }],
      manifests: {
        baseUrl: bundles.server.baseUrl,
        cacheDir,
        defaultVersion: FROM,
      },
      // The test apiserver is v1.20, older than the fixture releases support.
      kubernetesVersions: [{ flux: 'v2.9', minimum: 'v1.20.0' }],
    },
    clusters: [configCluster('prod', kube, proxy)],
  });
}

/** `start` runs an action and gives its `logs` while they fill. */
const { start, run, succeed } = actionRunner(() => ({
  factoryOptions: { config: config() },
  secrets: { token: TOKEN },
  produced,
}));

const repoUrl = () => `${bb.host}?project=${PROJECT}&repo=${slug}`;
const push = (extra: Record<string, unknown> = {}) => ({
  repoUrl: repoUrl(),
  token: TOKEN,
  branch: 'main',
  cluster: 'prod',
  tokenAuth: true,
  ...extra,
});
const install = (pushed: Record<string, any>) => ({
  cluster: 'prod',
  syncUrl: pushed.syncUrl,
  branch: 'main',
  path: 'clusters/prod',
  revision: pushed.revision,
  tokenAuth: true,
  token: TOKEN,
  pullRequest: pushed.pullRequestUrl,
  timeout: '5m',
});

const git = (args: string[]) => bareGit(bb, PROJECT, slug)(args);
/** Requests that change something on the cluster, as the proxy saw them. */
const writes = () => clusterWrites(proxy);
const pullRequests = () => bb.state().pullRequests.filter(p => p.slug === slug);

const until = async <T>(fn: () => Promise<T | undefined> | T | undefined) => {
  for (let i = 0; i < 900; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise(r => setTimeout(r, 200));
  }
  throw new Error('condition not met in time');
};

/** The status reader as the backend builds it: the real cluster, Bitbucket with the integration. */
const bitbucketHost = () => ({
  host: bb.host,
  apiBaseUrl: bb.apiBaseUrl,
  baseUrl: bb.baseUrl,
  sshHost: '127.0.0.1:7999',
  requestTimeoutMs: 10_000,
  retries: 0,
});
function statusReader() {
  const host = { ...bitbucketHost(), auth: { token: BOB } };
  return new FluxStatusReader({
    clusters: [
      {
        name: 'prod',
        url: kube.url,
        token: kube.adminToken,
        caPem: kube.caPem,
        skipTLSVerify: false,
        source: 'config',
      },
    ],
    bitbucketHosts: [host],
    settings: { cacheTtlMs: 0, clusterTimeoutMs: 10_000, concurrency: 1 },
    createClient: createKubeClient,
    pullRequests: bitbucketPullRequestLookup({ requestTimeoutMs: 10_000 }),
  });
}

beforeAll(async () => {
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'prmode-cache-'));
  [kube, bb, bundles] = await Promise.all([
    startKubeApiserver(),
    startBitbucketDouble(),
    serveFluxUpgradeBundles(),
  ]);
  proxy = await startFaultProxy({
    upstream: { url: kube.url, caPem: kube.caPem },
  });
  seedProject(bb, { key: PROJECT, name: 'Fleet' }, [
    {
      name: 'alice',
      email: 'alice@example.com',
      permission: 'PROJECT_WRITE',
      token: TOKEN,
    },
    {
      name: 'bob',
      email: 'bob@example.com',
      permission: 'PROJECT_WRITE',
      token: BOB,
    },
  ]);
  // carol administers the project: she may read its and its repositories' branch permissions.
  bb.addUser({ name: 'carol', email: 'carol@example.com' });
  bb.grantProject(PROJECT, { user: 'carol' }, 'PROJECT_ADMIN');
  bb.addToken({ token: CAROL, user: 'carol' });
  slug = bb.createRepo(PROJECT, 'fleet-infra', {
    defaultBranch: 'main',
    initialCommit: true,
  }).slug;
  bb.addRestriction(PROJECT, slug, {
    type: 'pull-request-only',
    matcher: 'main',
  });
});

afterAll(async () => {
  await sim?.stop();
  await proxy?.stop();
  await Promise.all([kube?.stop(), bb?.stop(), bundles?.stop()]);
  if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
});

describe('pull-request mode through the actions (issue 16)', () => {
  it("refuses a direct push to the protected main with Bitbucket's reason; the cluster is untouched", async () => {
    const head = await git(['rev-parse', 'main']);
    proxy.clearRequests();
    const refused = await run(createFluxPushManifestsAction, push());
    expect(refused.error?.name).toBe('NotAllowedError');
    expect(refused.error?.message).toContain(
      `the push to branch "main" of ${
        bb.cloneUrls(PROJECT, slug).http
      } was refused by the server (pre-receive hook declined): Branch refs/heads/main can only be modified through pull requests.`,
    );
    expect(refused.error?.message).toContain('set the input pullRequest');
    expect(refused.error?.message).not.toMatch(/updated:\s*$/);
    expect(await git(['rev-parse', 'main'])).toBe(head);
    // flux:push-manifests never talks to the cluster: nothing was read or written there.
    expect(proxy.requests()).toEqual([]);
    expect(writes()).toEqual([]);
  });

  it('opens one pull request holding both commits; install waits for its merge, the status says awaiting-merge, the merge completes the task', async () => {
    const main = await git(['rev-parse', 'main']);
    const pushed = await succeed(
      createFluxPushManifestsAction,
      push({ pullRequest: { reviewers: ['bob'] } }),
    );
    expect(pushed.outputs).toMatchObject({
      pullRequestId: 1,
      sourceBranch: 'flux/prod',
      revision: '',
      changed: true,
    });
    const url = pushed.outputs.pullRequestUrl as string;
    expect(url).toBe(
      `${bb.baseUrl}/projects/${PROJECT}/repos/${slug}/pull-requests/1`,
    );
    expect(await git(['rev-parse', 'main'])).toBe(main);
    expect(await git(['log', '--format=%s', `main..flux/prod`])).toBe(
      ['Add Flux sync manifests', `Add Flux ${FROM} component manifests`].join(
        '\n',
      ),
    );
    expect(pullRequests()).toHaveLength(1);
    expect(pullRequests()[0]).toMatchObject({
      state: 'OPEN',
      title: `flux: bootstrap Flux ${FROM} on cluster prod`,
    });
    expect(pullRequests()[0].reviewers.map((r: any) => r.user)).toEqual([
      'bob',
    ]);

    // A re-run while it is open and unchanged: no commit, no second pull request.
    const sourceHead = await git(['rev-parse', 'flux/prod']);
    const again = await succeed(
      createFluxPushManifestsAction,
      push({ pullRequest: { reviewers: ['bob'] } }),
    );
    expect(again.outputs).toMatchObject({
      pullRequestId: 1,
      pullRequestUrl: url,
      changed: false,
      revision: '',
    });
    expect(await git(['rev-parse', 'flux/prod'])).toBe(sourceHead);
    expect(pullRequests()).toHaveLength(1);

    sim = await startFluxSimulator({
      kube,
      namespace: NS,
      apply: true,
      intervalMs: 300,
    });
    const installing = start(createFluxInstallAction, install(pushed.outputs));
    await until(() =>
      installing.logs.some(l =>
        l.includes(`waiting for pull request #1 to be merged: ${url}`),
      ),
    );
    const reader = statusReader();
    try {
      const waiting = await until(async () => {
        const s = await reader.read('prod', { refresh: true });
        return s.state === 'awaiting-merge' ? s : undefined;
      });
      expect(waiting.pullRequest).toMatchObject({
        id: 1,
        url,
        state: 'OPEN',
        fromBranch: 'flux/prod',
        toBranch: 'main',
        reviewers: [expect.objectContaining({ name: 'bob' })],
      });
      expect(waiting.reason).toContain(
        `waits for pull request #1 to be merged into main: ${url}`,
      );

      // bob approves and merges through the REST API.
      bb.setReviewerStatus(PROJECT, slug, 1, 'bob', 'APPROVED');
      const client = new BitbucketServerClient(bitbucketHost(), {
        token: BOB,
      });
      const path1 = `/rest/api/1.0/projects/${PROJECT}/repos/${slug}/pull-requests/1`;
      const { version } = (await client.request<any>('GET', path1)).body;
      const merged = await client.request<any>('POST', `${path1}/merge`, {
        query: { version },
      });
      client.close();
      const mergeCommit = merged.body.properties.mergeCommit.id as string;
      expect(await git(['rev-parse', 'main'])).toBe(mergeCommit);

      const installed = await installing.done;
      if (installed.error)
        throw new Error(
          `${installed.error.message}\n${installed.logs.join('\n')}`,
        );
      expect(installed.outputs).toMatchObject({
        ready: true,
        revision: `main@sha1:${mergeCommit}`,
        fluxVersion: FROM,
      });
      const ready = await until(async () => {
        const s = await reader.read('prod', { refresh: true });
        return s.state === 'ready' ? s : undefined;
      });
      expect(ready.pullRequest).toBeUndefined();
      expect(ready.sync?.lastAppliedRevision).toBe(`main@sha1:${mergeCommit}`);
    } finally {
      await reader.close();
    }

    // A re-run after the merge with nothing new: no commit, no pull request.
    const after = await succeed(
      createFluxPushManifestsAction,
      push({ pullRequest: { reviewers: ['bob'] } }),
    );
    expect(after.outputs.changed).toBe(false);
    expect(after.outputs.pullRequestUrl).toBeUndefined();
    expect(after.outputs.revision).toBe(
      `main@sha1:${await git(['rev-parse', 'main'])}`,
    );
    expect(pullRequests()).toHaveLength(1);
  });
});

describe("pullRequest: 'auto' and bad input through the actions", () => {
  const autoPush = (repo: string, token: string) =>
    run(createFluxPushManifestsAction, {
      ...push({ pullRequest: 'auto', token }),
      repoUrl: `${bb.host}?project=${PROJECT}&repo=${repo}`,
    });
  const prsOf = (repo: string) =>
    bb.state().pullRequests.filter(p => p.slug === repo);
  const createRepo = (name: string, protect: boolean) => {
    const repo = bb.createRepo(PROJECT, name, {
      defaultBranch: 'main',
      initialCommit: true,
    }).slug;
    if (protect)
      bb.addRestriction(PROJECT, repo, {
        type: 'pull-request-only',
        matcher: 'main',
      });
    return repo;
  };

  it('pushes directly to an unprotected branch, from its restrictions', async () => {
    const repo = createRepo('auto-open', false);
    const r = await autoPush(repo, CAROL);
    expect(r.error).toBeUndefined();
    expect(r.logs.join('\n')).toContain(
      'pullRequest auto: no read-only or pull-request-only restriction on branch main applies to carol',
    );
    expect(r.outputs.pullRequestUrl).toBeUndefined();
    expect(r.outputs.revision).toMatch(/^main@sha1:[0-9a-f]{40}$/);
    expect(prsOf(repo)).toEqual([]);
  });

  it('opens a pull request on a protected branch, from its restrictions', async () => {
    const repo = createRepo('auto-protected', true);
    const r = await autoPush(repo, CAROL);
    expect(r.error).toBeUndefined();
    expect(r.logs.join('\n')).toContain(
      'pullRequest auto: branch main has the restriction pull-request-only refs/heads/main, which does not exempt carol',
    );
    expect(r.outputs).toMatchObject({
      pullRequestId: 1,
      sourceBranch: 'flux/prod',
      revision: '',
    });
    expect(prsOf(repo)).toHaveLength(1);
  });

  it('with a token that cannot read the restrictions: tries the push, opens a pull request when Bitbucket refuses it', async () => {
    const repo = createRepo('auto-unreadable', true);
    const r = await autoPush(repo, TOKEN);
    expect(r.error).toBeUndefined();
    const logs = r.logs.join('\n');
    expect(logs).toContain(
      `pullRequest auto: the branch restrictions of ${PROJECT}/${repo} cannot be read with these credentials (HTTP 401: reading them needs REPO_ADMIN)`,
    );
    expect(logs).toContain(
      'Opening a pull request instead: the push to branch "main"',
    );
    expect(r.outputs).toMatchObject({ pullRequestId: 1, revision: '' });
    expect(prsOf(repo)).toHaveLength(1);
  });

  it('refuses pullRequest with an SSH remote, and a flux:install pullRequest of no configured host, naming the field', async () => {
    proxy.clearRequests();
    const ssh = await run(createFluxPushManifestsAction, {
      url: 'ssh://git@127.0.0.1:7999/fleet/x.git',
      cluster: 'prod',
      pullRequest: true,
    });
    expect(ssh.error?.name).toBe('InputError');
    expect(ssh.error?.message).toBe(
      'Invalid input "pullRequest": needs repoUrl (a Bitbucket repository); an SSH remote has no token',
    );
    const elsewhere = await run(createFluxInstallAction, {
      cluster: 'prod',
      syncUrl: bb.cloneUrls(PROJECT, slug).http,
      path: 'clusters/prod',
      pullRequest:
        'https://elsewhere.example.com/projects/X/repos/y/pull-requests/1',
      tokenAuth: true,
      token: TOKEN,
    });
    expect(elsewhere.error?.name).toBe('InputError');
    expect(elsewhere.error?.message).toContain(
      'Invalid input "pullRequest": must be the pullRequestUrl output of flux:push-manifests',
    );
    expect(writes()).toEqual([]);
  });
});

describe('the secrets', () => {
  it('never printed the tokens (outputs, logs, errors of every step, pull requests, branches, commits)', async () => {
    expect(produced.length).toBeGreaterThan(20);
    const prs = bb.state().pullRequests;
    expect(prs.length).toBeGreaterThanOrEqual(3);
    const repos = [...new Set(prs.map(p => p.slug as string))];
    const history = await Promise.all(
      repos.map(repo =>
        runProcess(
          'git',
          ['--git-dir', bb.repoPath(PROJECT, repo), 'log', '--all', '-p'],
          { env: peerGitEnv({}, PEER_GIT_CONFIG) },
        ).then(r => r.stdout),
      ),
    );
    const branches = await git(['for-each-ref', '--format=%(refname)']);
    const text = [...produced, JSON.stringify(prs), branches, ...history].join(
      '\n',
    );
    expect(text).toContain('flux: bootstrap Flux');
    for (const token of [TOKEN, BOB, CAROL]) expect(text).not.toContain(token);
  });
});
