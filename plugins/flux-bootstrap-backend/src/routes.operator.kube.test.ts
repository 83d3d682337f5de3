import { mockCredentials } from '@backstage/backend-test-utils';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  applyFluxOperatorRelease,
  BitbucketDouble,
  BootstrappedCluster,
  buildFluxBundle,
  buildFluxOperatorRelease,
  FluxSimulator,
  KubeApiserver,
  READ_ALL_RULES,
  startBootstrappedCluster,
  startFluxSimulator,
} from '@flux-bootstrap/test-peers';
import {
  adminKubeClient,
  pollClusterStatus,
  prodCluster,
  startStatusBackend,
  statusBackendConfig,
} from './__testUtils__/statusBackend';

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

let cluster: BootstrappedCluster;
let kube: KubeApiserver;
let bb: BitbucketDouble;
let admin: KubeClient;
let sim: FluxSimulator;
let server: any;

const auth = () => mockCredentials.user.header('user:default/alice');

const until = (check: (s: ClusterBootstrapStatus) => boolean) =>
  pollClusterStatus(server, {
    authorization: auth(),
    until: check,
    inspect: res => expect(res.text).not.toContain(BB_TOKEN),
    describe: () => sim.events().slice(-20).join('\n'),
  });

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
  // Flux comes from the operator here: the apiserver and the repository only.
  cluster = await startBootstrappedCluster({
    token: BB_TOKEN,
    flux: 'none',
    simulator: false,
    tokenRules: READ_ALL_RULES,
    tokenName: 'operator-reader',
  });
  ({ kube, bb } = cluster);
  const readerToken = cluster.serviceAccountToken!;
  admin = await adminKubeClient(kube);
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
  ({ server } = await startStatusBackend({
    config: statusBackendConfig({
      clusters: [prodCluster(kube, readerToken)],
      bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl, token: BB_TOKEN },
      fluxBootstrap: {
        status: { cacheTtlSeconds: 300, transitionalCacheTtlSeconds: 1 },
      },
    }),
  }));
});

afterAll(async () => {
  await sim?.stop();
  admin?.close();
  await cluster?.stop();
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
