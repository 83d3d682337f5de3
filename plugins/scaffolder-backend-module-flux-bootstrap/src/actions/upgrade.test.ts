import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  FLUX_UPGRADE_VERSIONS,
  KubeHttp,
  kubePath,
  serveFluxUpgradeBundles,
  startBitbucketDouble,
  startFaultProxy,
  startFluxSimulator,
  startKubeApiserver,
  TEST_GROUND_KUBERNETES_VERSIONS,
  type BitbucketDouble,
  type FaultProxy,
  type FluxSimulator,
  type KubeApiserver,
} from '@flux-bootstrap/test-peers';
import { readClusterStatus } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  actionConfig,
  configCluster,
  actionRunner,
} from './__testUtils__/actionHarness';
import {
  adminKubeClient,
  seedProject,
  bareGit,
  clusterWrites,
} from './__testUtils__/peers';
import { createFluxGenerateKeyAction } from './generateKey';
import { createFluxInstallAction } from './install';
import { createFluxPushManifestsAction } from './pushManifests';

/*
 * Issue 19 on real peers: a private kube-apiserver (the simulator applies the Flux CRDs from Git,
 * so they are this test's own) behind a recording proxy, the Flux controller simulator in
 * self-management mode (`apply: true`: what kustomize-controller does), the Bitbucket double with
 * git over HTTP and sshd, and the two-version release fixture v2.9.4 → v2.10.0.
 *
 * - the prerequisites check: v1.20 is refused for v2.9.4 by the default table, before any write;
 * - bootstrap v2.9.4, then a Flux Deployment deleted by hand comes back from Git;
 * - the upgrade: re-running with v2.10.0 makes one commit touching only gotk-components.yaml,
 *   flux:install applies no component, the simulator rolls the controllers to v2.10.0 and the
 *   status says v2.10.0;
 * - the downgrade back to v2.9.4 is refused unless allowDowngrade.
 */

jest.setTimeout(600_000);

const TOKEN = 'canary-upgrade-token-5d1c84e0b7';
const PROJECT = 'FLEET';
const { from: FROM, to: TO } = FLUX_UPGRADE_VERSIONS;
const NS = 'flux-system';
const COMPONENTS = [
  'source-controller',
  'kustomize-controller',
  'helm-controller',
  'notification-controller',
];

let kube: KubeApiserver;
let proxy: FaultProxy;
let http: KubeHttp;
let bb: BitbucketDouble;
let bundles: Awaited<ReturnType<typeof serveFluxUpgradeBundles>>;
let sim: FluxSimulator;
let slug: string;
let cacheDir: string;
const produced: string[] = [];

/**
 * The test apiserver is v1.20.2, older than any Flux 2.5+ supports: the test ground overrides the
 * Kubernetes range for its fixture versions (what `fluxBootstrap.kubernetesVersions` is for),
 * except where the test shows the default table refusing it.
 */
function config(overrideKubernetesRange = true) {
  return actionConfig({
    extra: { backend: { baseUrl: 'http://127.0.0.1:7007' } },
    bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl },
    fluxBootstrap: {
      bitbucketServer: [{ host: bb.host, sshHost: bb.ssh!.host }],
      manifests: {
        baseUrl: bundles.server.baseUrl,
        cacheDir,
        defaultVersion: FROM,
      },
      ...(overrideKubernetesRange
        ? {
            kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
          }
        : {}),
    },
    clusters: [configCluster('prod', kube, proxy)],
  });
}

const { run, succeed } = actionRunner(() => ({
  factoryOptions: { config: config() },
  secrets: { token: TOKEN },
  produced,
}));
/** With the default Kubernetes table instead of the test ground's override. */
const defaultTable = () => ({ factoryOptions: { config: config(false) } });

const repoUrl = () => `${bb.host}?project=${PROJECT}&repo=${slug}`;
const push = (fluxVersion: string, extra: Record<string, unknown> = {}) => ({
  repoUrl: repoUrl(),
  token: TOKEN,
  branch: 'main',
  cluster: 'prod',
  fluxVersion,
  ...extra,
});
const install = (
  fluxVersion: string,
  pushed: Record<string, any>,
  extra: Record<string, unknown> = {},
) => ({
  cluster: 'prod',
  syncUrl: pushed.syncUrl,
  branch: 'main',
  path: 'clusters/prod',
  revision: pushed.revision,
  fluxVersion,
  timeout: '4m',
  ...extra,
});

