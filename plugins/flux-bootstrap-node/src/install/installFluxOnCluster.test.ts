import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigReader } from '@backstage/config';
import {
  buildFluxBundle,
  getSharedKubeApiserver,
  KubeCleanup,
  startBitbucketDouble,
  TEST_GROUND_KUBERNETES_VERSIONS,
  uniqueName,
  type BitbucketDouble,
} from '@flux-bootstrap/test-peers';
import {
  readFluxBootstrapSettings,
  type FluxBootstrapSettings,
} from '../config/settings';
import { createKubeClient } from '../kube/client';
import type { KubeClient, KubeObject } from '../kube/types';
import { InputValidationError } from '../util/errors';
import { installFluxOnCluster } from './installFlux';
import {
  adminConnection,
  planFor,
  recordingLogger,
  trackClusterObjects,
} from './__testUtils__/fixtures';

// The flux:install use case on real peers: kube-apiserver + etcd, the Bitbucket double as the
// sync URL's host, the Flux bundle fixture in a local bundle folder.
jest.setTimeout(120_000);

const kube = getSharedKubeApiserver();
const USER_TOKEN = 'canary-user-token-7d41c09e2b';
const PROJECT_TOKEN = 'canary-project-token-0be93a5f17';

let bb: BitbucketDouble;
let tmp: string;
let settings: FluxBootstrapSettings;
let syncUrl: string;
let admin: KubeClient;

beforeAll(async () => {
  bb = await startBitbucketDouble();
  bb.addUser({ name: 'alice' });
  bb.addProject({ key: 'FLUX', name: 'Flux' });
  bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_READ');
  bb.addToken({ token: USER_TOKEN, user: 'alice' });
  bb.createRepo('FLUX', 'fleet', { defaultBranch: 'main' });
  bb.addProjectToken({
    token: PROJECT_TOKEN,
    project: 'FLUX',
    permission: 'PROJECT_READ',
  });
  syncUrl = bb.cloneUrls('FLUX', 'fleet').http;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'install-use-case-'));
  const bundle = await buildFluxBundle({ version: 'v2.9.4' });
  fs.mkdirSync(path.join(tmp, 'v2.9.4'));
  fs.writeFileSync(path.join(tmp, 'v2.9.4/manifests.tar.gz'), bundle.tarball);
  settings = await readFluxBootstrapSettings(
    new ConfigReader({
      integrations: {
        bitbucketServer: [{ host: bb.host, apiBaseUrl: bb.apiBaseUrl }],
      },
      fluxBootstrap: {
        kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
        manifests: { localPath: tmp },
      },
      kubernetes: {
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: [
              {
                name: 'test',
                url: kube.url,
                serviceAccountToken: kube.adminToken,
                caData: kube.caPem,
              },
            ],
          },
        ],
      },
    }),
  );
  admin = await createKubeClient(adminConnection(kube));
});

