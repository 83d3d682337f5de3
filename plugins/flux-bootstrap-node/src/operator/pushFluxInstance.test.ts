import {
  BitbucketDouble,
  peerGitEnv,
  PEER_GIT_CONFIG,
  run,
  startBitbucketDouble,
} from '@flux-bootstrap/test-peers';
import { gitHttpAuthHeaders } from '../bitbucket';
import { GitPushSession } from '../git/session';
import { HttpsGitTransport } from '../git/transport';
import { resolveFluxManifestOptions } from '../manifests/options';
import { Redactor } from '../util/redact';
import { renderFluxInstanceFiles } from './instance';
import { pushFluxInstance } from './push';

jest.setTimeout(90_000);

const TOKEN = `canary-token-${Math.random().toString(36).slice(2)}`;
const DIR = 'clusters/dev/flux-system';
const GOTK_KUSTOMIZATION =
  'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n';

let bb: BitbucketDouble;
let counter = 0;
beforeAll(async () => {
  bb = await startBitbucketDouble();
  bb.addUser({ name: 'alice' });
  bb.addProject({ key: 'FLUX', name: 'Flux' });
  bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_WRITE');
  bb.addToken({ token: TOKEN, user: 'alice' });
});
afterAll(() => bb?.stop());

const git = async (...args: string[]) =>
  (await run('git', args, { env: peerGitEnv({}, PEER_GIT_CONFIG) })).stdout;

function newRepo() {
  const { slug } = bb.createRepo('FLUX', `fleet-${++counter}`, {
    defaultBranch: 'main',
  });
  const bare = bb.repoPath('FLUX', slug);
  const transport = () =>
    new HttpsGitTransport({
      url: bb.cloneUrls('FLUX', slug).http,
      headers: gitHttpAuthHeaders({ token: TOKEN }),
    });
  return {
    transport,
    log: async () =>
      (await git('--git-dir', bare, 'log', '--format=%s', 'main'))
        .trim()
        .split('\n'),
    /** Files changed by the head commit. */
    changed: async () =>
      (
        await git(
          '--git-dir',
          bare,
          'show',
          '--name-status',
          '--format=',
          'main',
        )
      )
        .trim()
        .split('\n'),
    ls: async () =>
      (await git('--git-dir', bare, 'ls-tree', '-r', '--name-only', 'main'))
        .trim()
        .split('\n'),
    show: (file: string) => git('--git-dir', bare, 'show', `main:${file}`),
    /** Commits files as flux bootstrap left them. */
    async commit(files: Record<string, string>) {
      const session = await GitPushSession.open({
        transport: transport(),
        branch: 'main',
      });
      try {
        await session.commitAndPush({
          message: 'Add Flux sync manifests',
          author: { name: 'Flux', email: '' },
          edit: async tree => {
            for (const [p, c] of Object.entries(files)) tree.write(p, c);
          },
        });
      } finally {
        await session.close();
      }
    },
  };
}

const options = resolveFluxManifestOptions(
  {
    path: 'clusters/dev',
    syncUrl: 'ssh://git@bitbucket.example.com:7999/flux/fleet.git',
  },
  { fluxVersion: 'v2.9.4' },
);
const operator = (version = '2.9.x') => ({
  version,
  clusterType: 'kubernetes' as const,
  multitenant: false,
});
const logger = {
  info: jest.fn(),
  warn: jest.fn(),
  error: jest.fn(),
  debug: jest.fn(),
};
const push = (
  repo: ReturnType<typeof newRepo>,
  o: { version?: string; migrate?: boolean } = {},
) =>
  pushFluxInstance(
    {
      transport: repo.transport(),
      options,
      operator: operator(o.version),
      author: { name: 'Flux', email: '' },
      migrate: o.migrate,
    },
    { logger, redactor: new Redactor([TOKEN]) },
  );

