import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '@backstage/errors';
import {
  BitbucketDouble,
  buildFluxOperatorRelease,
  buildFluxUpgradeBundles,
  FluxOperatorReleaseServer,
  FluxSimulator,
  KubeApiserver,
  serveFluxOperatorReleases,
  startBitbucketDouble,
  startFluxSimulator,
  startKubeApiserver,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from '@flux-bootstrap/test-peers';
import { type KubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { adminKubeClient, seedProject } from './__testUtils__/peers';
import {
  actionConfig,
  configCluster,
  runAction,
  type RunnableAction,
} from './__testUtils__/actionHarness';
import { createFluxInstallAction } from './install';
import { createFluxPushManifestsAction } from './pushManifests';

// distribution: operator through the two actions as a template runs them: the Bitbucket double
// (REST and git over HTTP), a private kube-apiserver (the operator's CRDs are cluster-wide) with
// the Flux simulator's operator loop applying Git, the operator's install.yaml fixture served on
// loopback and pinned by sha256.

jest.setTimeout(240_000);

const TOKEN = 'canary-operator-action-token-58a1c3';
const NS = 'flux-system';
const PATH = 'clusters/prod';
const DIR = `${PATH}/${NS}`;
const FO = 'fluxcd.controlplane.io/v1';

let bb: BitbucketDouble;
let kube: KubeApiserver;
let sim: FluxSimulator;
let releases: FluxOperatorReleaseServer;
let admin: KubeClient;
let cacheDir: string;

beforeAll(async () => {
  const { from, to } = await buildFluxUpgradeBundles();
  [bb, kube, releases] = await Promise.all([
    startBitbucketDouble(),
    startKubeApiserver(),
    serveFluxOperatorReleases([buildFluxOperatorRelease()]),
  ]);
  seedProject(bb, { key: 'FLUX', name: 'Flux' }, [
    { name: 'alice', permission: 'PROJECT_ADMIN', token: TOKEN },
  ]);
  bb.createRepo('FLUX', 'fleet', { defaultBranch: 'main' });
  sim = await startFluxSimulator({
    kube: kube.info(),
    namespace: NS,
    intervalMs: 150,
    apply: true,
    operator: { bundles: [from, to] },
  });
  admin = await adminKubeClient(kube);
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'operator-action-'));
});

afterAll(async () => {
  admin?.close();
  await sim?.stop();
  await Promise.all([bb?.stop(), kube?.stop(), releases?.stop()]);
  if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
});

const config = () =>
  actionConfig({
    bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl },
    fluxBootstrap: {
      // The test apiserver is older than Flux supports; the documented override says it is fine.
      kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
      operator: {
        manifests: {
          baseUrl: releases.baseUrl,
          cacheDir,
          sha256: { 'v0.58.1': buildFluxOperatorRelease().sha256 },
        },
      },
    },
    clusters: [configCluster('prod', kube)],
  });

const produced: string[] = [];
const step = (
  action: RunnableAction,
  input: Record<string, unknown>,
  opts: { dryRun?: boolean } = {},
) => runAction(action, input, { dryRun: opts.dryRun, produced });

const repoUrl = () => `${bb.host}?project=FLUX&repo=fleet`;
const bare = () => bb.repoPath('FLUX', 'fleet');
const git = (...args: string[]) =>
  require('node:child_process')
    .execFileSync('git', ['--git-dir', bare(), ...args], { encoding: 'utf8' })
    .trim() as string;
const writes = () =>
  bb
    .requests()
    .filter(r => r.method !== 'GET' && !r.path.endsWith('/git-upload-pack'))
    .length;

const pushInput = (version: string) => ({
  repoUrl: repoUrl(),
  token: TOKEN,
  branch: 'main',
  path: PATH,
  tokenAuth: true,
  distribution: 'operator',
  fluxVersion: version,
});
const installInput = (version: string, revision?: string) => ({
  cluster: 'prod',
  syncUrl: bb.cloneUrls('FLUX', 'fleet').http,
  branch: 'main',
  path: PATH,
  revision,
  tokenAuth: true,
  token: TOKEN,
  username: 'alice',
  distribution: 'operator',
  fluxVersion: version,
  timeout: '2m',
});

