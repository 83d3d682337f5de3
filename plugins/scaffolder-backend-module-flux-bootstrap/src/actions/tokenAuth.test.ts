import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '@backstage/errors';
import {
  BitbucketDouble,
  buildFluxBundle,
  FluxBundleServer,
  getSharedKubeApiserver,
  serveFluxBundles,
  startBitbucketDouble,
  startFluxSimulator,
  uniqueName,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from '@flux-bootstrap/test-peers';
import { type KubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  removeInstanceClusterRbac,
  adminKubeClient,
  seedProject,
} from './__testUtils__/peers';
import {
  actionConfig,
  configCluster,
  runAction,
  type RunnableAction,
} from './__testUtils__/actionHarness';
import { createBitbucketCreateRepoAction } from './createRepo';
import { createFluxInstallAction } from './install';
import { createFluxPushManifestsAction } from './pushManifests';

// The Bitbucket template with "HTTPS with the Bitbucket token" and no username, step by step as
// the scaffolder runs it, against the Bitbucket double (REST and git over HTTP), a real
// kube-apiserver and the Flux controller simulator, which clones the fleet repository with the
// Secret's username and token: Bitbucket accepts a Basic login only from the token's owner.

jest.setTimeout(180_000);

const VERSION = 'v2.9.4';
const USER_TOKEN = 'canary-user-token-6b1e07f3a2';
const PROJECT_TOKEN = 'canary-project-token-93c5d1';
const kube = getSharedKubeApiserver();

let bb: BitbucketDouble;
let bundles: FluxBundleServer;
let cacheDir: string;
let admin: KubeClient;
const produced: string[] = [];

beforeAll(async () => {
  bb = await startBitbucketDouble();
  seedProject(bb, { key: 'FLUX', name: 'Flux' }, [
    {
      name: 'alice',
      displayName: 'Alice',
      email: 'a@example.com',
      permission: 'PROJECT_ADMIN',
      token: USER_TOKEN,
    },
  ]);
  bb.addProjectToken({
    token: PROJECT_TOKEN,
    project: 'FLUX',
    permission: 'PROJECT_ADMIN',
  });
  const bundle = await buildFluxBundle({ version: VERSION });
  bundles = await serveFluxBundles([
    { version: VERSION, tarball: bundle.tarball },
  ]);
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'token-auth-cache-'));
  admin = await adminKubeClient(kube);
});

afterAll(async () => {
  admin?.close();
  await bb?.stop();
  await bundles?.stop();
  if (cacheDir) fs.rmSync(cacheDir, { recursive: true, force: true });
});

// No integration credentials: the user's token input is what the steps use.
const config = () =>
  actionConfig({
    bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl },
    fluxBootstrap: {
      kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
      manifests: {
        baseUrl: bundles.baseUrl,
        cacheDir,
        defaultVersion: VERSION,
      },
    },
    clusters: [configCluster('test', kube)],
  });

const step = (action: RunnableAction, input: Record<string, unknown>) =>
  runAction(action, input, { produced });

const changes = (from: number) =>
  bb
    .requests()
    .slice(from)
    .filter(r => r.method !== 'GET' && !r.path.endsWith('/git-upload-pack'));

describe('the Bitbucket template with token auth and no username', () => {
  it("completes, and the Secret's username is the token's owner", async () => {
    const ns = uniqueName('token-owner');
    const repoUrl = `${bb.host}?project=FLUX&repo=${ns}`;
    const clusterPath = 'clusters/test';
    const sim = await startFluxSimulator({
      kube,
      namespace: ns,
      intervalMs: 150,
    });
    try {
      const repo = await step(
        createBitbucketCreateRepoAction({ config: config() }),
        {
          repoUrl,
          private: true,
          defaultBranch: 'main',
          description: 'Flux fleet repository',
          token: USER_TOKEN,
          tokenAuth: true,
        },
      );
      expect(repo.error).toBeUndefined();
      expect(repo.outputs.tokenOwner).toBe('alice');

      const push = await step(
        createFluxPushManifestsAction({ config: config() }),
        {
          repoUrl,
          token: USER_TOKEN,
          branch: repo.outputs.defaultBranch,
          path: clusterPath,
          namespace: ns,
          syncUrl: repo.outputs.remoteUrl,
        },
      );
      expect(push.error).toBeUndefined();

      const install = await step(
        createFluxInstallAction({ config: config() }),
        {
          cluster: 'test',
          namespace: ns,
          syncUrl: repo.outputs.remoteUrl,
          branch: repo.outputs.defaultBranch,
          path: clusterPath,
          revision: push.outputs.revision,
          tokenAuth: true,
          token: USER_TOKEN,
        },
      );
      expect(install.error).toBeUndefined();
      expect(install.outputs).toMatchObject({
        ready: true,
        revision: push.outputs.revision,
      });
      const secret = await admin.get({
        apiVersion: 'v1',
        kind: 'Secret',
        name: 'flux-system',
        namespace: ns,
      });
      const data = secret?.data as Record<string, string>;
      const decode = (v: string) => Buffer.from(v, 'base64').toString('utf8');
      expect(decode(data.username)).toBe('alice');
      expect(decode(data.password)).toBe(USER_TOKEN);
      // the controllers cloned over HTTP with that login: Bitbucket took it as alice's
      expect(
        bb
          .requests()
          .some(
            r =>
              r.path.endsWith(`/${ns}.git/git-upload-pack`) &&
              r.status === 200 &&
              r.user === 'alice' &&
              r.headers.authorization?.startsWith('Basic '),
          ),
      ).toBe(true);
    } finally {
      await sim.stop();
      await removeInstanceClusterRbac(kube, ns);
    }
  });

  it('fails in its first step with a project access token, before any change', async () => {
    const ns = uniqueName('token-project');
    const from = bb.requests().length;
    const repo = await step(
      createBitbucketCreateRepoAction({ config: config() }),
      {
        repoUrl: `${bb.host}?project=FLUX&repo=${ns}`,
        private: true,
        defaultBranch: 'main',
        token: PROJECT_TOKEN,
        tokenAuth: true,
      },
    );
    expect(repo.error).toBeInstanceOf(InputError);
    expect((repo.error as any).field).toBe('token');
    expect(repo.error!.message).toMatch(
      /project or repository HTTP access token.*personal HTTP access token/,
    );
    expect(changes(from)).toEqual([]);
    expect(bb.state().repos.some(r => r.slug === ns)).toBe(false);

    // flux:install alone says the same, before anything reaches the cluster
    const install = await step(createFluxInstallAction({ config: config() }), {
      cluster: 'test',
      namespace: ns,
      syncUrl: `${bb.baseUrl}/scm/flux/${ns}.git`,
      path: 'clusters/test',
      tokenAuth: true,
      token: PROJECT_TOKEN,
    });
    expect(install.error).toBeInstanceOf(InputError);
    expect((install.error as any).field).toBe('token');
    expect(changes(from)).toEqual([]);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: ns }),
    ).toBeUndefined();
  });

  it('lets no token out', () => {
    expect(produced.length).toBeGreaterThan(5);
    for (const text of produced) {
      expect(text).not.toContain(USER_TOKEN);
      expect(text).not.toContain(PROJECT_TOKEN);
    }
  });
});
