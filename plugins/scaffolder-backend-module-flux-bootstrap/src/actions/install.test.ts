import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ConfigReader } from '@backstage/config';
import { InputError } from '@backstage/errors';
import {
  buildFluxBundle,
  getSharedKubeApiserver,
  serveFluxBundles,
  startFluxSimulator,
  startGitHttpServer,
  uniqueName,
  type FluxBundleServer,
  type GitHttpServer,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from '@flux-bootstrap/test-peers';
import { type KubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import yaml from 'yaml';
import {
  actionConfig,
  configCluster,
  runAction,
} from './__testUtils__/actionHarness';
import {
  readSecret,
  removeInstanceClusterRbac,
  adminKubeClient,
  startBlackhole,
  type Blackhole,
} from './__testUtils__/peers';
import { createFluxInstallAction, installInput } from './install';
import { examples } from './install.examples';

// Real peers: kube-apiserver + etcd, git smart-HTTP over TLS, the Flux bundle server and the
// test-only Flux controller simulator. Generous timeouts only.
jest.setTimeout(180_000);

const TOKEN = 'canary-install-token-5e2b9c41d7';
const INTEGRATION_TOKEN = 'canary-integration-token-a83f0c';
const VERSION = 'v2.9.4';
const kube = getSharedKubeApiserver();

let bundles: FluxBundleServer;
let git: GitHttpServer;
let repoUrl: string;
let headSha: string;
let cacheDir: string;
let admin: KubeClient;
/** A TCP listener standing in for a cluster: it counts connection attempts and answers none. */
let blackhole: Blackhole;

beforeAll(async () => {
  const bundle = await buildFluxBundle({ version: VERSION });
  bundles = await serveFluxBundles([
    { version: VERSION, tarball: bundle.tarball },
  ]);
  git = await startGitHttpServer({ tls: true });
  git.addToken({ token: TOKEN, user: 'alice', access: 'read' });
  git.addToken({ token: INTEGRATION_TOKEN, user: 'flux-bot', access: 'read' });
  const repo = git.createRepo('fleet', { initialCommit: false });
  repoUrl = repo.url;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'install-action-work-'));
  const env = {
    PATH: process.env.PATH,
    HOME: work,
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Flux',
    GIT_AUTHOR_EMAIL: 'flux@example.com',
    GIT_COMMITTER_NAME: 'Flux',
    GIT_COMMITTER_EMAIL: 'flux@example.com',
  };
  const gitCli = (...args: string[]) =>
    execFileSync('git', args, { cwd: work, env, encoding: 'utf8' }).trim();
  gitCli('init', '-q', '-b', 'main');
  fs.mkdirSync(path.join(work, 'clusters/test/flux-system'), {
    recursive: true,
  });
  fs.writeFileSync(
    path.join(work, 'clusters/test/flux-system/kustomization.yaml'),
    'resources: []\n',
  );
  gitCli('add', '-A');
  gitCli('commit', '-q', '-m', 'Add Flux sync manifests');
  headSha = gitCli('rev-parse', 'HEAD');
  gitCli('push', '-q', repo.path, 'HEAD:refs/heads/main');
  fs.rmSync(work, { recursive: true, force: true });
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'install-action-cache-'));
  admin = await adminKubeClient(kube);
  blackhole = await startBlackhole();
});

afterAll(async () => {
  admin?.close();
  await blackhole?.stop();
  await bundles?.stop();
  await git?.stop();
  if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
});

function config(
  extra: { requireUser?: boolean; integrationUsername?: string } = {},
) {
  return actionConfig({
    extra: {
      scaffolder: { requireScmUserCredentials: extra.requireUser ?? false },
    },
    bitbucket: {
      host: git.host,
      apiBaseUrl: `${git.baseUrl}/rest/api/1.0`,
      token: INTEGRATION_TOKEN,
      username: extra.integrationUsername,
    },
    fluxBootstrap: {
      kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
      bitbucketServer: [{ host: git.host, caData: git.caPem }],
      manifests: {
        baseUrl: bundles.baseUrl,
        cacheDir,
        defaultVersion: VERSION,
      },
    },
    clusters: [
      configCluster('test', kube),
      { ...configCluster('offline', kube), url: blackhole.url },
    ],
  });
}

interface Run {
  outputs: Record<string, any>;
  logs: string[];
  checkpoints: string[];
  error?: Error;
}

const produced: string[] = [];

