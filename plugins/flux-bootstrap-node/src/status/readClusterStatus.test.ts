import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  applyFluxBundle,
  BitbucketDouble,
  BootstrappedCluster,
  buildFluxBundle,
  FluxSimulator,
  KubeApiserver,
  KubeHttp,
  kubePath,
  mintToken,
  peerGitEnv,
  PolicyRule,
  startBootstrappedCluster,
  startFluxSimulator,
  startKubeApiserver,
  uniqueName,
} from '@flux-bootstrap/test-peers';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { ConfigReader } from '@backstage/config';
import { fluxBootstrapSettings } from '../config/settings';
import { createKubeClient } from '../kube/client';
import type { KubeClient, KubeObject } from '../kube/types';
import { createFluxStatusReader, FluxStatusReader } from './FluxStatusReader';
import { readClusterStatus } from './readClusterStatus';

/*
 * The status reader against a real kube-apiserver (a private one: the tests own its cluster-scoped
 * Flux CRDs), the Flux controller simulator (real git ls-remote against the Bitbucket double's
 * git http-backend) and the Bitbucket double's REST API for the branch head.
 */

jest.setTimeout(240_000);

const NS = 'flux-system';
const BB_TOKEN = 'bb-read-token-7f3a91c2e8';
const CANARY = 'canary-secret-value-1b9e7d44';
const FIELD_MANAGER = 'status-test';

let peers: BootstrappedCluster;
let kube: KubeApiserver;
let bb: BitbucketDouble;
let admin: KubeClient;
let sim: FluxSimulator | undefined;
let tmp: string;
let auditLog: string;
let readerToken: string;
let readerUser: string;
let reader: FluxStatusReader;
let cloneUrl: string;

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

function connection(token: string, extra: Record<string, unknown> = {}) {
  return {
    name: 'main',
    url: kube.url,
    serviceAccountToken: token,
    caData: kube.caPem,
    ...extra,
  };
}

function readerFor(
  clusters: Record<string, unknown>[],
  status: Record<string, unknown> = {},
): Promise<FluxStatusReader> {
  return createFluxStatusReader(
    fluxBootstrapSettings(
      new ConfigReader({
        kubernetes: {
          clusterLocatorMethods: [
            { type: 'config', clusters: clusters as any },
          ],
        },
        integrations: {
          bitbucketServer: [
            { host: bb.host, apiBaseUrl: bb.apiBaseUrl, token: BB_TOKEN },
          ],
        },
        fluxBootstrap: { status: { clusterTimeoutSeconds: 20, ...status } },
      }),
    ),
  );
}

/** Reads (bypassing the cache) until `pred` holds; the deadline only bounds a broken test. */
async function readUntil(
  pred: (s: ClusterBootstrapStatus) => boolean,
  what: string,
  r: FluxStatusReader = reader,
  cluster = 'main',
): Promise<ClusterBootstrapStatus> {
  const deadline = Date.now() + 90_000;
  let last: ClusterBootstrapStatus | undefined;
  while (Date.now() < deadline) {
    last = await r.read(cluster, { refresh: true });
    if (pred(last)) return last;
    await sleep(250);
  }
  throw new Error(
    `gave up waiting for ${what}; last status: ${JSON.stringify(
      last,
      null,
      2,
    )}\nsimulator: ${sim?.events().slice(-10).join('\n')}`,
  );
}

/** Commits a file on `branch` of the bare repository on the double's disk; returns the new head. */
function pushCommit(file: string, content: string): string {
  const bare = bb.repoPath('FLUX', 'fleet');
  const dir = fs.mkdtempSync(path.join(tmp, 'work-'));
  const env = {
    ...peerGitEnv(),
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.invalid',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.invalid',
  };
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: dir, env, encoding: 'utf8' }).trim();
  git('clone', '-q', '--branch', 'main', bare, '.');
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), content);
  git('add', '-A');
  git('commit', '-q', '-m', `update ${file}`);
  git('push', '-q', 'origin', 'main');
  const sha = git('rev-parse', 'HEAD');
  fs.rmSync(dir, { recursive: true, force: true });
  return sha;
}

