import {
  FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION,
  getEntityClusterNames,
} from './annotations';
import { fluxBootstrapClusterReadPermission } from './permissions';

describe('getEntityClusterNames', () => {
  it('shows a kubernetes-cluster Resource itself, by name', () => {
    expect(
      getEntityClusterNames({
        kind: 'Resource',
        metadata: { name: 'prod-eu' },
        spec: { type: 'kubernetes-cluster' },
      }),
    ).toEqual(['prod-eu']);
  });

  it('prefers backstage.io/kubernetes-cluster over the entity name', () => {
    expect(
      getEntityClusterNames({
        kind: 'Resource',
        metadata: {
          name: 'prod-eu-resource',
          annotations: { 'backstage.io/kubernetes-cluster': 'prod-eu' },
        },
        spec: { type: 'kubernetes-cluster' },
      }),
    ).toEqual(['prod-eu']);
  });

  it('reads a trimmed, de-duplicated comma list from our annotation', () => {
    expect(
      getEntityClusterNames({
        kind: 'Component',
        metadata: {
          name: 'fleet',
          annotations: {
            [FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION]: ' a, b ,,a, c ',
          },
        },
        spec: { type: 'service' },
      }),
    ).toEqual(['a', 'b', 'c']);
  });

  it('shows nothing for other entities without the annotation', () => {
    expect(
      getEntityClusterNames({
        kind: 'Resource',
        metadata: { name: 'db' },
        spec: { type: 'database' },
      }),
    ).toEqual([]);
  });
});

describe('permissions', () => {
  it('names the read permission flux.bootstrap.cluster.read', () => {
    expect(fluxBootstrapClusterReadPermission.name).toBe(
      'flux.bootstrap.cluster.read',
    );
    expect(fluxBootstrapClusterReadPermission.attributes.action).toBe('read');
  });
});
