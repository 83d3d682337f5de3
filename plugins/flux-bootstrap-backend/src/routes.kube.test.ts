import { mockCredentials } from '@backstage/backend-test-utils';
import type { Entity } from '@backstage/catalog-model';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  BitbucketDouble,
  BootstrappedCluster,
  FluxSimulator,
  KubeApiserver,
  READ_ALL_RULES,
  startBootstrappedCluster,
  startFluxSimulator,
} from '@flux-bootstrap/test-peers';
import request from 'supertest';
import {
  adminKubeClient,
  pollClusterStatus,
  prodCluster,
  startStatusBackend,
  statusBackendConfig,
} from './__testUtils__/statusBackend';

/*
 * The status routes end to end: a real backend (startTestBackend) reading a real kube-apiserver
 * whose Flux is "reconciled" by the controller simulator from the Bitbucket double's git, with a
 * canary planted in the flux-system Secret that must never leave.
 */

jest.setTimeout(240_000);

const NS = 'flux-system';
const CANARY = 'canary-in-secret-5d0c2a7e91';
const BB_TOKEN = 'bb-token-route-test-3e81f0aa';
const FM = 'routes-test';

let cluster: BootstrappedCluster;
let kube: KubeApiserver;
let bb: BitbucketDouble;
let admin: KubeClient;
let sim: FluxSimulator;
let readerToken: string;
let server: any;

const fleet: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'fleet',
    namespace: 'default',
    annotations: { 'flux-bootstrap.io/clusters': 'prod, typo-cluster' },
  },
  spec: { type: 'service', owner: 'platform', lifecycle: 'production' },
};
const clusterResource: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Resource',
  metadata: { name: 'prod', namespace: 'default' },
  spec: { type: 'kubernetes-cluster', owner: 'platform' },
};

const auth = () => mockCredentials.user.header('user:default/alice');
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

async function getStatus(
  query = '?refresh=true',
): Promise<ClusterBootstrapStatus> {
  const res = await request(server)
    .get(`/api/flux-bootstrap/clusters/prod${query}`)
    .set('Authorization', auth());
  expect(res.status).toBe(200);
  return res.body;
}

const untilReady = () =>
  pollClusterStatus(server, {
    authorization: auth(),
    until: s => s.state === 'ready' && s.inSync === true,
  });

beforeAll(async () => {
  cluster = await startBootstrappedCluster({
    token: BB_TOKEN,
    canary: CANARY,
    fieldManager: FM,
    // The backend reads with a token that could read Secrets; it must not pass their data on.
    tokenRules: READ_ALL_RULES,
    tokenName: 'routes-reader',
  });
  ({ kube, bb } = cluster);
  sim = cluster.sim!;
  readerToken = cluster.serviceAccountToken!;
  admin = await adminKubeClient(kube);

  ({ server } = await startStatusBackend({
    config: statusBackendConfig({
      clusters: [prodCluster(kube, readerToken)],
      bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl, token: BB_TOKEN },
      fluxBootstrap: {
        status: {
          cacheTtlSeconds: 300,
          transitionalCacheTtlSeconds: 1,
          clusterTimeoutSeconds: 20,
        },
      },
    }),
    entities: [fleet, clusterResource],
  }));
});

afterAll(async () => {
  await sim?.stop();
  admin?.close();
  await cluster?.stop();
});

