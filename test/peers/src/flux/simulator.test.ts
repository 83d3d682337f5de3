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
import { commitFiles, eventually, readyOf } from './simTestUtils';

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

const ready = readyOf;

const get = async (p: string) => (await api.expect('GET', p)).body;

/** Polls `fn` until it is truthy, printing the simulator's last events on timeout. */
const until = <T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  sim?: FluxSimulator,
): Promise<T> => eventually(what, fn, sim && (() => sim.events()));

/** Waits until the object at `at` has the Ready condition `status`, and returns it. */
const untilReady = (
  what: string,
  at: string,
  status: 'True' | 'False',
  sim?: FluxSimulator,
) =>
  until(
    what,
    async () => {
      const o = await get(at);
      return ready(o)?.status === status && o;
    },
    sim,
  );

/** Waits until the cluster's Kustomization has applied `revision`. */
const untilApplied = (
  what: string,
  c: Cluster,
  revision: string,
  sim: FluxSimulator,
) =>
  until(
    what,
    async () => (await get(c.ksPath)).status?.lastAppliedRevision === revision,
    sim,
  );

const mergePatch = (at: string, body: unknown) =>
  api.request('PATCH', at, {
    body,
    contentType: 'application/merge-patch+json',
  });

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

/** Applies an object named like its namespace `ns` (flux bootstrap's sync objects are); returns its path. */
async function applyNamed(
  http: KubeHttp,
  ns: string,
  at: { apiVersion: string; resource: string },
  fields: Record<string, unknown>,
  opts?: { fieldManager: string },
): Promise<string> {
  const objectPath = kubePath({ ...at, namespace: ns, name: ns });
  await http.apply(
    objectPath,
    {
      apiVersion: at.apiVersion,
      kind: fields.kind,
      metadata: { name: ns, namespace: ns },
      ...fields,
    },
    opts,
  );
  return objectPath;
}

const applySecret = (
  http: KubeHttp,
  ns: string,
  stringData: Record<string, string>,
) =>
  applyNamed(
    http,
    ns,
    { apiVersion: 'v1', resource: 'secrets' },
    { kind: 'Secret', stringData },
  );

const applyGitRepository = (
  http: KubeHttp,
  ns: string,
  url: string,
  branch = 'main',
  opts?: { fieldManager: string },
) =>
  applyNamed(
    http,
    ns,
    { apiVersion: 'source.toolkit.fluxcd.io/v1', resource: 'gitrepositories' },
    {
      kind: 'GitRepository',
      spec: { interval: '1m0s', ref: { branch }, secretRef: { name: ns }, url },
    },
    opts,
  );

