import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import type { JsonObject } from '@backstage/types';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import { scaffolderTemplatingExtensionPoint } from '@backstage/plugin-scaffolder-node/alpha';
import {
  buildFluxBundle,
  getSharedKubeApiserver,
  serveFluxBundles,
  startBitbucketDouble,
  startFluxSimulator,
  startTinyproxy,
  uniqueName,
  type BitbucketDouble,
  type FluxBundleServer,
  type Tinyproxy,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from '@flux-bootstrap/test-peers';
import {
  actionConfigData,
  configCluster,
  runAction,
} from './actions/__testUtils__/actionHarness';
import {
  removeInstanceClusterRbac,
  seedProject,
} from './actions/__testUtils__/peers';
import { scaffolderModuleFluxBootstrap } from './module';

// The proxy suite: the Bitbucket Server template's steps (bitbucket:create-repo →
// flux:push-manifests → flux:install with token auth), as the scaffolder module registers them,
// run against real peers — the Bitbucket double over HTTPS (REST and git), the Flux bundle
// server, the kube-apiserver and the Flux simulator — with a real tinyproxy in between, set
// through HTTPS_PROXY/HTTP_PROXY/NO_PROXY or fluxBootstrap.proxy. The proxy's own log is the
// evidence of what went through it.

jest.setTimeout(300_000);

const TOKEN = 'canary-proxy-suite-token-4e1b9a07';
const PROXY_PASSWORD = 'canary-proxy-password-9d3c77e1';
const WRONG_PASSWORD = 'canary-wrong-proxy-password-2f80';
const CANARIES = [TOKEN, PROXY_PASSWORD, WRONG_PASSWORD];
const VERSION = 'v2.9.4';
const PROXY_ENV = [
  'HTTPS_PROXY',
  'HTTP_PROXY',
  'NO_PROXY',
  'https_proxy',
  'http_proxy',
  'no_proxy',
];

const kube = getSharedKubeApiserver();
const kubeHost = new URL(kube.url).host;
/** Everything that left the actions (log lines, outputs, errors): scanned for canaries. */
const leaked: string[] = [];

let bb: BitbucketDouble;
let bundles: FluxBundleServer;
let open: Tinyproxy;
let guarded: Tinyproxy;
let bundleHost: string;
let tmp: string;
const savedEnv = Object.fromEntries(PROXY_ENV.map(k => [k, process.env[k]]));

beforeAll(async () => {
  bb = await startBitbucketDouble({ tls: true });
  seedProject(bb, { key: 'FLEET', name: 'Fleet' }, [
    { name: 'alice', permission: 'PROJECT_ADMIN', token: TOKEN },
  ]);
  bundles = await serveFluxBundles([
    await buildFluxBundle({ version: VERSION }),
  ]);
  bundleHost = new URL(bundles.baseUrl).host;
  open = await startTinyproxy();
  guarded = await startTinyproxy({
    basicAuth: { user: 'flux', password: PROXY_PASSWORD },
  });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'proxy-suite-'));
}, 120_000);