function headOf(branch = 'main'): string {
  return execFileSync(
    'git',
    ['-C', bb.repoPath('FLUX', 'fleet'), 'rev-parse', `refs/heads/${branch}`],
    { env: peerGitEnv(), encoding: 'utf8' },
  ).trim();
}

async function applySync(spec: { suspend?: boolean } = {}) {
  await admin.apply(
    {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: NS, namespace: NS },
      spec: {
        interval: '1m0s',
        ref: { branch: 'main' },
        secretRef: { name: NS },
        url: cloneUrl,
      },
    },
    { fieldManager: FIELD_MANAGER },
  );
  await admin.apply(
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name: NS, namespace: NS },
      spec: {
        interval: '10m0s',
        path: './clusters/test',
        prune: true,
        sourceRef: { kind: 'GitRepository', name: NS },
        ...(spec.suspend ? { suspend: true } : {}),
      },
    },
    { fieldManager: FIELD_MANAGER },
  );
}

const READER_RULES: PolicyRule[] = [
  {
    apiGroups: ['apiextensions.k8s.io'],
    resources: ['customresourcedefinitions'],
    verbs: ['get'],
  },
  { apiGroups: [''], resources: ['namespaces'], verbs: ['list'] },
  {
    apiGroups: ['fluxcd.controlplane.io'],
    resources: ['fluxreports'],
    verbs: ['list'],
  },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list'] },
  {
    apiGroups: ['source.toolkit.fluxcd.io', 'kustomize.toolkit.fluxcd.io'],
    resources: ['gitrepositories', 'kustomizations'],
    verbs: ['get'],
  },
  // Allowed on purpose: the audit log then proves the reader never reads Secrets although it could.
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] },
];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'status-test-'));
  auditLog = path.join(tmp, 'audit.log');
  const policy = path.join(tmp, 'audit-policy.yaml');
  fs.writeFileSync(
    policy,
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      '  - level: Metadata',
      '    resources:',
      '      - group: ""',
      '        resources: ["secrets"]',
      '  - level: None',
      '',
    ].join('\n'),
  );
  // The peers only: each test below installs and syncs Flux itself, step by step.
  peers = await startBootstrappedCluster({
    token: BB_TOKEN,
    apiserver: {
      extraArgs: [
        `--audit-log-path=${auditLog}`,
        `--audit-policy-file=${policy}`,
      ],
    },
    flux: 'none',
    simulator: false,
    tokenRules: READER_RULES,
    tokenName: 'flux-status-reader',
  });
  ({ kube, bb } = peers);
  cloneUrl = peers.repo.cloneUrl;
  admin = await createKubeClient({
    name: 'admin',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });
  readerToken = peers.serviceAccountToken!;
  readerUser = peers.serviceAccountUser!;
  reader = await readerFor([connection(readerToken)]);
});