afterAll(async () => {
  admin?.close();
  await bb?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => bb.clearRequests());

/** The Bitbucket REST calls the use case made (path only). */
const restCalls = () => bb.requests().map(r => `${r.method} ${r.path}`);

const request = (namespace: string, token: string) => ({
  cluster: 'test',
  manifests: { path: 'clusters/test', namespace, syncUrl },
  tokenAuth: { token },
  wait: false,
});

async function secretData(namespace: string) {
  const s = await admin.get<KubeObject & { data: Record<string, string> }>({
    apiVersion: 'v1',
    kind: 'Secret',
    name: 'flux-system',
    namespace,
  });
  return Object.fromEntries(
    Object.entries(s?.data ?? {}).map(([k, v]) => [
      k,
      Buffer.from(v, 'base64').toString('utf8'),
    ]),
  );
}

describe('installFluxOnCluster with token auth and no username', () => {
  it("stores the token's owner as the Secret's username, as Bitbucket names it", async () => {
    const ns = uniqueName('uc-owner');
    const cleanup = trackClusterObjects(
      new KubeCleanup(kube),
      await planFor(ns),
    );
    try {
      const { logger, lines } = recordingLogger();
      const result = await installFluxOnCluster(request(ns, USER_TOKEN), {
        settings,
        logger,
      });
      expect(result).toMatchObject({
        fluxVersion: 'v2.9.4',
        ready: false,
        username: 'alice',
      });
      // who the token is (X-AUSERNAME), then that the name is a user: nothing that changes
      expect(restCalls().every(c => c.startsWith('GET '))).toBe(true);
      expect(restCalls().length).toBeGreaterThan(0);
      expect(await secretData(ns)).toEqual({
        username: 'alice',
        password: USER_TOKEN,
      });
      expect(lines.join('\n')).toContain('The token belongs to "alice"');
      expect(lines.join('\n')).not.toContain(USER_TOKEN);
    } finally {
      await cleanup.run();
    }
  });

  it('fails for a project token, which has no user, before anything reaches the cluster', async () => {
    const ns = uniqueName('uc-project');
    const error = await installFluxOnCluster(request(ns, PROJECT_TOKEN), {
      settings,
      logger: recordingLogger().logger,
    }).catch(e => e);
    expect(error).toBeInstanceOf(InputValidationError);
    expect(error.field).toBe('token');
    expect(error.message).toContain(
      'a project or repository HTTP access token',
    );
    expect(error.message).not.toContain(PROJECT_TOKEN);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: ns }),
    ).toBeUndefined();
  });

  it('asks nobody in a dry run, and says the owner is looked up in a real run', async () => {
    const { logger, lines } = recordingLogger();
    const result = await installFluxOnCluster(
      { ...request(uniqueName('uc-dry'), USER_TOKEN), dryRun: true },
      { settings, logger },
    );
    expect(result).toEqual({
      fluxVersion: 'v2.9.4',
      ready: false,
      components: [],
    });
    expect(bb.requests()).toEqual([]);
    expect(lines.join('\n')).toContain(`gets user "the token's owner"`);
  });

  it('with a sync URL on no configured Bitbucket host, requires the username before anything is sent', async () => {
    const error = await installFluxOnCluster(
      {
        ...request(uniqueName('uc-none'), USER_TOKEN),
        manifests: {
          path: 'clusters/test',
          syncUrl: 'https://git.example.invalid/scm/flux/fleet.git',
        },
      },
      { settings, logger: recordingLogger().logger },
    ).catch(e => e);
    expect(error).toBeInstanceOf(InputValidationError);
    expect(error.message).toMatch(
      /^Invalid input "username": is required with tokenAuth: Bitbucket Server checks Git-over-HTTPS logins against the token's owner, and git.example.invalid is no configured Bitbucket host/,
    );
    expect(bb.requests()).toEqual([]);
  });
});

describe('installFluxOnCluster with a pullRequest to follow', () => {
  // v9.9.9 is in no bundle folder: loading it first would fail with another error.
  const prRequest = (
    url: string,
    token?: string,
  ): Parameters<typeof installFluxOnCluster>[0] => ({
    cluster: 'test',
    manifests: {
      path: 'clusters/test',
      namespace: uniqueName('uc-pr'),
      syncUrl,
      fluxVersion: 'v9.9.9',
    },
    pullRequest: { url, token },
    wait: false,
  });
  const ofBb = () => `${bb.baseUrl}/projects/FLUX/repos/fleet/pull-requests/1`;

  it.each([false, true])(
    'refuses a URL on no configured host before the bundle or the cluster is touched (dry run: %s)',
    async dryRun => {
      const error = await installFluxOnCluster(
        {
          ...prRequest(
            'https://elsewhere.example.com/projects/X/repos/y/pull-requests/1',
            USER_TOKEN,
          ),
          dryRun,
        },
        { settings, logger: recordingLogger().logger },
      ).catch(e => e);
      expect(error).toBeInstanceOf(InputValidationError);
      expect(error.field).toBe('pullRequest');
      expect(bb.requests()).toEqual([]);
    },
  );

  it('with scaffolder.requireScmUserCredentials, requires the token instead of using the integration', async () => {
    const req = prRequest(ofBb());
    const error = await installFluxOnCluster(
      { ...req, manifests: { ...req.manifests, fluxVersion: 'v2.9.4' } },
      {
        settings: { ...settings, requireScmUserCredentials: true },
        logger: recordingLogger().logger,
      },
    ).catch(e => e);
    expect(error).toBeInstanceOf(InputValidationError);
    expect(error.message).toMatch(
      /^Invalid input "token": is required to follow pull request #1: scaffolder.requireScmUserCredentials is enabled/,
    );
    expect(bb.requests()).toEqual([]);
    expect(
      await admin.get({
        apiVersion: 'v1',
        kind: 'Namespace',
        name: req.manifests.namespace!,
      }),
    ).toBeUndefined();
  });
});