afterEach(() => {
  for (const k of PROXY_ENV) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

afterAll(async () => {
  await open?.stop();
  await guarded?.stop();
  await bundles?.stop();
  await bb?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function config(proxy?: JsonObject): JsonObject {
  return actionConfigData({
    extra: { backend: { baseUrl: 'http://127.0.0.1:7007' } },
    bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl },
    fluxBootstrap: {
      kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
      bitbucketServer: [{ host: bb.host, caData: bb.caPem!, retries: 1 }],
      manifests: {
        baseUrl: bundles.baseUrl,
        // a fresh cache per run: every run downloads the bundle
        cacheDir: fs.mkdtempSync(path.join(tmp, 'cache-')),
        defaultVersion: VERSION,
      },
      ...(proxy ? { proxy } : {}),
    },
    clusters: [configCluster('test', kube)],
  });
}

/** The actions as the module registers them with a backend started on `data`. */
async function moduleActions(data: JsonObject) {
  const actions = new Map<string, { handler: (ctx: any) => Promise<void> }>();
  const backend = await startTestBackend({
    extensionPoints: [
      [
        scaffolderActionsExtensionPoint,
        {
          addActions: (...added: any[]) =>
            added.forEach(a => actions.set(a.id, a)),
        },
      ],
      [
        scaffolderTemplatingExtensionPoint,
        { addTemplateFilters: () => {}, addTemplateGlobals: () => {} },
      ],
    ],
    features: [
      scaffolderModuleFluxBootstrap,
      catalogServiceMock.factory(),
      mockServices.rootConfig.factory({ data }),
    ],
  });
  return { actions, stop: () => backend.stop() };
}

interface Step {
  outputs: Record<string, any>;
  logs: string[];
}

async function runStep(
  actions: Awaited<ReturnType<typeof moduleActions>>['actions'],
  id: string,
  input: Record<string, unknown>,
): Promise<Step> {
  const r = await runAction(actions.get(id)!, input, {
    workspacePath: fs.mkdtempSync(path.join(tmp, 'ws-')),
    produced: leaked,
  });
  if (r.error)
    throw Object.assign(
      new Error(`${id} failed: ${r.error.message}\n${r.logs.join('\n')}`),
      { cause: r.error },
    );
  return { outputs: r.outputs, logs: r.logs };
}

/** The template's steps with token auth, into a new repository and Flux namespace. */
async function bootstrap(proxy?: JsonObject) {
  const { actions, stop } = await moduleActions(config(proxy));
  const ns = uniqueName('proxied');
  const repo = uniqueName('fleet');
  const repoUrl = `${bb.host}?project=FLEET&repo=${repo}`;
  const sim = await startFluxSimulator({
    kube,
    namespace: ns,
    intervalMs: 200,
  });
  try {
    const created = await runStep(actions, 'bitbucket:create-repo', {
      repoUrl,
      defaultBranch: 'main',
      token: TOKEN,
    });
    const { remoteUrl, defaultBranch } = created.outputs;
    const pushed = await runStep(actions, 'flux:push-manifests', {
      repoUrl,
      token: TOKEN,
      branch: defaultBranch,
      path: `clusters/${ns}`,
      namespace: ns,
      syncUrl: remoteUrl,
      tokenAuth: true,
    });
    const installed = await runStep(actions, 'flux:install', {
      cluster: 'test',
      namespace: ns,
      syncUrl: remoteUrl,
      branch: defaultBranch,
      path: `clusters/${ns}`,
      revision: pushed.outputs.revision,
      tokenAuth: true,
      token: TOKEN,
      username: 'alice',
    });
    expect(installed.outputs.ready).toBe(true);
    expect(installed.outputs.revision).toBe(pushed.outputs.revision);
    return { created, pushed, installed, ns };
  } finally {
    await sim.stop();
    await stop();
    await removeInstanceClusterRbac(kube, ns);
  }
}

/** Targets (`host:port`) tunnelled through a proxy since `mark`. */
function tunnelled(proxy: Tinyproxy, mark: number): Set<string> {
  const requests = proxy.requests(mark);
  // undici tunnels every request, plain http ones included: nothing is proxied as GET http://…
  expect(requests.filter(r => r.method !== 'CONNECT')).toEqual([]);
  return new Set(requests.map(r => r.target));
}

describe('behind a proxy (real tinyproxy)', () => {
  it('sends Bitbucket REST, git over HTTPS, the bundle download and the Kubernetes API through HTTPS_PROXY/HTTP_PROXY', async () => {
    process.env.HTTPS_PROXY = open.url;
    process.env.HTTP_PROXY = open.url;
    const mark = open.mark();
    const bbMark = bb.requests().length;
    await bootstrap();
    expect([...tunnelled(open, mark)].sort()).toEqual(
      [bb.host, bundleHost, kubeHost].sort(),
    );
    // REST and git (smart HTTP: ref discovery and pack uploads) all reached Bitbucket.
    const paths = bb
      .requests()
      .slice(bbMark)
      .map(r => r.path);
    expect(paths.some(p => p.startsWith('/rest/api/1.0/'))).toBe(true);
    expect(paths.some(p => p.endsWith('/git-receive-pack'))).toBe(true);
  });

  it('reaches the NO_PROXY hosts directly, in both directions', async () => {
    process.env.HTTPS_PROXY = open.url;
    process.env.HTTP_PROXY = open.url;
    // Only the API server bypasses the proxy.
    process.env.NO_PROXY = kubeHost;
    let mark = open.mark();
    await bootstrap();
    expect([...tunnelled(open, mark)].sort()).toEqual(
      [bb.host, bundleHost].sort(),
    );
    // Every loopback host bypasses it: the proxy sees nothing.
    process.env.NO_PROXY = '127.0.0.1';
    mark = open.mark();
    await bootstrap();
    expect(open.requests(mark)).toEqual([]);
  });

  it('works with a proxy that requires credentials (fluxBootstrap.proxy.url), which appear nowhere', async () => {
    const url = `http://flux:${PROXY_PASSWORD}@127.0.0.1:${guarded.port}`;
    expect(url).toBe(guarded.proxyUrl);
    const mark = guarded.mark();
    const openMark = open.mark();
    // The environment names the other proxy: the configured one wins.
    process.env.HTTPS_PROXY = open.url;
    await bootstrap({ url });
    expect([...tunnelled(guarded, mark)].sort()).toEqual(
      [bb.host, bundleHost, kubeHost].sort(),
    );
    expect(open.requests(openMark)).toEqual([]);

    // A wrong password: a clear error at the first request, naming neither password.
    const { actions, stop } = await moduleActions(
      config({
        url: `http://flux:${WRONG_PASSWORD}@127.0.0.1:${guarded.port}`,
      }),
    );
    try {
      const failed = await runStep(actions, 'bitbucket:create-repo', {
        repoUrl: `${bb.host}?project=FLEET&repo=${uniqueName('refused')}`,
        token: TOKEN,
      }).then(
        () => new Error('expected a failure'),
        e => e.cause as Error,
      );
      // tinyproxy answers a wrong password with 401 (407 without any)
      expect(failed.message).toMatch(
        /the proxy refused the connection \(HTTP 401 Unauthorized\); check the proxy credentials/,
      );
    } finally {
      await stop();
    }
  });

  it('let no token or proxy password reach a log line, output, error or the proxy logs', () => {
    const texts = [...leaked, open.log(), guarded.log()];
    expect(leaked.length).toBeGreaterThan(20);
    for (const canary of CANARIES) {
      for (const form of [
        canary,
        Buffer.from(`flux:${canary}`).toString('base64'),
        encodeURIComponent(canary),
      ]) {
        expect(texts.filter(t => t.includes(form))).toEqual([]);
      }
    }
  });
});