afterAll(async () => {
  await sim?.stop();
  await reader?.close();
  admin?.close();
  await peers?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('readClusterStatus on a real kube-apiserver', () => {
  it('reports not-installed when the Flux CRDs are absent', async () => {
    const s = await reader.read('main', { refresh: true });
    expect(s.state).toBe('not-installed');
    expect(s.reason).toContain('gitrepositories.source.toolkit.fluxcd.io');
    expect(s.components).toEqual([]);
    expect(s.inSync).toBeNull();
    // The API server's version is read even without Flux (the cluster picker judges it).
    expect(s.kubernetesVersion).toMatch(/^v1\.20\.\d+$/);
  });

  it('reports installing while the controllers are not available and nothing syncs yet', async () => {
    const bundle = await buildFluxBundle({ version: 'v2.9.4' });
    await applyFluxBundle(kube.info(), bundle, {
      namespace: NS,
      components: [
        'source-controller',
        'kustomize-controller',
        'helm-controller',
        'notification-controller',
      ],
    });
    const s = await reader.read('main', { refresh: true });
    expect(s.state).toBe('installing');
    expect(s.flux).toMatchObject({
      version: 'v2.9.4',
      distribution: 'flux',
      namespace: NS,
      bootstrapped: false,
      reportedBy: 'crd-labels',
    });
    expect(s.components.map(c => c.name)).toEqual([
      'helm-controller',
      'kustomize-controller',
      'notification-controller',
      'source-controller',
    ]);
    expect(
      s.components.find(c => c.name === 'source-controller'),
    ).toMatchObject({
      ready: false,
      tag: 'v1.9.4',
    });
    expect(s.reason).toContain(
      'controllers not ready: helm-controller, kustomize-controller, notification-controller, source-controller (not rolled out yet)',
    );
    expect(s.reason).toContain(
      'Kustomization flux-system/flux-system does not exist yet',
    );
  });

  it('reports ready and in sync once the controllers reconciled the head of the branch', async () => {
    pushCommit(
      'clusters/test/flux-system/kustomization.yaml',
      'resources: []\n',
    );
    await admin.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: NS, namespace: NS },
        stringData: { username: 'flux', password: BB_TOKEN, canary: CANARY },
      },
      { fieldManager: FIELD_MANAGER },
    );
    await applySync();
    sim = await startFluxSimulator({
      kube: kube.info(),
      namespace: NS,
      intervalMs: 200,
    });
    const s = await readUntil(x => x.state === 'ready', 'ready');
    const head = headOf();
    expect(s.components.every(c => c.ready)).toBe(true);
    expect(s.source).toMatchObject({
      kind: 'GitRepository',
      name: NS,
      namespace: NS,
      url: cloneUrl,
      branch: 'main',
      ready: true,
      revision: `main@sha1:${head}`,
    });
    expect(s.sync).toMatchObject({
      path: './clusters/test',
      ready: true,
      lastAppliedRevision: `main@sha1:${head}`,
      lastAttemptedRevision: `main@sha1:${head}`,
    });
    expect(Date.parse(s.sync!.lastTransitionTime!)).not.toBeNaN();
    expect(s.inSync).toBe(true);
    expect(s.repository).toMatchObject({
      host: bb.host,
      project: 'FLUX',
      slug: 'fleet',
      headCommit: head,
      browseUrl: `${bb.baseUrl}/projects/FLUX/repos/fleet/browse`,
      commitUrl: `${bb.baseUrl}/projects/FLUX/repos/fleet/commits/${head}`,
    });
    const json = JSON.stringify(s);
    for (const secret of [CANARY, BB_TOKEN, readerToken, kube.adminToken]) {
      expect(json).not.toContain(secret);
    }
  });

  it('says "behind" when Bitbucket has a newer commit than the applied one, and catches up', async () => {
    const applied = headOf();
    await sim!.stop();
    const newer = pushCommit('clusters/test/apps.yaml', 'kind: List\n');
    const behind = await reader.read('main', { refresh: true });
    expect(behind.state).toBe('ready');
    expect(behind.sync?.lastAppliedRevision).toBe(`main@sha1:${applied}`);
    expect(behind.inSync).toBe(false);
    expect(behind.repository?.headCommit).toBe(newer);
    sim = await startFluxSimulator({
      kube: kube.info(),
      namespace: NS,
      intervalMs: 200,
    });
    const caught = await readUntil(x => x.inSync === true, 'in sync again');
    expect(caught.sync?.lastAppliedRevision).toBe(`main@sha1:${newer}`);
  });

  it('reports failing with the source controller message, and recovers', async () => {
    sim!.failWith('source', 'ssh: handshake failed: knownhosts: key mismatch');
    const s = await readUntil(x => x.state === 'failing', 'failing source');
    expect(s.reason).toContain('GitRepository flux-system/flux-system');
    expect(s.reason).toContain('knownhosts: key mismatch');
    expect(s.source?.ready).toBe(false);
    sim!.clear();
    await readUntil(x => x.state === 'ready', 'ready after clearing');
  });

  it('reports failing with the sync message while applied stays at the last good revision', async () => {
    const good = headOf();
    sim!.failWith(
      'sync',
      'kustomize build failed: accumulating resources: missing file apps.yaml',
    );
    const newer = pushCommit('clusters/test/broken.yaml', 'broken: [\n');
    const s = await readUntil(
      x =>
        x.state === 'failing' &&
        x.sync?.lastAttemptedRevision === `main@sha1:${newer}`,
      'failing sync on the newer commit',
    );
    expect(s.reason).toContain('Kustomization flux-system/flux-system');
    expect(s.reason).toContain('missing file apps.yaml');
    expect(s.sync?.lastAppliedRevision).toBe(`main@sha1:${good}`);
    expect(s.inSync).toBe(false);
    sim!.clear();
    await readUntil(
      x => x.state === 'ready' && x.inSync === true,
      'ready after clearing',
    );
  });

  it('reports failing when a controller cannot roll out', async () => {
    sim!.failWith(
      'deployments',
      'Back-off pulling image "ghcr.io/fluxcd/source-controller:v1.9.4"',
      {
        deployment: 'source-controller',
      },
    );
    const s = await readUntil(x => x.state === 'failing', 'failing controller');
    expect(s.reason).toContain('source-controller');
    expect(s.reason).toContain('Back-off pulling image');
    expect(s.components.filter(c => !c.ready).map(c => c.name)).toEqual([
      'source-controller',
    ]);
    sim!.clear();
    await readUntil(x => x.state === 'ready', 'ready after clearing');
  });

  it('reports installing, not failing, while the Kustomization ran before its GitRepository had an artifact (ArtifactFailed)', async () => {
    // The controllers' part is written by hand here (the simulator is stopped), exactly as
    // source-controller and kustomize-controller write it during a bootstrap.
    await sim!.stop();
    sim = undefined;
    const http = new KubeHttp(kube.info());
    const ksPath = `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${NS}/kustomizations/${NS}`;
    const gitPath = `/apis/source.toolkit.fluxcd.io/v1/namespaces/${NS}/gitrepositories/${NS}`;
    const at = (secondsAgo: number) =>
      new Date(Date.now() - secondsAgo * 1000)
        .toISOString()
        .replace(/\.\d+Z$/, 'Z');
    const writeStatus = async (p: string, status: Record<string, unknown>) => {
      const current = await http.expect('GET', p);
      await http.expect('PATCH', `${p}/status`, {
        body: {
          status: {
            observedGeneration: current.body.metadata.generation,
            ...status,
          },
        },
        contentType: 'application/merge-patch+json',
      });
    };
    const artifactFailed = (message: string, secondsAgo: number) => ({
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'ArtifactFailed',
          message,
          lastTransitionTime: at(secondsAgo),
        },
      ],
    });
    const head = headOf();
    try {
      // 1. The source has fetched nothing yet; the Kustomization ran and found no artifact.
      await writeStatus(gitPath, {
        artifact: null,
        conditions: [
          {
            type: 'Reconciling',
            status: 'True',
            reason: 'Progressing',
            message: 'building artifact',
            lastTransitionTime: at(60),
          },
          {
            type: 'Ready',
            status: 'Unknown',
            reason: 'Progressing',
            message: 'building artifact',
            lastTransitionTime: at(60),
          },
        ],
      });
      await writeStatus(
        ksPath,
        artifactFailed('Source artifact not found, retrying in 30s', 50),
      );
      const early = await reader.read('main', { refresh: true });
      expect(early.state).toBe('installing');
      expect(early.reason).toContain(
        'Kustomization flux-system/flux-system: Source artifact not found, retrying in 30s (it ran before GitRepository flux-system/flux-system had an artifact',
      );
      expect(early.reason).toContain(
        'GitRepository flux-system/flux-system: building artifact',
      );

      // 2. The source has its artifact now; the Kustomization's status is still from before.
      const revision = `main@sha1:${head}`;
      await writeStatus(gitPath, {
        artifact: {
          revision,
          digest: `sha256:${'0'.repeat(64)}`,
          lastUpdateTime: at(20),
          path: `gitrepository/${NS}/${NS}/${head}.tar.gz`,
          size: 1024,
          url: `http://source-controller.${NS}.svc.cluster.local./gitrepository/${NS}/${NS}/${head}.tar.gz`,
        },
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Succeeded',
            message: `stored artifact for revision '${revision}'`,
            lastTransitionTime: at(20),
          },
        ],
      });
      const stale = await reader.read('main', { refresh: true });
      expect(stale.state).toBe('installing');
      expect(stale.source?.ready).toBe(true);

      // 3. The source has an artifact and kustomize-controller cannot get it: that is a failure.
      await writeStatus(
        ksPath,
        artifactFailed(
          `failed to download archive: GET http://source-controller.${NS}.svc.cluster.local./gitrepository/${NS}/${NS}/${head}.tar.gz: connection refused`,
          5,
        ),
      );
      const failing = await reader.read('main', { refresh: true });
      expect(failing.state).toBe('failing');
      expect(failing.reason).toContain('failed to download archive');
    } finally {
      http.close();
      sim = await startFluxSimulator({
        kube: kube.info(),
        namespace: NS,
        intervalMs: 200,
      });
    }
    await readUntil(x => x.state === 'ready', 'ready once Flux reconciled');
  });

  it('reports suspended when the sync Kustomization is suspended', async () => {
    await applySync({ suspend: true });
    const s = await readUntil(x => x.state === 'suspended', 'suspended');
    expect(s.reason).toContain(
      'Kustomization flux-system/flux-system is suspended',
    );
    expect(s.sync?.suspended).toBe(true);
    await applySync();
    await readUntil(x => x.state === 'ready', 'ready after resuming');
  });

  it('tells who manages Flux from the CRD labels, as flux check does', async () => {
    await admin.apply(
      {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: {
          name: 'gitrepositories.source.toolkit.fluxcd.io',
          labels: {
            'kustomize.toolkit.fluxcd.io/name': NS,
            'kustomize.toolkit.fluxcd.io/namespace': NS,
          },
        },
      },
      { fieldManager: 'kustomize-controller' },
    );
    const s = await reader.read('main', { refresh: true });
    expect(s.flux).toMatchObject({
      managedBy: 'flux bootstrap',
      bootstrapped: true,
    });
  });

  it('uses the FluxReport when Flux Operator publishes one', async () => {
    await admin.apply(
      {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: 'fluxreports.fluxcd.controlplane.io' },
        spec: {
          group: 'fluxcd.controlplane.io',
          names: {
            kind: 'FluxReport',
            listKind: 'FluxReportList',
            plural: 'fluxreports',
            singular: 'fluxreport',
          },
          scope: 'Namespaced',
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  'x-kubernetes-preserve-unknown-fields': true,
                },
              },
            },
          ],
        },
      },
      { fieldManager: FIELD_MANAGER },
    );
    // wait until the new kind is served
    for (let i = 0; i < 100; i++) {
      if (
        await admin.resourceFor('fluxcd.controlplane.io/v1', 'FluxReport', {
          refresh: true,
        })
      )
        break;
      await sleep(100);
    }
    await admin.apply(
      {
        apiVersion: 'fluxcd.controlplane.io/v1',
        kind: 'FluxReport',
        metadata: { name: 'flux', namespace: NS },
        spec: {
          distribution: {
            status: 'Installed',
            version: 'v2.9.5',
            managedBy: 'flux-operator',
          },
          components: [
            {
              name: 'kustomize-controller',
              ready: true,
              status: 'Current Deployment is available. Replicas: 1',
              image: 'ghcr.io/fluxcd/kustomize-controller:v1.9.5',
            },
            {
              name: 'source-controller',
              ready: false,
              status: 'Failed Progress deadline exceeded',
              image: 'ghcr.io/fluxcd/source-controller:v1.9.5',
            },
          ],
          sync: {
            id: `kustomization/${NS}`,
            path: 'clusters/test',
            ready: true,
            source: cloneUrl,
          },
        },
      },
      { fieldManager: FIELD_MANAGER },
    );
    try {
      // the reader's client re-discovers the new kind on a later read
      const s = await readUntil(
        x => x.flux?.reportedBy === 'flux-report',
        'the FluxReport to be read',
      );
      expect(s.flux).toMatchObject({
        reportedBy: 'flux-report',
        version: 'v2.9.5',
        managedBy: 'flux-operator',
        namespace: NS,
      });
      expect(s.components).toEqual([
        {
          name: 'kustomize-controller',
          ready: true,
          image: 'ghcr.io/fluxcd/kustomize-controller:v1.9.5',
          tag: 'v1.9.5',
        },
        {
          name: 'source-controller',
          ready: false,
          image: 'ghcr.io/fluxcd/source-controller:v1.9.5',
          tag: 'v1.9.5',
          message: 'Failed Progress deadline exceeded',
        },
      ]);
      expect(s.state).toBe('failing');
      expect(s.reason).toContain(
        'source-controller: Failed Progress deadline exceeded',
      );
      // revisions still come from the live sync objects
      expect(s.sync?.lastAppliedRevision).toBe(`main@sha1:${headOf()}`);
    } finally {
      await admin.delete({
        apiVersion: 'fluxcd.controlplane.io/v1',
        kind: 'FluxReport',
        name: 'flux',
        namespace: NS,
      });
    }
  });

  it('never read a Secret (the audit log of the apiserver shows none for the reader)', async () => {
    // Another read, then give the audit backend a moment to flush.
    await reader.read('main', { refresh: true });
    await sleep(1500);
    const events = fs
      .readFileSync(auditLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(line => JSON.parse(line));
    // The log works: the simulator (admin) read the flux-system Secret.
    expect(
      events.some(
        e => e.objectRef?.resource === 'secrets' && e.objectRef?.name === NS,
      ),
    ).toBe(true);
    expect(events.filter(e => e.user?.username === readerUser)).toEqual([]);
  });

  describe('forbidden', () => {
    it('reports forbidden (403) for a token without read access', async () => {
      const token = await mintToken(kube.info(), {
        name: uniqueName('status-nothing'),
      });
      const r = await readerFor([connection(token)]);
      const s = await r.read('main', { refresh: true });
      await r.close();
      expect(s.state).toBe('forbidden');
      expect(s.reason).toContain('403');
      expect(s.reason).toContain('customresourcedefinitions');
      expect(s.reason).not.toContain(token);
    });

    it('reports forbidden naming what is missing when only part of the reads is allowed', async () => {
      const token = await mintToken(kube.info(), {
        name: uniqueName('status-crd-only'),
        clusterRules: [READER_RULES[0]],
      });
      const r = await readerFor([connection(token)]);
      const s = await r.read('main', { refresh: true });
      await r.close();
      expect(s.state).toBe('forbidden');
      expect(s.reason).toContain('list Deployment in namespace flux-system');
      expect(s.reason).toContain('403');
      expect(s.flux?.version).toBe('v2.9.4');
    });

    it('reports forbidden (401) for a token the API server does not accept', async () => {
      const bogus = 'not-a-valid-token-4c1d9e2f7a';
      const r = await readerFor([connection(bogus)]);
      const s = await r.read('main', { refresh: true });
      await r.close();
      expect(s.state).toBe('forbidden');
      expect(s.reason).toContain('401');
      expect(JSON.stringify(s)).not.toContain(bogus);
    });
  });

  describe('unreachable', () => {
    it('reports a closed port as unreachable with the reason', async () => {
      const port = await new Promise<number>(resolve => {
        const srv = net.createServer();
        srv.listen(0, '127.0.0.1', () => {
          const p = (srv.address() as net.AddressInfo).port;
          srv.close(() => resolve(p));
        });
      });
      const r = await readerFor([
        connection(readerToken, { url: `https://127.0.0.1:${port}` }),
      ]);
      const s = await r.read('main', { refresh: true });
      await r.close();
      expect(s.state).toBe('unreachable');
      expect(s.reason).toMatch(/connection refused/i);
    });

    it('reports a TLS failure (wrong CA) as unreachable with the reason', async () => {
      const other = await startKubeApiserver();
      try {
        const r = await readerFor([
          connection(readerToken, { caData: other.caPem }),
        ]);
        const s = await r.read('main', { refresh: true });
        await r.close();
        expect(s.state).toBe('unreachable');
        expect(s.reason).toMatch(/TLS|certificate/i);
      } finally {
        await other.stop();
      }
    });

    it('gives up on a cluster that never answers at the per-cluster deadline, aborting its requests, without holding back the others', async () => {
      const sockets: net.Socket[] = [];
      const closed: boolean[] = [];
      const blackHole = net.createServer(socket => {
        const i = sockets.push(socket) - 1;
        closed[i] = false;
        socket.on('close', () => {
          closed[i] = true;
        });
        socket.on('error', () => {});
        // read and drop whatever arrives (the TLS hello) so that the client's close is seen
        socket.resume();
      });
      await new Promise<void>(resolve =>
        blackHole.listen(0, '127.0.0.1', resolve),
      );
      const port = (blackHole.address() as net.AddressInfo).port;
      const r = await readerFor(
        [
          {
            ...connection(readerToken),
            name: 'dead',
            url: `https://127.0.0.1:${port}`,
          },
          connection(readerToken),
        ],
        { clusterTimeoutSeconds: 2 },
      );
      try {
        const [dead, alive] = await r.readMany(['dead', 'main'], {
          refresh: true,
        });
        expect(dead.state).toBe('unreachable');
        expect(dead.reason).toBe(
          `The API server at https://127.0.0.1:${port} did not answer within 2 s.`,
        );
        expect(alive.state).toBe('ready');
        expect(sockets.length).toBeGreaterThan(0);
        // the dead cluster's connection was released, not left hanging
        for (let i = 0; i < 50 && closed.some(c => !c); i++) await sleep(100);
        expect(closed.every(Boolean)).toBe(true);
      } finally {
        await r.close();
        for (const s of sockets) s.destroy();
        await new Promise(resolve => blackHole.close(resolve));
      }
    });
  });

  it('finds Flux in a namespace other than flux-system by its labels', async () => {
    const bundle = await buildFluxBundle({ version: 'v2.9.4' });
    await applyFluxBundle(kube.info(), bundle, {
      namespace: 'gitops',
      components: ['source-controller', 'kustomize-controller'],
    });
    const token = await mintToken(kube.info(), {
      name: uniqueName('status-gitops'),
      clusterRules: READER_RULES,
    });
    const r = await readerFor([connection(token)]);
    const s = await r.read('main', { refresh: true });
    await r.close();
    expect(s.flux?.namespace).toBe('gitops');
    expect(s.components.map(c => c.name)).toEqual([
      'kustomize-controller',
      'source-controller',
    ]);
    expect(s.state).toBe('installing');
    expect(s.reason).toContain(
      'Kustomization gitops/gitops does not exist yet',
    );
  });
});

