import {
  CLUSTER_ENTITY_PATH,
  clusterEntityUrl,
  isClusterEntityUrl,
} from './clusterEntity';

const base = {
  name: 'prod-eu',
  owner: 'group:platform-team',
  repository:
    'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse',
  branch: 'main',
  path: 'clusters/prod-eu',
};

describe('cluster entity URLs', () => {
  const backend = 'http://localhost:7007';

  it('puts the parameters into the query of the status backend path, trimmed, empty ones left out', () => {
    const url = new URL(
      clusterEntityUrl(backend, { ...base, title: ' A & B? ', system: '' }),
    );
    expect(url.pathname).toBe('/api/flux-bootstrap/v1/cluster-entity.yaml');
    expect(url.pathname).toBe(CLUSTER_ENTITY_PATH);
    expect([...url.searchParams]).toEqual([
      ['name', 'prod-eu'],
      ['title', 'A & B?'],
      ['owner', 'group:platform-team'],
      ['repository', base.repository],
      ['branch', 'main'],
      ['path', 'clusters/prod-eu'],
    ]);
  });

  it('gives the same URL for the same inputs (re-registering is a no-op)', () => {
    expect(clusterEntityUrl(backend, base)).toBe(
      clusterEntityUrl(`${backend}/`, { ...base }),
    );
  });

  it('keeps a base path of the backend', () => {
    const url = clusterEntityUrl('https://portal.example.com/backstage', base);
    expect(url).toMatch(
      /^https:\/\/portal\.example\.com\/backstage\/api\/flux-bootstrap\/v1\/cluster-entity\.yaml\?/,
    );
    expect(
      isClusterEntityUrl(new URL(url), 'https://portal.example.com/backstage'),
    ).toBe(true);
  });

  it('matches only this backend and path', () => {
    expect(
      isClusterEntityUrl(new URL(clusterEntityUrl(backend, base)), backend),
    ).toBe(true);
    expect(
      isClusterEntityUrl(
        new URL(`http://evil.example.com${CLUSTER_ENTITY_PATH}`),
        backend,
      ),
    ).toBe(false);
    expect(
      isClusterEntityUrl(
        new URL('http://localhost:7007/api/flux-bootstrap/v1/other.yaml'),
        backend,
      ),
    ).toBe(false);
  });
});
