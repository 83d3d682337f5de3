/**
 * bootstrapFleet against real peers: three private kube-apiservers (+ etcd), each behind a fault
 * proxy that logs every request and with the Flux controller simulator (it resolves the branch
 * with a real `git ls-remote` over SSH with the Secret the run wrote), the Bitbucket double with
 * git http-backend and a real sshd authorised by the access keys, and a served Flux bundle.
 * One story: a cluster down → the others complete and the result names it; restarted → a
 * re-run completes it, with zero writes on the healthy clusters, no commit and no new key.
 * Then token auth (an HTTPS double with its own CA: the simulator clones with the Secret's
 * username, token and ca.crt) and the dry run (zero writes on Bitbucket and the apiservers).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigReader } from '@backstage/config';
import {
  buildFluxBundle,
  KubeHttp,
  serveFluxBundles,
  startBitbucketDouble,
  startFaultProxy,
  startFluxSimulator,
  startKubeApiserver,
  type BitbucketDouble,
  type FaultProxy,
  type FluxBundleServer,
  type FluxSimulator,
  type KubeApiserver,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from '@flux-bootstrap/test-peers';
import { parseBitbucketRepoUrl } from '../bitbucket/repoUrl';
import {
  fluxBootstrapSettings,
  type FluxBootstrapSettings,
} from '../config/settings';
import { SSH_KEY_DEFAULTS } from '../keys/keyPair';
import { Redactor } from '../util/redact';
import { bootstrapFleet, type FleetBootstrapRequest } from './bootstrapFleet';

jest.setTimeout(400_000);

const VERSION = 'v2.9.4';
const TOKEN = 'canary-fleet-token-3f9d1c07ab';
const PROJECT_TOKEN = 'canary-fleet-project-token-77e0a4';
const NAMES = ['fleet-a', 'fleet-b', 'fleet-c'];

interface Cluster {
  name: string;
  kube: KubeApiserver;
  proxy: FaultProxy;
  sim: FluxSimulator;
  http: KubeHttp;
}

let bb: BitbucketDouble;
let bundles: FluxBundleServer;
let clusters: Cluster[];
let settings: FluxBootstrapSettings;
let cacheDir: string;
const logs: string[] = [];

beforeAll(async () => {
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-bundles-'));
  const bundle = await buildFluxBundle({ version: VERSION });
  bundles = await serveFluxBundles([
    { version: VERSION, tarball: bundle.tarball },
  ]);
  bb = await startBitbucketDouble({ ssh: true });
  bb.addUser({ name: 'alice' });
  bb.addProject({ key: 'FLUX', name: 'Flux fleet' });
  bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
  bb.addToken({ token: TOKEN, user: 'alice' });
  clusters = await Promise.all(
    NAMES.map(async name => {
      const kube = await startKubeApiserver();
      const proxy = await startFaultProxy({
        upstream: { url: kube.url, caPem: kube.caPem },
      });
      const sim = await startFluxSimulator({
        kube,
        namespace: 'flux-system',
        intervalMs: 300,
      });
      return { name, kube, proxy, sim, http: new KubeHttp(kube) };
    }),
  );
  settings = await settingsFor(bb);
});

/** The settings of the three clusters with `double` as the Bitbucket host. */
function settingsFor(double: BitbucketDouble) {
  return fluxBootstrapSettings(
    new ConfigReader({
      integrations: {
        bitbucketServer: [{ host: double.host, apiBaseUrl: double.apiBaseUrl }],
      },
      fluxBootstrap: {
        kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
        bitbucketServer: [
          {
            host: double.host,
            ...(double.ssh ? { sshHost: double.ssh.host } : {}),
            ...(double.caPem ? { caData: double.caPem } : {}),
          },
        ],
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
            clusters: clusters.map(c => ({
              name: c.name,
              url: c.proxy.url,
              serviceAccountToken: c.kube.adminToken,
              caData: c.proxy.caPem,
            })),
          },
        ],
      },
    }),
  ).get();
}

afterAll(async () => {
  for (const c of clusters ?? []) {
    await c.sim.stop();
    c.http.close();
    await c.proxy.stop();
    await c.kube.stop();
  }
  await bb?.stop();
  await bundles?.stop();
  fs.rmSync(cacheDir, { recursive: true, force: true });
});

