import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import * as tar from 'tar';
import { KubeApiserver, startKubeApiserver } from '../kube/apiserver';
import { KubeHttp, kubePath } from '../kube/http';
import { uniqueName } from '../kube/isolation';
import { applyFluxBundle, parseBundleFile, pathOf } from './applyBundle';
import { buildFluxBundle, FLUX_BUNDLE_FILES, FLUX_COMPONENTS } from './bundle';
import { serveFluxBundles, serveFluxUpgradeBundles } from './serve';
import { FLUX_UPGRADE_VERSIONS } from './bundle';
import { gotkComponentsYaml, renderFluxInstall } from './install';

jest.setTimeout(120_000);

async function untar(tarball: Buffer): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const parser = new tar.Parser();
  parser.on('entry', (entry: any) => {
    const chunks: Buffer[] = [];
    entry.on('data', (c: Buffer) => chunks.push(c));
    entry.on('end', () => {
      out[`${entry.type}:${entry.path}`] =
        Buffer.concat(chunks).toString('utf8');
    });
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
    Readable.from([tarball]).pipe(parser as any);
  });
  return out;
}

const EXPECTED_CRDS: Record<string, string[]> = {
  'source-controller': [
    'buckets.source.toolkit.fluxcd.io',
    'externalartifacts.source.toolkit.fluxcd.io',
    'gitrepositories.source.toolkit.fluxcd.io',
    'helmcharts.source.toolkit.fluxcd.io',
    'helmrepositories.source.toolkit.fluxcd.io',
    'ocirepositories.source.toolkit.fluxcd.io',
  ],
  'kustomize-controller': ['kustomizations.kustomize.toolkit.fluxcd.io'],
  'helm-controller': ['helmreleases.helm.toolkit.fluxcd.io'],
  'notification-controller': [
    'alerts.notification.toolkit.fluxcd.io',
    'providers.notification.toolkit.fluxcd.io',
    'receivers.notification.toolkit.fluxcd.io',
  ],
  'image-reflector-controller': [
    'imagepolicies.image.toolkit.fluxcd.io',
    'imagerepositories.image.toolkit.fluxcd.io',
  ],
  'image-automation-controller': [
    'imageupdateautomations.image.toolkit.fluxcd.io',
  ],
  'source-watcher': ['artifactgenerators.source.extensions.fluxcd.io'],
};

