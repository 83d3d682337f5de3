import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '@backstage/errors';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import {
  BitbucketDouble,
  buildFluxBundle,
  KubeHttp,
  kubePath,
  serveFluxBundles,
  startBitbucketDouble,
  startFluxSimulator,
  startKubeApiserver,
  type FluxBundleServer,
  type FluxSimulator,
  type KubeApiserver,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from '@flux-bootstrap/test-peers';
import { generateSshKeyPair } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  actionConfig,
  configCluster,
  type ActionFactory,
  actionRunner,
} from './__testUtils__/actionHarness';
import {
  seedProject,
  bareGit,
  startBlackhole,
  type Blackhole,
} from './__testUtils__/peers';
import { createFluxGenerateKeyAction } from './generateKey';
import { createFluxInstallAction } from './install';
import { createFluxPushManifestsAction } from './pushManifests';
import { createFluxUninstallAction } from './uninstall';
import { createBitbucketDeleteAccessKeysAction } from './deleteAccessKeys';
import { createFluxRemoveClusterPathAction } from './removeClusterPath';
import { createFleetUnregisterClusterAction } from './unregisterCluster';

/*
 * The decommission actions after a real bootstrap by the bootstrap actions: a private
 * kube-apiserver (the uninstall deletes the Flux CRDs, which the shared one keeps for other
 * tests) with the Flux controller simulator, the Bitbucket double with git over HTTP and a real
 * sshd, and the fixture release bundle. A second cluster, "staging", shares the repository: its
 * folder and its access key must survive.
 */

jest.setTimeout(300_000);

const TOKEN = 'canary-decommission-token-3f9a7c21';
const PROJECT = 'FLEET';
const VERSION = 'v2.9.4';
const PART_OF = 'app.kubernetes.io/part-of=flux';

let kube: KubeApiserver;
let http: KubeHttp;
let bb: BitbucketDouble;
let bundles: FluxBundleServer;
let sim: FluxSimulator;
let slug: string;
let cacheDir: string;
let blackhole: Blackhole;
const produced: string[] = [];

function config() {
  return actionConfig({
    extra: { backend: { baseUrl: 'http://127.0.0.1:7007' } },
    bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl },
    fluxBootstrap: {
      kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
      bitbucketServer: [{ host: bb.host, sshHost: bb.ssh!.host }],
      manifests: {
        baseUrl: bundles.baseUrl,
        cacheDir,
        defaultVersion: VERSION,
      },
    },
    clusters: [
      configCluster('prod', kube),
      { name: 'ghost', url: blackhole.url, serviceAccountToken: 'x' },
    ],
  });
}

const catalog = catalogServiceMock.mock();

type Factory = ActionFactory;
const { run, succeed } = actionRunner(() => ({
  factoryOptions: { config: config(), catalog },
  secrets: { token: TOKEN },
  produced,
}));

const repoUrl = () => `${bb.host}?project=${PROJECT}&repo=${slug}`;
const label = (cluster: string) =>
  `flux-system-main-flux-system-./clusters/${cluster}`;
function keysOf(l: string) {
  return bb
    .state()
    .accessKeys.filter(k => k.slug === slug && k.label === l)
    .map(k => k.id);
}
const gitOut = (args: string[]) => bareGit(bb, PROJECT, slug)(args);
async function filesOnMain() {
  return (await gitOut(['ls-tree', '-r', '--name-only', 'main']))
    .split('\n')
    .filter(Boolean);
}
async function names(p: string, labelSelector?: string) {
  const res = await http.expect('GET', p, { query: { labelSelector } });
  return (res.body.items as any[]).map(i => i.metadata.name).sort();
}
const crds = () =>
  names(
    kubePath({
      apiVersion: 'apiextensions.k8s.io/v1',
      resource: 'customresourcedefinitions',
    }),
    PART_OF,
  );
async function fluxSystemObjects() {
  const found: string[] = [];
  for (const [apiVersion, resource] of [
    ['apps/v1', 'deployments'],
    ['v1', 'services'],
    ['v1', 'serviceaccounts'],
    ['networking.k8s.io/v1', 'networkpolicies'],
    ['v1', 'secrets'],
  ]) {
    for (const n of await names(
      kubePath({ apiVersion, resource, namespace: 'flux-system' }),
    ))
      if (!n.startsWith('default-token')) found.push(`${resource}/${n}`);
  }
  return found;
}

