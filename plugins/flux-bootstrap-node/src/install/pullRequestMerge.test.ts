/**
 * Pull-request mode end to end on real peers: the Bitbucket double (real git, pre-receive hooks,
 * merge commits), a private kube-apiserver (the simulator owns the cluster-wide Flux CRDs once
 * it applies gotk-components.yaml from Git) and the Flux simulator in self-management mode.
 */
import {
  BitbucketDouble,
  buildFluxUpgradeBundles,
  KubeApiserver,
  startBitbucketDouble,
  startFluxSimulator,
  startKubeApiserver,
  type FluxSimulator,
} from '@flux-bootstrap/test-peers';
import { BitbucketServerClient, gitHttpAuthHeaders } from '../bitbucket';
import {
  BitbucketPullRequests,
  pullRequestInfo,
} from '../bitbucket/pullRequests';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { pushFluxManifestsWithPullRequest } from '../git/pullRequestMode';
import { HttpsGitTransport } from '../git/transport';
import { createKubeClient } from '../kube/client';
import type { KubeClient } from '../kube/types';
import { generateComponentObjects } from '../manifests/components';
import { resolveFluxManifestOptions } from '../manifests/options';
import { renderFluxManifests } from '../git/pushFluxManifests';
import { readClusterStatus } from '../status/readClusterStatus';
import { addPullRequestState } from '../status/pullRequestState';
import { OperationAbortedError } from '../util/errors';
import { adminConnection, recordingLogger } from './__testUtils__/fixtures';
import { buildFluxInstallPlan } from './plan';
import { tokenAuthSecret } from './plan';
import {
  installFluxForPullRequest,
  parsePullRequestUrl,
  PULL_REQUEST_ANNOTATION,
} from './pullRequestMerge';

jest.setTimeout(240_000);

const TOKEN = `canary-pr-${Math.random().toString(36).slice(2)}`;
const BOB = `canary-bob-${Math.random().toString(36).slice(2)}`;
const NS = 'flux-system';

let bb: BitbucketDouble;
let kube: KubeApiserver;
let admin: KubeClient;
let bundles: Awaited<ReturnType<typeof buildFluxUpgradeBundles>>;
let sim: FluxSimulator | undefined;

beforeAll(async () => {
  [bb, kube, bundles] = await Promise.all([
    startBitbucketDouble(),
    startKubeApiserver(),
    buildFluxUpgradeBundles(),
  ]);
  bb.addUser({ name: 'alice', email: 'alice@example.com' });
  bb.addUser({ name: 'bob', email: 'bob@example.com' });
  bb.addProject({ key: 'FLUX', name: 'Flux' });
  bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_WRITE');
  bb.grantProject('FLUX', { user: 'bob' }, 'PROJECT_WRITE');
  bb.addToken({ token: TOKEN, user: 'alice' });
  bb.addToken({ token: BOB, user: 'bob' });
  bb.createRepo('FLUX', 'fleet', {
    defaultBranch: 'main',
    initialCommit: true,
  });
  bb.addRestriction('FLUX', 'fleet', {
    type: 'pull-request-only',
    matcher: 'main',
  });
  admin = await createKubeClient(adminConnection(kube.info()));
}, 120_000);
afterAll(async () => {
  await sim?.stop();
  admin?.close();
  await Promise.all([bb?.stop(), kube?.stop()]);
});

const host = (): BitbucketServerHostConfig => ({
  host: bb.host,
  apiBaseUrl: bb.apiBaseUrl,
  baseUrl: bb.baseUrl,
  sshHost: '127.0.0.1:7999',
  requestTimeoutMs: 30_000,
  retries: 0,
});

async function bootstrapThroughPullRequest(
  version: 'from' | 'to',
  interval?: string,
) {
  const bundle = bundles[version];
  const client = new BitbucketServerClient(host(), { token: TOKEN });
  const repo = new BitbucketPullRequests(client, 'FLUX', 'fleet');
  const options = resolveFluxManifestOptions(
    {
      path: 'clusters/prod',
      syncUrl: bb.cloneUrls('FLUX', 'fleet').http,
      fluxVersion: bundle.version,
      interval,
    },
    { fluxVersion: bundle.version },
  );
  const pushed = await pushFluxManifestsWithPullRequest(
    {
      repo,
      cluster: 'prod',
      pullRequest: { auto: false },
      transport: new HttpsGitTransport({
        url: bb.cloneUrls('FLUX', 'fleet').http,
        headers: gitHttpAuthHeaders({ token: TOKEN }),
      }),
      files: renderFluxManifests(bundle.files, options),
      version: options.components.version,
      branch: options.branch,
      author: { name: 'Flux', email: '' },
    },
    { logger: recordingLogger().logger },
  );
  const plan = buildFluxInstallPlan({
    options,
    componentObjects: generateComponentObjects(
      bundle.files,
      options.components,
    ),
    secret: tokenAuthSecret({
      namespace: NS,
      name: 'flux-system',
      username: 'alice',
      password: TOKEN,
    }),
  });
  const url = pushed.pullRequest!.url;
  const ref = { repo, id: parsePullRequestUrl(url, [host()])!.id, url };
  return { repo, plan, pushed, ref };
}

const merge = async (id: number) => {
  const bob = new BitbucketServerClient(host(), { token: BOB });
  const pr = await new BitbucketPullRequests(bob, 'FLUX', 'fleet').get(id);
  const res = await bob.request<{
    properties: { mergeCommit: { id: string } };
  }>(
    'POST',
    `/rest/api/1.0/projects/FLUX/repos/fleet/pull-requests/${id}/merge`,
    { query: { version: pr.version } },
  );
  return res.body.properties.mergeCommit.id;
};

