/**
 * Operator mode end to end on real peers: the Bitbucket double (REST double, real git
 * http-backend) holds the fleet repository, a private real kube-apiserver (the operator's CRDs
 * are cluster-wide) runs the Flux simulator with its operator loop and kustomize-controller
 * applying Git, and the operator's install.yaml fixture is served like a GitHub release. The
 * steps are the engine calls the two actions make: pushFluxInstance (flux:push-manifests) and
 * installFluxOperator (flux:install), then the status reader the card reads.
 */
import {
  BitbucketDouble,
  buildFluxOperatorRelease,
  buildFluxUpgradeBundles,
  peerGitEnv,
  PEER_GIT_CONFIG,
  run,
  serveFluxOperatorReleases,
  startBitbucketDouble,
  startFluxSimulator,
  startKubeApiserver,
  type FluxBundle,
  type FluxOperatorReleaseServer,
  type FluxSimulator,
} from '@flux-bootstrap/test-peers';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gitHttpAuthHeaders } from '../bitbucket';
import {
  pushFluxManifests,
  renderFluxManifests,
} from '../git/pushFluxManifests';
import { GitPushSession } from '../git/session';
import { HttpsGitTransport } from '../git/transport';
import {
  adminConnection,
  fluxBundleFiles,
  planFor,
  recordingLogger,
} from '../install/__testUtils__/fixtures';
import { installFlux } from '../install/installFlux';
import { buildFluxInstallPlan, tokenAuthSecret } from '../install/plan';
import { createKubeClient } from '../kube/client';
import type { KubeClient } from '../kube/types';
import { resolveFluxManifestOptions } from '../manifests/options';
import { readClusterStatus } from '../status/readClusterStatus';
import type { FluxOperatorOptions } from './instance';
import {
  fluxOperatorDryRunLines,
  installWithFluxOperator,
  refuseBootstrapOverFluxInstance,
} from './install';
import { dryRunFluxInstance, pushFluxInstance } from './push';
import {
  installFluxOrAwaitPullRequest,
  pullRequestAccess,
} from '../install/pullRequestMerge';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';

jest.setTimeout(300_000);

const NS = 'flux-system';
const PATH = 'clusters/prod';
const DIR = `${PATH}/${NS}`;
const TOKEN = `canary-operator-e2e-${Math.random().toString(36).slice(2)}`;
/** Bob's token: he reviews and merges the pull requests. */
const MERGER = `canary-operator-merger-${Math.random().toString(36).slice(2)}`;
const COMPONENTS = [
  'helm-controller',
  'kustomize-controller',
  'notification-controller',
  'source-controller',
];
const FAST = {
  pollIntervalMs: 200,
  progressIntervalMs: 1_000,
  timeoutMs: 150_000,
};
const FO = 'fluxcd.controlplane.io/v1';

let bb: BitbucketDouble;
let bundles: { from: FluxBundle; to: FluxBundle };
let releases: FluxOperatorReleaseServer;
let cacheDir: string;
let repos = 0;
beforeAll(async () => {
  [bb, bundles, releases] = await Promise.all([
    startBitbucketDouble(),
    buildFluxUpgradeBundles(),
    serveFluxOperatorReleases([buildFluxOperatorRelease()]),
  ]);
  bb.addUser({ name: 'alice' });
  bb.addProject({ key: 'FLUX', name: 'Flux' });
  bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_WRITE');
  bb.addToken({ token: TOKEN, user: 'alice' });
  bb.addUser({ name: 'bob', email: 'bob@example.com' });
  bb.grantProject('FLUX', { user: 'bob' }, 'PROJECT_WRITE');
  bb.addToken({ token: MERGER, user: 'bob' });
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'operator-e2e-'));
});
afterAll(async () => {
  await bb?.stop();
  await releases?.stop();
  fs.rmSync(cacheDir, { recursive: true, force: true });
});
const stops: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