describe('distribution: operator through flux:push-manifests and flux:install', () => {
  const push = () => createFluxPushManifestsAction({ config: config() });
  const install = () => createFluxInstallAction({ config: config() });

  it('refuses bad operator input naming the field, with no request sent', async () => {
    const before = bb.requests().length;
    for (const [input, field] of [
      [{ ...pushInput('2.9.x'), distribution: 'bootstrap' }, 'fluxVersion'],
      [
        {
          ...pushInput('v2.9.4'),
          distribution: 'bootstrap',
          multitenant: true,
        },
        'multitenant',
      ],
      [{ ...pushInput('v2.9.4'), clusterType: 'mainframe' }, 'clusterType'],
      [
        { ...pushInput('v2.9.4'), recurseSubmodules: true },
        'recurseSubmodules',
      ],
      [{ ...pushInput('v2.9.4'), distribution: 'helm' }, 'distribution'],
    ] as const) {
      const r = await step(push(), input);
      expect(r.error).toBeInstanceOf(InputError);
      expect(r.error?.message).toMatch(new RegExp(`"${field}"`));
    }
    const r = await step(install(), {
      ...installInput('v2.9.4'),
      operatorVersion: 'latest',
    });
    expect(r.error).toBeInstanceOf(InputError);
    expect(r.error?.message).toMatch(/"operatorVersion"/);
    expect(bb.requests().length).toBe(before);
    expect(releases.requests()).toEqual([]);
  });

  it('dry runs show the FluxInstance and send nothing', async () => {
    const before = bb.requests().length;
    const p = await step(push(), pushInput('2.9.x'), { dryRun: true });
    expect(p.error).toBeUndefined();
    expect(p.outputs.revision).toBe('main@sha1:');
    expect(p.outputs.files).toEqual([
      `${DIR}/flux-instance.yaml`,
      `${DIR}/kustomization.yaml`,
    ]);
    expect(p.logs.join('\n')).toMatch(
      /kind: FluxInstance[\s\S]*version: 2\.9\.x[\s\S]*ref: refs\/heads\/main/,
    );
    const i = await step(install(), installInput('2.9.x', 'main@sha1:'), {
      dryRun: true,
    });
    expect(i.error).toBeUndefined();
    expect(i.logs.join('\n')).toMatch(
      /Would install Flux 2\.9\.x through the Flux Operator v0\.58\.1[\s\S]*kind: FluxInstance/,
    );
    expect(bb.requests().length).toBe(before);
    expect(await admin.list(FO, 'FluxInstance').catch(() => [])).toEqual([]);
  });

  it('bootstraps through the operator, converges on a re-run, and upgrades by an edit of flux-instance.yaml', async () => {
    const p = await step(push(), pushInput('2.9.x'));
    expect(p.error).toBeUndefined();
    expect(p.outputs).toMatchObject({ changed: true, migrationPending: false });
    expect(git('log', '--format=%s', 'main').split('\n')).toEqual([
      'Add Flux Operator instance',
    ]);
    expect(git('ls-tree', '-r', '--name-only', 'main').split('\n')).toEqual([
      `${DIR}/flux-instance.yaml`,
      `${DIR}/kustomization.yaml`,
    ]);
    const i = await step(install(), installInput('2.9.x', p.outputs.revision));
    expect(i.error).toBeUndefined();
    expect(i.outputs).toMatchObject({
      fluxVersion: 'v2.9.4',
      ready: true,
      revision: `refs/heads/${p.outputs.revision}`,
    });
    expect(i.logs.join('\n')).toMatch(/Waiting for the FluxInstance/);
    const [inst] = (await admin.list(FO, 'FluxInstance')) as any[];
    expect(inst.spec.sync).toMatchObject({
      pullSecret: 'flux-system',
      ref: 'refs/heads/main',
    });
    expect(inst.status.conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'True' }),
    );

    // Re-run: no commit, nothing new on the cluster.
    const before = writes();
    const p2 = await step(push(), pushInput('2.9.x'));
    expect(p2.outputs).toMatchObject({ changed: false });
    expect(writes()).toBe(before);
    const i2 = await step(
      install(),
      installInput('2.9.x', p2.outputs.revision),
    );
    expect(i2.error).toBeUndefined();
    expect(i2.logs.join('\n')).not.toMatch(/\b[1-9]\d* (created|configured)/);

    // Version bump: only flux-instance.yaml changes; the operator reports the new version.
    const p3 = await step(push(), pushInput('2.10.x'));
    expect(p3.outputs.changed).toBe(true);
    expect(git('show', '--name-only', '--format=', 'main')).toBe(
      `${DIR}/flux-instance.yaml`,
    );
    const i3 = await step(
      install(),
      installInput('2.10.x', p3.outputs.revision),
    );
    expect(i3.error).toBeUndefined();
    expect(i3.outputs).toMatchObject({ fluxVersion: 'v2.10.0', ready: true });

    // Going back to flux bootstrap is refused, before any write.
    const back = await step(push(), {
      ...pushInput('v2.10.0'),
      distribution: 'bootstrap',
    });
    expect(back.error?.message).toMatch(
      /flux-instance\.yaml exists: Flux on this cluster is managed by the Flux Operator/,
    );
    const backInstall = await step(install(), {
      ...installInput('v2.10.0', p3.outputs.revision),
      distribution: 'bootstrap',
    });
    expect(backInstall.error?.message).toMatch(
      /moving back to flux bootstrap is not supported/,
    );
    expect(git('log', '--format=%s', 'main').split('\n')).toHaveLength(2);

    // The token never left through a log line, an output or an error.
    expect(produced.join('\n')).not.toContain(TOKEN);
    expect(produced.join('\n')).not.toContain(
      Buffer.from(TOKEN).toString('base64'),
    );
  });
});
