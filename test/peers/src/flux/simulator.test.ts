import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGitHttpServer, GitHttpServer } from '../git';
import { BitbucketDouble, startBitbucketDouble } from '../bitbucket';
import { KubeHttp, kubePath } from '../kube/http';
import { createTestNamespace } from '../kube/isolation';
import { KubeApiserver, startKubeApiserver } from '../kube/apiserver';
import { getSharedKubeApiserver } from '../kube/shared';
import { isEncryptedPrivateKey } from './gitRemote';
import { applyFluxBundle } from './applyBundle';
import { buildFluxBundle } from './bundle';
import { FluxSimulator, startFluxSimulator } from './simulator';

jest.setTimeout(120_000);

const kube = getSharedKubeApiserver();
const api = new KubeHttp(kube);
afterAll(() => api.close());

const gitEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.invalid',
};
const git = (args: string[], cwd?: string) =>
  execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' }).trim();

/** Commits files onto `branch` of a bare repository (through a local clone) and returns the new head. */
function commitFiles(
  bareRepo: string,
  branch: string,
  files: Record<string, string>,
  message = 'change',
): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-work-'));
  try {
    git(['init', '--quiet', `--initial-branch=${branch}`, work]);
    git(
      ['fetch', '--quiet', bareRepo, `+refs/heads/*:refs/remotes/origin/*`],
      work,
    );
    try {
      git(['checkout', '--quiet', '-B', branch, `origin/${branch}`], work);
    } catch {
      // new branch
    }
    for (const [f, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(work, f)), { recursive: true });
      fs.writeFileSync(path.join(work, f), content);
    }
    git(['add', '-A'], work);
    git(['commit', '--quiet', '-m', message], work);
    git(['push', '--quiet', bareRepo, `HEAD:refs/heads/${branch}`], work);
    return git(['rev-parse', 'HEAD'], work);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function get(p: string) {
  return (await api.expect('GET', p)).body;
}

