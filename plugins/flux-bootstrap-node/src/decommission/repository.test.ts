/**
 * The Bitbucket side of a decommission against the Bitbucket Server double (Atlassian's REST
 * shapes; git over smart HTTP by the real `git http-backend`): the cluster's access keys are
 * deleted by label and no other key is touched; the cluster's folder leaves the branch in one
 * commit and no other folder does. Dry runs and second runs change nothing.
 */
import {
  BitbucketDouble,
  peerGitEnv,
  PEER_GIT_CONFIG,
  run,
  startBitbucketDouble,
} from '@flux-bootstrap/test-peers';
import { BitbucketServerClient, gitHttpAuthHeaders } from '../bitbucket';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { GitPushSession } from '../git/session';
import { HttpsGitTransport } from '../git/transport';
import { fluxAccessKeyLabel } from '../keys/accessKey';
import { generateSshKeyPair } from '../keys/keyPair';
import { deleteFluxAccessKeys } from './accessKeys';
import { removeClusterPath } from './clusterPath';

jest.setTimeout(120_000);

const TOKEN = 'canary-bb-token-decommission-5d0c9e';
const READER_TOKEN = 'canary-bb-reader-2f77aa';
const PROJECT = 'FLEET';

let bb: BitbucketDouble;
let host: BitbucketServerHostConfig;
let slug: string;

// Public keys of generated pairs; only their labels matter here.
let KEY_A: string;
let KEY_B: string;
let KEY_C: string;

function label(cluster: string) {
  return fluxAccessKeyLabel({
    namespace: 'flux-system',
    branch: 'main',
    secretName: 'flux-system',
    path: `clusters/${cluster}`,
  });
}

function client(token = TOKEN) {
  return new BitbucketServerClient(host, { token }, { retries: 0 });
}
const ref = () => ({
  host: bb.host,
  project: PROJECT,
  repo: slug,
  personal: false,
});

async function gitLog(): Promise<string[]> {
  const r = await run(
    'git',
    ['--git-dir', bb.repoPath(PROJECT, slug), 'log', '--format=%s', 'main'],
    { env: peerGitEnv({}, PEER_GIT_CONFIG) },
  );
  return r.stdout.trim().split('\n');
}
async function filesOnMain(): Promise<string[]> {
  const r = await run(
    'git',
    [
      '--git-dir',
      bb.repoPath(PROJECT, slug),
      'ls-tree',
      '-r',
      '--name-only',
      'main',
    ],
    { env: peerGitEnv({}, PEER_GIT_CONFIG) },
  );
  return r.stdout.trim().split('\n').filter(Boolean).sort();
}

function transport() {
  return new HttpsGitTransport({
    url: bb.cloneUrls(PROJECT, slug).http,
    headers: gitHttpAuthHeaders({ token: TOKEN }),
  });
}

beforeAll(async () => {
  [KEY_A, KEY_B, KEY_C] = await Promise.all(
    [1, 2, 3].map(async () =>
      (await generateSshKeyPair({ algorithm: 'ed25519' })).publicKey.trim(),
    ),
  );
  bb = await startBitbucketDouble();
  bb.addUser({ name: 'alice', email: 'alice@example.com' });
  bb.addUser({ name: 'reader' });
  bb.addProject({ key: PROJECT, name: 'Fleet' });
  bb.grantProject(PROJECT, { user: 'alice' }, 'PROJECT_ADMIN');
  bb.addToken({ token: TOKEN, user: 'alice' });
  bb.addToken({ token: READER_TOKEN, user: 'reader' });
  slug = bb.createRepo(PROJECT, 'fleet-infra', {
    defaultBranch: 'main',
    initialCommit: true,
  }).slug;
  bb.grantRepo(PROJECT, slug, { user: 'reader' }, 'REPO_READ');
  host = {
    host: bb.host,
    baseUrl: bb.baseUrl,
    apiBaseUrl: bb.apiBaseUrl,
    sshHost: '127.0.0.1:7999',
    requestTimeoutMs: 10_000,
    retries: 0,
  };
});

afterAll(async () => {
  await bb?.stop();
});