describe('status routes on a real cluster', () => {
  it("serves an entity's clusters: ready, in sync, unknown names reported, no Secret data or credentials", async () => {
    await untilReady();
    const res = await request(server)
      .get('/api/flux-bootstrap/entity/component/default/fleet/clusters')
      .set('Authorization', auth());
    expect(res.status).toBe(200);
    expect(res.body.clusters).toEqual(['prod', 'typo-cluster']);
    expect(res.body.unknownClusters).toEqual(['typo-cluster']);
    expect(res.body.items).toHaveLength(1);
    const status: ClusterBootstrapStatus = res.body.items[0];
    expect(status).toMatchObject({
      cluster: 'prod',
      title: 'Production',
      state: 'ready',
      inSync: true,
      flux: { version: 'v2.9.4', namespace: NS },
      source: {
        url: bb.cloneUrls('FLUX', 'fleet').http,
        branch: 'main',
        ready: true,
      },
      repository: { project: 'FLUX', slug: 'fleet' },
    });
    const text = res.text;
    for (const secret of [
      CANARY,
      Buffer.from(CANARY).toString('base64'),
      BB_TOKEN,
      Buffer.from(BB_TOKEN).toString('base64'),
      readerToken,
      kube.adminToken,
    ]) {
      expect(text).not.toContain(secret);
    }
  });

  it('serves a cluster Resource by its own name, and the cluster list with state', async () => {
    const res = await request(server)
      .get('/api/flux-bootstrap/entity/resource/default/prod/clusters')
      .set('Authorization', auth());
    expect(res.status).toBe(200);
    expect(res.body.items.map((s: ClusterBootstrapStatus) => s.state)).toEqual([
      'ready',
    ]);

    const list = await request(server)
      .get('/api/flux-bootstrap/clusters?state=true')
      .set('Authorization', auth());
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items[0]).toMatchObject({
      name: 'prod',
      title: 'Production',
      status: { state: 'ready' },
    });
    expect(list.text).not.toContain(CANARY);
    expect(list.text).not.toContain(readerToken);

    const alias = await request(server)
      .get('/api/flux-bootstrap/clusters/prod/status')
      .set('Authorization', auth());
    expect(alias.status).toBe(200);
    expect(alias.body.state).toBe('ready');
  });

  it("judges each cluster's Kubernetes for a Flux version (the cluster picker's marks), default the configured one", async () => {
    const list = async (query: string) => {
      const res = await request(server)
        .get(`/api/flux-bootstrap/clusters${query}`)
        .set('Authorization', auth());
      return res;
    };
    // No fluxBootstrap.kubernetesVersions here: the built-in table refuses v1.20 for Flux v2.9.
    const byDefault = await list('?state=true');
    expect(byDefault.status).toBe(200);
    expect(byDefault.body.items[0].status.kubernetesVersion).toMatch(
      /^v1\.20\.\d+$/,
    );
    expect(byDefault.body.items[0].kubernetesSupport).toEqual({
      fluxVersion: 'v2.9.4',
      level: 'unsupported',
      range: '>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)',
      message: expect.stringMatching(
        /^Kubernetes v1\.20\.\d+ with Flux v2\.9\.4: not supported, Flux needs >=1\.33\.0/,
      ),
    });
    const older = await list('?state=true&fluxVersion=v2.3.0');
    expect(older.body.items[0].kubernetesSupport).toMatchObject({
      fluxVersion: 'v2.3.0',
      level: 'untested',
      range: 'unknown',
    });
    // Without state there is nothing to judge; a bad version is refused before any read.
    expect((await list('?fluxVersion=v2.9.4')).body.items[0]).toEqual({
      name: 'prod',
      title: 'Production',
    });
    const bad = await list('?state=true&fluxVersion=latest');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({
      name: 'InputError',
      message:
        'Invalid query "fluxVersion": must be a Flux release such as v2.9.4',
    });
  });

  it('answers from the cache until ?refresh=true', async () => {
    const before = await getStatus('?refresh=true');
    expect(before.state).toBe('ready');
    await cluster.setSyncSuspended(true);
    const cached = await getStatus('');
    expect(cached.state).toBe('ready');
    expect(cached.checkedAt).toBe(before.checkedAt);
    const fresh = await getStatus('?refresh=true');
    expect(fresh.state).toBe('suspended');
    // the refreshed answer is what the cache holds now
    expect((await getStatus('')).state).toBe('suspended');
  });

  it('serves a transitional state from the cache only for its short TTL: installing turns ready without ?refresh', async () => {
    // Flux stops reconciling; resuming the Kustomization changes its spec, whose new generation
    // stays unobserved: Flux is catching up ("installing").
    await sim.stop();
    await cluster.setSyncSuspended(false);
    const installing = await getStatus('?refresh=true');
    expect(installing.state).toBe('installing');
    expect(installing.reason).toMatch(/reconciling the latest change/);

    // Flux catches up.
    sim = await startFluxSimulator({
      kube: kube.info(),
      namespace: NS,
      intervalMs: 200,
    });
    for (;;) {
      const k = await admin.get<any>({
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        kind: 'Kustomization',
        name: NS,
        namespace: NS,
      });
      const ready = k?.status?.conditions?.find((c: any) => c.type === 'Ready');
      if (
        k?.status?.observedGeneration === k?.metadata.generation &&
        ready?.status === 'True'
      )
        break;
      await sleep(100);
    }
    // Past the 1 s transitional TTL (steady states stay 300 s): the cached "installing" is not
    // served any more, and the plain (cached) route reads the cluster again.
    await sleep(1100);
    const next = await getStatus('');
    expect(next.state).toBe('ready');
    expect(next.checkedAt).not.toBe(installing.checkedAt);
    // Now steady, it is served from the cache again.
    expect((await getStatus('')).checkedAt).toBe(next.checkedAt);
  });

  it('pushes nothing anywhere: Bitbucket saw only reads with the integration token', () => {
    const requests = bb.requests().filter(r => r.path.startsWith('/rest/'));
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every(r => r.method === 'GET')).toBe(true);
    expect(
      requests.every(r =>
        r.path.startsWith('/rest/api/1.0/projects/FLUX/repos/fleet/branches'),
      ),
    ).toBe(true);
  });
});
