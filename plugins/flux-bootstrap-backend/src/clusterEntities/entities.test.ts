import { clusterEntityUrl } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  clusterEntityParamsFromUrl,
  renderClusterEntity,
  renderClusterEntityYaml,
} from './entities';

const base = {
  name: 'prod-eu',
  owner: 'group:platform-team',
  repository:
    'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse',
  branch: 'main',
  path: 'clusters/prod-eu',
};

describe('renderClusterEntity', () => {
  it('renders a kubernetes-cluster Resource pointing back at the fleet repository', async () => {
    const entity = await renderClusterEntity({
      ...base,
      title: 'Production EU',
    });
    expect(entity).toMatchObject({
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Resource',
      metadata: {
        name: 'prod-eu',
        title: 'Production EU',
        annotations: {
          'backstage.io/kubernetes-cluster': 'prod-eu',
          'backstage.io/source-location':
            'url:https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse/',
          'backstage.io/view-url':
            'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse/clusters/prod-eu?at=refs%2Fheads%2Fmain',
          'flux-bootstrap.io/fleet-repository': base.repository,
          'flux-bootstrap.io/fleet-branch': 'main',
          'flux-bootstrap.io/fleet-path': 'clusters/prod-eu',
        },
      },
      spec: {
        type: 'kubernetes-cluster',
        owner: 'group:default/platform-team',
      },
    });
    expect(entity.metadata.links?.[0].url).toBe(
      entity.metadata.annotations!['backstage.io/view-url'],
    );
  });

  it('keeps an ssh:// repository (bootstrap git) as the repository annotation without a source location', async () => {
    const entity = await renderClusterEntity({
      ...base,
      repository: 'ssh://git@bitbucket.example.com:7999/plat/fleet-infra.git',
    });
    expect(
      entity.metadata.annotations!['backstage.io/source-location'],
    ).toBeUndefined();
    expect(
      entity.metadata.annotations!['flux-bootstrap.io/fleet-repository'],
    ).toBe('ssh://git@bitbucket.example.com:7999/plat/fleet-infra.git');
  });

  it.each([
    [{ name: '' }, /"name" is required/],
    [{ name: 'prod eu' }, /cluster entity "prod eu" is invalid/],
    [{ owner: 'not a ref:x:y' }, /"owner" is not an entity ref/],
    [{ repository: 'bitbucket.example.com/x' }, /"repository" is not a URL/],
    [
      { repository: 'file:///etc/passwd' },
      /must be an https:\/\/, http:\/\/ or ssh:\/\/ URL/,
    ],
    [
      { repository: 'https://u:secret@bitbucket.example.com/x' },
      /must not contain credentials/,
    ],
  ])('rejects %p naming the field', async (override, message) => {
    await expect(renderClusterEntity({ ...base, ...override })).rejects.toThrow(
      message,
    );
  });
});

describe('cluster entity URLs', () => {
  const backend = 'http://localhost:7007';

  it('round-trips the parameters through the location URL', async () => {
    const url = new URL(
      clusterEntityUrl(backend, { ...base, title: 'A & B?' }),
    );
    expect(clusterEntityParamsFromUrl(url)).toEqual({
      ...base,
      title: 'A & B?',
    });
    expect(
      await renderClusterEntityYaml(clusterEntityParamsFromUrl(url)),
    ).toContain('title: A & B?');
  });

  it('refuses unknown parameters', () => {
    expect(() =>
      clusterEntityParamsFromUrl(
        new URL(
          'http://localhost:7007/api/flux-bootstrap/v1/cluster-entity.yaml?kind=User',
        ),
      ),
    ).toThrow('unknown parameter "kind"');
  });
});