describe('buildFluxBundle', () => {
  it('packs the real file names flat into a deterministic manifests.tar.gz with its sha256', async () => {
    const a = await buildFluxBundle({ version: 'v2.9.4' });
    expect(Object.keys(a.files).sort()).toEqual([...FLUX_BUNDLE_FILES].sort());
    expect(a.tarball.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip
    expect(a.sha256).toBe(
      crypto.createHash('sha256').update(a.tarball).digest('hex'),
    );
    const entries = await untar(a.tarball);
    expect(Object.keys(entries).sort()).toEqual(
      FLUX_BUNDLE_FILES.map(f => `File:${f}`).sort(),
    );
    for (const f of FLUX_BUNDLE_FILES)
      expect(entries[`File:${f}`]).toBe(a.files[f]);

    const again = await buildFluxBundle({ version: 'v2.9.4' });
    expect(again.sha256).toBe(a.sha256);
    const other = await buildFluxBundle({ version: 'v2.8.0' });
    expect(other.sha256).not.toBe(a.sha256);
    expect(other.files['source-controller.yaml']).toContain(
      'image: fluxcd/source-controller:v2.8.0',
    );
    expect(a.files['source-controller.yaml']).toContain(
      'image: fluxcd/source-controller:v1.9.4',
    );
    expect(a.files['helm-controller.yaml']).toContain(
      'image: fluxcd/helm-controller:v1.6.3',
    );
  });

  it('has per controller its CRDs, ServiceAccount, Service where Flux has one and Deployment, labelled by component', async () => {
    const { files } = await buildFluxBundle({ version: 'v2.9.4' });
    for (const c of FLUX_COMPONENTS) {
      const docs = parseBundleFile(files[`${c}.yaml`]);
      const crds = docs.filter(d => d.kind === 'CustomResourceDefinition');
      expect(crds.map(d => d.metadata.name)).toEqual(EXPECTED_CRDS[c]);
      expect(
        docs.filter(d => d.kind === 'ServiceAccount').map(d => d.metadata.name),
      ).toEqual([c]);
      expect(
        docs.filter(d => d.kind === 'Deployment').map(d => d.metadata.name),
      ).toEqual([c]);
      const services = docs
        .filter(d => d.kind === 'Service')
        .map(d => d.metadata.name);
      expect(services).toEqual(
        {
          'source-controller': ['source-controller'],
          'notification-controller': [
            'notification-controller',
            'webhook-receiver',
          ],
          'source-watcher': ['source-watcher'],
        }[c as string] ?? [],
      );
      expect(new Set(docs.map(d => d.kind))).toEqual(
        new Set([
          'CustomResourceDefinition',
          'ServiceAccount',
          'Deployment',
          ...(services.length ? ['Service'] : []),
        ]),
      );
      for (const d of docs) {
        expect(d.metadata.namespace).toBeUndefined(); // the generator sets it
        expect(d.metadata.labels).toMatchObject({
          'app.kubernetes.io/component': c,
          'app.kubernetes.io/part-of': 'flux',
        });
      }
      const dep = docs.find(d => d.kind === 'Deployment')!;
      expect(dep.spec.template.metadata.labels).toMatchObject({
        app: c,
        'app.kubernetes.io/component': c,
      });
      expect(dep.spec.template.spec.serviceAccountName).toBe(c);
      expect(dep.spec.template.spec.containers[0].image).toMatch(
        new RegExp(`^fluxcd/${c}:v`),
      );
      for (const crd of crds) {
        expect(JSON.stringify(crd)).not.toContain('x-kubernetes-validations');
        expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
        expect(crd.spec.versions.filter((v: any) => v.storage)).toHaveLength(1);
        for (const v of crd.spec.versions) {
          expect(v.subresources).toEqual({ status: {} });
          expect(v.schema.openAPIV3Schema.type).toBe('object');
        }
      }
    }
  });

  it('orders Deployment args like flux2 so the generator can patch them by index', async () => {
    const { files } = await buildFluxBundle({ version: 'v2.9.4' });
    const args = (c: string) =>
      parseBundleFile(files[`${c}.yaml`]).find(d => d.kind === 'Deployment')!
        .spec.template.spec.containers[0].args as string[];
    for (const c of ['source-controller', 'source-watcher']) {
      const a = args(c);
      expect(a[0]).toMatch(/^--events-addr=http:\/\/notification-controller\./);
      expect(a[1]).toBe('--watch-all-namespaces');
      expect(a[2]).toBe('--log-level=info');
      expect(a[6]).toBe(
        `--storage-adv-addr=${c}.$(RUNTIME_NAMESPACE).svc.cluster.local.`,
      );
    }
    const n = args('notification-controller');
    expect(n.slice(0, 2)).toEqual([
      '--watch-all-namespaces',
      '--log-level=info',
    ]);
    for (const c of [
      'kustomize-controller',
      'helm-controller',
      'image-reflector-controller',
      'image-automation-controller',
    ]) {
      const a = args(c);
      expect(a[0]).toMatch(/^--events-addr=/);
      expect(a.slice(1, 3)).toEqual([
        '--watch-all-namespaces',
        '--log-level=info',
      ]);
    }
  });

  it('has Flux RBAC (names before nameSuffix) and the three NetworkPolicies', async () => {
    const { files } = await buildFluxBundle({ version: 'v2.9.4' });
    const rbac = parseBundleFile(files['rbac.yaml']);
    expect(rbac.map(o => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ClusterRole/crd-controller',
        'ClusterRole/flux-edit',
        'ClusterRole/flux-view',
        'ClusterRoleBinding/cluster-reconciler',
        'ClusterRoleBinding/crd-controller',
        'ResourceQuota/critical-pods',
      ].sort(),
    );
    const crb = rbac.find(
      o =>
        o.kind === 'ClusterRoleBinding' && o.metadata.name === 'crd-controller',
    )!;
    expect(crb.subjects.map((s: any) => s.name).sort()).toEqual(
      [...FLUX_COMPONENTS].sort(),
    );
    expect(crb.subjects.every((s: any) => s.namespace === 'flux-system')).toBe(
      true,
    );
    const reconciler = rbac.find(
      o => o.metadata.name === 'cluster-reconciler',
    )!;
    expect(reconciler.roleRef.name).toBe('cluster-admin');
    expect(reconciler.subjects.map((s: any) => s.name)).toEqual([
      'kustomize-controller',
      'helm-controller',
    ]);
    const policies = parseBundleFile(files['policies.yaml']);
    expect(policies.map(p => `${p.kind}/${p.metadata.name}`)).toEqual([
      'NetworkPolicy/allow-egress',
      'NetworkPolicy/allow-scraping',
      'NetworkPolicy/allow-webhooks',
    ]);
  });

  it('inflates CRDs to about crdPadBytes', async () => {
    const { files } = await buildFluxBundle({
      version: 'v2.9.4',
      crdPadBytes: 150_000,
    });
    const crds = FLUX_COMPONENTS.flatMap(c =>
      parseBundleFile(files[`${c}.yaml`]),
    ).filter(d => d.kind === 'CustomResourceDefinition');
    expect(crds).toHaveLength(15);
    for (const crd of crds) {
      const size = JSON.stringify(crd).length;
      expect(size).toBeGreaterThanOrEqual(150_000);
      expect(size).toBeLessThan(170_000);
    }
  });

  it('overrideFiles replaces or removes files', async () => {
    const b = await buildFluxBundle({
      version: 'v2.9.4',
      overrideFiles: { 'policies.yaml': null, 'rbac.yaml': 'not: [yaml' },
    });
    expect(Object.keys(b.files)).not.toContain('policies.yaml');
    const entries = await untar(b.tarball);
    expect(entries['File:rbac.yaml']).toBe('not: [yaml');
    expect(entries['File:policies.yaml']).toBeUndefined();
  });

  it('rejects a version that is not semver', async () => {
    await expect(
      buildFluxBundle({ version: 'latest; rm -rf /' }),
    ).rejects.toThrow(/not a semver/);
  });
});

describe('the upgrade fixture (two Flux versions)', () => {
  it('serves v2.9.4 and v2.10.0 bundles that differ in every controller image and in their CRDs', async () => {
    expect(FLUX_UPGRADE_VERSIONS).toEqual({ from: 'v2.9.4', to: 'v2.10.0' });
    const fixture = await serveFluxUpgradeBundles();
    try {
      const { from, to, server } = fixture;
      for (const b of [from, to]) {
        const res = await fetch(server.urlFor(b.version));
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(b.tarball)).toBe(
          true,
        );
      }
      const images = (b: typeof from) =>
        renderFluxInstall(b, { namespace: 'flux-system' })
          .filter(o => o.kind === 'Deployment')
          .map(o => o.spec.template.spec.containers[0].image);
      expect(images(from)).toEqual([
        'ghcr.io/fluxcd/source-controller:v1.9.4',
        'ghcr.io/fluxcd/kustomize-controller:v1.9.4',
        'ghcr.io/fluxcd/helm-controller:v1.6.3',
        'ghcr.io/fluxcd/notification-controller:v1.9.3',
      ]);
      expect(images(to)).toEqual([
        'ghcr.io/fluxcd/source-controller:v2.10.0',
        'ghcr.io/fluxcd/kustomize-controller:v2.10.0',
        'ghcr.io/fluxcd/helm-controller:v2.10.0',
        'ghcr.io/fluxcd/notification-controller:v2.10.0',
      ]);
      const served = (b: typeof from, name: string) =>
        parseBundleFile(b.files['kustomize-controller.yaml'])
          .find(o => o.metadata.name === name)!
          .spec.versions.map((v: any) => v.name);
      expect(
        served(from, 'kustomizations.kustomize.toolkit.fluxcd.io'),
      ).toEqual(['v1beta2', 'v1']);
      expect(served(to, 'kustomizations.kustomize.toolkit.fluxcd.io')).toEqual([
        'v1',
      ]);
      const header = gotkComponentsYaml(to, { namespace: 'flux-system' })
        .split('\n')
        .slice(0, 4);
      expect(header).toEqual([
        '---',
        '# This manifest was generated by flux. DO NOT EDIT.',
        '# Flux Version: v2.10.0',
        '# Components: source-controller,kustomize-controller,helm-controller,notification-controller',
      ]);
    } finally {
      await fixture.stop();
    }
  });
});