function request(
  repo = 'fleet-infra',
  on = { double: bb, settings, token: TOKEN },
): FleetBootstrapRequest {
  const ref = parseBitbucketRepoUrl(
    `${on.double.host}?project=FLUX&repo=${repo}`,
    on.settings.bitbucketServer,
  );
  return {
    bitbucket: {
      ref,
      host: on.settings.bitbucketServer[0],
      auth: { token: on.token },
      credentials: 'the token input',
    },
    clusters: NAMES,
    pathPattern: 'clusters/<cluster>',
    branch: 'main',
    private: true,
    groups: [],
    flux: {},
    key: SSH_KEY_DEFAULTS,
    readWrite: false,
    author: { name: 'Flux', email: '' },
    concurrency: 4,
    timeoutMs: 120_000,
    force: false,
  };
}

/**
 * One run. `store` keeps completed checkpoints across runs (scaffolder task recovery: a resumed
 * task replays them); `crashAfter` makes that checkpoint fail right after it completed, as a
 * backend killed at that moment would leave the task state.
 */
async function run(
  opts: {
    req?: FleetBootstrapRequest;
    store?: Map<string, unknown>;
    crashAfter?: string;
    settings?: FluxBootstrapSettings;
  } = {},
) {
  const redactor = new Redactor([TOKEN]);
  const checkpoints: string[] = [];
  const result = await bootstrapFleet(opts.req ?? request(), {
    settings: opts.settings ?? settings,
    logger: {
      error: m => logs.push(`error ${m}`),
      warn: m => logs.push(`warn ${m}`),
      info: m => logs.push(`info ${m}`),
      debug: () => undefined,
    },
    redactor,
    checkpoint: async (key, fn) => {
      if (opts.store?.has(key)) return opts.store.get(key) as any;
      checkpoints.push(key);
      const value = await fn();
      opts.store?.set(key, value);
      if (key === opts.crashAfter) throw new Error(`crashed after ${key}`);
      return value;
    },
  });
  return { result, checkpoints };
}

const gitLog = () =>
  execFileSync(
    'git',
    [
      '--git-dir',
      bb.repoPath('FLUX', 'fleet-infra'),
      'log',
      '--format=%H%n%B%n--',
      'main',
    ],
    { encoding: 'utf8' },
  );
const accessKeys = () =>
  (bb.state().accessKeys as { label: string }[]).map(k => k.label).sort();
/** Requests of a cluster that are not reads. */
const writes = (c: Cluster) =>
  c.proxy
    .requests()
    .filter(r => r.method !== 'GET')
    .map(r => `${r.method} ${r.path}`);