async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  sim?: FluxSimulator,
): Promise<T> {
  const deadline = Date.now() + 30_000;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what} (last: ${String(last)})\n${
          sim?.events().slice(-15).join('\n') ?? ''
        }`,
      );
    }
    await new Promise(r => setTimeout(r, 100));
  }
}

const ready = (obj: any) =>
  obj?.status?.conditions?.find((c: any) => c.type === 'Ready');

interface Cluster {
  ns: string;
  grPath: string;
  ksPath: string;
  secretPath: string;
}

let bundle: Awaited<ReturnType<typeof buildFluxBundle>>;
beforeAll(async () => {
  bundle = await buildFluxBundle({ version: 'v2.9.4' });
});

/** A namespace with Flux (fixture) installed, a Secret and the two sync objects of flux bootstrap. */
async function fluxCluster(
  url: string,
  secret: Record<string, string>,
  opts: { path?: string; branch?: string } = {},
): Promise<Cluster> {
  const ns = await createTestNamespace(kube, 'sim');
  await applyFluxBundle(kube, bundle, { namespace: ns });
  const secretPath = kubePath({
    apiVersion: 'v1',
    resource: 'secrets',
    namespace: ns,
    name: ns,
  });
  await api.apply(secretPath, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: ns, namespace: ns },
    stringData: secret,
  });
  const grPath = kubePath({
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    resource: 'gitrepositories',
    namespace: ns,
    name: ns,
  });
  await api.apply(
    grPath,
    {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: ns, namespace: ns },
      spec: {
        interval: '1m0s',
        ref: { branch: opts.branch ?? 'main' },
        secretRef: { name: ns },
        url,
      },
    },
    { fieldManager: 'flux' },
  );
  const ksPath = kubePath({
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    resource: 'kustomizations',
    namespace: ns,
    name: ns,
  });
  await api.apply(
    ksPath,
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name: ns, namespace: ns },
      spec: {
        interval: '10m0s',
        path: opts.path ?? './clusters/dev',
        prune: true,
        sourceRef: { kind: 'GitRepository', name: ns },
      },
    },
    { fieldManager: 'flux' },
  );
  return { ns, grPath, ksPath, secretPath };
}

describe('FluxControllerSimulator over HTTPS (real git http-backend, TLS, Basic auth)', () => {
  let server: GitHttpServer;
  let repoPath: string;
  let url: string;
  const PASSWORD = 'canary-password-3f9a1c';
  beforeAll(async () => {
    server = await startGitHttpServer({ tls: true });
    server.addToken({ token: PASSWORD, user: 'flux', access: 'read' });
    const repo = server.createRepo('fleet', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    repoPath = repo.path;
    url = repo.url;
    commitFiles(
      repoPath,
      'main',
      { 'clusters/dev/flux-system/kustomization.yaml': 'resources: []\n' },
      'Add Flux sync manifests',
    );
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('turns GitRepository + Kustomization Ready with the real branch head and marks the Flux Deployments available', async () => {
    const c = await fluxCluster(url, {
      username: 'flux',
      password: PASSWORD,
      'ca.crt': server.caPem!,
    });
    const sim = await startFluxSimulator({
      kube,
      namespace: c.ns,
      intervalMs: 200,
    });
    try {
      const head = git(['rev-parse', 'refs/heads/main'], repoPath);
      const expected = `main@sha1:${head}`;
      const gr = await eventually(
        'GitRepository Ready',
        async () => {
          const o = await get(c.grPath);
          return (
            ready(o)?.status === 'True' &&
            o.status.artifact?.revision === expected &&
            o
          );
        },
        sim,
      );
      expect(gr.status.observedGeneration).toBe(gr.metadata.generation);
      expect(ready(gr)).toMatchObject({
        reason: 'Succeeded',
        message: `stored artifact for revision '${expected}'`,
      });
      expect(ready(gr).lastTransitionTime).toMatch(/^\d{4}-\d\d-\d\dT/);

      const ks = await eventually(
        'Kustomization Ready',
        async () => {
          const o = await get(c.ksPath);
          return ready(o)?.status === 'True' && o;
        },
        sim,
      );
      expect(ks.status).toMatchObject({
        lastAppliedRevision: expected,
        lastAttemptedRevision: expected,
        observedGeneration: ks.metadata.generation,
      });
      expect(ready(ks).message).toBe(`Applied revision: ${expected}`);

      const deps = await eventually(
        'Deployments available',
        async () => {
          const list = (
            await api.expect(
              'GET',
              kubePath({
                apiVersion: 'apps/v1',
                resource: 'deployments',
                namespace: c.ns,
              }),
            )
          ).body.items;
          return (
            list.length === 7 &&
            list.every((d: any) => d.status?.availableReplicas === 1) &&
            list
          );
        },
        sim,
      );
      for (const d of deps) {
        expect(d.status).toMatchObject({
          replicas: 1,
          readyReplicas: 1,
          updatedReplicas: 1,
          availableReplicas: 1,
          observedGeneration: d.metadata.generation,
        });
        expect(
          d.status.conditions.find((x: any) => x.type === 'Available').status,
        ).toBe('True');
      }

      // git really authenticated as the Secret's user, over TLS with the Secret's CA.
      const reads = server.requests().filter(r => r.service === 'upload-pack');
      expect(reads.length).toBeGreaterThan(0);
      expect(reads.every(r => r.status === 401 || r.user === 'flux')).toBe(
        true,
      );
      expect(reads.some(r => r.status === 200 && r.user === 'flux')).toBe(true);

      // A new commit becomes the new revision.
      const next = commitFiles(repoPath, 'main', {
        'clusters/dev/apps.yaml': 'apps: true\n',
      });
      await eventually(
        'new revision',
        async () =>
          (await get(c.ksPath)).status?.lastAppliedRevision ===
          `main@sha1:${next}`,
        sim,
      );
      expect((await get(c.grPath)).status.artifact.revision).toBe(
        `main@sha1:${next}`,
      );
      expect(JSON.stringify(sim.events())).not.toContain(PASSWORD);
    } finally {
      await sim.stop();
    }
  });

  it('reports injected failures with their message and recovers after clear()', async () => {
    const c = await fluxCluster(url, {
      username: 'flux',
      password: PASSWORD,
      'ca.crt': server.caPem!,
    });
    const sim = await startFluxSimulator({
      kube,
      namespace: c.ns,
      intervalMs: 200,
    });
    try {
      const ok = await eventually(
        'Kustomization Ready',
        async () => {
          const o = await get(c.ksPath);
          return ready(o)?.status === 'True' && o;
        },
        sim,
      );
      const applied = ok.status.lastAppliedRevision;

      sim.failWith('source', 'simulated: unable to clone');
      const grFail = await eventually(
        'GitRepository Ready=False',
        async () => {
          const o = await get(c.grPath);
          return ready(o)?.status === 'False' && o;
        },
        sim,
      );
      expect(ready(grFail)).toMatchObject({
        reason: 'GitOperationFailed',
        message: 'simulated: unable to clone',
      });
      expect(grFail.status.artifact.revision).toBe(applied); // the last artifact stays, like source-controller
      sim.clear();
      await eventually(
        'GitRepository Ready again',
        async () => ready(await get(c.grPath))?.status === 'True',
        sim,
      );

      sim.failWith('sync', 'simulated: Deployment/default/x dry-run failed');
      const ksFail = await eventually(
        'Kustomization Ready=False',
        async () => {
          const o = await get(c.ksPath);
          return ready(o)?.status === 'False' && o;
        },
        sim,
      );
      expect(ready(ksFail)).toMatchObject({
        reason: 'ReconciliationFailed',
        message: 'simulated: Deployment/default/x dry-run failed',
      });
      expect(ksFail.status.lastAttemptedRevision).toBe(applied);
      expect(ksFail.status.lastAppliedRevision).toBe(applied);
      sim.clear();
      await eventually(
        'Kustomization Ready again',
        async () => ready(await get(c.ksPath))?.status === 'True',
        sim,
      );

      sim.failWith('deployments', 'Back-off pulling image', {
        deployment: 'helm-controller',
      });
      const depPath = (n: string) =>
        kubePath({
          apiVersion: 'apps/v1',
          resource: 'deployments',
          namespace: c.ns,
          name: n,
        });
      const helm = await eventually(
        'helm-controller unavailable',
        async () => {
          const o = await get(depPath('helm-controller'));
          const available = o.status?.conditions?.find(
            (x: any) => x.type === 'Available',
          );
          return available?.status === 'False' && o;
        },
        sim,
      );
      expect(
        helm.status.conditions.find((x: any) => x.type === 'Available'),
      ).toMatchObject({ status: 'False', message: 'Back-off pulling image' });
      expect(helm.status.availableReplicas).toBeUndefined(); // 0 is omitted by the apiserver
      expect(helm.status.unavailableReplicas).toBe(1);
      expect(
        (await get(depPath('source-controller'))).status.availableReplicas,
      ).toBe(1);
      sim.clear();
      const back = await eventually(
        'helm-controller available again',
        async () => {
          const o = await get(depPath('helm-controller'));
          return o.status?.availableReplicas === 1 && o;
        },
        sim,
      );
      expect(back.status.unavailableReplicas).toBeUndefined();
    } finally {
      await sim.stop();
    }
  });

  it('reports a wrong password, a missing branch and a missing path like the controllers, without leaking the password', async () => {
    const WRONG = 'canary-wrong-9d8e7f';
    const c = await fluxCluster(url, {
      username: 'flux',
      password: WRONG,
      'ca.crt': server.caPem!,
    });
    const sim = await startFluxSimulator({
      kube,
      namespace: c.ns,
      intervalMs: 200,
    });
    try {
      const gr = await eventually(
        'auth failure',
        async () => {
          const o = await get(c.grPath);
          return ready(o)?.status === 'False' && o;
        },
        sim,
      );
      expect(ready(gr).reason).toBe('GitOperationFailed');
      expect(ready(gr).message).toContain(
        `failed to checkout and determine revision: unable to clone '${url}'`,
      );
      expect(ready(gr).message).toMatch(/Authentication failed|401/);
      expect(JSON.stringify(gr)).not.toContain(WRONG);
      // The Kustomization is reconciled after its source, in the same pass or the next one.
      const ksWithoutArtifact = await eventually(
        'kustomization without artifact',
        async () => {
          const o = await get(c.ksPath);
          return ready(o)?.status === 'False' && o;
        },
        sim,
      );
      expect(ready(ksWithoutArtifact)).toMatchObject({
        status: 'False',
        message: 'Source artifact not found, retrying in 30s',
      });

      // Fix the Secret, point at a branch that does not exist.
      await api.apply(c.secretPath, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: c.ns, namespace: c.ns },
        stringData: {
          username: 'flux',
          password: PASSWORD,
          'ca.crt': server.caPem!,
        },
      });
      await api.request('PATCH', c.grPath, {
        body: { spec: { ref: { branch: 'nope' } } },
        contentType: 'application/merge-patch+json',
      });
      await eventually(
        'missing branch',
        async () =>
          /couldn't find remote ref "refs\/heads\/nope"/.test(
            ready(await get(c.grPath))?.message ?? '',
          ),
        sim,
      );

      // Right branch, but the Kustomization's path does not exist in the commit.
      await api.request('PATCH', c.grPath, {
        body: { spec: { ref: { branch: 'main' } } },
        contentType: 'application/merge-patch+json',
      });
      await api.request('PATCH', c.ksPath, {
        body: { spec: { path: './clusters/prod' } },
        contentType: 'application/merge-patch+json',
      });
      const ks = await eventually(
        'missing path',
        async () => {
          const o = await get(c.ksPath);
          return (
            /kustomization path not found/.test(ready(o)?.message ?? '') && o
          );
        },
        sim,
      );
      expect(ready(ks).status).toBe('False');
      expect(ks.status.lastAttemptedRevision).toMatch(
        /^main@sha1:[0-9a-f]{40}$/,
      );
      expect(ks.status.lastAppliedRevision).toBeUndefined();
    } finally {
      await sim.stop();
    }
  });

  it('honours spec.suspend', async () => {
    const c = await fluxCluster(url, {
      username: 'flux',
      password: PASSWORD,
      'ca.crt': server.caPem!,
    });
    const sim = await startFluxSimulator({
      kube,
      namespace: c.ns,
      intervalMs: 200,
    });
    try {
      await eventually(
        'Ready',
        async () => ready(await get(c.ksPath))?.status === 'True',
        sim,
      );
      const before = (await get(c.grPath)).status.artifact.revision;
      await api.request('PATCH', c.grPath, {
        body: { spec: { suspend: true } },
        contentType: 'application/merge-patch+json',
      });
      await api.request('PATCH', c.ksPath, {
        body: { spec: { suspend: true } },
        contentType: 'application/merge-patch+json',
      });
      await sim.reconcileNow(); // a pass that may have started before the patch
      const next = commitFiles(repoPath, 'main', {
        'clusters/dev/suspended.yaml': 'x: 1\n',
      });
      await sim.reconcileNow();
      await sim.reconcileNow();
      const gr = await get(c.grPath);
      expect(gr.status.artifact.revision).toBe(before);
      expect(gr.status.observedGeneration).toBe(gr.metadata.generation - 1);
      expect((await get(c.ksPath)).status.lastAppliedRevision).toBe(before);

      await api.request('PATCH', c.grPath, {
        body: { spec: { suspend: false } },
        contentType: 'application/merge-patch+json',
      });
      await api.request('PATCH', c.ksPath, {
        body: { spec: { suspend: false } },
        contentType: 'application/merge-patch+json',
      });
      await eventually(
        'resumed',
        async () =>
          (await get(c.ksPath)).status?.lastAppliedRevision ===
          `main@sha1:${next}`,
        sim,
      );
    } finally {
      await sim.stop();
    }
  });
});

describe('FluxControllerSimulator across an apiserver outage', () => {
  let server: GitHttpServer;
  let own: KubeApiserver;
  beforeAll(async () => {
    [server, own] = await Promise.all([
      startGitHttpServer(),
      startKubeApiserver(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([server?.stop(), own?.stop()]);
  });

  it('keeps reconciling after the apiserver comes back', async () => {
    server.addToken({ token: 'outage-token', user: 'flux', access: 'read' });
    const repo = server.createRepo('outage', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    const ns = await createTestNamespace(own, 'outage');
    await applyFluxBundle(own, bundle, {
      namespace: ns,
      components: ['source-controller', 'kustomize-controller'],
    });
    const ownApi = new KubeHttp(own);
    const grPath = kubePath({
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      resource: 'gitrepositories',
      namespace: ns,
      name: ns,
    });
    await ownApi.apply(
      kubePath({
        apiVersion: 'v1',
        resource: 'secrets',
        namespace: ns,
        name: ns,
      }),
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: ns, namespace: ns },
        stringData: { username: 'flux', password: 'outage-token' },
      },
    );
    await ownApi.apply(grPath, {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: ns, namespace: ns },
      spec: {
        interval: '1m0s',
        ref: { branch: 'main' },
        secretRef: { name: ns },
        url: repo.url,
      },
    });
    const sim = await startFluxSimulator({
      kube: own,
      namespace: ns,
      intervalMs: 200,
    });
    const revision = async () => {
      const o = (await ownApi.request('GET', grPath)).body;
      return ready(o)?.status === 'True'
        ? o.status.artifact.revision
        : undefined;
    };
    try {
      const first = git(['rev-parse', 'refs/heads/main'], repo.path);
      await eventually(
        'Ready before the outage',
        async () => (await revision()) === `main@sha1:${first}`,
        sim,
      );
      await own.stopApiserver();
      await eventually(
        'a failed pass during the outage',
        async () =>
          sim
            .events()
            .some(e => / source: .*(ECONNREFUSED|socket hang up)/.test(e)),
        sim,
      );
      const next = commitFiles(repo.path, 'main', {
        'after-outage.txt': 'x\n',
      });
      await own.startApiserver();
      await eventually(
        'the new head after the outage',
        async () => (await revision()) === `main@sha1:${next}`,
        sim,
      );
      expect(next).not.toBe(first);
      expect(sim.events().join('\n')).toMatch(
        /GitRepository: Ready=True .*main@sha1:/,
      );
    } finally {
      await sim.stop();
      ownApi.close();
    }
  });
});

describe('FluxControllerSimulator through the Bitbucket double (SSH access keys, HTTP access tokens)', () => {
  let bb: BitbucketDouble;
  let repoPath: string;
  let identity: string;
  let sshUrl: string;
  let httpUrl: string;
  let keyDir: string;
  let knownHosts: string;
  const TOKEN = 'canary-bearer-token-5b6c';
  beforeAll(async () => {
    bb = await startBitbucketDouble({
      ssh: true,
      tls: true,
      contextPath: '/bitbucket',
    });
    bb.addUser({ name: 'flux-bot' });
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    const { slug, path: p } = bb.createRepo('FLUX', 'fleet', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    repoPath = p;
    bb.grantRepo('FLUX', slug, { user: 'flux-bot' }, 'REPO_READ');
    bb.addToken({ token: TOKEN, user: 'flux-bot' });
    commitFiles(repoPath, 'main', {
      'clusters/dev/kustomization.yaml': 'resources: []\n',
    });
    keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-key-'));
    // Flux's format: PKCS#8 PEM ECDSA P-384 private key, registered as a read access key.
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ecdsa',
      '-b',
      '384',
      '-m',
      'PKCS8',
      '-N',
      '',
      '-C',
      '',
      '-f',
      path.join(keyDir, 'id'),
    ]);
    identity = fs.readFileSync(path.join(keyDir, 'id'), 'utf8');
    const pub = fs.readFileSync(path.join(keyDir, 'id.pub'), 'utf8').trim();
    bb.addAccessKey(
      'FLUX',
      slug,
      { text: pub, label: 'flux-system-main' },
      'REPO_READ',
    );
    ({ ssh: sshUrl, http: httpUrl } = bb.cloneUrls('FLUX', slug) as {
      ssh: string;
      http: string;
    });
    // Like flux's scan: the single key the server presents, `[host]:port type base64`.
    knownHosts = bb
      .ssh!.knownHosts.split('\n')
      .find(l => l.includes('ecdsa-sha2-nistp256'))!;
  });
  afterAll(async () => {
    await bb?.stop();
    if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true });
  });

  it('reads over HTTPS with a Bearer token (bearerToken) and the Secret CA', async () => {
    const c = await fluxCluster(httpUrl, {
      bearerToken: TOKEN,
      'ca.crt': bb.caPem!,
    });
    const sim = await startFluxSimulator({
      kube,
      namespace: c.ns,
      intervalMs: 200,
    });
    try {
      const head = git(['rev-parse', 'refs/heads/main'], repoPath);
      const gr = await eventually(
        'Ready with bearer token',
        async () => {
          const o = await get(c.grPath);
          return ready(o)?.status === 'True' && o;
        },
        sim,
      );
      expect(httpUrl).toMatch(
        /^https:\/\/127\.0\.0\.1:\d+\/bitbucket\/scm\/flux\/fleet\.git$/,
      );
      expect(gr.status.artifact.revision).toBe(`main@sha1:${head}`);
      const scm = bb.requests().filter(r => r.path.startsWith('/scm/'));
      expect(
        scm.some(
          r =>
            r.status === 200 && r.headers.authorization === `Bearer ${TOKEN}`,
        ),
      ).toBe(true);
      expect(JSON.stringify(sim.events())).not.toContain(TOKEN);
    } finally {
      await sim.stop();
    }
  });

  it('resolves the head with the Secret identity and known_hosts', async () => {
    const c = await fluxCluster(sshUrl, {
      identity,
      known_hosts: knownHosts,
    });
    const sim = await startFluxSimulator({
      kube,
      namespace: c.ns,
      intervalMs: 200,
    });
    try {
      const head = git(['rev-parse', 'refs/heads/main'], repoPath);
      const gr = await eventually(
        'Ready over SSH',
        async () => {
          const o = await get(c.grPath);
          return ready(o)?.status === 'True' && o;
        },
        sim,
      );
      expect(identity).toContain('-----BEGIN PRIVATE KEY-----'); // Flux's PKCS#8 format
      expect(gr.status.artifact.revision).toBe(`main@sha1:${head}`);
      await eventually(
        'Kustomization Ready over SSH',
        async () =>
          (await get(c.ksPath)).status?.lastAppliedRevision ===
          `main@sha1:${head}`,
        sim,
      );
    } finally {
      await sim.stop();
    }
  });

  it("decrypts an encrypted identity with the Secret's password (the key passphrase), and reports a missing one like Flux", async () => {
    const passphrase = 'canary-key-passphrase-7d1e';
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      passphrase,
      '-C',
      '',
      '-f',
      path.join(keyDir, 'encrypted'),
    ]);
    const encrypted = fs.readFileSync(path.join(keyDir, 'encrypted'), 'utf8');
    const pub = fs
      .readFileSync(path.join(keyDir, 'encrypted.pub'), 'utf8')
      .trim();
    bb.addAccessKey(
      'FLUX',
      'fleet',
      { text: pub, label: 'flux-system-enc' },
      'REPO_READ',
    );
    expect(isEncryptedPrivateKey(encrypted)).toBe(true);
    expect(isEncryptedPrivateKey(identity)).toBe(false);
    const withPass = await fluxCluster(sshUrl, {
      identity: encrypted,
      known_hosts: knownHosts,
      password: passphrase,
    });
    const noPass = await fluxCluster(sshUrl, {
      identity: encrypted,
      known_hosts: knownHosts,
    });
    const wrongPass = await fluxCluster(sshUrl, {
      identity: encrypted,
      known_hosts: knownHosts,
      password: 'not-the-passphrase',
    });
    const sims = await Promise.all(
      [withPass, noPass, wrongPass].map(c =>
        startFluxSimulator({ kube, namespace: c.ns, intervalMs: 200 }),
      ),
    );
    try {
      const head = git(['rev-parse', 'refs/heads/main'], repoPath);
      const gr = await eventually(
        'Ready with an encrypted key',
        async () => {
          const o = await get(withPass.grPath);
          return ready(o)?.status === 'True' && o;
        },
        sims[0],
      );
      expect(gr.status.artifact.revision).toBe(`main@sha1:${head}`);
      const missing = await eventually(
        'Ready=False without password',
        async () => {
          const r = ready(await get(noPass.grPath));
          return r?.status === 'False' && r;
        },
      );
      expect(missing).toMatchObject({ reason: 'AuthenticationFailed' });
      expect(missing.message).toContain(
        "SSH identity key is encrypted but no 'password' field was provided in the secret",
      );
      const wrong = await eventually(
        'Ready=False with a wrong password',
        async () => {
          const r = ready(await get(wrongPass.grPath));
          return r?.status === 'False' && r;
        },
      );
      expect(wrong.message).toMatch(/Permission denied|passphrase/i);
      for (const r of [missing, wrong]) {
        expect(r.message).not.toContain(passphrase);
        expect(r.message).not.toContain('not-the-passphrase');
      }
    } finally {
      await Promise.all(sims.map(sim => sim.stop()));
    }
  });

  it("fails with git's message on an unknown host key, an unauthorized key and a Secret without known_hosts", async () => {
    // A known_hosts entry for the right address but a different key.
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      '',
      '-f',
      path.join(keyDir, 'other'),
    ]);
    const otherPub = fs
      .readFileSync(path.join(keyDir, 'other.pub'), 'utf8')
      .trim();
    const wrongKnownHosts = `[127.0.0.1]:${bb.ssh!.port} ${otherPub}\n`;
    const other = fs.readFileSync(path.join(keyDir, 'other'), 'utf8');

    const c1 = await fluxCluster(sshUrl, {
      identity,
      known_hosts: wrongKnownHosts,
    });
    const c2 = await fluxCluster(sshUrl, {
      identity: other,
      known_hosts: knownHosts,
    });
    const c3 = await fluxCluster(sshUrl, { identity });
    const sims = await Promise.all(
      [c1, c2, c3].map(c =>
        startFluxSimulator({ kube, namespace: c.ns, intervalMs: 200 }),
      ),
    );
    try {
      const msg = async (c: Cluster) =>
        eventually(`Ready=False in ${c.ns}`, async () => {
          const r = ready(await get(c.grPath));
          return r?.status === 'False' && r;
        });
      const hostKey = await msg(c1);
      expect(hostKey.message).toMatch(
        /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key/i,
      );
      expect(hostKey.message).toContain(`unable to clone '${sshUrl}'`);
      const denied = await msg(c2);
      expect(denied.message).toMatch(/Permission denied \(publickey\)/);
      const missing = await msg(c3);
      expect(missing).toMatchObject({ reason: 'AuthenticationFailed' });
      expect(missing.message).toContain("'known_hosts' is required");
      for (const r of [hostKey, denied, missing])
        expect(r.message).not.toContain('PRIVATE KEY');
    } finally {
      await Promise.all(sims.map(s => s.stop()));
    }
  });
});
