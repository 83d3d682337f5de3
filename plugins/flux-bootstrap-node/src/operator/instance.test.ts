import YAML from 'yaml';
import { buildFluxBundle, renderFluxInstall } from '@flux-bootstrap/test-peers';
import { resolveFluxManifestOptions } from '../manifests/options';
import {
  generateFluxInstance,
  instanceRevisionVersion,
  isExactFluxVersion,
  renderFluxInstanceFiles,
} from './instance';

const base = {
  path: 'clusters/prod',
  syncUrl: 'ssh://git@bitbucket.example.com:7999/flux/fleet.git',
};
const operator = {
  version: 'v2.9.4',
  clusterType: 'kubernetes' as const,
  multitenant: false,
};

describe('FluxInstance generation', () => {
  it('writes flux-instance.yaml and a kustomization.yaml listing it, with flux bootstrap defaults', () => {
    const resolved = resolveFluxManifestOptions(base, {
      fluxVersion: 'v2.9.4',
    });
    const { dir, files } = renderFluxInstanceFiles(resolved, operator);
    expect(dir).toBe('clusters/prod/flux-system');
    expect(Object.keys(files)).toEqual([
      'clusters/prod/flux-system/flux-instance.yaml',
      'clusters/prod/flux-system/kustomization.yaml',
    ]);
    expect(files['clusters/prod/flux-system/flux-instance.yaml']).toBe(
      `apiVersion: fluxcd.controlplane.io/v1
kind: FluxInstance
metadata:
  name: flux
  namespace: flux-system
spec:
  cluster:
    domain: cluster.local
    networkPolicy: true
    type: kubernetes
  components:
  - source-controller
  - kustomize-controller
  - helm-controller
  - notification-controller
  distribution:
    registry: ghcr.io/fluxcd
    version: 2.9.4
  sync:
    interval: 1m0s
    kind: GitRepository
    path: clusters/prod
    pullSecret: flux-system
    ref: refs/heads/main
    url: ssh://git@bitbucket.example.com:7999/flux/fleet.git
`,
    );
    expect(
      YAML.parse(files['clusters/prod/flux-system/kustomization.yaml']),
    ).toEqual({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: ['flux-instance.yaml'],
    });
  });

  it('maps every flux bootstrap option: a mirror gets the upstream variant, the pull secret is the distribution one, tolerations, log level and watched namespaces are kustomize patches the operator applies', async () => {
    const resolved = resolveFluxManifestOptions(
      {
        ...base,
        path: '', // the root, as the action schemas normalise "."

        branch: 'fleet/prod',
        namespace: 'flux-system',
        secretName: 'fleet-creds',
        componentsExtra: ['image-reflector-controller'],
        registry: 'registry.example.com/fluxcd',
        imagePullSecret: 'regcred',
        networkPolicy: false,
        clusterDomain: 'corp.local',
        logLevel: 'debug',
        watchAllNamespaces: false,
        tolerationKeys: ['dedicated', 'gpu'],
        interval: '5m0s', // in Go's form, as the action schemas normalise "5m"
      },
      { fluxVersion: 'v2.9.4' },
    );
    const instance = generateFluxInstance(resolved, {
      version: '2.9.x',
      clusterType: 'openshift',
      clusterSize: 'large',
      multitenant: true,
    });
    const spec = instance.spec as any;
    expect(spec.distribution).toEqual({
      version: '2.9.x',
      registry: 'registry.example.com/fluxcd',
      variant: 'upstream-alpine',
      imagePullSecret: 'regcred',
    });
    expect(spec.components).toContain('image-reflector-controller');
    expect(spec.cluster).toEqual({
      type: 'openshift',
      size: 'large',
      multitenant: true,
      networkPolicy: false,
      domain: 'corp.local',
    });
    expect(spec.sync).toMatchObject({
      ref: 'refs/heads/fleet/prod',
      path: './',
      pullSecret: 'fleet-creds',
      interval: '5m0s',
    });
    // The patches do to the controllers what flux bootstrap's generator does: applied here with
    // the test ground's kustomize patch implementation to the Flux objects of the fixture bundle.
    const objects = renderFluxInstall(
      await buildFluxBundle({ version: 'v2.9.4' }),
      { namespace: 'flux-system', patches: spec.kustomize.patches },
    );
    for (const d of objects.filter(o => o.kind === 'Deployment')) {
      const pod = d.spec.template.spec;
      expect(pod.tolerations).toEqual([
        { key: 'dedicated', operator: 'Exists' },
        { key: 'gpu', operator: 'Exists' },
      ]);
      expect(pod.containers[0].args).toEqual(
        expect.arrayContaining([
          '--log-level=debug',
          '--watch-all-namespaces=false',
        ]),
      );
      // The flags come last, so they win over the defaults of the manifests.
      expect(pod.containers[0].args.slice(-2)).toEqual([
        '--log-level=debug',
        '--watch-all-namespaces=false',
      ]);
    }
  });

  it('keeps fluxcd/ images on Docker Hub and tells exact versions from ranges', () => {
    const resolved = resolveFluxManifestOptions(
      { ...base, registry: '' },
      { fluxVersion: 'v2.9.4' },
    );
    expect(
      (generateFluxInstance(resolved, operator).spec as any).distribution,
    ).toEqual({
      version: '2.9.4',
      registry: 'docker.io/fluxcd',
      variant: 'upstream-alpine',
    });
    expect(['v2.9.4', '2.9.4', '2.10.0-rc.1'].map(isExactFluxVersion)).toEqual([
      true,
      true,
      true,
    ]);
    expect(['2.x', '2.9.x', '>=2.9.0'].map(isExactFluxVersion)).toEqual([
      false,
      false,
      false,
    ]);
    expect(instanceRevisionVersion('v2.9.4@sha256:abc')).toBe('v2.9.4');
    expect(instanceRevisionVersion(undefined)).toBeUndefined();
  });
});