describe('bootstrapFleet', () => {
  it('bootstraps the clusters that answer; one down fails alone, named with its reason', async () => {
    const [a, b, c] = clusters;
    await c.kube.stopApiserver();
    const { result, checkpoints } = await run();

    expect(result.clusters.map(r => [r.cluster, r.state])).toEqual([
      ['fleet-a', 'ready'],
      ['fleet-b', 'ready'],
      ['fleet-c', 'failed'],
    ]);
    for (const r of result.clusters.slice(0, 2))
      expect(r.revision).toBe(result.revision);
    expect(result.clusters[2].error).toMatch(
      /fleet-c|127\.0\.0\.1|ECONNRE|connect/i,
    );
    // One commit pair for the whole fleet, its bodies listing every cluster.
    const log = gitLog();
    expect(log).toContain(`Add Flux ${VERSION} component manifests`);
    expect(log.match(/Add Flux sync manifests/g)).toHaveLength(1);
    for (const name of NAMES)
      expect(log).toContain(`- ${name} (clusters/${name}/flux-system)`);
    expect(accessKeys()).toEqual([
      expect.stringMatching(/clusters\/fleet-a$/),
      expect.stringMatching(/clusters\/fleet-b$/),
    ]);
    // Checkpoints carry the cluster name, so a resumed task redoes only what is left.
    expect(checkpoints).toContain('fleet-a/components');
    expect(checkpoints).toContain('fleet-b/wait');
    // Progress lines are prefixed with their cluster.
    expect(logs.some(l => l.startsWith('info [fleet-b] '))).toBe(true);
    for (const x of [a, b]) {
      const secret = await x.http.expect(
        'GET',
        '/api/v1/namespaces/flux-system/secrets/flux-system',
      );
      expect(Object.keys(secret.body.data).sort()).toEqual([
        'identity',
        'identity.pub',
        'known_hosts',
      ]);
    }
    expect(logs.join('\n')).not.toContain(TOKEN);
  });

  it('after a restart, a re-run completes the failed cluster alone: zero writes on the others, no commit, no new key', async () => {
    const [a, b, c] = clusters;
    await c.kube.startApiserver();
    const head = gitLog().split('\n')[0];
    const keys = accessKeys();
    for (const x of clusters) x.proxy.clearRequests();

    const { result } = await run();

    expect(result.clusters.map(r => [r.cluster, r.state])).toEqual([
      ['fleet-a', 'unchanged'],
      ['fleet-b', 'unchanged'],
      ['fleet-c', 'ready'],
    ]);
    expect(result.changed).toBe(false);
    expect(gitLog().split('\n')[0]).toBe(head);
    expect(accessKeys()).toEqual([
      ...keys,
      expect.stringMatching(/clusters\/fleet-c$/),
    ]);
    expect(writes(a)).toEqual([]);
    expect(writes(b)).toEqual([]);
    expect(a.proxy.requests().length).toBeGreaterThan(0);
    expect(writes(c).length).toBeGreaterThan(0);

    // A third run: every cluster is done, nothing is written anywhere.
    for (const x of clusters) x.proxy.clearRequests();
    const again = await run();
    expect(again.result.clusters.map(r => r.state)).toEqual([
      'unchanged',
      'unchanged',
      'unchanged',
    ]);
    expect(clusters.flatMap(writes)).toEqual([]);
    expect(logs.join('\n')).not.toContain(TOKEN);
  });
  it('resumes a crashed fleet run with its checkpoints: finished clusters and steps are not redone', async () => {
    const [a, b] = clusters;
    const ns = 'flux-crash';
    const sims = await Promise.all(
      [a, b].map(x =>
        startFluxSimulator({ kube: x.kube, namespace: ns, intervalMs: 300 }),
      ),
    );
    try {
      const req = {
        ...request('fleet-crash'),
        clusters: ['fleet-a', 'fleet-b'],
        flux: { namespace: ns },
      };
      const store = new Map<string, unknown>();
      // The backend dies right after fleet-b's components were applied.
      const first = await run({ req, store, crashAfter: 'fleet-b/components' });
      expect(first.result.clusters.map(r => r.state)).toEqual([
        'ready',
        'failed',
      ]);
      for (const x of [a, b]) x.proxy.clearRequests();

      const resumed = await run({ req, store });

      expect(resumed.result.clusters.map(r => r.state)).toEqual([
        'unchanged',
        'ready',
      ]);
      // Nothing done before the crash is done again: no push, no key, no components.
      expect(resumed.checkpoints).not.toContain('fleet/push-sync');
      expect(resumed.checkpoints).not.toContain('fleet-b/secret');
      expect(resumed.checkpoints).not.toContain('fleet-b/components');
      expect(resumed.checkpoints).toContain('fleet-b/sync');
      expect(writes(a)).toEqual([]);
      expect(
        writes(b).filter(w => /customresourcedefinitions|deployments/.test(w)),
      ).toEqual([]);
    } finally {
      await Promise.all(sims.map(sim => sim.stop()));
    }
  });

  it('token auth: HTTPS with username, token and ca.crt in every Secret, no key; a re-run writes nothing', async () => {
    const [a, b] = clusters;
    const ns = 'flux-token';
    const tls = await startBitbucketDouble({ tls: true });
    const sims = await Promise.all(
      [a, b].map(x =>
        startFluxSimulator({ kube: x.kube, namespace: ns, intervalMs: 300 }),
      ),
    );
    try {
      tls.addUser({ name: 'alice' });
      tls.addProject({ key: 'FLUX', name: 'Flux fleet' });
      tls.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
      tls.addToken({ token: TOKEN, user: 'alice' });
      const on = {
        double: tls,
        settings: await settingsFor(tls),
        token: TOKEN,
      };
      const req: FleetBootstrapRequest = {
        ...request('fleet-token', on),
        clusters: ['fleet-a', 'fleet-b'],
        flux: { namespace: ns },
        tokenAuth: {},
      };
      for (const x of [a, b]) x.proxy.clearRequests();

      const first = await run({ req, settings: on.settings });

      // Ready means the simulator cloned over HTTPS with the Secret (Basic login + the CA).
      expect(first.result.clusters.map(r => [r.cluster, r.state])).toEqual([
        ['fleet-a', 'ready'],
        ['fleet-b', 'ready'],
      ]);
      const url = `${tls.baseUrl}/scm/flux/fleet-token.git`;
      expect(url).toMatch(/^https:\/\//);
      for (const x of [a, b]) {
        const secret = await x.http.expect(
          'GET',
          `/api/v1/namespaces/${ns}/secrets/flux-system`,
        );
        const data = secret.body.data as Record<string, string>;
        expect(Object.keys(data).sort()).toEqual([
          'ca.crt',
          'password',
          'username',
        ]);
        const text = (k: string) => Buffer.from(data[k], 'base64').toString();
        expect(text('username')).toBe('alice');
        expect(text('password')).toBe(TOKEN);
        expect(text('ca.crt').trim()).toBe(tls.caPem!.trim());
        const source = await x.http.expect(
          'GET',
          `/apis/source.toolkit.fluxcd.io/v1/namespaces/${ns}/gitrepositories/${ns}`,
        );
        expect(source.body.spec.url).toBe(url);
        expect(source.body.spec.secretRef).toEqual({ name: 'flux-system' });
      }
      // No key pair, no access key: not one request to the access-key API.
      expect(tls.state().accessKeys).toEqual([]);
      expect(tls.requests().filter(r => /\/keys\//.test(r.path))).toEqual([]);
      const history = execFileSync(
        'git',
        ['--git-dir', tls.repoPath('FLUX', 'fleet-token'), 'log', '-p'],
        { encoding: 'utf8' },
      );
      expect(history).toContain(`url: ${url}`);
      for (const text of [logs.join('\n'), JSON.stringify(first), history])
        expect(text).not.toContain(TOKEN);

      // Re-run: every cluster is done; nothing is written anywhere.
      for (const x of [a, b]) x.proxy.clearRequests();
      tls.clearRequests();
      const again = await run({ req, settings: on.settings });
      expect(again.result.clusters.map(r => r.state)).toEqual([
        'unchanged',
        'unchanged',
      ]);
      expect(again.result.changed).toBe(false);
      expect([a, b].flatMap(writes)).toEqual([]);
      expect(
        tls
          .requests()
          .filter(
            r => r.method !== 'GET' && !r.path.endsWith('/git-upload-pack'),
          )
          .map(r => `${r.method} ${r.path}`),
      ).toEqual([]);
      expect(logs.join('\n')).not.toContain(TOKEN);
    } finally {
      await Promise.all(sims.map(sim => sim.stop()));
      await tls.stop();
    }
  });

  it('dry run: reads Bitbucket and every cluster, writes nothing anywhere', async () => {
    const keys = accessKeys();
    const head = gitLog().split('\n')[0];
    for (const [repo, tokenAuth] of [
      ['fleet-dry', undefined],
      ['fleet-infra', {}],
    ] as const) {
      for (const x of clusters) x.proxy.clearRequests();
      bb.clearRequests();
      logs.length = 0;

      const { result, checkpoints } = await run({
        req: { ...request(repo), tokenAuth, dryRun: true },
      });

      expect(result.clusters.map(r => [r.cluster, r.state])).toEqual(
        NAMES.map(n => [n, 'planned']),
      );
      expect(result).toMatchObject({
        commitHash: '',
        revision: 'main@sha1:',
        repoContentsUrl: expect.stringContaining(`/repos/${repo}/`),
      });
      expect(checkpoints).toEqual([]);
      // It read: Bitbucket and each apiserver answered GETs, and only GETs (SSH: the
      // simulators of the first tests keep fetching the fleet repository, as Flux does).
      expect(bb.requests().length).toBeGreaterThan(0);
      expect(
        bb
          .requests()
          .filter(r => r.method !== 'GET' && r.method !== 'SSH')
          .map(r => `${r.method} ${r.path}`),
      ).toEqual([]);
      for (const x of clusters)
        expect(x.proxy.requests().length).toBeGreaterThan(0);
      expect(clusters.flatMap(writes)).toEqual([]);
      expect(logs.join('\n')).toContain(
        tokenAuth
          ? 'Would reuse repository FLUX/fleet-infra (it exists)'
          : 'Would create private repository FLUX/fleet-dry',
      );
      expect(logs.some(l => l.startsWith('info [fleet-c] Would'))).toBe(true);
      expect(logs.join('\n')).not.toContain(TOKEN);
    }
    expect(
      (bb.state().repos as { slug: string }[]).map(r => r.slug),
    ).not.toContain('fleet-dry');
    expect(accessKeys()).toEqual(keys);
    expect(gitLog().split('\n')[0]).toBe(head);
  });

  it('token auth with a project token fails naming "token", before anything is written (dry run too)', async () => {
    bb.addProjectToken({
      token: PROJECT_TOKEN,
      project: 'FLUX',
      permission: 'PROJECT_ADMIN',
    });
    for (const dryRun of [false, true]) {
      bb.clearRequests();
      for (const x of clusters) x.proxy.clearRequests();
      const req: FleetBootstrapRequest = {
        ...request('fleet-project-token', {
          double: bb,
          settings,
          token: PROJECT_TOKEN,
        }),
        tokenAuth: {},
        dryRun,
      };
      const error = await run({ req }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).toMatch(
        /^Invalid input "token": .*no Bitbucket user/,
      );
      expect(error?.message).not.toContain(PROJECT_TOKEN);
      // Flux (simulated) on the clusters of earlier tests keeps fetching over SSH: reads.
      const bitbucketWrites = bb
        .requests()
        .filter(
          r =>
            r.method !== 'GET' &&
            !(r.method === 'SSH' && r.query.service === 'git-upload-pack'),
        );
      expect(bitbucketWrites).toEqual([]);
      expect(clusters.flatMap(c => c.proxy.requests())).toEqual([]);
    }
  });
  it("keeps a folder's own manifests in the kustomization.yaml it writes, and refuses a Flux downgrade in Git", async () => {
    const slug = 'fleet-guard';
    bb.createRepo('FLUX', slug, { defaultBranch: 'main', initialCommit: true });
    const bare = bb.repoPath('FLUX', slug);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-guard-'));
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', work, ...args], { encoding: 'utf8' }).trim();
    const seed = (
      files: Record<string, string | undefined>,
      message: string,
    ) => {
      for (const [file, content] of Object.entries(files)) {
        const full = path.join(work, file);
        if (content === undefined) fs.rmSync(full);
        else {
          fs.mkdirSync(path.dirname(full), { recursive: true });
          fs.writeFileSync(full, content);
        }
      }
      git('add', '-A');
      git(
        '-c',
        'user.name=Ops',
        '-c',
        'user.email=ops@example.com',
        'commit',
        '-qm',
        message,
      );
      git('push', '-q', 'origin', 'main');
    };
    const head = () =>
      execFileSync('git', ['--git-dir', bare, 'rev-parse', 'main'], {
        encoding: 'utf8',
      }).trim();
    const newer = 'clusters/fleet-b/flux-system/gotk-components.yaml';
    try {
      execFileSync('git', ['clone', '-q', bare, work]);
      seed(
        {
          'clusters/fleet-a/flux-system/team-quota.yaml':
            'apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: team\n  namespace: flux-system\nspec:\n  hard:\n    pods: "50"\n',
          'clusters/fleet-a/flux-system/notes.txt': 'not a manifest\n',
          [newer]:
            '---\n# Flux Version: v2.99.0\n# Components: source-controller\n',
        },
        'Folders as the platform team left them',
      );
      const before = head();
      const keys = accessKeys();
      for (const x of clusters) x.proxy.clearRequests();
      const req = { ...request(slug), clusters: ['fleet-a', 'fleet-b'] };
      const refused = await run({ req }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(refused?.name).toBe('ConflictError');
      expect(refused?.message).toContain(
        `Flux v2.99.0 is in ${newer}; ${VERSION} would be a downgrade`,
      );
      expect(head()).toBe(before);
      expect(accessKeys()).toEqual(keys);
      expect(clusters.flatMap(writes)).toEqual([]);

      seed({ [newer]: undefined }, 'Drop the newer Flux');
      const { result } = await run({ req });
      expect(result.clusters.map(c => c.state)).toEqual(['ready', 'ready']);
      git('pull', '-q', 'origin', 'main');
      const kustomization = (cluster: string) =>
        fs.readFileSync(
          path.join(work, `clusters/${cluster}/flux-system/kustomization.yaml`),
          'utf8',
        );
      // As flux bootstrap writes it: every manifest of the folder, in lexical order.
      expect(kustomization('fleet-a')).toContain(
        'resources:\n- gotk-components.yaml\n- gotk-sync.yaml\n- team-quota.yaml\n',
      );
      expect(kustomization('fleet-a')).not.toContain('notes.txt');
      expect(kustomization('fleet-b')).toContain(
        'resources:\n- gotk-components.yaml\n- gotk-sync.yaml\n',
      );
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
