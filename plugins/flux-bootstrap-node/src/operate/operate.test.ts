/**
 * Reconcile now, suspend and resume against the real kube-apiserver, with the test-only Flux
 * controller simulator resolving the branch of a real git smart-HTTP repository and echoing
 * `reconcile.fluxcd.io/requestedAt` as `status.lastHandledReconcileAt` (and leaving suspended
 * objects alone), as source- and kustomize-controller do.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  FLUX_RESUMED_BY_ANNOTATION,
  FLUX_SUSPENDED_AT_ANNOTATION,
  FLUX_SUSPENDED_BY_ANNOTATION,
  FLUX_SUSPENDED_REASON_ANNOTATION,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  applyFluxBundle,
  applyFluxSync,
  buildFluxBundle,
  getSharedKubeApiserver,
  KubeCleanup,
  KubeHttp,
  kubePath,
  startFluxSimulator,
  startGitHttpServer,
  uniqueName,
  type FluxBundle,
  type FluxSimulator,
  type GitHttpServer,
} from '@flux-bootstrap/test-peers';
import { createKubeClient } from '../kube/client';
import type { KubeClient, KubeObject } from '../kube/types';
import { readClusterStatus } from '../status/readClusterStatus';
import {
  fluxRequestTimestamp,
  reconcileFluxSync,
  resumeFluxSync,
  suspendFluxSync,
} from './operate';

jest.setTimeout(180_000);

const kube = getSharedKubeApiserver();
const TOKEN = 'canary-operate-git-token-71c0';
const FAST = { pollIntervalMs: 200, progressIntervalMs: 1_000 };

let git: GitHttpServer;
let bundle: FluxBundle;
let admin: KubeClient;
let http: KubeHttp;
let work: string;
let repoPath: string;
let repoUrl: string;
const stops: Array<() => Promise<void> | void> = [];

function gitCli(...args: string[]) {
  return execFileSync('git', args, {
    cwd: work,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: work,
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Flux',
      GIT_AUTHOR_EMAIL: 'flux@example.com',
      GIT_COMMITTER_NAME: 'Flux',
      GIT_COMMITTER_EMAIL: 'flux@example.com',
    },
  }).trim();
}
function commit(file: string, content: string): string {
  fs.mkdirSync(path.dirname(path.join(work, file)), { recursive: true });
  fs.writeFileSync(path.join(work, file), content);
  gitCli('add', '-A');
  gitCli('commit', '-q', '-m', `update ${file}`);
  gitCli('push', '-q', repoPath, 'HEAD:refs/heads/main');
  return gitCli('rev-parse', 'HEAD');
}

beforeAll(async () => {
  [git, bundle] = await Promise.all([
    startGitHttpServer({ tls: true }),
    buildFluxBundle({ version: 'v2.9.4' }),
  ]);
  git.addToken({ token: TOKEN, user: 'flux', access: 'read' });
  const repo = git.createRepo('fleet', { initialCommit: false });
  repoPath = repo.path;
  repoUrl = repo.url;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'operate-work-'));
  gitCli('init', '-q', '-b', 'main');
  commit('clusters/test/flux-system/kustomization.yaml', 'resources: []\n');
  admin = await createKubeClient({
    name: 'operated',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });
  http = new KubeHttp(kube);
});

afterAll(async () => {
  admin?.close();
  http?.close();
  await git?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** Flux in a fresh namespace, synced by the simulator from the git peer over HTTPS. */
