/**
 * installFlux against the real kube-apiserver with the test-only Flux controller simulator, which
 * resolves the branch with a real `git ls-remote` over HTTPS using the Secret the install wrote
 * (username/password + ca.crt) against the real git smart-HTTP peer, and reports readiness.
 */
import {
  getSharedKubeApiserver,
  KubeCleanup,
  startFluxSimulator,
  uniqueName,
  type FluxSimulator,
} from '@flux-bootstrap/test-peers';
import { createKubeClient } from '../kube/client';
import type { KubeClient, KubeObject } from '../kube/types';
import { FluxInstallError } from './errors';
import { installFlux, type InstallFluxOptions } from './installFlux';
import { tokenAuthSecret, type FluxInstallPlan } from './plan';
import {
  adminConnection,
  planFor,
  recordingLogger,
  startFleetRepo,
  trackClusterObjects,
  type FleetRepo,
} from './__testUtils__/fixtures';

const kube = getSharedKubeApiserver();
jest.setTimeout(120_000);

const TOKEN = 'canary-fleet-token-7b4f0e9d2c';
const FAST: InstallFluxOptions = {
  pollIntervalMs: 200,
  progressIntervalMs: 1_000,
  timeoutMs: 60_000,
};

interface Setup {
  ns: string;
  repo: FleetRepo;
  sha: string;
  plan: FluxInstallPlan;
  sim: FluxSimulator;
  admin: KubeClient;
}

const stops: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function setup(
  opts: {
    password?: string;
    expected?: (sha: string) => string | undefined;
  } = {},
): Promise<Setup> {
  const ns = uniqueName('sim');
  const repo = await startFleetRepo({ user: 'alice', token: TOKEN });
  stops.push(() => repo.stop());
  const sha = repo.commit({
    'clusters/test/flux-system/kustomization.yaml':
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n',
  });
  const plan = await planFor(ns, {
    syncUrl: repo.url,
    secret: tokenAuthSecret({
      namespace: ns,
      name: 'flux-system',
      username: 'alice',
      password: opts.password ?? TOKEN,
      caPem: repo.caPem,
    }),
    expectedRevision: opts.expected ? opts.expected(sha) : `main@sha1:${sha}`,
  });
  const cleanup = trackClusterObjects(new KubeCleanup(kube), plan);
  stops.push(() => cleanup.run());
  const sim = await startFluxSimulator({
    kube,
    namespace: ns,
    intervalMs: 150,
  });
  stops.push(() => sim.stop());
  const admin = await createKubeClient(adminConnection(kube));
  stops.push(() => admin.close());
  return { ns, repo, sha, plan, sim, admin };
}

function refOf(o: KubeObject) {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.metadata.name,
    namespace: o.metadata.namespace,
  };
}

