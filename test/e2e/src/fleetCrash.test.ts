/* eslint-disable no-console */
/**
 * Crash mid-fleet (issue 17): the real backend on PostgreSQL with scaffolder task recovery runs
 * the fleet template over three clusters; two finish while the third waits for Flux (its
 * controller simulator is stopped), the backend is killed with SIGKILL, started again, and the
 * recovered task completes without redoing the finished clusters or the commits.
 */
import {
  KubeHttp,
  kubePath,
  startFluxSimulator,
  type FluxSimulator,
} from '@flux-bootstrap/test-peers';
import { startTestPostgres, TestPostgres } from './reliability/postgres';
import { SANDBOX, Sandbox, startSandbox } from './sandbox';
import { BackstageApi } from './scaffolder';

jest.setTimeout(10 * 60_000);

const FLEET_TEMPLATE = 'template:default/flux-bootstrap-fleet';
const SLUG = 'fleet-crash';
const CLUSTERS = [SANDBOX.cluster, 'east', 'west'];

let pg: TestPostgres;
let sandbox: Sandbox;
let westSim: FluxSimulator | undefined;

beforeAll(async () => {
  pg = await startTestPostgres({ log: line => console.log(line) });
  sandbox = await startSandbox({
    postgres: {
      host: pg.host,
      port: pg.port,
      user: pg.user,
      password: pg.password,
    },
    extraConfig: {
      scaffolder: {
        taskRecovery: { enabled: true, staleTimeout: { seconds: 8 } },
      },
    },
    extraClusters: CLUSTERS.slice(1),
    buildFrontend: false,
    log: line => console.log(line),
  });
}, 8 * 60_000);

afterAll(async () => {
  await westSim?.stop();
  await sandbox?.stop();
  await pg?.stop();
}, 2 * 60_000);

const kustomization = async (cluster: string) => {
  const http = new KubeHttp(sandbox.clusters[cluster].kube);
  try {
    const res = await http.request(
      'GET',
      kubePath({
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        resource: 'kustomizations',
        namespace: 'flux-system',
        name: 'flux-system',
      }),
    );
    return res.status === 200 ? res.body : undefined;
  } finally {
    http.close();
  }
};

it('kill -9 of the backend mid-fleet: the recovered task completes without redoing finished clusters', async () => {
  // No Flux controllers on "west": its install waits for Flux until the crash.
  await sandbox.clusters.west.simulator.stop();
  let api = await BackstageApi.asGuest(sandbox.baseUrl);
  const id = await api.createTask(
    FLEET_TEMPLATE,
    {
      clusters: CLUSTERS,
      owner: 'group:default/platform-team',
      repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=${SLUG}`,
      private: true,
      branch: 'main',
      token: '*'.repeat(sandbox.token.length),
    },
    { token: sandbox.token },
  );
  // Until the two others have synced and "west" waits for Flux (its Kustomization exists).
  const deadline = Date.now() + 4 * 60_000;
  for (;;) {
    const [a, b, w] = await Promise.all(CLUSTERS.map(kustomization));
    if (a?.status?.lastAppliedRevision && b?.status?.lastAppliedRevision && w)
      break;
    if (Date.now() > deadline) throw new Error('the fleet never got there');
    await new Promise(r => setTimeout(r, 500));
  }
  // Their wait checkpoints are written as the waits return.
  await new Promise(r => setTimeout(r, 3000));
  await sandbox.restartBackend({ signal: 'SIGKILL' });
  api = await BackstageApi.asGuest(sandbox.baseUrl);
  westSim = await startFluxSimulator({
    kube: sandbox.clusters.west.kube,
    namespace: 'flux-system',
    intervalMs: 500,
  });

  const result = await api.waitForTask(id);

  expect(result.status).toBe('completed');
  expect(result.events.some(e => e.type === 'recovered')).toBe(true);
  const summary = result.log.filter(l => /\| (sandbox|east|west) \|/.test(l));
  const states = summary.map(l =>
    l
      .replace(/^[^|]*/, '')
      .split('|')[2]
      .trim(),
  );
  // Only the resumed run reached its summary: the finished clusters were left alone (reads
  // only). "west" had everything applied but its wait: it is "ready" when the resumed run waited
  // for it, "unchanged" when its restarted Flux had synced before the resumed run looked.
  expect(states.slice(0, 2)).toEqual(['unchanged', 'unchanged']);
  expect(['ready', 'unchanged']).toContain(states[2]);
  const lines = result.log.join('\n');
  expect(
    lines.match(/"Add Flux sync manifests" of 3 clusters: pushed/g),
  ).toHaveLength(1);
  const keys = sandbox.bitbucket
    .state()
    .accessKeys.filter(k => k.slug === SLUG);
  expect(keys).toHaveLength(3);
});