const git = async (bare: string, ...args: string[]) =>
  (
    await run('git', ['--git-dir', bare, ...args], {
      env: peerGitEnv({}, PEER_GIT_CONFIG),
    })
  ).stdout.trim();

/** A fleet repository on the double, a cluster with the simulator, and the steps' inputs. */
async function world(initialCommit = false) {
  const { slug } = bb.createRepo('FLUX', `fleet-${++repos}`, {
    defaultBranch: 'main',
    initialCommit,
  });
  const bare = bb.repoPath('FLUX', slug);
  const url = bb.cloneUrls('FLUX', slug).http;
  const kube = await startKubeApiserver();
  stops.push(() => kube.stop());
  const sim: FluxSimulator = await startFluxSimulator({
    kube: kube.info(),
    namespace: NS,
    intervalMs: 150,
    apply: true,
    operator: { bundles: [bundles.from, bundles.to] },
  });
  stops.push(() => sim.stop());
  const admin: KubeClient = await createKubeClient(
    adminConnection(kube.info()),
  );
  stops.push(() => admin.close());
  const options = resolveFluxManifestOptions(
    { path: PATH, syncUrl: url, namespace: NS },
    { fluxVersion: 'v2.9.4' },
  );
  const transport = () =>
    new HttpsGitTransport({
      url,
      headers: gitHttpAuthHeaders({ token: TOKEN }),
    });
  const secret = tokenAuthSecret({
    namespace: NS,
    name: 'flux-system',
    username: 'alice',
    password: TOKEN,
  });
  const operator = (version: string): FluxOperatorOptions => ({
    version,
    clusterType: 'kubernetes',
    multitenant: false,
  });
  const { logger, lines } = recordingLogger();
  const push = (version: string, migrate = false) =>
    pushFluxInstance(
      {
        transport: transport(),
        options,
        operator: operator(version),
        author: { name: 'Flux', email: 'flux@example.com' },
        migrate,
      },
      { logger },
    );
  const source = {
    baseUrl: releases.baseUrl,
    cacheDir,
    sha256: { 'v0.58.1': buildFluxOperatorRelease().sha256 },
    defaultVersion: 'v0.58.1',
    downloadTimeoutMs: 10_000,
  };
  const install = (version: string, revision: string) =>
    installWithFluxOperator(
      admin,
      {
        options,
        operator: operator(version),
        source,
        secret,
        expectedRevision: revision,
      },
      { ...FAST, logger },
    ).catch(e => {
      throw new Error(`${e}\n${sim.events().slice(-30).join('\n')}`);
    });
  const get = (apiVersion: string, kind: string, name: string) =>
    admin.get({ apiVersion, kind, name, namespace: NS });
  const uids = async () =>
    Object.fromEntries(
      await Promise.all(
        COMPONENTS.map(async n => [
          n,
          (await get('apps/v1', 'Deployment', n))?.metadata.uid,
        ]),
      ),
    );
  const count = () =>
    bb
      .requests()
      .filter(r => r.method !== 'GET' && !r.path.endsWith('/git-upload-pack'))
      .length;
  const base = count();
  /** Writes to the double since the world started (pushes, REST writes). */
  const writes = () => count() - base;
  const status = () => readClusterStatus(admin, { cluster: 'prod' });
  return {
    slug,
    bare,
    url,
    source,
    secret,
    sim,
    admin,
    options,
    transport,
    lines,
    operator,
    push,
    install,
    get,
    uids,
    writes,
    status,
    ls: async () =>
      (await git(bare, 'ls-tree', '-r', '--name-only', 'main')).split('\n'),
    log: async () =>
      (await git(bare, 'log', '--format=%s', 'main')).split('\n'),
    changed: async () =>
      (await git(bare, 'show', '--name-status', '--format=', 'main')).split(
        '\n',
      ),
  };
}

/** The double as a configured Bitbucket Server host. */
const bbHost = (): BitbucketServerHostConfig => ({
  host: bb.host,
  apiBaseUrl: bb.apiBaseUrl,
  baseUrl: bb.baseUrl,
  sshHost: bb.host,
  requestTimeoutMs: 30_000,
  retries: 0,
});