describe('installFlux with the Flux controller simulator', () => {
  it('waits until Flux synced the pushed revision and its controllers are available; a re-run changes nothing and returns at once', async () => {
    const { ns, sha, plan, sim, admin } = await setup();
    const { logger, lines } = recordingLogger();

    const result = await installFlux(admin, plan, { ...FAST, logger });

    expect(result.ready).toBe(true);
    expect(result.revision).toBe(`main@sha1:${sha}`);
    expect(result.componentsApplied).toBe(true);
    expect(result.components).toEqual(
      [
        'source-controller',
        'kustomize-controller',
        'helm-controller',
        'notification-controller',
      ].map(name => ({
        name,
        ready: true,
        image: expect.stringMatching(
          new RegExp(`^ghcr\\.io/fluxcd/${name}:v\\d+\\.\\d+\\.\\d+$`),
        ),
      })),
    );
    expect(
      lines.some(l =>
        l.includes(
          `Waiting for GitRepository and Kustomization ${ns}/${ns} to be reconciled at main@sha1:${sha}`,
        ),
      ),
    ).toBe(true);
    expect(
      lines.some(l => l.includes('✔ source-controller: deployment ready')),
    ).toBe(true);
    expect(lines.join('\n')).not.toContain(TOKEN);

    // Re-run on the healthy cluster, with no controller running any more: Flux already syncs
    // itself, so the components are skipped, the Secret and sync objects are re-applied without a
    // write, and the wait returns on the first read.
    await sim.stop();
    const everything = [
      ...plan.componentObjects,
      ...plan.syncObjects,
      plan.secret!,
    ];
    const versions = () =>
      Promise.all(
        everything.map(
          async o =>
            `${o.kind}/${o.metadata.name}@${
              (await admin.get(refOf(o)))?.metadata.resourceVersion
            }`,
        ),
      );
    const before = await versions();
    await new Promise(r => setTimeout(r, 1_100)); // managedFields times have one-second resolution
    const rerun = recordingLogger();
    const again = await installFlux(admin, plan, {
      ...FAST,
      timeoutMs: 20_000,
      logger: rerun.logger,
    });
    expect(again).toEqual(
      expect.objectContaining({
        ready: true,
        revision: `main@sha1:${sha}`,
        componentsApplied: false,
      }),
    );
    expect(again.applied.map(a => a.result)).toEqual([
      'unchanged',
      'unchanged',
      'unchanged',
    ]);
    expect(await versions()).toEqual(before);
    expect(
      rerun.lines.some(l =>
        l.includes('components are not applied, Flux upgrades them from Git'),
      ),
    ).toBe(true);
    expect(
      rerun.lines.filter(l => l.includes('Waiting for Flux on cluster')),
    ).toEqual([]);
  });

  it('keeps waiting, saying why, until the branch reaches the pushed revision', async () => {
    const { repo, sha, plan, admin } = await setup();
    // The pushed commit exists on another branch only; main still points at the first one.
    const pushed = repo.commit(
      { 'clusters/test/apps.yaml': 'apiVersion: v1\nkind: List\nitems: []\n' },
      { branch: 'next' },
    );
    plan.expectedRevision = `main@sha1:${pushed}`;
    let moved = false;
    const { lines } = recordingLogger();
    const logger = {
      ...recordingLogger().logger,
      info: (m: string) => {
        lines.push(m);
        if (
          !moved &&
          m.includes(
            `at revision main@sha1:${sha}, waiting for main@sha1:${pushed}`,
          )
        ) {
          moved = true;
          repo.setBranch('main', pushed);
        }
      },
    };
    const result = await installFlux(admin, plan, { ...FAST, logger });
    expect(moved).toBe(true);
    expect(result.ready).toBe(true);
    expect(result.revision).toBe(`main@sha1:${pushed}`);
  });

  it('fails fast with the controller’s message when the Kustomization reports Ready=False', async () => {
    const { ns, plan, sim, admin } = await setup();
    sim.failWith(
      'sync',
      'kustomize build failed: accumulating resources from apps.yaml: boom',
    );
    // Fast: 'sync-failed' and not 'timeout', which would come only after 10 minutes (no timed
    // assertion needed; this test's own limit is far shorter).
    const err = await installFlux(admin, plan, {
      ...FAST,
      timeoutMs: 600_000,
    }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('sync-failed');
    expect(err.message).toContain(`Kustomization '${ns}/${ns}'`);
    expect(err.message).toContain(
      'kustomize build failed: accumulating resources from apps.yaml: boom',
    );
  });

  it('fails fast with git’s message when the source cannot be read with the stored token', async () => {
    const wrong = 'canary-wrong-token-0d1c7a';
    const { ns, plan, admin } = await setup({ password: wrong });
    const err = await installFlux(admin, plan, {
      ...FAST,
      timeoutMs: 90_000,
    }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('sync-failed');
    expect(err.message).toContain(`GitRepository '${ns}/${ns}'`);
    expect(err.message).toContain('Ready=False (GitOperationFailed)');
    expect(err.message).toContain('Authentication failed');
    expect(err.message).not.toContain(wrong);
  });

  it('fails fast when a controller cannot roll out', async () => {
    const { plan, sim, admin } = await setup();
    sim.failWith('deployments', 'image pull back-off', {
      deployment: 'helm-controller',
    });
    const err = await installFlux(admin, plan, {
      ...FAST,
      timeoutMs: 90_000,
    }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('component-failed');
    expect(err.message).toContain('helm-controller');
    expect(err.message).toContain('image pull back-off');
  });

  it('says the revision it still waited for when the pushed commit never reaches the branch', async () => {
    const { ns, sha, plan, admin } = await setup({
      expected: () => `main@sha1:${'e'.repeat(40)}`,
    });
    const err = await installFlux(admin, plan, {
      ...FAST,
      timeoutMs: 5_000,
    }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('timeout');
    expect(err.message).toContain(
      `GitRepository ${ns}/${ns}: at revision main@sha1:${sha}, waiting for main@sha1:${'e'.repeat(
        40,
      )}`,
    );
  });

  it('refuses to wait on a suspended GitRepository', async () => {
    const { ns, plan, admin } = await setup();
    await installFlux(admin, plan, FAST);
    await admin.apply(
      {
        apiVersion: 'source.toolkit.fluxcd.io/v1',
        kind: 'GitRepository',
        metadata: { name: ns, namespace: ns },
        spec: { suspend: true },
      },
      { fieldManager: 'operator' },
    );
    const err = await installFlux(admin, plan, FAST).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('suspended');
    expect(err.message).toContain(
      `GitRepository '${ns}/${ns}' on cluster "test-cluster" is suspended`,
    );
  });
});