describe('serveFluxBundles', () => {
  it('serves <baseUrl>/<version>/manifests.tar.gz and checksums, logs requests and injects faults', async () => {
    const b1 = await buildFluxBundle({ version: 'v2.9.4' });
    const b2 = await buildFluxBundle({ version: 'v2.8.0' });
    const server = await serveFluxBundles([b1, b2]);
    try {
      expect(server.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(server.urlFor('v2.9.4'));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/gzip');
      expect(Buffer.from(await res.arrayBuffer())).toEqual(b1.tarball);
      expect(
        await (await fetch(`${server.baseUrl}/v2.8.0/checksums.txt`)).text(),
      ).toBe(`${b2.sha256}  manifests.tar.gz\n`);
      expect(
        (await fetch(`${server.baseUrl}/v9.9.9/manifests.tar.gz`)).status,
      ).toBe(404);

      server.injectFault({
        path: '/v2.9.4/manifests.tar.gz',
        status: 503,
        times: 1,
      });
      expect((await fetch(server.urlFor('v2.9.4'))).status).toBe(503);
      expect((await fetch(server.urlFor('v2.9.4'))).status).toBe(200);
      server.injectFault({ drop: true });
      await expect(fetch(server.urlFor('v2.9.4'))).rejects.toThrow();
      server.injectFault({ truncate: true });
      await expect(
        fetch(server.urlFor('v2.9.4')).then(r => r.arrayBuffer()),
      ).rejects.toThrow();

      expect(
        server.requests().map(r => `${r.method} ${r.path} ${r.status}`),
      ).toEqual([
        'GET /v2.9.4/manifests.tar.gz 200',
        'GET /v2.8.0/checksums.txt 200',
        'GET /v9.9.9/manifests.tar.gz 404',
        'GET /v2.9.4/manifests.tar.gz 503',
        'GET /v2.9.4/manifests.tar.gz 200',
        'GET /v2.9.4/manifests.tar.gz -1',
        'GET /v2.9.4/manifests.tar.gz 200',
      ]);
      server.clearRequests();
      expect(server.requests()).toEqual([]);
    } finally {
      await server.stop();
    }
    await expect(fetch(server.urlFor('v2.9.4'))).rejects.toThrow();
  });
});

describe('the bundle on a real 1.20 kube-apiserver', () => {
  let kube: KubeApiserver;
  beforeAll(async () => {
    // Private: the padded CRDs must not leak into the shared apiserver other suites use.
    kube = await startKubeApiserver();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it('applies every object with server-side apply, as-is and after flux-install style renaming', async () => {
    const bundle = await buildFluxBundle({ version: 'v2.9.4' });
    const api = new KubeHttp(kube);
    try {
      // 1. Every object exactly as in the bundle (namespaced ones into a namespace).
      const raw = uniqueName('raw');
      await api.apply(
        kubePath({ apiVersion: 'v1', resource: 'namespaces', name: raw }),
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: raw } },
      );
      const all = FLUX_BUNDLE_FILES.flatMap(f =>
        parseBundleFile(bundle.files[f]),
      );
      const crds = all.filter(o => o.kind === 'CustomResourceDefinition');
      for (const o of [
        ...crds,
        ...all.filter(x => x.kind !== 'CustomResourceDefinition'),
      ]) {
        if (
          ![
            'CustomResourceDefinition',
            'ClusterRole',
            'ClusterRoleBinding',
          ].includes(o.kind)
        )
          o.metadata.namespace = raw;
        const res = await api.apply(pathOf(o as any), o, {
          fieldManager: 'flux',
          force: false,
        });
        expect(res.body.metadata.name).toBe(o.metadata.name);
      }
      // Re-applying changes nothing (1.20 still bumps resourceVersion when the managedFields
      // timestamp moves to a new second, so compare generation and spec).
      const dep = all.find(o => o.kind === 'Deployment')!;
      const before = (await api.expect('GET', pathOf(dep as any))).body;
      const after = (
        await api.apply(pathOf(dep as any), dep, {
          fieldManager: 'flux',
          force: false,
        })
      ).body;
      expect(after.metadata.generation).toBe(before.metadata.generation);
      expect(after.spec).toEqual(before.spec);

      // 2. The layout of `flux install` in another namespace, with padded CRDs (~200 KB each).
      const ns = uniqueName('flux');
      const padded = await buildFluxBundle({
        version: 'v2.9.4',
        crdPadBytes: 200_000,
      });
      const applied = await applyFluxBundle(kube, padded, {
        namespace: ns,
        withPolicies: true,
        fieldManager: 'flux',
      });
      expect(
        applied.filter(o => o.kind === 'CustomResourceDefinition'),
      ).toHaveLength(15);
      expect(
        applied.filter(o => o.kind === 'Deployment' && o.namespace === ns),
      ).toHaveLength(7);
      const names = applied
        .filter(o => o.kind.startsWith('ClusterRole'))
        .map(o => `${o.kind}/${o.name}`)
        .sort();
      expect(names).toEqual(
        [
          `ClusterRole/crd-controller-${ns}`,
          `ClusterRole/flux-edit-${ns}`,
          `ClusterRole/flux-view-${ns}`,
          `ClusterRoleBinding/cluster-reconciler-${ns}`,
          `ClusterRoleBinding/crd-controller-${ns}`,
        ].sort(),
      );
      const crb = (
        await api.expect(
          'GET',
          kubePath({
            apiVersion: 'rbac.authorization.k8s.io/v1',
            resource: 'clusterrolebindings',
            name: `crd-controller-${ns}`,
          }),
        )
      ).body;
      expect(crb.roleRef.name).toBe(`crd-controller-${ns}`);
      expect(crb.subjects.every((s: any) => s.namespace === ns)).toBe(true);
      const deps = (
        await api.expect(
          'GET',
          kubePath({
            apiVersion: 'apps/v1',
            resource: 'deployments',
            namespace: ns,
          }),
          { query: { labelSelector: 'app.kubernetes.io/part-of=flux' } },
        )
      ).body.items;
      expect(deps.map((d: any) => d.metadata.name).sort()).toEqual(
        [...FLUX_COMPONENTS].sort(),
      );
      const gitrepoCrd = (
        await api.expect(
          'GET',
          kubePath({
            apiVersion: 'apiextensions.k8s.io/v1',
            resource: 'customresourcedefinitions',
            name: 'gitrepositories.source.toolkit.fluxcd.io',
          }),
        )
      ).body;
      expect(JSON.stringify(gitrepoCrd.spec).length).toBeGreaterThan(190_000);
      expect(gitrepoCrd.metadata.labels['app.kubernetes.io/version']).toBe(
        'v2.9.4',
      );
      expect(gitrepoCrd.spec.versions.map((v: any) => v.name)).toEqual([
        'v1beta2',
        'v1',
      ]);

      // 3. The CRDs accept the sync objects flux bootstrap writes, and reject invalid ones.
      const gr = {
        apiVersion: 'source.toolkit.fluxcd.io/v1',
        kind: 'GitRepository',
        metadata: { name: ns, namespace: ns },
        spec: {
          interval: '1m0s',
          ref: { branch: 'main' },
          secretRef: { name: ns },
          url: 'ssh://git@127.0.0.1:7999/FLUX/fleet.git',
        },
      };
      await api.apply(
        kubePath({
          apiVersion: gr.apiVersion,
          resource: 'gitrepositories',
          namespace: ns,
          name: ns,
        }),
        gr,
        { fieldManager: 'flux' },
      );
      const ks = {
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        kind: 'Kustomization',
        metadata: { name: ns, namespace: ns },
        spec: {
          interval: '10m0s',
          path: './clusters/dev',
          prune: true,
          sourceRef: { kind: 'GitRepository', name: ns },
        },
      };
      await api.apply(
        kubePath({
          apiVersion: ks.apiVersion,
          resource: 'kustomizations',
          namespace: ns,
          name: ns,
        }),
        ks,
        { fieldManager: 'flux' },
      );
      const bad = await api.request(
        'PATCH',
        kubePath({
          apiVersion: gr.apiVersion,
          resource: 'gitrepositories',
          namespace: ns,
          name: 'bad',
        }),
        {
          body: {
            ...gr,
            metadata: { name: 'bad', namespace: ns },
            spec: { ...gr.spec, url: 'ftp://nope' },
          },
          contentType: 'application/apply-patch+yaml',
          query: { fieldManager: 'flux' },
        },
      );
      expect(bad.status).toBe(422);
      expect(bad.body.message).toContain('spec.url');
    } finally {
      api.close();
    }
  });
});
