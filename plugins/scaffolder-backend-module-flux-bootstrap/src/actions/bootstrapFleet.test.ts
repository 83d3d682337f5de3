/**
 * flux:bootstrap-fleet through its handler, on real peers: the Bitbucket double (git
 * http-backend, sshd), the shared kube-apiserver with the Flux simulator for a live cluster, and
 * a cluster whose API server refuses connections. The three-apiserver story (partial failure,
 * restart, re-run with zero writes) is the engine's test, fleet/bootstrapFleet.test.ts.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConfigReader } from '@backstage/config';
import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';
import {
  buildFluxBundle,
  getSharedKubeApiserver,
  KubeHttp,
  serveFluxBundles,
  startBitbucketDouble,
  startFluxSimulator,
  TEST_GROUND_KUBERNETES_VERSIONS,
  uniqueName,
  type BitbucketDouble,
  type FluxBundleServer,
  type FluxSimulator,
} from '@flux-bootstrap/test-peers';
import { createFluxBootstrapFleetAction } from './bootstrapFleet';

jest.setTimeout(240_000);

const VERSION = 'v2.9.4';
const TOKEN = 'canary-fleet-action-token-5d0e2b';
const PROJECT_TOKEN = 'canary-fleet-action-project-token-1c4f';
const kube = getSharedKubeApiserver();

let bb: BitbucketDouble;
let bundles: FluxBundleServer;
let cacheDir: string;
let deadUrl: string;

beforeAll(async () => {
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-action-'));
  const bundle = await buildFluxBundle({ version: VERSION });
  bundles = await serveFluxBundles([
    { version: VERSION, tarball: bundle.tarball },
  ]);
  bb = await startBitbucketDouble({ ssh: true });
  bb.addUser({ name: 'alice' });
  bb.addProject({ key: 'FLUX', name: 'Flux fleet' });
  bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
  bb.addToken({ token: TOKEN, user: 'alice' });
  // A port nothing listens on: the "dead" cluster's API server refuses connections.
  const probe = net.createServer();
  await new Promise<void>(r => probe.listen(0, '127.0.0.1', r));
  deadUrl = `https://127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
  await new Promise(r => probe.close(r));
});

afterAll(async () => {
  await bb?.stop();
  await bundles?.stop();
  fs.rmSync(cacheDir, { recursive: true, force: true });
});

function config() {
  const cluster = (name: string, url: string) => ({
    name,
    url,
    serviceAccountToken: kube.adminToken,
    caData: kube.caPem,
  });
  return new ConfigReader({
    integrations: {
      bitbucketServer: [{ host: bb.host, apiBaseUrl: bb.apiBaseUrl }],
    },
    fluxBootstrap: {
      kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
      bitbucketServer: [{ host: bb.host, sshHost: bb.ssh!.host }],
      manifests: {
        baseUrl: bundles.baseUrl,
        cacheDir,
        defaultVersion: VERSION,
      },
    },
    kubernetes: {
      clusterLocatorMethods: [
        {
          type: 'config',
          clusters: [cluster('live', kube.url), cluster('dead', deadUrl)],
        },
      ],
    },
  });
}

async function run(
  input: Record<string, unknown>,
  signal?: AbortSignal,
  isDryRun = false,
) {
  const logs: string[] = [];
  const logger: any = {};
  for (const level of ['info', 'warn', 'error', 'debug'])
    logger[level] = (m: string) => logs.push(`${level} ${m}`);
  logger.child = () => logger;
  const outputs: Record<string, any> = {};
  const checkpoints: string[] = [];
  const ctx = createMockActionContext({
    input: {
      repoUrl: `${bb.host}?project=FLUX&repo=fleet-action`,
      token: TOKEN,
      ...input,
    } as any,
    logger,
  });
  Object.assign(ctx, {
    isDryRun,
    signal: signal ?? new AbortController().signal,
    output: (name: string, value: unknown) => (outputs[name] = value),
    checkpoint: async ({ key, fn }: { key: string; fn: () => unknown }) => {
      checkpoints.push(key);
      return fn();
    },
  });
  const action = createFluxBootstrapFleetAction({ config: config() });
  const error = await action.handler(ctx as any).then(
    () => undefined,
    (e: Error) => e,
  );
  return { error, outputs, logs, checkpoints };
}

describe('flux:bootstrap-fleet', () => {
  it.each([
    [{ clusters: [] }, 'clusters'],
    [{ clusters: ['live', 'live'] }, 'clusters[1]'],
    [{ clusters: ['nowhere'] }, 'clusters'],
    [{ clusters: ['live'], pathPattern: 'clusters/all' }, 'pathPattern'],
    [{ clusters: ['live'], timeout: 'soon' }, 'timeout'],
    [{ clusters: ['live'], concurrency: 0 }, 'concurrency'],
    [{ clusters: ['live'], tokenAuth: true, algorithm: 'rsa' }, 'algorithm'],
    [{ clusters: ['live'], tokenAuth: true, ecdsaCurve: 'p256' }, 'ecdsaCurve'],
    [{ clusters: ['live'], tokenAuth: true, readWrite: true }, 'readWrite'],
    [
      { clusters: ['live'], tokenAuth: true, sshHost: 'git.example:22' },
      'sshHost',
    ],
    [
      {
        clusters: ['live'],
        tokenAuth: true,
        hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`,
      },
      'hostKeyFingerprint',
    ],
  ])('refuses %j naming %s, before any request', async (input, field) => {
    bb.clearRequests();
    const { error } = await run(input);
    expect(error?.name).toBe('InputError');
    expect(error?.message).toContain(`"${field}"`);
    expect(bb.requests()).toEqual([]);
  });

  it('refuses tokenAuth with a project token naming "token", before any write', async () => {
    bb.addProjectToken({
      token: PROJECT_TOKEN,
      project: 'FLUX',
      permission: 'PROJECT_ADMIN',
    });
    for (const dryRun of [false, true]) {
      bb.clearRequests();
      const { error, outputs, logs } = await run(
        { clusters: ['live'], tokenAuth: true, token: PROJECT_TOKEN },
        undefined,
        dryRun,
      );
      expect(error?.name).toBe('InputError');
      expect(error?.message).toMatch(/^Invalid input "token": /);
      expect(outputs).toEqual({});
      expect(bb.requests().filter(r => r.method !== 'GET')).toEqual([]);
      const everything = [...logs, error?.message].join('\n');
      expect(everything).not.toContain(PROJECT_TOKEN);
    }
  });

  it.each([false, true])(
    'dry run (tokenAuth %s): outputs and a planned row per cluster, no write',
    async tokenAuth => {
      const ns = uniqueName('fleet-dry');
      const http = new KubeHttp(kube);
      try {
        bb.clearRequests();
        const { error, outputs, logs } = await run(
          { clusters: ['live'], namespace: ns, tokenAuth },
          undefined,
          true,
        );
        expect(error).toBeUndefined();
        expect(outputs).toMatchObject({
          commitHash: '',
          revision: 'main@sha1:',
          changed: true,
          clusters: [
            { cluster: 'live', path: 'clusters/live', state: 'planned' },
          ],
        });
        expect(outputs.summary).toContain('| live | planned |');
        expect(bb.requests().length).toBeGreaterThan(0);
        expect(bb.requests().filter(r => r.method !== 'GET')).toEqual([]);
        // Nothing reached the cluster: not even Flux's namespace.
        const got = await http.request('GET', `/api/v1/namespaces/${ns}`);
        expect(got.status).toBe(404);
        expect(logs.join('\n')).toContain(
          tokenAuth
            ? `info [live] Would apply Secret ${ns}/flux-system (username "alice", password; values not shown); no deploy key`
            : 'info [live] Would generate a deploy key',
        );
        const everything = [...logs, JSON.stringify(outputs)].join('\n');
        expect(everything).not.toContain(TOKEN);
      } finally {
        http.close();
      }
    },
  );

  it('bootstraps the live cluster, fails naming the dead one, and writes the summary', async () => {
    const ns = uniqueName('fleet-act');
    let sim: FluxSimulator | undefined;
    const http = new KubeHttp(kube);
    try {
      sim = await startFluxSimulator({ kube, namespace: ns, intervalMs: 300 });
      const { error, outputs, logs, checkpoints } = await run({
        clusters: ['live', 'dead'],
        namespace: ns,
        timeout: '2m',
      });

      expect(error?.name).toBe('ServiceUnavailableError');
      expect(error?.message).toMatch(/^1 of 2 clusters failed — dead: /);
      expect(error?.message).toContain('| dead | failed |');
      expect(outputs.clusters).toEqual([
        {
          cluster: 'live',
          path: 'clusters/live',
          state: 'ready',
          revision: outputs.revision,
        },
        {
          cluster: 'dead',
          path: 'clusters/dead',
          state: 'failed',
          error: expect.stringContaining('cannot reach the API server'),
        },
      ]);
      expect(outputs.revision).toBe(`main@sha1:${outputs.commitHash}`);
      expect(outputs.summary).toContain(
        `| live | ready | ${outputs.revision} |`,
      );
      expect(checkpoints).toContain('live/wait');
      expect(logs).toContain(
        'info | Cluster | State | Applied revision | Error |',
      );
      expect(logs.some(l => l.startsWith('info [live] '))).toBe(true);
      const everything = [...logs, JSON.stringify(outputs), error?.message];
      expect(everything.join('\n')).not.toContain(TOKEN);
    } finally {
      await sim?.stop();
      await http
        .request('DELETE', `/api/v1/namespaces/${ns}`)
        .catch(() => undefined);
      http.close();
    }
  });
  it('cancel stops every install promptly', async () => {
    const ns = uniqueName('fleet-cancel');
    const sim = await startFluxSimulator({
      kube,
      namespace: ns,
      intervalMs: 300,
    });
    // Flux never gets ready: the install would wait for its whole timeout.
    sim.failWith('sync', 'kustomize build failed: simulated');
    const http = new KubeHttp(kube);
    try {
      const abort = new AbortController();
      const waiting = run(
        { clusters: ['live'], namespace: ns, timeout: '10m' },
        abort.signal,
      );
      const started = Date.now();
      // Cancel once the install waits for Flux.
      for (;;) {
        await new Promise(r => setTimeout(r, 200));
        if (Date.now() - started > 60_000) break;
        const listed = await http.request(
          'GET',
          `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${ns}/kustomizations`,
        );
        if ((listed.body?.items ?? []).length) break;
      }
      const cancelledAt = Date.now();
      abort.abort();
      const { error, outputs } = await waiting;
      // Not a timing goal: it ends long before its 10-minute budget, not at it.
      expect(Date.now() - cancelledAt).toBeLessThan(60_000);
      expect(error).toBeDefined();
      expect(error?.message).not.toMatch(/clusters failed/);
      expect(outputs.clusters).toBeUndefined();
    } finally {
      await sim.stop();
      await http
        .request('DELETE', `/api/v1/namespaces/${ns}`)
        .catch(() => undefined);
      http.close();
    }
  });
});