/** flux:push-manifests (the use case) with distribution operator and pullRequest. */
const pushOperatorPullRequest = (
  w: Awaited<ReturnType<typeof world>>,
  version: string,
) =>
  pushFluxManifests(
    {
      repository: {
        bitbucket: {
          ref: {
            host: bb.host,
            project: 'FLUX',
            repo: w.slug,
            personal: false,
          },
          host: bbHost(),
          auth: { token: TOKEN },
          credentials: 'a test token',
        },
      },
      manifests: { path: PATH, syncUrl: w.url, namespace: NS },
      operator: {
        version,
        clusterType: 'kubernetes',
        multitenant: false,
      },
      author: { name: 'Flux', email: 'flux@example.com' },
      pullRequest: true,
    },
    {
      settings: { manifests: { ...w.source, defaultVersion: 'v2.9.4' } },
      logger: {
        info: (m: string) => w.lines.push(m),
        warn: () => {},
        error: () => {},
        debug: () => {},
      } as any,
    },
  );

/** flux:install (the use case) following a pull request, installing through the operator. */
const installThroughPullRequest = (
  w: Awaited<ReturnType<typeof world>>,
  version: string,
  url: string,
  logger: ReturnType<typeof recordingLogger>['logger'],
) =>
  installFluxOrAwaitPullRequest(
    w.admin,
    buildFluxInstallPlan({ options: w.options, componentObjects: [] }),
    {
      ...FAST,
      logger,
      pullRequest: pullRequestAccess(url, [bbHost()], TOKEN),
      install: (expectedRevision, o) =>
        installWithFluxOperator(
          w.admin,
          {
            options: w.options,
            operator: w.operator(version),
            source: w.source,
            secret: w.secret,
            expectedRevision,
          },
          o,
        ),
    },
  );

/** Merges a pull request as another user would, in Bitbucket's REST shape; the merge commit. */
async function mergeAs(token: string, slug: string, id: number) {
  const api = `${bb.baseUrl}/rest/api/1.0/projects/FLUX/repos/${slug}/pull-requests/${id}`;
  const headers = { Authorization: `Bearer ${token}` };
  const current = await (await fetch(api, { headers })).json();
  const merge = await fetch(`${api}/merge?version=${current.version}`, {
    method: 'POST',
    headers,
  });
  expect(merge.status).toBe(200);
  return (await merge.json()).properties.mergeCommit.id as string;
}