beforeAll(async () => {
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'decom-cache-'));
  const bundle = await buildFluxBundle({ version: VERSION });
  [kube, bb, bundles] = await Promise.all([
    startKubeApiserver(),
    startBitbucketDouble({ ssh: true }),
    serveFluxBundles([{ version: VERSION, tarball: bundle.tarball }]),
  ]);
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
  blackhole = await startBlackhole();
  sim = await startFluxSimulator({
    kube,
    namespace: 'flux-system',
    intervalMs: 300,
  });

  // The bootstrap, as the Bitbucket Server template runs it for "prod" …
  const common = { repoUrl: repoUrl(), token: TOKEN, branch: 'main' };
  const pushed = await succeed(createFluxPushManifestsAction, {
    ...common,
    cluster: 'prod',
  });
  await succeed(createFluxGenerateKeyAction, {
    ...common,
    cluster: 'prod',
    path: 'clusters/prod',
  });
  await succeed(createFluxInstallAction, {
    cluster: 'prod',
    syncUrl: pushed.outputs.syncUrl,
    branch: 'main',
    path: 'clusters/prod',
    revision: pushed.outputs.revision,
    timeout: '3m',
  });
  // … and what another cluster of the same fleet has there: its folder and its key.
  await succeed(createFluxPushManifestsAction, {
    ...common,
    cluster: 'staging',
  });
  const stagingKey = await generateSshKeyPair({ algorithm: 'ed25519' });
  bb.addAccessKey(
    PROJECT,
    slug,
    { text: stagingKey.publicKey.trim(), label: label('staging') },
    'REPO_READ',
  );
});

afterAll(async () => {
  await sim?.stop();
  http?.close();
  await blackhole?.stop();
  await Promise.all([kube?.stop(), bb?.stop(), bundles?.stop()]);
  if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
});

const ACTIONS: [string, Factory, Record<string, unknown>][] = [
  ['flux:uninstall', createFluxUninstallAction, { cluster: 'ghost' }],
  [
    'bitbucket:delete-access-keys',
    createBitbucketDeleteAccessKeysAction,
    { cluster: 'prod', repoUrl: 'x' },
  ],
  [
    'flux:remove-cluster-path',
    createFluxRemoveClusterPathAction,
    { cluster: 'prod', repoUrl: 'x' },
  ],
  [
    'fleet:unregister-cluster',
    createFleetUnregisterClusterAction,
    { cluster: 'prod' },
  ],
];