/** A namespace with Flux (fixture) installed, a Secret and the two sync objects of flux bootstrap. */
async function fluxCluster(
  url: string,
  secret: Record<string, string>,
  opts: { path?: string; branch?: string } = {},
): Promise<Cluster> {
  const ns = await createTestNamespace(kube, 'sim');
  await applyFluxBundle(kube, bundle, { namespace: ns });
  const secretPath = await applySecret(api, ns, secret);
  const grPath = await applyGitRepository(api, ns, url, opts.branch, {
    fieldManager: 'flux',
  });
  const ksPath = await applyNamed(
    api,
    ns,
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      resource: 'kustomizations',
    },
    {
      kind: 'Kustomization',
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

const startSim = (c: Cluster) =>
  startFluxSimulator({ kube, namespace: c.ns, intervalMs: 200 });

/** Runs `test` against a simulator of a fresh `fluxCluster`, and stops the simulator. */
async function withSimulator(
  url: string,
  secret: Record<string, string>,
  test: (c: Cluster, sim: FluxSimulator) => Promise<void>,
): Promise<void> {
  const c = await fluxCluster(url, secret);
  const sim = await startSim(c);
  try {
    await test(c, sim);
  } finally {
    await sim.stop();
  }
}

describe('FluxControllerSimulator over HTTPS (real git http-backend, TLS, Basic auth)', () => {
  let server: GitHttpServer;
  let repoPath: string;
  let url: string;
  const PASSWORD = 'canary-password-3f9a1c';
  const basicAuth = (password = PASSWORD) => ({
    username: 'flux',
    password,
    'ca.crt': server.caPem!,
  });
  beforeAll(async () => {
    server = await startGitHttpServer({ tls: true });
    server.addToken({ token: PASSWORD, user: 'flux', access: 'read' });
    const repo = server.createRepo('fleet', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    repoPath = repo.path;
    url = repo.url;
    await commitFiles(
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
    await withSimulator(url, basicAuth(), async (c, sim) => {
      const head = git(['rev-parse', 'refs/heads/main'], repoPath);
      const expected = `main@sha1:${head}`;
      const gr = await until(
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

      const ks = await untilReady('Kustomization Ready', c.ksPath, 'True', sim);
      expect(ks.status).toMatchObject({
        lastAppliedRevision: expected,
        lastAttemptedRevision: expected,
        observedGeneration: ks.metadata.generation,
      });
      expect(ready(ks).message).toBe(`Applied revision: ${expected}`);

      const deps = await until(
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
      const next = await commitFiles(repoPath, 'main', {
        'clusters/dev/apps.yaml': 'apps: true\n',
      });
      await untilApplied('new revision', c, `main@sha1:${next}`, sim);
      expect((await get(c.grPath)).status.artifact.revision).toBe(
        `main@sha1:${next}`,
      );
      expect(JSON.stringify(sim.events())).not.toContain(PASSWORD);
    });
  });

  it('reports injected failures with their message and recovers after clear()', async () => {
    await withSimulator(url, basicAuth(), async (c, sim) => {
      const ok = await untilReady('Kustomization Ready', c.ksPath, 'True', sim);
      const applied = ok.status.lastAppliedRevision;

      sim.failWith('source', 'simulated: unable to clone');
      const grFail = await untilReady(
        'GitRepository Ready=False',
        c.grPath,
        'False',
        sim,
      );
      expect(ready(grFail)).toMatchObject({
        reason: 'GitOperationFailed',
        message: 'simulated: unable to clone',
      });
      expect(grFail.status.artifact.revision).toBe(applied); // the last artifact stays, like source-controller
      sim.clear();
      await untilReady('GitRepository Ready again', c.grPath, 'True', sim);

      sim.failWith('sync', 'simulated: Deployment/default/x dry-run failed');
      const ksFail = await untilReady(
        'Kustomization Ready=False',
        c.ksPath,
        'False',
        sim,
      );
      expect(ready(ksFail)).toMatchObject({
        reason: 'ReconciliationFailed',
        message: 'simulated: Deployment/default/x dry-run failed',
      });
      expect(ksFail.status.lastAttemptedRevision).toBe(applied);
      expect(ksFail.status.lastAppliedRevision).toBe(applied);
      sim.clear();
      await untilReady('Kustomization Ready again', c.ksPath, 'True', sim);

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
      const helm = await until(
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
      const back = await until(
        'helm-controller available again',
        async () => {
          const o = await get(depPath('helm-controller'));
          return o.status?.availableReplicas === 1 && o;
        },
        sim,
      );
      expect(back.status.unavailableReplicas).toBeUndefined();
    });
  });

  it('reports a wrong password, a missing branch and a missing path like the controllers, without leaking the password', async () => {
    const WRONG = 'canary-wrong-9d8e7f';
    await withSimulator(url, basicAuth(WRONG), async (c, sim) => {
      const gr = await untilReady('auth failure', c.grPath, 'False', sim);
      expect(ready(gr).reason).toBe('GitOperationFailed');
      expect(ready(gr).message).toContain(
        `failed to checkout and determine revision: unable to clone '${url}'`,
      );
      expect(ready(gr).message).toMatch(/Authentication failed|401/);
      expect(JSON.stringify(gr)).not.toContain(WRONG);
      // The Kustomization is reconciled after its source, in the same pass or the next one.
      const ksWithoutArtifact = await untilReady(
        'kustomization without artifact',
        c.ksPath,
        'False',
        sim,
      );
      expect(ready(ksWithoutArtifact)).toMatchObject({
        status: 'False',
        message: 'Source artifact not found, retrying in 30s',
      });

      // Fix the Secret, point at a branch that does not exist.
      await applySecret(api, c.ns, basicAuth());
      await mergePatch(c.grPath, { spec: { ref: { branch: 'nope' } } });
      await until(
        'missing branch',
        async () =>
          /couldn't find remote ref "refs\/heads\/nope"/.test(
            ready(await get(c.grPath))?.message ?? '',
          ),
        sim,
      );

      // Right branch, but the Kustomization's path does not exist in the commit.
      await mergePatch(c.grPath, { spec: { ref: { branch: 'main' } } });
      await mergePatch(c.ksPath, { spec: { path: './clusters/prod' } });
      const ks = await until(
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
    });
  });

  it('honours spec.suspend', async () => {
    await withSimulator(url, basicAuth(), async (c, sim) => {
      await untilReady('Ready', c.ksPath, 'True', sim);
      const before = (await get(c.grPath)).status.artifact.revision;
      await mergePatch(c.grPath, { spec: { suspend: true } });
      await mergePatch(c.ksPath, { spec: { suspend: true } });
      await sim.reconcileNow(); // a pass that may have started before the patch
      const next = await commitFiles(repoPath, 'main', {
        'clusters/dev/suspended.yaml': 'x: 1\n',
      });
      await sim.reconcileNow();
      await sim.reconcileNow();
      const gr = await get(c.grPath);
      expect(gr.status.artifact.revision).toBe(before);
      expect(gr.status.observedGeneration).toBe(gr.metadata.generation - 1);
      expect((await get(c.ksPath)).status.lastAppliedRevision).toBe(before);

      await mergePatch(c.grPath, { spec: { suspend: false } });
      await mergePatch(c.ksPath, { spec: { suspend: false } });
      await untilApplied('resumed', c, `main@sha1:${next}`, sim);
    });
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
    await applySecret(ownApi, ns, {
      username: 'flux',
      password: 'outage-token',
    });
    const grPath = await applyGitRepository(ownApi, ns, repo.url);
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
      await until(
        'Ready before the outage',
        async () => (await revision()) === `main@sha1:${first}`,
        sim,
      );
      await own.stopApiserver();
      await until(
        'a failed pass during the outage',
        async () =>
          sim
            .events()
            .some(e => / source: .*(ECONNREFUSED|socket hang up)/.test(e)),
        sim,
      );
      const next = await commitFiles(repo.path, 'main', {
        'after-outage.txt': 'x\n',
      });
      await own.startApiserver();
      await until(
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
  /** Generates the key pair `name` in keyDir: `ssh-keygen -t <type…>`, no comment. */
  const keygen = (name: string, type: string[], passphrase = '') => {
    const file = path.join(keyDir, name);
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      ...type,
      '-N',
      passphrase,
      '-C',
      '',
      '-f',
      file,
    ]);
    return {
      key: fs.readFileSync(file, 'utf8'),
      pub: fs.readFileSync(`${file}.pub`, 'utf8').trim(),
    };
  };
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
    await commitFiles(repoPath, 'main', {
      'clusters/dev/kustomization.yaml': 'resources: []\n',
    });
    keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-key-'));
    // Flux's format: PKCS#8 PEM ECDSA P-384 private key, registered as a read access key.
    let pub: string;
    ({ key: identity, pub } = keygen('id', [
      'ecdsa',
      '-b',
      '384',
      '-m',
      'PKCS8',
    ]));
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
    await withSimulator(
      httpUrl,
      {
        bearerToken: TOKEN,
        'ca.crt': bb.caPem!,
      },
      async (c, sim) => {
        const head = git(['rev-parse', 'refs/heads/main'], repoPath);
        const gr = await untilReady(
          'Ready with bearer token',
          c.grPath,
          'True',
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
      },
    );
  });

  it('resolves the head with the Secret identity and known_hosts', async () => {
    await withSimulator(
      sshUrl,
      {
        identity,
        known_hosts: knownHosts,
      },
      async (c, sim) => {
        const head = git(['rev-parse', 'refs/heads/main'], repoPath);
        const gr = await untilReady('Ready over SSH', c.grPath, 'True', sim);
        expect(identity).toContain('-----BEGIN PRIVATE KEY-----'); // Flux's PKCS#8 format
        expect(gr.status.artifact.revision).toBe(`main@sha1:${head}`);
        await untilApplied(
          'Kustomization Ready over SSH',
          c,
          `main@sha1:${head}`,
          sim,
        );
      },
    );
  });

  it("decrypts an encrypted identity with the Secret's password (the key passphrase), and reports a missing one like Flux", async () => {
    const passphrase = 'canary-key-passphrase-7d1e';
    const { key: encrypted, pub } = keygen(
      'encrypted',
      ['ed25519'],
      passphrase,
    );
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
      [withPass, noPass, wrongPass].map(c => startSim(c)),
    );
    try {
      const head = git(['rev-parse', 'refs/heads/main'], repoPath);
      const gr = await untilReady(
        'Ready with an encrypted key',
        withPass.grPath,
        'True',
        sims[0],
      );
      expect(gr.status.artifact.revision).toBe(`main@sha1:${head}`);
      const missing = await untilReady(
        'Ready=False without password',
        noPass.grPath,
        'False',
      ).then(ready);
      expect(missing).toMatchObject({ reason: 'AuthenticationFailed' });
      expect(missing.message).toContain(
        "SSH identity key is encrypted but no 'password' field was provided in the secret",
      );
      const wrong = await untilReady(
        'Ready=False with a wrong password',
        wrongPass.grPath,
        'False',
      ).then(ready);
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
    const { key: other, pub: otherPub } = keygen('other', ['ed25519']);
    const wrongKnownHosts = `[127.0.0.1]:${bb.ssh!.port} ${otherPub}\n`;

    const c1 = await fluxCluster(sshUrl, {
      identity,
      known_hosts: wrongKnownHosts,
    });
    const c2 = await fluxCluster(sshUrl, {
      identity: other,
      known_hosts: knownHosts,
    });
    const c3 = await fluxCluster(sshUrl, { identity });
    const sims = await Promise.all([c1, c2, c3].map(c => startSim(c)));
    try {
      const msg = async (c: Cluster) =>
        untilReady(`Ready=False in ${c.ns}`, c.grPath, 'False').then(ready);
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