describe('deleteFluxAccessKeys', () => {
  it("deletes the cluster's keys by their label and no other; the dry run lists them; a second run finds none", async () => {
    const prod = bb.addAccessKey(
      PROJECT,
      slug,
      { text: `${KEY_A} prod`, label: label('prod') },
      'REPO_READ',
    );
    const prodStale = bb.addAccessKey(
      PROJECT,
      slug,
      { text: `${KEY_C} old`, label: label('prod') },
      'REPO_WRITE',
    );
    const staging = bb.addAccessKey(
      PROJECT,
      slug,
      { text: `${KEY_B} staging`, label: label('staging') },
      'REPO_READ',
    );
    const c = client();
    try {
      bb.clearRequests();
      const dry = await deleteFluxAccessKeys({
        client: c,
        ref: ref(),
        label: label('prod'),
        dryRun: true,
      });
      expect(dry).toMatchObject({
        repository: `${PROJECT}/${slug}`,
        label: 'flux-system-main-flux-system-./clusters/prod',
        otherKeys: 1,
        changed: false,
      });
      expect(dry.keys.map(k => k.id).sort()).toEqual([prod, prodStale].sort());
      expect(bb.requests().filter(r => r.method !== 'GET')).toEqual([]);

      const done = await deleteFluxAccessKeys({
        client: c,
        ref: ref(),
        label: label('prod'),
      });
      expect(done.changed).toBe(true);
      expect(done.keys.map(k => k.id).sort()).toEqual([prod, prodStale].sort());
      const left = bb
        .state()
        .accessKeys.filter(k => k.projectKey === PROJECT && k.slug === slug);
      expect(left.map(k => k.id)).toEqual([staging]);

      bb.clearRequests();
      const again = await deleteFluxAccessKeys({
        client: c,
        ref: ref(),
        label: label('prod'),
      });
      expect(again).toMatchObject({ keys: [], otherKeys: 1, changed: false });
      expect(bb.requests().filter(r => r.method !== 'GET')).toEqual([]);
    } finally {
      c.close();
    }
  });

  it('explains that deleting access keys needs REPO_ADMIN, and deletes nothing', async () => {
    const id = bb.addAccessKey(
      PROJECT,
      slug,
      { text: `${KEY_A} dev`, label: label('dev') },
      'REPO_READ',
    );
    const c = client(READER_TOKEN);
    try {
      await expect(
        deleteFluxAccessKeys({ client: c, ref: ref(), label: label('dev') }),
      ).rejects.toThrow(/REPO_ADMIN/);
      expect(bb.state().accessKeys.map(k => k.id)).toContain(id);
    } finally {
      c.close();
    }
  });
});

describe('removeClusterPath', () => {
  it("removes the cluster's folder in one commit and leaves the other clusters' folders; the dry run lists the files; a second run makes no commit", async () => {
    const session = await GitPushSession.open({
      transport: transport(),
      branch: 'main',
    });
    try {
      await session.commitAndPush({
        message: 'Add Flux sync manifests',
        author: { name: 'Flux', email: '' },
        edit: async tree => {
          tree.write(
            'clusters/prod/flux-system/gotk-components.yaml',
            '# components\n',
          );
          tree.write('clusters/prod/flux-system/gotk-sync.yaml', '# sync\n');
          tree.write('clusters/prod/flux-system/kustomization.yaml', '# k\n');
          tree.write('clusters/prod/apps/web.yaml', '# web\n');
          tree.write('clusters/staging/flux-system/gotk-sync.yaml', '# sync\n');
          tree.write(
            'clusters/production/flux-system/gotk-sync.yaml',
            '# not prod\n',
          );
        },
      });
    } finally {
      await session.close();
    }
    const before = await filesOnMain();
    const author = { name: 'Backstage', email: 'backstage@example.com' };
    bb.clearRequests();
    const dry = await removeClusterPath({
      transport: transport(),
      branch: 'main',
      path: 'clusters/prod',
      cluster: 'prod',
      author,
      dryRun: true,
    });
    expect(dry.files).toEqual([
      'clusters/prod/apps/web.yaml',
      'clusters/prod/flux-system/gotk-components.yaml',
      'clusters/prod/flux-system/gotk-sync.yaml',
      'clusters/prod/flux-system/kustomization.yaml',
    ]);
    expect(dry.changed).toBe(false);
    expect(
      bb.requests().filter(r => r.path.endsWith('git-receive-pack')),
    ).toEqual([]);
    expect(await filesOnMain()).toEqual(before);

    const done = await removeClusterPath({
      transport: transport(),
      branch: 'main',
      path: 'clusters/prod',
      cluster: 'prod',
      author,
    });
    expect(done.changed).toBe(true);
    expect(done.files).toEqual(dry.files);
    expect(await filesOnMain()).toEqual(
      before.filter(f => !f.startsWith('clusters/prod/')),
    );
    expect(await filesOnMain()).toEqual(
      expect.arrayContaining([
        'clusters/staging/flux-system/gotk-sync.yaml',
        'clusters/production/flux-system/gotk-sync.yaml',
      ]),
    );
    expect((await gitLog())[0]).toBe('Remove Flux from prod');

    const commits = (await gitLog()).length;
    const again = await removeClusterPath({
      transport: transport(),
      branch: 'main',
      path: 'clusters/prod',
      cluster: 'prod',
      author,
    });
    expect(again).toMatchObject({ changed: false, files: [] });
    expect((await gitLog()).length).toBe(commits);
  });

  it('refuses the repository root', async () => {
    await expect(
      removeClusterPath({
        transport: transport(),
        branch: 'main',
        path: '',
        cluster: 'prod',
        author: { name: 'a', email: '' },
      }),
    ).rejects.toThrow(/not the repository root/);
  });
});