async function bootstrapped(): Promise<{ ns: string; sim: FluxSimulator }> {
  const ns = uniqueName('operate');
  const applied = await applyFluxBundle(kube, bundle, { namespace: ns });
  const cleanup = new KubeCleanup(kube);
  for (const o of applied) {
    if (o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding') {
      cleanup.track({
        apiVersion: o.apiVersion,
        resource:
          o.kind === 'ClusterRole' ? 'clusterroles' : 'clusterrolebindings',
        name: o.name,
      });
    }
  }
  stops.push(() => cleanup.run());
  await applyFluxSync(kube, {
    namespace: ns,
    url: repoUrl,
    secret: { username: 'flux', password: TOKEN, 'ca.crt': git.caPem! },
    path: './clusters/test',
  });
  const sim = await startFluxSimulator({
    kube,
    namespace: ns,
    intervalMs: 150,
  });
  stops.push(() => sim.stop());
  for (let i = 0; ; i++) {
    const status = await readClusterStatus(admin, {
      cluster: 'operated',
      namespace: ns,
    });
    if (status.state === 'ready') break;
    if (i > 200)
      throw new Error(`never ready: ${status.state} ${status.reason}`);
    await new Promise(r => setTimeout(r, 150));
  }
  return { ns, sim };
}

async function objects(ns: string) {
  const get = (p: string) =>
    http.expect('GET', p).then(r => r.body as KubeObject);
  return {
    source: await get(
      kubePath({
        apiVersion: 'source.toolkit.fluxcd.io/v1',
        resource: 'gitrepositories',
        namespace: ns,
        name: ns,
      }),
    ),
    sync: await get(
      kubePath({
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        resource: 'kustomizations',
        namespace: ns,
        name: ns,
      }),
    ),
  };
}

describe('fluxRequestTimestamp', () => {
  it('writes RFC3339Nano in UTC, as flux reconcile does, and differs within a millisecond', () => {
    const at = new Date('2026-05-03T10:11:12.120Z');
    const a = fluxRequestTimestamp(at);
    expect(a).toMatch(/^2026-05-03T10:11:12\.12\d{0,7}Z$/);
    expect(fluxRequestTimestamp(at)).not.toBe(a);
    expect(Date.parse(a)).toBe(at.getTime());
  });
});