describe('pushFluxInstance against the Bitbucket double (real git)', () => {
  it('writes flux-instance.yaml and kustomization.yaml in one commit, nothing on a re-run, only flux-instance.yaml on a version change', async () => {
    const repo = newRepo();
    const first = await push(repo);
    const expected = renderFluxInstanceFiles(options, operator()).files;
    expect(first).toMatchObject({
      changed: true,
      migrationPending: false,
      manifestsPath: DIR,
      revision: `main@sha1:${first.commitHash}`,
      files: expected,
    });
    expect(await repo.log()).toEqual(['Add Flux Operator instance']);
    expect(await repo.ls()).toEqual([
      `${DIR}/flux-instance.yaml`,
      `${DIR}/kustomization.yaml`,
    ]);
    expect(await repo.show(`${DIR}/flux-instance.yaml`)).toBe(
      expected[`${DIR}/flux-instance.yaml`],
    );

    const again = await push(repo);
    expect(again).toMatchObject({
      changed: false,
      commitHash: first.commitHash,
    });
    expect(await repo.log()).toHaveLength(1);

    const bumped = await push(repo, { version: 'v2.10.0' });
    expect(bumped.changed).toBe(true);
    expect(await repo.changed()).toEqual([`M\t${DIR}/flux-instance.yaml`]);
    expect(await repo.show(`${DIR}/flux-instance.yaml`)).toContain(
      'version: 2.10.0',
    );
  });

  it('leaves a flux bootstrap folder alone until migrate, then replaces its manifests in one commit', async () => {
    const repo = newRepo();
    await repo.commit({
      [`${DIR}/gotk-components.yaml`]:
        'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n',
      [`${DIR}/gotk-sync.yaml`]:
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: flux-system\n',
      [`${DIR}/kustomization.yaml`]: GOTK_KUSTOMIZATION,
    });
    const pending = await push(repo);
    expect(pending).toMatchObject({ changed: false, migrationPending: true });
    expect(await repo.log()).toEqual(['Add Flux sync manifests']);
    expect(logger.info).toHaveBeenCalledWith(
      expect.stringContaining(
        "holds flux bootstrap's manifests: nothing is written until the FluxInstance adopted the controllers",
      ),
    );

    const migrated = await push(repo, { migrate: true });
    expect(migrated).toMatchObject({ changed: true, migrationPending: false });
    expect(await repo.log()).toEqual([
      'Replace flux bootstrap manifests by the Flux Operator instance',
      'Add Flux sync manifests',
    ]);
    expect((await repo.changed()).sort()).toEqual([
      `A\t${DIR}/flux-instance.yaml`,
      `D\t${DIR}/gotk-components.yaml`,
      `D\t${DIR}/gotk-sync.yaml`,
      `M\t${DIR}/kustomization.yaml`,
    ]);
    expect(await repo.show(`${DIR}/kustomization.yaml`)).toBe(
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- flux-instance.yaml\n',
    );
    // Migrated: a later run (migrate or not) changes nothing.
    expect((await push(repo, { migrate: true })).changed).toBe(false);
    expect((await push(repo)).changed).toBe(false);
  });

  it('refuses to migrate a folder whose kustomization.yaml patches the bootstrap manifests, and pushes nothing', async () => {
    const repo = newRepo();
    await repo.commit({
      [`${DIR}/gotk-components.yaml`]:
        'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n',
      [`${DIR}/gotk-sync.yaml`]:
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: flux-system\n',
      [`${DIR}/kustomization.yaml`]: `${GOTK_KUSTOMIZATION}patches:\n- patch: '[{"op": "add", "path": "/x", "value": 1}]'\n  target:\n    kind: Deployment\n`,
    });
    await expect(push(repo, { migrate: true })).rejects.toThrow(
      `${DIR}/kustomization.yaml has patches for flux bootstrap's manifests; move them to the FluxInstance (spec.kustomize.patches)`,
    );
    expect(await repo.log()).toEqual(['Add Flux sync manifests']);
  });
});