async function run(
  input: Record<string, unknown>,
  opts: {
    dryRun?: boolean;
    config?: ConfigReader;
    signal?: AbortSignal;
    onLog?: (line: string) => void;
    store?: Map<string, unknown>;
  } = {},
): Promise<Run> {
  const r = await runAction(createFluxInstallAction, input, {
    factoryOptions: { config: opts.config ?? config() },
    secrets: { bitbucketToken: TOKEN },
    dryRun: opts.dryRun,
    signal: opts.signal,
    onLog: opts.onLog,
    checkpointStore: opts.store,
    jsonCheckpoints: true,
    produced,
  });
  // Every checkpoint entered, replayed ones included.
  const checkpoints = r.checkpoints.map(c => c.key);
  return { outputs: r.outputs, logs: r.logs, checkpoints, error: r.error };
}

function baseInput(ns: string, over: Record<string, unknown> = {}) {
  return {
    cluster: 'test',
    namespace: ns,
    syncUrl: repoUrl,
    path: 'clusters/test',
    tokenAuth: true,
    token: TOKEN,
    username: 'alice',
    revision: `main@sha1:${headSha}`,
    ...over,
  };
}

const cleanupInstall = (ns: string) => removeInstanceClusterRbac(kube, ns);

const secretData = async (ns: string) => (await readSecret(admin, ns))?.data;