describe('operator mode end to end (Bitbucket double, real apiserver, simulator)', () => {
  it('bootstraps a fresh cluster through the Flux Operator; a re-run writes nothing; a version bump changes only flux-instance.yaml', async () => {
    const w = await world();

    // Dry runs: the instance is shown, nothing is sent.
    const dry = dryRunFluxInstance(w.options, w.operator('2.9.x'), {
      info: (m: string) => w.lines.push(m),
      warn: () => {},
      error: () => {},
      debug: () => {},
    } as any);
    expect(Object.keys(dry.files)).toEqual([
      `${DIR}/flux-instance.yaml`,
      `${DIR}/kustomization.yaml`,
    ]);
    expect(w.lines.join('\n')).toMatch(
      /kind: FluxInstance[\s\S]*version: 2\.9\.x/,
    );
    const plannedLines = fluxOperatorDryRunLines(
      'prod',
      w.options,
      w.operator('2.9.x'),
      w.source,
      w.secret,
    ).join('\n');
    expect(plannedLines).toMatch(/through the Flux Operator v0\.58\.1/);
    expect(plannedLines).toMatch(
      /Secret flux-system\/flux-system with keys username, password/,
    );
    expect(plannedLines).toMatch(/kind: FluxInstance/);
    expect(plannedLines).not.toContain(TOKEN);
    expect(w.writes()).toBe(0);
    expect(await w.admin.list('v1', 'Namespace')).not.toContainEqual(
      expect.objectContaining({
        metadata: expect.objectContaining({ name: NS }),
      }),
    );

    // flux:push-manifests: one commit, flux-instance.yaml + kustomization.yaml, no gotk files.
    const pushed = await w.push('2.9.x');
    expect(pushed).toMatchObject({ changed: true, migrationPending: false });
    expect(await w.log()).toEqual(['Add Flux Operator instance']);
    expect(await w.ls()).toEqual([
      `${DIR}/flux-instance.yaml`,
      `${DIR}/kustomization.yaml`,
    ]);

    // flux:install: operator Deployment available, FluxInstance Ready at the pushed revision.
    const installed = await w.install('2.9.x', pushed.revision);
    expect(installed).toMatchObject({
      ready: true,
      fluxVersion: 'v2.9.4',
      revision: `refs/heads/${pushed.revision}`,
    });
    expect(
      (await w.get('apps/v1', 'Deployment', 'flux-operator'))?.status,
    ).toMatchObject({ availableReplicas: 1 });
    const instances = await w.admin.list(FO, 'FluxInstance');
    expect(
      instances.map(i => `${i.metadata.namespace}/${i.metadata.name}`),
    ).toEqual([`${NS}/flux`]);
    const inst = instances[0] as any;
    expect(inst.status.conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'True' }),
    );
    expect(inst.status.lastAppliedRevision).toMatch(/^v2\.9\.4@sha256:/);
    const ks = (await w.get(
      'kustomize.toolkit.fluxcd.io/v1',
      'Kustomization',
      NS,
    )) as any;
    expect(ks.status.lastAppliedRevision).toBe(`refs/heads/${pushed.revision}`);
    const report = (await w.get(FO, 'FluxReport', 'flux')) as any;
    expect(report.spec.sync).toMatchObject({ ready: true, path: PATH });
    expect(report.spec.sync.status).toContain(pushed.commitHash);
    const log = w.lines.join('\n');
    expect(log).toMatch(/Waiting for the FluxInstance on cluster/);
    expect(log).toMatch(/✔ flux-operator: deployment ready/);
    expect(log).not.toContain(TOKEN);

    // The status the card reads: managed by the operator, requested range, installed version.
    const status = await w.status();
    expect(status.state).toBe('ready');
    expect(status.flux).toMatchObject({
      manager: 'flux-operator',
      instance: {
        name: 'flux',
        namespace: NS,
        requestedVersion: '2.9.x',
        installedVersion: 'v2.9.4',
        ready: true,
      },
    });
    expect(status.flux?.instance?.lastAppliedRevision).toBe(
      inst.status.lastAppliedRevision,
    );

    // Re-run of both steps: no push, no write to the cluster.
    const before = w.writes();
    const again = await w.push('2.9.x');
    expect(again).toMatchObject({
      changed: false,
      commitHash: pushed.commitHash,
    });
    expect(w.writes()).toBe(before);
    const reinstalled = await w.install('2.9.x', again.revision);
    expect(reinstalled.ready).toBe(true);
    expect(reinstalled.applied.filter(a => a.result !== 'unchanged')).toEqual(
      [],
    );
    expect(await w.log()).toHaveLength(1);

    // Version bump: one commit changing only flux-instance.yaml; the operator upgrades in place.
    const uids = await w.uids();
    const bumped = await w.push('2.10.x');
    expect(bumped.changed).toBe(true);
    expect(await w.changed()).toEqual([`M\t${DIR}/flux-instance.yaml`]);
    const upgraded = await w.install('2.10.x', bumped.revision);
    expect(upgraded).toMatchObject({ ready: true, fluxVersion: 'v2.10.0' });
    expect(
      upgraded.components.find(c => c.name === 'source-controller')?.image,
    ).toMatch(/source-controller:v2\.10\.0/);
    expect(await w.uids()).toEqual(uids);
    const after = await w.status();
    // Going back to flux bootstrap is refused before anything is applied.
    await expect(refuseBootstrapOverFluxInstance(w.admin, NS)).rejects.toThrow(
      /moving back to flux bootstrap is not supported/,
    );
    expect(after.flux?.instance).toMatchObject({
      requestedVersion: '2.10.x',
      installedVersion: 'v2.10.0',
      ready: true,
    });

    // The state rules read the instance: paused → suspended; Ready=False → failing.
    await w.admin.apply(
      {
        apiVersion: FO,
        kind: 'FluxInstance',
        metadata: {
          name: 'flux',
          namespace: NS,
          annotations: { 'fluxcd.controlplane.io/reconcile': 'disabled' },
        },
      },
      { fieldManager: 'test-pause', force: true },
    );
    const paused = await w.status();
    expect(paused.state).toBe('suspended');
    expect(paused.reason).toMatch(
      /FluxInstance flux-system\/flux is suspended/,
    );
    await w.admin.apply(
      {
        apiVersion: FO,
        kind: 'FluxInstance',
        metadata: {
          name: 'flux',
          namespace: NS,
          annotations: { 'fluxcd.controlplane.io/reconcile': 'enabled' },
        },
      },
      { fieldManager: 'test-pause', force: true },
    );
    w.sim.failWith('instance', 'health check failed for canary');
    w.sim.reconcileNow();
    let failing = await w.status();
    for (let i = 0; i < 100 && failing.state !== 'failing'; i++) {
      await new Promise(r => setTimeout(r, 200));
      failing = await w.status();
    }
    expect(failing.state).toBe('failing');
    expect(failing.reason).toMatch(
      /FluxInstance flux-system\/flux: reconciliation failed: health check failed for canary/,
    );
    expect(failing.flux?.instance?.ready).toBe(false);
  });

  it('migrates a cluster bootstrapped with flux bootstrap: the Deployments keep their UIDs, gotk files are replaced in one commit', async () => {
    const w = await world();
    // flux bootstrap, as the product does it: gotk files in Git, then installFlux.
    const boot = renderFluxManifests(await fluxBundleFiles(), w.options);
    const session = await GitPushSession.open({
      transport: w.transport(),
      branch: 'main',
    });
    let head: string;
    try {
      head = (
        await session.commitAndPush({
          message: 'Add Flux sync manifests',
          author: { name: 'Flux', email: 'flux@example.com' },
          edit: async tree => {
            for (const f of [boot.components, boot.sync, boot.kustomization])
              tree.write(f.path, f.content);
          },
        })
      ).head;
    } finally {
      await session.close();
    }
    const secret = tokenAuthSecret({
      namespace: NS,
      name: 'flux-system',
      username: 'alice',
      password: TOKEN,
    });
    await installFlux(
      w.admin,
      await planFor(NS, {
        path: PATH,
        syncUrl: w.url,
        secret,
        expectedRevision: `main@sha1:${head}`,
      }),
      FAST,
    );
    expect((await w.status()).flux?.manager).toBe('flux-bootstrap');
    const before = await w.uids();

    // 1. push: the folder holds bootstrap's files, nothing is written yet.
    const pending = await w.push('2.9.x');
    expect(pending).toMatchObject({ migrationPending: true, changed: false });
    expect(await w.log()).toEqual(['Add Flux sync manifests']);
    // 2. install: the operator adopts the running controllers in place.
    const adopted = await w.install('2.9.x', pending.revision);
    expect(adopted).toMatchObject({ ready: true, componentsApplied: true });
    expect(await w.uids()).toEqual(before);
    // 3. push with migrate: one commit replaces gotk-components/gotk-sync by flux-instance.yaml.
    const migrated = await w.push('2.9.x', true);
    expect(migrated).toMatchObject({ changed: true, migrationPending: false });
    expect((await w.changed()).sort()).toEqual([
      `A\t${DIR}/flux-instance.yaml`,
      `D\t${DIR}/gotk-components.yaml`,
      `D\t${DIR}/gotk-sync.yaml`,
      `M\t${DIR}/kustomization.yaml`,
    ]);
    // 4. install: waits until Flux applied that commit (nothing pruned).
    const synced = await w.install('2.9.x', migrated.revision);
    expect(synced).toMatchObject({
      ready: true,
      revision: `refs/heads/${migrated.revision}`,
    });

    expect(await w.uids()).toEqual(before);
    expect(await w.ls()).toEqual([
      `${DIR}/flux-instance.yaml`,
      `${DIR}/kustomization.yaml`,
    ]);
    const status = await w.status();
    expect(status.state).toBe('ready');
    expect(status.flux).toMatchObject({
      manager: 'flux-operator',
      instance: { requestedVersion: '2.9.x', installedVersion: 'v2.9.4' },
    });
    // A re-run of the migration step writes nothing.
    const writes = w.writes();
    expect(await w.push('2.9.x', true)).toMatchObject({ changed: false });
    expect(w.writes()).toBe(writes);
  });

  it('bootstraps a fresh cluster through the operator with a pull request on a pull-request-only main: the operator runs at once, Flux syncs the merge commit', async () => {
    const w = await world(true);
    bb.addRestriction('FLUX', w.slug, {
      type: 'pull-request-only',
      matcher: 'main',
    });
    const mainHead = await git(w.bare, 'rev-parse', 'main');
    const opened = await pushOperatorPullRequest(w, '2.9.x');
    expect(opened).toMatchObject({
      changed: true,
      revision: '',
      pullRequestId: expect.any(Number),
    });
    expect(await git(w.bare, 'rev-parse', 'main')).toBe(mainHead);
    const added = await git(
      w.bare,
      'diff',
      '--name-status',
      'main',
      'flux/prod',
    );
    expect(added.split('\n')).toContain(`A\t${DIR}/flux-instance.yaml`);

    const { logger, lines } = recordingLogger();
    const installing = installThroughPullRequest(
      w,
      '2.9.x',
      opened.pullRequestUrl!,
      logger,
    );
    void installing.catch(() => undefined);
    const waiting = `waiting for pull request #${opened.pullRequestId} to be merged: ${opened.pullRequestUrl}`;
    for (let i = 0; i < 600 && !lines.some(l => l.endsWith(waiting)); i++)
      await new Promise(r => setTimeout(r, 100));
    // Before the merge: the operator and the FluxInstance are on the cluster, main is unchanged.
    expect(lines).toContain(`info ${waiting}`);
    expect(await w.get(FO, 'FluxInstance', 'flux')).toBeDefined();
    expect(await git(w.bare, 'rev-parse', 'main')).toBe(mainHead);

    const mergeCommit = await mergeAs(MERGER, w.slug, opened.pullRequestId!);
    const done = await installing.catch(async e => {
      throw new Error(`${e}\n${w.sim.events().slice(-30).join('\n')}`);
    });
    expect(done).toMatchObject({
      ready: true,
      fluxVersion: 'v2.9.4',
      revision: `refs/heads/main@sha1:${mergeCommit}`,
    });
    const status = await w.status();
    expect(status.state).toBe('ready');
    expect(status.flux?.instance).toMatchObject({
      requestedVersion: '2.9.x',
      installedVersion: 'v2.9.4',
    });
    const sync = await w.get(
      'kustomize.toolkit.fluxcd.io/v1',
      'Kustomization',
      NS,
    );
    expect(sync?.metadata.annotations ?? {}).not.toHaveProperty(
      'flux-bootstrap.io/pull-request',
    );
    expect(lines.join('\n')).not.toContain(TOKEN);
    // After the merge a re-run pushes nothing and opens no pull request.
    expect(await pushOperatorPullRequest(w, '2.9.x')).toMatchObject({
      changed: false,
    });
    expect(bb.state().pullRequests.filter(p => p.slug === w.slug)).toHaveLength(
      1,
    );
  });

  it('bumps the version through a pull request on a pull-request-only main: one PR with flux-instance.yaml only, flux:install waits for the merge', async () => {
    const w = await world();
    const { slug } = w;
    // Bootstrap through the operator (direct push, as before the branch was protected).
    const pushed = await w.push('2.9.x');
    await w.install('2.9.x', pushed.revision);
    bb.addRestriction('FLUX', slug, {
      type: 'pull-request-only',
      matcher: 'main',
    });
    const mainHead = await git(w.bare, 'rev-parse', 'main');

    // flux:push-manifests (the use case) with distribution operator and pullRequest.
    const bump = () => pushOperatorPullRequest(w, '2.10.x');
    const opened = await bump();
    expect(opened).toMatchObject({
      changed: true,
      revision: '',
      sourceBranch: 'flux/prod',
      pullRequestId: expect.any(Number),
    });
    expect(opened.pullRequestUrl).toBe(
      `${bb.baseUrl}/projects/FLUX/repos/${slug}/pull-requests/${opened.pullRequestId}`,
    );
    const prs = () => bb.state().pullRequests.filter(p => p.slug === slug);
    expect(prs()).toHaveLength(1);
    const pr = prs()[0] as any;
    expect(pr.title).toMatch(
      /Flux Operator instance with Flux 2\.10\.x on cluster prod/,
    );
    expect(pr.description).toContain(`${DIR}/flux-instance.yaml`);
    expect(pr.description).not.toContain(TOKEN);
    expect(await git(w.bare, 'rev-parse', 'main')).toBe(mainHead);
    expect(
      (await git(w.bare, 'diff', '--name-status', 'main', 'flux/prod')).split(
        '\n',
      ),
    ).toEqual([`M\t${DIR}/flux-instance.yaml`]);
    expect(await git(w.bare, 'log', '--format=%s', 'main..flux/prod')).toBe(
      'Add Flux Operator instance',
    );

    // A re-run while it is open: no commit, no second pull request.
    const headOfPr = await git(w.bare, 'rev-parse', 'flux/prod');
    const again = await bump();
    expect(again).toMatchObject({
      changed: false,
      pullRequestId: opened.pullRequestId,
    });
    expect(prs()).toHaveLength(1);
    expect(await git(w.bare, 'rev-parse', 'flux/prod')).toBe(headOfPr);

    // flux:install with the pull request: applies, waits for the merge, then for the upgrade.
    const { logger, lines } = recordingLogger();
    const installing = installThroughPullRequest(
      w,
      '2.10.x',
      opened.pullRequestUrl!,
      logger,
    );
    const failed = installing.catch(e => e);
    for (
      let i = 0;
      i < 300 && !lines.some(l => /waiting for pull request/.test(l));
      i++
    )
      await new Promise(r => setTimeout(r, 100));
    expect(lines.join('\n')).toContain(
      `waiting for pull request #${opened.pullRequestId} to be merged: ${opened.pullRequestUrl}`,
    );
    expect(await git(w.bare, 'rev-parse', 'main')).toBe(mainHead);
    const mergeCommit = await mergeAs(MERGER, slug, opened.pullRequestId!);
    const upgraded = await installing.catch(async e => {
      throw new Error(`${e}\n${w.sim.events().slice(-30).join('\n')}`);
    });
    void failed;
    expect(upgraded).toMatchObject({
      ready: true,
      fluxVersion: 'v2.10.0',
      revision: `refs/heads/main@sha1:${mergeCommit}`,
    });
    expect((await w.status()).flux?.instance).toMatchObject({
      requestedVersion: '2.10.x',
      installedVersion: 'v2.10.0',
      ready: true,
    });
    expect(lines.join('\n')).not.toContain(TOKEN);
    // After the merge a re-run is a no-op: nothing pushed, no pull request opened.
    const after = await bump();
    expect(after).toMatchObject({ changed: false });
    expect(after.pullRequestId).toBeUndefined();
    expect(prs()).toHaveLength(1);
  });
});