const git = (args: string[]) => bareGit(bb, PROJECT, slug)(args);
/** Requests that change something on the cluster, as the proxy saw them. */
const writes = () => clusterWrites(proxy);
async function images() {
  const res = await http.expect(
    'GET',
    kubePath({ apiVersion: 'apps/v1', resource: 'deployments', namespace: NS }),
  );
  return Object.fromEntries(
    (res.body.items as any[]).map(d => [
      d.metadata.name,
      d.spec.template.spec.containers[0].image,
    ]),
  );
}
const tagsOf = (version: string) =>
  Object.fromEntries(
    COMPONENTS.map(c => [
      c,
      `ghcr.io/fluxcd/${c}:${
        version === 'v2.9.4'
          ? {
              'helm-controller': 'v1.6.3',
              'notification-controller': 'v1.9.3',
            }[c] ?? 'v1.9.4'
          : version
      }`,
    ]),
  );
async function fluxStatus() {
  const client = await adminKubeClient(kube, 'prod');
  try {
    return await readClusterStatus(client, { cluster: 'prod' });
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'upgrade-cache-'));
  [kube, bb, bundles] = await Promise.all([
    startKubeApiserver(),
    startBitbucketDouble({ ssh: true }),
    serveFluxUpgradeBundles(),
  ]);
  proxy = await startFaultProxy({
    upstream: { url: kube.url, caPem: kube.caPem },
  });
  http = new KubeHttp(kube);
  seedProject(bb, { key: PROJECT, name: 'Fleet' }, [
    {
      name: 'alice',
      email: 'alice@example.com',
      permission: 'PROJECT_ADMIN',
      token: TOKEN,
    },
  ]);
  slug = bb.createRepo(PROJECT, 'fleet-infra', {
    defaultBranch: 'main',
    initialCommit: true,
  }).slug;
  sim = await startFluxSimulator({
    kube,
    namespace: NS,
    apply: true,
    intervalMs: 300,
  });
});

afterAll(async () => {
  await sim?.stop();
  http?.close();
  await proxy?.stop();
  await Promise.all([kube?.stop(), bb?.stop(), bundles?.stop()]);
  if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
});