describe('flux:install', () => {
  it('has examples that are templates steps of this action, using only inputs of its schema', () => {
    const action = createFluxInstallAction({ config: config() });
    const schema = action.schema?.input as any;
    const known = Object.keys(schema?.properties ?? schema ?? {});
    expect(known).toEqual(
      expect.arrayContaining(['cluster', 'syncUrl', 'path', 'tokenAuth']),
    );
    expect(examples.length).toBeGreaterThan(0);
    for (const e of examples) {
      const doc = yaml.parse(e.example);
      expect(doc.steps[0].action).toBe('flux:install');
      expect(doc.steps[0].input).toEqual(
        expect.objectContaining({
          cluster: expect.any(String),
          syncUrl: expect.any(String),
          path: expect.any(String),
        }),
      );
      for (const key of Object.keys(doc.steps[0].input))
        expect(known).toContain(key);
    }
  });

  it('gives an omitted input its documented default: the schema the scaffolder documents is the one parsed', () => {
    const action = createFluxInstallAction({ config: config() });
    const documented = (action.schema!.input as any).properties as Record<
      string,
      { default?: unknown }
    >;
    const minimal = { cluster: 'test', syncUrl: repoUrl, path: 'clusters/x' };
    const parsed = installInput.parse(minimal) as Record<string, unknown>;
    const withDefaults = Object.entries(documented).filter(
      ([, p]) => p.default !== undefined,
    );
    expect(withDefaults.map(([name]) => name)).toEqual(
      expect.arrayContaining(['branch', 'timeout', 'wait', 'force']),
    );
    for (const [name, { default: value }] of withDefaults) {
      expect([name, parsed[name]]).toEqual([
        name,
        (installInput.parse({ ...minimal, [name]: value }) as any)[name],
      ]);
    }
    expect(parsed).toMatchObject({
      branch: 'main',
      namespace: 'flux-system',
      secretName: 'flux-system',
      components: [
        'source-controller',
        'kustomize-controller',
        'helm-controller',
        'notification-controller',
      ],
      interval: '1m0s',
      tokenAuth: false,
      timeout: 300_000,
      wait: true,
      force: false,
    });
  });

  it('refuses cross-field violations naming the field, with no request to the cluster or the bundle server', async () => {
    bundles.clearRequests();
    blackhole.reset();
    const ns = uniqueName('act-cross');
    for (const [over, field] of [
      [{ revision: `develop@sha1:${headSha}` }, 'revision'],
      [{ branch: 'develop', revision: `main@sha1:${headSha}` }, 'revision'],
      [{ componentsExtra: ['source-controller'] }, 'componentsExtra'],
      [{ components: ['source-controller'] }, 'components'],
      [{ syncUrl: 'ssh://git@127.0.0.1:7999/flux/fleet.git' }, 'syncUrl'],
    ] as const) {
      const r = await run(baseInput(ns, { cluster: 'offline', ...over }));
      expect(r.error).toBeInstanceOf(InputError);
      expect((r.error as any).field).toBe(field);
      expect(r.checkpoints).toEqual([]);
    }
    expect(blackhole.connections()).toBe(0);
    expect(bundles.requests()).toEqual([]);
  });

  it('installs Flux with token auth, waits for the pushed revision and reports the controllers; a replayed task reuses its checkpoints', async () => {
    const ns = uniqueName('act-install');
    const sim = await startFluxSimulator({
      kube,
      namespace: ns,
      intervalMs: 150,
    });
    const store = new Map<string, unknown>();
    try {
      const r = await run(baseInput(ns), { store });
      if (r.error) throw new Error(`${r.error.message}\n${r.logs.join('\n')}`);
      expect(r.outputs).toEqual({
        fluxVersion: VERSION,
        revision: `main@sha1:${headSha}`,
        ready: true,
        components: [
          'source-controller',
          'kustomize-controller',
          'helm-controller',
          'notification-controller',
        ].map(name => ({
          name,
          ready: true,
          image: expect.stringContaining(`ghcr.io/fluxcd/${name}:`),
        })),
        // the user name the Secret holds
        username: 'alice',
      });
      expect(r.checkpoints).toEqual([
        'preconditions',
        'components',
        'secret',
        'sync',
        'wait',
      ]);
      // The Secret Flux used to read the repository: the token, its owner and the host's CA.
      expect(await secretData(ns)).toEqual({
        username: 'alice',
        password: TOKEN,
        'ca.crt': `${git.caPem!.trim()}\n`,
      });
      expect(
        r.logs.some(
          l =>
            l.includes('Waiting for Flux on cluster "test"') ||
            l.includes('synced'),
        ),
      ).toBe(true);

      // A recovered task replays from its checkpoints: same outputs and not one request to the
      // cluster (here "test" points at a listener that counts connections and answers none).
      await sim.stop();
      blackhole.reset();
      const offlineTest = config();
      const data = offlineTest.get() as any;
      data.kubernetes.clusterLocatorMethods[0].clusters[0].url = blackhole.url;
      const replay = await run(baseInput(ns), {
        store,
        config: new ConfigReader(data),
      });
      expect(replay.error).toBeUndefined();
      expect(replay.outputs).toEqual(r.outputs);
      expect(replay.checkpoints).toEqual([
        'preconditions',
        'components',
        'secret',
        'sync',
        'wait',
      ]);
      expect(blackhole.connections()).toBe(0);
    } finally {
      await sim.stop();
      await cleanupInstall(ns);
    }
  });

  it('takes the integration credentials for token auth when no token is given', async () => {
    const ns = uniqueName('act-integration');
    try {
      const r = await run(
        baseInput(ns, { token: undefined, username: 'flux-bot', wait: false }),
      );
      expect(r.error).toBeUndefined();
      expect(r.outputs.ready).toBe(false);
      expect(await secretData(ns)).toEqual(
        expect.objectContaining({
          username: 'flux-bot',
          password: INTEGRATION_TOKEN,
        }),
      );
      expect(r.logs.join('\n')).not.toContain(INTEGRATION_TOKEN);
    } finally {
      await cleanupInstall(ns);
    }
  });

  it('rejects bad input naming the field, before any request to the cluster or the bundle server', async () => {
    bundles.clearRequests();
    blackhole.reset();
    const ns = uniqueName('act-bad');
    const cases: [Record<string, unknown>, string, RegExp, ConfigReader?][] = [
      [
        { cluster: 'nope' },
        'cluster',
        /unknown cluster "nope".*"test", "offline"/,
      ],
      [
        { cluster: 'offline', revision: `develop@sha1:${headSha}` },
        'revision',
        /branch "develop".*"main"/,
      ],
      [
        { cluster: 'offline', revision: 'main@abc' },
        'revision',
        /<branch>@sha1:<commit sha>/,
      ],
      [
        {
          cluster: 'offline',
          syncUrl: 'ssh://git@127.0.0.1:7999/flux/fleet.git',
        },
        'syncUrl',
        /https:\/\/ URL when tokenAuth/,
      ],
      [
        { cluster: 'offline', username: undefined },
        'username',
        /token's owner/,
      ],
      [
        { cluster: 'offline', token: undefined },
        'token',
        /requireScmUserCredentials/,
        config({ requireUser: true }),
      ],
      [{ cluster: 'offline', timeout: 'soon' }, 'timeout', /duration/],
      [{ cluster: 'offline', timeout: '1s' }, 'timeout', /between 10s and 24h/],
      [{ cluster: 'offline', namespace: 'Not_A_Label' }, 'namespace', /./],
      [{ cluster: 'offline', wait: 'yes' }, 'wait', /true or false/],
      [{ cluster: 'offline', path: '../escape' }, 'path', /./],
    ];
    for (const [over, field, message, cfg] of cases) {
      const r = await run(baseInput(ns, over), { config: cfg });
      expect(r.error).toBeInstanceOf(InputError);
      expect(`${field}: ${r.error!.message}`).toMatch(
        new RegExp(`^${field}: Invalid input "${field}": .*${message.source}`),
      );
    }
    expect(blackhole.connections()).toBe(0);
    expect(bundles.requests()).toEqual([]);
  });

  it('dry run prints what it would apply and only reads the cluster version', async () => {
    bundles.clearRequests();
    blackhole.reset();
    const ns = uniqueName('act-dry');
    const r = await run(baseInput(ns, { cluster: 'offline' }), {
      dryRun: true,
    });
    expect(r.error).toBeUndefined();
    expect(r.outputs).toEqual({
      fluxVersion: VERSION,
      revision: `main@sha1:${headSha}`,
      ready: false,
      components: [],
    });
    const text = r.logs.join('\n');
    expect(text).toContain(
      'Dry run of flux:install; nothing is written to the cluster.',
    );
    // Like flux check --pre, the dry run reads the version; an unreachable cluster only warns.
    expect(text).toContain(
      'warn Could not check the Kubernetes version of cluster "offline"',
    );
    expect(text).toContain(
      `Would install Flux ${VERSION} on cluster "offline" in namespace ${ns}`,
    );
    expect(text).toContain(
      `Secret ${ns}/flux-system with keys username, password, ca.crt (values not shown)`,
    );
    expect(text).toContain('kind: GitRepository');
    expect(text).toContain(`url: ${repoUrl}`);
    expect(text).toContain('path: ./clusters/test');
    expect(text).toContain(`reconciled main@sha1:${headSha}`);
    expect(text).not.toContain(TOKEN);
    expect(blackhole.connections()).toBe(1);
    expect(bundles.requests()).toEqual([]);
  });

  it('dry run accepts the revision a dry run of flux:push-manifests outputs (no commit); a real run does not', async () => {
    bundles.clearRequests();
    blackhole.reset();
    const ns = uniqueName('act-dry-pending');
    const dry = await run(
      baseInput(ns, { cluster: 'offline', revision: 'main@sha1:' }),
      { dryRun: true },
    );
    expect(dry.error).toBeUndefined();
    expect(dry.outputs.revision).toBe('main@sha1:');
    expect(dry.logs.join('\n')).toContain(
      'until Flux reconciled the commit flux:push-manifests pushes to main (main@sha1:<sha>; a dry run pushes nothing, so the commit is known only in a real run)',
    );
    // Still checked against the synced branch in a dry run.
    const otherBranch = await run(
      baseInput(ns, { cluster: 'offline', revision: 'develop@sha1:' }),
      { dryRun: true },
    );
    expect(otherBranch.error).toBeInstanceOf(InputError);
    expect(otherBranch.error!.message).toMatch(
      /Invalid input "revision": .*branch "develop".*"main"/,
    );
    // Real runs stay strict, before any request.
    const real = await run(
      baseInput(ns, { cluster: 'offline', revision: 'main@sha1:' }),
    );
    expect(real.error).toBeInstanceOf(InputError);
    expect(real.error!.message).toContain(
      'Invalid input "revision": must be <branch>@sha1:<commit sha> as flux:push-manifests outputs it (got "main@sha1:")',
    );
    // Only the first dry run's version read; the refused inputs sent nothing.
    expect(blackhole.connections()).toBe(1);
    expect(bundles.requests()).toEqual([]);
  });

  it('stops waiting when the task is cancelled', async () => {
    const ns = uniqueName('act-cancel');
    const controller = new AbortController();
    try {
      const r = await run(baseInput(ns, { timeout: '10m' }), {
        signal: controller.signal,
        onLog: line => {
          if (line.includes('Waiting for Flux on cluster')) controller.abort();
        },
      });
      expect(controller.signal.aborted).toBe(true);
      expect(r.error).toBeDefined();
      expect(r.error!.message).toContain(
        'Cancelled while waiting for Flux on cluster "test"',
      );
    } finally {
      await cleanupInstall(ns);
    }
  });

  it('never lets a token reach a log line, an output or an error', () => {
    const all = produced.join('\n');
    for (const secret of [TOKEN, INTEGRATION_TOKEN, kube.adminToken]) {
      expect(all).not.toContain(secret);
      expect(all).not.toContain(Buffer.from(secret).toString('base64'));
    }
  });
});