describe('the decommission actions', () => {
  it('start from a bootstrapped cluster', async () => {
    expect((await crds()).length).toBeGreaterThan(5);
    expect(await fluxSystemObjects()).toContain(
      'deployments/source-controller',
    );
    expect(keysOf(label('prod'))).toHaveLength(1);
    expect(await filesOnMain()).toContain(
      'clusters/prod/flux-system/gotk-sync.yaml',
    );
  });

  it.each(ACTIONS)(
    '%s refuses without confirm equal to the cluster name: an InputError naming confirm, no request',
    async (_id, factory, input) => {
      const before = {
        bitbucket: bb.requests().length,
        cluster: blackhole.connections(),
      };
      for (const confirm of [undefined, 'prod-eu', ' ']) {
        const r = await run(
          factory,
          { ...input, confirm },
          { dryRun: confirm === ' ' },
        );
        expect(r.error).toBeInstanceOf(InputError);
        expect(r.error?.message).toMatch(/^Invalid input "confirm"/);
      }
      expect({
        bitbucket: bb.requests().length,
        cluster: blackhole.connections(),
      }).toEqual(before);
      expect(catalog.getEntityByRef).not.toHaveBeenCalled();
    },
  );

  it('dry runs list exactly what would go and change nothing', async () => {
    const crdsBefore = await crds();
    const objectsBefore = await fluxSystemObjects();
    const head = await gitOut(['rev-parse', 'main']);
    const uninstall = await succeed(
      createFluxUninstallAction,
      { cluster: 'prod', confirm: 'prod' },
      { dryRun: true },
    );
    expect(uninstall.outputs.changed).toBe(false);
    expect(uninstall.outputs.removed).toEqual(
      expect.arrayContaining([
        'Deployment flux-system/source-controller',
        'Secret flux-system/flux-system',
        'CustomResourceDefinition gitrepositories.source.toolkit.fluxcd.io',
        'Namespace flux-system',
      ]),
    );
    expect(uninstall.logs.join('\n')).toContain('Dry run: would delete');

    const keys = await succeed(
      createBitbucketDeleteAccessKeysAction,
      { cluster: 'prod', confirm: 'prod', repoUrl: repoUrl(), token: TOKEN },
      { dryRun: true },
    );
    expect(keys.outputs).toEqual({
      label: label('prod'),
      deletedKeyIds: keysOf(label('prod')),
      changed: false,
    });
    const files = await succeed(
      createFluxRemoveClusterPathAction,
      { cluster: 'prod', confirm: 'prod', repoUrl: repoUrl(), token: TOKEN },
      { dryRun: true },
    );
    expect(files.outputs.files).toEqual([
      'clusters/prod/flux-system/gotk-components.yaml',
      'clusters/prod/flux-system/gotk-sync.yaml',
      'clusters/prod/flux-system/kustomization.yaml',
    ]);

    expect(await crds()).toEqual(crdsBefore);
    expect(await fluxSystemObjects()).toEqual(objectsBefore);
    expect(keysOf(label('prod'))).toHaveLength(1);
    expect(await gitOut(['rev-parse', 'main'])).toBe(head);
  });

  it('remove Flux, the key and the folder of "prod" and nothing of "staging"; a second run changes nothing', async () => {
    const uninstall = await succeed(createFluxUninstallAction, {
      cluster: 'prod',
      confirm: 'prod',
    });
    expect(uninstall.outputs).toMatchObject({
      changed: true,
      namespaceDeleted: true,
    });
    expect(await crds()).toEqual([]);
    expect(await fluxSystemObjects()).toEqual([]);
    const ns = await http.request(
      'GET',
      kubePath({
        apiVersion: 'v1',
        resource: 'namespaces',
        name: 'flux-system',
      }),
    );
    // no namespace controller on this apiserver: Terminating (or gone on a real cluster)
    expect(ns.status === 404 || ns.body.status.phase === 'Terminating').toBe(
      true,
    );

    const stagingKeys = keysOf(label('staging'));
    const keys = await succeed(createBitbucketDeleteAccessKeysAction, {
      cluster: 'prod',
      confirm: 'prod',
      repoUrl: repoUrl(),
      token: TOKEN,
    });
    expect(keys.outputs.changed).toBe(true);
    expect(keysOf(label('prod'))).toEqual([]);
    expect(keysOf(label('staging'))).toEqual(stagingKeys);
    expect(stagingKeys).toHaveLength(1);

    const files = await succeed(createFluxRemoveClusterPathAction, {
      cluster: 'prod',
      confirm: 'prod',
      repoUrl: repoUrl(),
      token: TOKEN,
    });
    expect(files.outputs.changed).toBe(true);
    expect(await gitOut(['log', '-1', '--format=%s', 'main'])).toBe(
      'Remove Flux from prod',
    );
    const left = await filesOnMain();
    expect(left.filter(f => f.startsWith('clusters/prod/'))).toEqual([]);
    expect(left).toContain('clusters/staging/flux-system/gotk-sync.yaml');

    // again: nothing left to do, nothing written
    const head = await gitOut(['rev-parse', 'main']);
    bb.clearRequests();
    const again = [
      await succeed(createFluxUninstallAction, {
        cluster: 'prod',
        confirm: 'prod',
      }),
      await succeed(createBitbucketDeleteAccessKeysAction, {
        cluster: 'prod',
        confirm: 'prod',
        repoUrl: repoUrl(),
        token: TOKEN,
      }),
      await succeed(createFluxRemoveClusterPathAction, {
        cluster: 'prod',
        confirm: 'prod',
        repoUrl: repoUrl(),
        token: TOKEN,
      }),
    ];
    expect(again.map(r => r.outputs.changed)).toEqual([false, false, false]);
    expect(
      bb
        .requests()
        .filter(r => r.method !== 'GET' && !r.path.endsWith('git-upload-pack'))
        .map(r => `${r.method} ${r.path}`),
    ).toEqual([]);
    expect(await gitOut(['rev-parse', 'main'])).toBe(head);
  });

  it('never logs, outputs or throws the token', () => {
    const all = produced.join('\n');
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain(Buffer.from(TOKEN).toString('base64'));
  });
});