const until = async <T>(fn: () => Promise<T | undefined>) => {
  for (let i = 0; i < 600; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise(r => setTimeout(r, 200));
  }
  throw new Error('condition not met in time');
};

async function status(repo: BitbucketPullRequests) {
  const read = await readClusterStatus(admin, {
    cluster: 'prod',
    namespace: NS,
  });
  const ks = await admin.get({
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    name: NS,
    namespace: NS,
  });
  return addPullRequestState(
    read,
    ks?.metadata.annotations?.[PULL_REQUEST_ANNOTATION],
    {
      hosts: [host()],
      lookup: async ({ id }) => pullRequestInfo(await repo.get(id)),
    },
  );
}

describe('installFluxForPullRequest with the Flux simulator (self-management)', () => {
  it('installs at once, waits for the merge with the link, then for Flux to apply the merge commit; an upgrade PR changes Flux after its merge', async () => {
    const { repo, plan, pushed, ref } = await bootstrapThroughPullRequest(
      'from',
    );
    expect(parsePullRequestUrl(ref.url, [host()])).toMatchObject({
      projectKey: 'FLUX',
      slug: 'fleet',
      id: 1,
    });
    sim = await startFluxSimulator({
      kube: kube.info(),
      namespace: NS,
      intervalMs: 150,
      apply: true,
    });
    const { logger, lines } = recordingLogger();
    const installing = installFluxForPullRequest(admin, plan, ref, {
      logger,
      timeoutMs: 180_000,
      pollIntervalMs: 200,
      progressIntervalMs: 1_000,
    });
    installing.catch(() => undefined);
    await until(async () =>
      lines.some(l =>
        l.includes(
          `waiting for pull request #1 to be merged: ${
            pushed.pullRequest!.url
          }`,
        ),
      ),
    );
    // Flux runs, its sync waits for the merge: the status says so, with the link
    const waiting = await until(async () => {
      const s = await status(repo);
      return s.state === 'awaiting-merge' && s.pullRequest?.title
        ? s
        : undefined;
    });
    expect(waiting.pullRequest).toMatchObject({
      id: 1,
      url: pushed.pullRequest!.url,
      state: 'OPEN',
      fromBranch: 'flux/prod',
      toBranch: 'main',
    });
    expect(waiting.reason).toContain('waits for pull request #1');

    const mergeCommit = await merge(1);
    const result = await installing;
    expect(result.ready).toBe(true);
    expect(result.revision).toBe(`main@sha1:${mergeCommit}`);
    expect(result.componentsApplied).toBe(true);
    const after = await status(repo);
    expect(after.state).toBe('ready');
    expect(after.pullRequest).toBeUndefined();
    expect(after.flux?.version).toBe('v2.9.4');

    // Upgrade v2.9.4 → v2.10.0 through a pull request: the components are not applied over the
    // self-managed Flux; the merge makes Flux upgrade itself.
    const up = await bootstrapThroughPullRequest('to');
    expect(up.pushed.pullRequest!.title).toBe(
      'flux: upgrade to Flux v2.10.0 on cluster prod',
    );
    const { logger: upLogger, lines: upLines } = recordingLogger();
    const upgrading = installFluxForPullRequest(admin, up.plan, up.ref, {
      logger: upLogger,
      timeoutMs: 180_000,
      pollIntervalMs: 200,
    });
    upgrading.catch(() => undefined);
    await until(async () =>
      upLines.some(l => l.includes('waiting for pull request #2')),
    );
    const open = await status(repo);
    expect(open.state).toBe('ready');
    expect(open.pullRequest).toMatchObject({ id: 2, state: 'OPEN' });
    expect(open.flux?.version).toBe('v2.9.4');
    const upMerge = await merge(2);
    const upgraded = await upgrading;
    expect(upgraded.componentsApplied).toBe(false);
    expect(upgraded.revision).toBe(`main@sha1:${upMerge}`);
    const finalStatus = await until(async () => {
      const s = await status(repo);
      return s.flux?.version === 'v2.10.0' && s.state === 'ready'
        ? s
        : undefined;
    });
    expect(finalStatus.components.map(c => c.tag)).toEqual(
      Array(4).fill('v2.10.0'),
    );
    expect(JSON.stringify([lines, upLines, after, finalStatus])).not.toContain(
      TOKEN,
    );
  });

  it('returns right after the apply with wait: false, and stops waiting when cancelled', async () => {
    // a change of the sync interval opens a new pull request
    const { plan, ref, pushed } = await bootstrapThroughPullRequest('to', '2m');
    expect(pushed.pullRequest).toMatchObject({ id: 3, state: 'OPEN' });
    const quick = await installFluxForPullRequest(admin, plan, ref, {
      wait: false,
      pollIntervalMs: 200,
    });
    expect(quick.revision).toBeUndefined();
    const ks = await admin.get({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      name: NS,
      namespace: NS,
    });
    expect(ks?.metadata.annotations?.[PULL_REQUEST_ANNOTATION]).toBe(ref.url);

    const controller = new AbortController();
    const waiting = installFluxForPullRequest(admin, plan, ref, {
      signal: controller.signal,
      pollIntervalMs: 200,
    });
    setTimeout(() => controller.abort(), 1_500);
    await expect(waiting).rejects.toBeInstanceOf(OperationAbortedError);

    const late = await installFluxForPullRequest(admin, plan, ref, {
      timeoutMs: 1_500,
      pollIntervalMs: 200,
    }).catch(e => e);
    expect(late.message).toContain(
      `pull request #${ref.id} (${ref.url}) was not merged within 2 s`,
    );
  });
});