describe('upgrading Flux by re-running the bootstrap (issue 19)', () => {
  it('refuses Kubernetes v1.20 for Flux v2.9.4 with the default table, before any write; the dry run says the same', async () => {
    proxy.clearRequests();
    const input = install(FROM, {
      syncUrl: `ssh://git@${bb.ssh!.host}/fleet/${slug}.git`,
      revision: undefined,
    });
    for (const dryRun of [true, false]) {
      const r = await run(createFluxInstallAction, input, {
        dryRun,
        ...defaultTable(),
      });
      expect(r.error?.name).toBe('InputError');
      expect(r.error?.message).toMatch(
        /Kubernetes v1\.20\.\d+ with Flux v2\.9\.4: not supported, Flux needs >=1\.33\.0 \(Flux v2\.9 is tested with 1\.34, 1\.35, 1\.36\), on cluster "prod"; nothing was changed/,
      );
    }
    expect(proxy.requests().map(r => `${r.method} ${r.path}`)).toEqual([
      'GET /version',
      'GET /version',
    ]);
    expect(writes()).toEqual([]);
  });

  it(`bootstraps ${FROM}; a Flux Deployment deleted by hand comes back from Git`, async () => {
    const pushed = await succeed(createFluxPushManifestsAction, push(FROM));
    await succeed(createFluxGenerateKeyAction, {
      repoUrl: repoUrl(),
      token: TOKEN,
      branch: 'main',
      cluster: 'prod',
      path: 'clusters/prod',
    });
    const installed = await succeed(
      createFluxInstallAction,
      install(FROM, pushed.outputs),
    );
    expect(installed.outputs).toMatchObject({
      fluxVersion: FROM,
      ready: true,
      revision: pushed.outputs.revision,
    });
    expect(installed.logs.join('\n')).toContain(
      `Kubernetes v1.20.2 with Flux ${FROM}: supported (>=1.20.0)`,
    );
    expect(await images()).toEqual(tagsOf(FROM));

    // Self-management: kustomize-controller (the simulator) applied gotk-components.yaml, so a
    // Deployment deleted by hand is recreated from Git on the next reconciliation.
    const ref = kubePath({
      apiVersion: 'apps/v1',
      resource: 'deployments',
      namespace: NS,
      name: 'helm-controller',
    });
    const before = (await http.expect('GET', ref)).body;
    expect(before.metadata.labels['kustomize.toolkit.fluxcd.io/name']).toBe(NS);
    await http.expect('DELETE', ref);
    expect((await http.request('GET', ref)).status).toBe(404);
    await sim.reconcileNow();
    const after = (await http.expect('GET', ref)).body;
    expect(after.metadata.uid).not.toBe(before.metadata.uid);
    expect(after.spec.template.spec.containers[0].image).toBe(
      tagsOf(FROM)['helm-controller'],
    );
  });

  it(`upgrades to ${TO}: one commit touching only gotk-components.yaml, no component applied by flux:install, the controllers roll to ${TO}`, async () => {
    const head = await git(['rev-parse', 'main']);
    const pushed = await succeed(createFluxPushManifestsAction, push(TO));
    expect(await git(['rev-list', '--count', `${head}..main`])).toBe('1');
    expect(await git(['diff', '--name-only', head, 'main'])).toBe(
      'clusters/prod/flux-system/gotk-components.yaml',
    );
    expect(await git(['log', '-1', '--format=%s', 'main'])).toBe(
      `Add Flux ${TO} component manifests`,
    );

    proxy.clearRequests();
    const installed = await succeed(
      createFluxInstallAction,
      install(TO, pushed.outputs),
    );
    expect(installed.outputs).toMatchObject({
      fluxVersion: TO,
      ready: true,
      revision: pushed.outputs.revision,
    });
    // Flux manages itself: only the sync objects are applied (server-side, unchanged here).
    expect(writes().sort()).toEqual([
      `PATCH /apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${NS}/kustomizations/${NS}`,
      `PATCH /apis/source.toolkit.fluxcd.io/v1/namespaces/${NS}/gitrepositories/${NS}`,
    ]);
    expect(installed.logs.join('\n')).toContain(
      'components are not applied, Flux upgrades them from Git',
    );
    expect(await images()).toEqual(tagsOf(TO));
    const status = await fluxStatus();
    expect(status.flux?.version).toBe(TO);
    expect(status.kubernetesVersion).toMatch(/^v1\.20\./);
    expect(status.components.map(c => [c.name, c.ready])).toEqual(
      expect.arrayContaining(COMPONENTS.map(c => [c, true])),
    );
  });

  it(`refuses the downgrade to ${FROM} unless allowDowngrade, in both actions, before any write`, async () => {
    const head = await git(['rev-parse', 'main']);
    const refused = await run(createFluxPushManifestsAction, push(FROM));
    expect(refused.error?.name).toBe('ConflictError');
    expect(refused.error?.message).toBe(
      `Flux ${TO} is in clusters/prod/flux-system/gotk-components.yaml; ${FROM} would be a downgrade, which Flux does not support in general (CRD storage versions, removed APIs); nothing was changed. Set allowDowngrade: true to do it anyway.`,
    );
    expect(await git(['rev-parse', 'main'])).toBe(head);

    proxy.clearRequests();
    const pending = {
      syncUrl: `ssh://git@${bb.ssh!.host}/fleet/${slug}.git`,
      revision: undefined,
    };
    const refusedInstall = await run(
      createFluxInstallAction,
      install(FROM, pending),
    );
    expect(refusedInstall.error?.name).toBe('ConflictError');
    expect(refusedInstall.error?.message).toContain(
      `Flux ${TO} is installed on cluster "prod"; ${FROM} would be a downgrade`,
    );
    expect(writes()).toEqual([]);

    const pushed = await succeed(
      createFluxPushManifestsAction,
      push(FROM, { allowDowngrade: true }),
    );
    expect(pushed.logs.join('\n')).toContain(
      `${FROM} would be a downgrade (allowDowngrade)`,
    );
    await succeed(
      createFluxInstallAction,
      install(FROM, pushed.outputs, { allowDowngrade: true }),
    );
    expect(await images()).toEqual(tagsOf(FROM));
  });

  it('never printed the token (outputs, logs, errors of every step)', () => {
    expect(produced.length).toBeGreaterThan(50);
    expect(produced.join('\n')).not.toContain(TOKEN);
  });
});