describe('reconcile, suspend and resume on a real kube-apiserver', () => {
  it('reconcile now: both objects annotated, their controllers handled exactly that request, the new commit is applied', async () => {
    const { ns } = await bootstrapped();
    const sha = commit(`clusters/test/app-${ns}.yaml`, '# new\n');
    const result = await reconcileFluxSync(admin, {
      cluster: 'operated',
      namespace: ns,
      timeoutMs: 60_000,
      ...FAST,
    });
    expect(result.ready).toBe(true);
    expect(result.source).toMatchObject({
      kind: 'GitRepository',
      name: ns,
      handled: true,
      ready: true,
    });
    expect(result.sync).toMatchObject({
      kind: 'Kustomization',
      handled: true,
      ready: true,
      revision: `main@sha1:${sha}`,
    });
    expect(result.message).toContain(`applied revision main@sha1:${sha}`);
    const { source, sync } = await objects(ns);
    for (const obj of [source, sync]) {
      expect(
        obj.metadata.annotations?.['reconcile.fluxcd.io/requestedAt'],
      ).toBe(result.requestedAt);
      expect((obj.status as any).lastHandledReconcileAt).toBe(
        result.requestedAt,
      );
      // recorded under our field manager, as an update (merge patch)
      expect(
        (obj.metadata.managedFields as any[]).some(
          f =>
            f.manager === 'flux-bootstrap-operate' && f.operation === 'Update',
        ),
      ).toBe(true);
    }
  });

  it('suspend stores the reason and the user on the Kustomization and the status reads suspended; reconcile is refused; resume flips it back and Flux reconciles', async () => {
    const { ns } = await bootstrapped();
    const suspended = await suspendFluxSync(admin, {
      cluster: 'operated',
      namespace: ns,
      reason: '  Incident INC-42: hold all deploys  ',
      actor: 'user:default/alice',
    });
    expect(suspended).toMatchObject({ suspended: true, changed: true });
    let { sync } = await objects(ns);
    expect((sync.spec as any).suspend).toBe(true);
    expect(sync.metadata.annotations).toMatchObject({
      [FLUX_SUSPENDED_REASON_ANNOTATION]: 'Incident INC-42: hold all deploys',
      [FLUX_SUSPENDED_BY_ANNOTATION]: 'user:default/alice',
      [FLUX_SUSPENDED_AT_ANNOTATION]:
        expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const status = await readClusterStatus(admin, {
      cluster: 'operated',
      namespace: ns,
    });
    expect(status.state).toBe('suspended');
    expect(status.sync?.suspended).toBe(true);

    await expect(
      reconcileFluxSync(admin, { cluster: 'operated', namespace: ns, ...FAST }),
    ).rejects.toMatchObject({
      name: 'ConflictError',
      message: expect.stringContaining('is suspended'),
    });

    const again = await suspendFluxSync(admin, {
      cluster: 'operated',
      namespace: ns,
      reason: 'still the incident',
      actor: 'user:default/bob',
    });
    expect(again.changed).toBe(false);

    const resumed = await resumeFluxSync(admin, {
      cluster: 'operated',
      namespace: ns,
      actor: 'user:default/alice',
      timeoutMs: 60_000,
      ...FAST,
    });
    expect(resumed).toMatchObject({
      suspended: false,
      changed: true,
      sync: { handled: true, ready: true },
    });
    ({ sync } = await objects(ns));
    expect((sync.spec as any).suspend).toBe(false);
    expect(
      sync.metadata.annotations?.[FLUX_SUSPENDED_REASON_ANNOTATION],
    ).toBeUndefined();
    expect(sync.metadata.annotations?.[FLUX_RESUMED_BY_ANNOTATION]).toBe(
      'user:default/alice',
    );
    expect(
      (await readClusterStatus(admin, { cluster: 'operated', namespace: ns }))
        .state,
    ).toBe('ready');
  });

  it('refuses a suspend without a reason before any request, naming the field', async () => {
    const unreachable = await createKubeClient({
      name: 'nowhere',
      url: 'https://127.0.0.1:1',
      token: 't',
      skipTLSVerify: false,
      source: 'config',
    });
    try {
      for (const reason of [undefined, '   ', 'a\u0000b', 'x'.repeat(1025)]) {
        await expect(
          suspendFluxSync(unreachable, {
            cluster: 'nowhere',
            reason,
            actor: 'user:default/alice',
          }),
        ).rejects.toMatchObject({ field: 'reason' });
      }
    } finally {
      unreachable.close();
    }
  });

  it('fails naming what it waited for when no controller handles the request, and leaves the request on the object', async () => {
    const { ns, sim } = await bootstrapped();
    await sim.stop();
    const started = Date.now();
    await expect(
      reconcileFluxSync(admin, {
        cluster: 'operated',
        namespace: ns,
        timeoutMs: 2_000,
        ...FAST,
      }),
    ).rejects.toMatchObject({
      name: 'ServiceUnavailableError',
      message: expect.stringMatching(
        new RegExp(
          `GitRepository ${ns}/${ns} .* has not handled the reconcile request .* within 2 s`,
        ),
      ),
    });
    expect(Date.now() - started).toBeLessThan(30_000);
    const { source } = await objects(ns);
    expect(
      source.metadata.annotations?.['reconcile.fluxcd.io/requestedAt'],
    ).toBeDefined();
  });

  it('stops waiting at once when aborted', async () => {
    const { ns, sim } = await bootstrapped();
    await sim.stop();
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 500);
    const started = Date.now();
    await expect(
      reconcileFluxSync(
        admin,
        { cluster: 'operated', namespace: ns, timeoutMs: 60_000, ...FAST },
        { signal: abort.signal },
      ),
    ).rejects.toMatchObject({ name: 'OperationAbortedError' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('says Flux is not installed, or that the namespace has no sync', async () => {
    await expect(
      reconcileFluxSync(admin, {
        cluster: 'operated',
        namespace: uniqueName('empty'),
        ...FAST,
      }),
    ).rejects.toMatchObject({
      name: 'NotFoundError',
      message: expect.stringContaining('has no Flux sync'),
    });
  });
});