describe('older Flux APIs and an apiserver that goes away', () => {
  let legacy: KubeApiserver;
  let client: KubeClient;

  afterAll(async () => {
    client?.close();
    await legacy?.stop();
  });

  it('falls back to v1beta2 sync objects, then reports unreachable once the apiserver stops', async () => {
    legacy = await startKubeApiserver();
    client = await createKubeClient({
      name: 'legacy',
      url: legacy.url,
      token: legacy.adminToken,
      caPem: legacy.caPem,
      skipTLSVerify: false,
      source: 'config',
    });
    const crd = (group: string, kind: string, plural: string): KubeObject => ({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: {
        name: `${plural}.${group}`,
        labels: {
          'app.kubernetes.io/version': 'v0.41.2',
          'app.kubernetes.io/part-of': 'flux',
          'app.kubernetes.io/instance': NS,
        },
      },
      spec: {
        group,
        names: {
          kind,
          listKind: `${kind}List`,
          plural,
          singular: kind.toLowerCase(),
        },
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1beta2',
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: {
                type: 'object',
                'x-kubernetes-preserve-unknown-fields': true,
              },
            },
          },
        ],
      },
    });
    await client.apply(
      crd('source.toolkit.fluxcd.io', 'GitRepository', 'gitrepositories'),
      { fieldManager: FIELD_MANAGER },
    );
    await client.apply(
      crd('kustomize.toolkit.fluxcd.io', 'Kustomization', 'kustomizations'),
      { fieldManager: FIELD_MANAGER },
    );
    for (let i = 0; i < 100; i++) {
      if (
        await client.resourceFor(
          'kustomize.toolkit.fluxcd.io/v1beta2',
          'Kustomization',
          { refresh: true },
        )
      )
        break;
      await sleep(100);
    }
    await client.ensureNamespace(NS, { fieldManager: FIELD_MANAGER });
    const http = new KubeHttp(legacy.info());
    const rev = 'main/0123456789abcdef0123456789abcdef01234567';
    const ready = {
      type: 'Ready',
      status: 'True',
      reason: 'ReconciliationSucceeded',
      message: `Applied revision: ${rev}`,
      lastTransitionTime: '2026-01-02T03:04:05Z',
    };
    for (const [apiVersion, kind, spec, status] of [
      [
        'source.toolkit.fluxcd.io/v1beta2',
        'GitRepository',
        { url: 'https://x.example/y.git', ref: { branch: 'main' } },
        { artifact: { revision: rev }, conditions: [ready] },
      ],
      [
        'kustomize.toolkit.fluxcd.io/v1beta2',
        'Kustomization',
        { path: './', sourceRef: { kind: 'GitRepository', name: NS } },
        {
          lastAppliedRevision: rev,
          lastAttemptedRevision: rev,
          conditions: [ready],
        },
      ],
    ] as const) {
      await client.apply(
        { apiVersion, kind, metadata: { name: NS, namespace: NS }, spec },
        { fieldManager: FIELD_MANAGER },
      );
      const res = await http.request(
        'PATCH',
        `${kubePath({
          apiVersion,
          resource:
            kind === 'GitRepository' ? 'gitrepositories' : 'kustomizations',
          namespace: NS,
          name: NS,
        })}/status`,
        { body: { status }, contentType: 'application/merge-patch+json' },
      );
      expect(res.status).toBe(200);
    }
    http.close();
    const s = await readClusterStatus(client, { cluster: 'legacy' });
    expect(s.flux?.version).toBe('v0.41.2');
    expect(s.source).toMatchObject({
      url: 'https://x.example/y.git',
      branch: 'main',
      revision: rev,
      ready: true,
    });
    expect(s.sync).toMatchObject({
      lastAppliedRevision: rev,
      ready: true,
      path: './',
    });
    // no controllers in this cluster: installed, waiting for them
    expect(s.state).toBe('installing');

    await legacy.stopApiserver();
    const down = await readClusterStatus(client, { cluster: 'legacy' });
    expect(down.state).toBe('unreachable');
    expect(down.reason).toMatch(/connection refused/i);
  });
});
