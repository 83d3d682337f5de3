import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import type { Entity } from '@backstage/catalog-model';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  createKubeClient,
  KubeClient,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  applyFluxOperatorRelease,
  BitbucketDouble,
  buildFluxBundle,
  buildFluxOperatorRelease,
  FluxSimulator,
  KubeApiserver,
  mintToken,
  startBitbucketDouble,
  startFluxSimulator,
  startKubeApiserver,
  uniqueName,
} from '@flux-bootstrap/test-peers';
import request from 'supertest';
import { fluxBootstrapPlugin } from './plugin';

/*
 * The status route for a cluster whose Flux the Flux Operator manages: a real backend reading a
 * private kube-apiserver (the operator's CRDs are cluster-wide) with the operator's install.yaml
 * fixture applied, a FluxInstance syncing the Bitbucket double's repository, and the simulator's
 * operator loop installing Flux, reconciling the sync and publishing the FluxReport.
 */

jest.setTimeout(240_000);

const NS = 'flux-system';
const BB_TOKEN = 'bb-token-operator-route-7c21e0';
const FO = 'fluxcd.controlplane.io/v1';

let kube: KubeApiserver;
let bb: BitbucketDouble;
let admin: KubeClient;
let sim: FluxSimulator;
let server: any;

const auth = () => mockCredentials.user.header('user:default/alice');
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

async function getStatus(): Promise<ClusterBootstrapStatus> {
  const res = await request(server)
    .get('/api/flux-bootstrap/clusters/prod?refresh=true')
    .set('Authorization', auth());
  expect(res.status).toBe(200);
  expect(res.text).not.toContain(BB_TOKEN);
  return res.body;
}

async function until(
  check: (s: ClusterBootstrapStatus) => boolean,
): Promise<ClusterBootstrapStatus> {
  const deadline = Date.now() + 90_000;
  let last: ClusterBootstrapStatus | undefined;
  while (Date.now() < deadline) {
    last = await getStatus();
    if (check(last)) return last;
    await sleep(250);
  }
  throw new Error(
    `status never matched: ${JSON.stringify(last)}\n${sim
      .events()
      .slice(-20)
      .join('\n')}`,
  );
}

const instance = (annotations: Record<string, string> = {}) => ({
  apiVersion: FO,
  kind: 'FluxInstance',
  metadata: { name: 'flux', namespace: NS, annotations },
  spec: {
    distribution: { version: '2.9.x', registry: 'ghcr.io/fluxcd' },
    components: ['source-controller', 'kustomize-controller'],
    cluster: { type: 'kubernetes', networkPolicy: true },
    sync: {
      kind: 'GitRepository',
      url: bb.cloneUrls('FLUX', 'fleet').http,
      ref: 'refs/heads/main',
      path: './',
      pullSecret: NS,
    },
  },
});

beforeAll(async () => {
  [kube, bb] = await Promise.all([
    startKubeApiserver(),
    startBitbucketDouble(),
  ]);
  bb.addUser({ name: 'flux' });
  bb.addProject({ key: 'FLUX', name: 'Fleet' });
  bb.createRepo('FLUX', 'fleet', {
    defaultBranch: 'main',
    initialCommit: true,
  });
  bb.grantRepo('FLUX', 'fleet', { user: 'flux' }, 'REPO_READ');
  bb.addToken({ token: BB_TOKEN, user: 'flux' });
  admin = await createKubeClient({
    name: 'admin',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });
  await applyFluxOperatorRelease(kube.info(), buildFluxOperatorRelease());
  await admin.apply(
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: NS, namespace: NS },
      stringData: { username: 'flux', password: BB_TOKEN },
    },
    { fieldManager: 'test' },
  );
  await admin.apply(instance(), { fieldManager: 'test' });
  sim = await startFluxSimulator({
    kube: kube.info(),
    namespace: NS,
    intervalMs: 200,
    operator: { bundles: [await buildFluxBundle({ version: 'v2.9.4' })] },
  });
  const readerToken = await mintToken(kube.info(), {
    name: uniqueName('operator-reader'),
    clusterRules: [
      { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list', 'watch'] },
    ],
  });
  ({ server } = await startTestBackend({
    features: [
      fluxBootstrapPlugin,
      mockServices.rootConfig.factory({
        data: {
          kubernetes: {
            serviceLocatorMethod: { type: 'multiTenant' },
            clusterLocatorMethods: [
              {
                type: 'config',
                clusters: [
                  {
                    name: 'prod',
                    title: 'Production',
                    url: kube.url,
                    authProvider: 'serviceAccount',
                    serviceAccountToken: readerToken,
                    caData: Buffer.from(kube.caPem).toString('base64'),
                  },
                ],
              },
            ],
          },
          integrations: {
            bitbucketServer: [
              { host: bb.host, apiBaseUrl: bb.apiBaseUrl, token: BB_TOKEN },
            ],
          },
          fluxBootstrap: {
            status: { cacheTtlSeconds: 300, transitionalCacheTtlSeconds: 1 },
          },
        },
      }),
      mockServices.httpAuth.factory({
        defaultCredentials: mockCredentials.none(),
      }),
      mockServices.permissions.factory({ result: 'ALLOW' as any }),
      catalogServiceMock.factory({ entities: [] as Entity[] }),
    ],
  }));
});

afterAll(async () => {
  await sim?.stop();
  admin?.close();
  await Promise.all([kube?.stop(), bb?.stop()]);
});

describe('status route of an operator-managed cluster', () => {
  it('shows the Flux Operator as manager with the instance, and reads its state rules', async () => {
    const ready = await until(s => s.state === 'ready');
    expect(ready.flux).toMatchObject({
      version: 'v2.9.4',
      namespace: NS,
      reportedBy: 'flux-report',
      manager: 'flux-operator',
      instance: {
        name: 'flux',
        namespace: NS,
        requestedVersion: '2.9.x',
        installedVersion: 'v2.9.4',
        ready: true,
      },
    });
    expect(ready.flux?.instance?.lastAppliedRevision).toMatch(
      /^v2\.9\.4@sha256:[0-9a-f]{64}$/,
    );
    expect(ready.sync).toMatchObject({ ready: true });
    expect(ready.components.map(c => c.name).sort()).toEqual([
      'kustomize-controller',
      'source-controller',
    ]);

    // Ready=False on the instance → failing, with the operator's message.
    sim.failWith('instance', 'health check failed for canary');
    sim.reconcileNow();
    const failing = await until(s => s.state === 'failing');
    expect(failing.reason).toContain(
      'FluxInstance flux-system/flux: reconciliation failed: health check failed for canary',
    );
    expect(failing.flux?.instance?.ready).toBe(false);
    sim.clear();

    // Paused instance → suspended.
    await admin.apply(
      instance({ 'fluxcd.controlplane.io/reconcile': 'disabled' }),
      { fieldManager: 'test' },
    );
    const suspended = await until(s => s.state === 'suspended');
    expect(suspended.reason).toMatch(
      /FluxInstance flux-system\/flux is suspended \(fluxcd\.controlplane\.io\/reconcile: disabled\)/,
    );
  });
});
