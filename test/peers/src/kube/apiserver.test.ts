import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  findKubeBinaries,
  startKubeApiserver,
  KubeApiserver,
} from './apiserver';
import { KubeHttp, kubePath } from './http';
import { KubeCleanup, createTestNamespace, uniqueName } from './isolation';
import { isAlive, sweepStaleTempDirs } from './process';
import { mintToken } from './rbac';
import { getSharedKubeApiserver } from './shared';
import globalSetup from '../jest/globalSetup';

jest.setTimeout(120_000);

const cm = (
  namespace: string,
  name: string,
  data: Record<string, string> = { a: '1' },
) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace },
  data,
});

async function accessReview(api: KubeHttp, attrs: Record<string, string>) {
  const res = await api.expect(
    'POST',
    '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: attrs },
      },
    },
  );
  return res.body.status.allowed as boolean;
}

describe('shared kube-apiserver (jest globalSetup)', () => {
  const kube = getSharedKubeApiserver();
  const admin = new KubeHttp(kube);
  afterAll(() => admin.close());

  it('is a real kube-apiserver serving TLS for 127.0.0.1 with the published CA', async () => {
    expect(kube.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const version = await admin.expect('GET', '/version');
    expect(version.body.gitVersion).toMatch(/^v1\.\d+\.\d+/);
    // Without the CA the certificate is not trusted.
    await expect(fetch(`${kube.url}/version`)).rejects.toThrow();
  });

  it('rejects requests without a valid token', async () => {
    const anon = new KubeHttp(kube, 'not-a-token');
    try {
      const res = await anon.request('GET', '/api/v1/namespaces');
      expect(res.status).toBe(401);
    } finally {
      anon.close();
    }
  });

  it('gives the admin token everything (system:masters) and supports SSA, CRDs and status subresources', async () => {
    expect(
      await accessReview(admin, { verb: '*', group: '*', resource: '*' }),
    ).toBe(true);
    const ns = await createTestNamespace(kube, 'admin');
    const created = await admin.apply(
      kubePath({
        apiVersion: 'v1',
        resource: 'configmaps',
        namespace: ns,
        name: 'x',
      }),
      cm(ns, 'x'),
    );
    expect(created.body.data).toEqual({ a: '1' });

    const group = `${uniqueName('g')}.example.com`;
    const crdName = `widgets.${group}`;
    const cleanup = new KubeCleanup(kube).track({
      apiVersion: 'apiextensions.k8s.io/v1',
      resource: 'customresourcedefinitions',
      name: crdName,
    });
    try {
      await admin.apply(
        kubePath({
          apiVersion: 'apiextensions.k8s.io/v1',
          resource: 'customresourcedefinitions',
          name: crdName,
        }),
        {
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name: crdName },
          spec: {
            group,
            names: {
              kind: 'Widget',
              listKind: 'WidgetList',
              plural: 'widgets',
              singular: 'widget',
            },
            scope: 'Namespaced',
            versions: [
              {
                name: 'v1',
                served: true,
                storage: true,
                subresources: { status: {} },
                schema: {
                  openAPIV3Schema: {
                    type: 'object',
                    properties: {
                      spec: {
                        type: 'object',
                        properties: { size: { type: 'integer', minimum: 1 } },
                      },
                      status: {
                        type: 'object',
                        properties: { phase: { type: 'string' } },
                      },
                    },
                  },
                },
              },
            ],
          },
        },
      );
      // Wait until the CRD is served (Established is set by the apiserver itself).
      const crPath = kubePath({
        apiVersion: `${group}/v1`,
        resource: 'widgets',
        namespace: ns,
        name: 'w',
      });
      for (let i = 0; ; i++) {
        const res = await admin.request('GET', crPath);
        if (res.status === 404 && res.body?.details?.name === 'w') break; // collection served, object absent
        if (i > 100) throw new Error(`CRD never served: ${res.text}`);
        await new Promise(r => setTimeout(r, 100));
      }
      const w = await admin.apply(crPath, {
        apiVersion: `${group}/v1`,
        kind: 'Widget',
        metadata: { name: 'w', namespace: ns },
        spec: { size: 2 },
      });
      expect(w.body.metadata.generation).toBe(1);
      const bad = await admin.request('PATCH', crPath, {
        body: { spec: { size: 0 } },
        contentType: 'application/merge-patch+json',
      });
      expect(bad.status).toBe(422);
      const st = await admin.expect('PATCH', `${crPath}/status`, {
        body: { status: { phase: 'Ready' } },
        contentType: 'application/merge-patch+json',
      });
      expect(st.body.status).toEqual({ phase: 'Ready' });
      expect(st.body.metadata.generation).toBe(1);
    } finally {
      await cleanup.run();
    }
    expect(
      (
        await admin.request(
          'GET',
          kubePath({
            apiVersion: 'apiextensions.k8s.io/v1',
            resource: 'customresourcedefinitions',
            name: crdName,
          }),
        )
      ).status,
    ).toBe(404);
  });

  it('mints a restricted token that gets 403 outside its grants and works inside them', async () => {
    const allowedNs = await createTestNamespace(kube, 'allowed');
    const otherNs = await createTestNamespace(kube, 'other');
    await admin.apply(
      kubePath({
        apiVersion: 'v1',
        resource: 'configmaps',
        namespace: allowedNs,
        name: 'seed',
      }),
      cm(allowedNs, 'seed'),
    );
    const name = uniqueName('reader');
    const cleanup = new KubeCleanup(kube)
      .track({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        resource: 'clusterroles',
        name: `flux-test:${name}`,
      })
      .track({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        resource: 'clusterrolebindings',
        name: `flux-test:${name}`,
      });
    try {
      const token = await mintToken(kube, {
        name,
        clusterRules: [
          { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
        ],
        namespaceRules: [
          {
            namespace: allowedNs,
            rules: [
              {
                apiGroups: [''],
                resources: ['configmaps'],
                verbs: ['get', 'list'],
              },
            ],
          },
        ],
      });
      expect(token.split('.')).toHaveLength(3); // a signed JWT from TokenRequest
      expect(token).not.toEqual(kube.adminToken);
      const restricted = new KubeHttp(kube, token);
      try {
        // allowed
        const list = await restricted.request(
          'GET',
          kubePath({
            apiVersion: 'v1',
            resource: 'configmaps',
            namespace: allowedNs,
          }),
        );
        expect(list.status).toBe(200);
        expect(list.body.items.map((i: any) => i.metadata.name)).toContain(
          'seed',
        );
        expect(
          (
            await restricted.request(
              'GET',
              kubePath({
                apiVersion: 'v1',
                resource: 'namespaces',
                name: otherNs,
              }),
            )
          ).status,
        ).toBe(200);
        // forbidden
        const create = await restricted.request(
          'POST',
          kubePath({
            apiVersion: 'v1',
            resource: 'configmaps',
            namespace: allowedNs,
          }),
          {
            body: cm(allowedNs, 'new'),
          },
        );
        expect(create.status).toBe(403);
        expect(create.body.reason).toBe('Forbidden');
        expect(create.body.message).toContain(
          `system:serviceaccount:flux-test-tokens:${name}`,
        );
        expect(
          (
            await restricted.request(
              'GET',
              kubePath({
                apiVersion: 'v1',
                resource: 'configmaps',
                namespace: otherNs,
              }),
            )
          ).status,
        ).toBe(403);
        expect(
          (
            await restricted.request(
              'GET',
              kubePath({ apiVersion: 'v1', resource: 'namespaces' }),
            )
          ).status,
        ).toBe(403);
        expect(
          (
            await restricted.request(
              'GET',
              kubePath({
                apiVersion: 'v1',
                resource: 'secrets',
                namespace: allowedNs,
              }),
            )
          ).status,
        ).toBe(403);
        expect(
          await accessReview(restricted, {
            verb: 'create',
            group: 'apiextensions.k8s.io',
            resource: 'customresourcedefinitions',
          }),
        ).toBe(false);
        expect(
          await accessReview(restricted, {
            verb: 'list',
            group: '',
            resource: 'configmaps',
            namespace: allowedNs,
          }),
        ).toBe(true);
      } finally {
        restricted.close();
      }
    } finally {
      await cleanup.run();
    }
    expect(
      (
        await admin.request(
          'GET',
          kubePath({
            apiVersion: 'rbac.authorization.k8s.io/v1',
            resource: 'clusterroles',
            name: `flux-test:${name}`,
          }),
        )
      ).status,
    ).toBe(404);
  });

  it('writes a kubeconfig (0600) that points at the apiserver with the CA and admin token', () => {
    const stat = fs.statSync(kube.kubeconfigPath);
    expect(stat.mode & 0o777).toBe(0o600);
    const cfg = JSON.parse(fs.readFileSync(kube.kubeconfigPath, 'utf8'));
    expect(cfg['current-context']).toBe('flux-test');
    expect(cfg.clusters[0].cluster.server).toBe(kube.url);
    expect(
      Buffer.from(
        cfg.clusters[0].cluster['certificate-authority-data'],
        'base64',
      ).toString(),
    ).toBe(kube.caPem);
    expect(cfg.users[0].user.token).toBe(kube.adminToken);
  });

  it('globalSetup does not start a second apiserver when one is already published', async () => {
    const before = process.env.FLUX_TEST_KUBE;
    await globalSetup();
    // A second start would have published a different URL and token.
    expect(process.env.FLUX_TEST_KUBE).toBe(before);
    expect(getSharedKubeApiserver()).toEqual(kube);
  });
});

describe('KubeCleanup on the shared apiserver', () => {
  const kube = getSharedKubeApiserver();
  const admin = new KubeHttp(kube);
  afterAll(() => admin.close());

  it('deletes tracked and label-selected objects, stripping custom finalizers no controller would remove', async () => {
    const ns = await createTestNamespace(kube, 'cleanup');
    const label = uniqueName('sel');
    const rbac = 'rbac.authorization.k8s.io/v1';
    const roles = [uniqueName('role-a'), uniqueName('role-b')];
    for (const name of roles) {
      await admin.apply(
        kubePath({ apiVersion: rbac, resource: 'clusterroles', name }),
        {
          apiVersion: rbac,
          kind: 'ClusterRole',
          metadata: { name, labels: { 'flux-test/cleanup': label } },
          rules: [],
        },
      );
    }
    const cmPath = kubePath({
      apiVersion: 'v1',
      resource: 'configmaps',
      namespace: ns,
      name: 'held',
    });
    await admin.apply(cmPath, {
      ...cm(ns, 'held'),
      metadata: {
        name: 'held',
        namespace: ns,
        finalizers: ['example.com/never-removed'],
      },
    });

    await new KubeCleanup(kube)
      .trackSelector({
        apiVersion: rbac,
        resource: 'clusterroles',
        labelSelector: `flux-test/cleanup=${label}`,
      })
      .track({
        apiVersion: 'v1',
        resource: 'configmaps',
        namespace: ns,
        name: 'held',
      })
      .track({ apiVersion: 'v1', resource: 'namespaces', name: ns })
      .run();

    for (const name of roles) {
      expect(
        (
          await admin.request(
            'GET',
            kubePath({ apiVersion: rbac, resource: 'clusterroles', name }),
          )
        ).status,
      ).toBe(404);
    }
    expect((await admin.request('GET', cmPath)).status).toBe(404);
    // The namespace is only marked for deletion: no namespace controller runs here.
    const nsObj = await admin.expect(
      'GET',
      kubePath({ apiVersion: 'v1', resource: 'namespaces', name: ns }),
    );
    expect(nsObj.body.status.phase).toBe('Terminating');
  });
});

describe('findKubeBinaries', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('uses KUBEBUILDER_ASSETS and names what is missing there', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'assets-'));
    try {
      process.env.KUBEBUILDER_ASSETS = dir;
      expect(() => findKubeBinaries()).toThrow(
        `KUBEBUILDER_ASSETS=${dir} has no executable kube-apiserver`,
      );
      for (const f of ['kube-apiserver', 'etcd'])
        fs.writeFileSync(path.join(dir, f), '#!/bin/sh\n', { mode: 0o755 });
      expect(findKubeBinaries()).toEqual({
        apiserver: path.join(dir, 'kube-apiserver'),
        etcd: path.join(dir, 'etcd'),
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without KUBEBUILDER_ASSETS points at install-system-deps.sh when the cached build is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cache-'));
    try {
      delete process.env.KUBEBUILDER_ASSETS;
      process.env.FLUX_BOOTSTRAP_CACHE = dir;
      expect(() => findKubeBinaries()).toThrow(
        /kube-apiserver \(.*kube-apiserver-v1\.20\.2\/kube-apiserver\).*scripts\/install-system-deps\.sh as root/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a test process killed from outside', () => {
  it('takes its kube-apiserver and etcd with it, and its temp dir is swept later', async () => {
    const script = path.join(
      fs.mkdtempSync(path.join(os.tmpdir(), 'orphan-')),
      'orphan.ts',
    );
    fs.writeFileSync(
      script,
      `import path from 'node:path';
import { startKubeApiserver } from ${JSON.stringify(
        require.resolve('@flux-bootstrap/test-peers/src/kube/apiserver.ts'),
      )};
startKubeApiserver().then(k => {
  console.log(JSON.stringify({ ...k.pids(), dir: path.dirname(k.kubeconfigPath) }));
  setInterval(() => {}, 1000);
});
`,
    );
    const child = spawn(
      process.execPath,
      [
        '--require',
        require.resolve('@backstage/cli-node/config/nodeTransform.cjs'),
        script,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', d => {
          out += d;
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.once('exit', code =>
          reject(new Error(`child exited ${code}: ${out}`)),
        );
      });
      const { apiserver, etcd, dir } = JSON.parse(line);
      expect(isAlive(apiserver)).toBe(true);
      expect(isAlive(etcd)).toBe(true);
      child.kill('SIGKILL'); // no exit handler can run
      for (let i = 0; isAlive(apiserver) || isAlive(etcd); i++) {
        if (i > 100)
          throw new Error('kube-apiserver/etcd survived their parent');
        await new Promise(r => setTimeout(r, 100));
      }
      expect(fs.existsSync(dir)).toBe(true);
      sweepStaleTempDirs('flux-test-kube-', 0);
      expect(fs.existsSync(dir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(path.dirname(script), { recursive: true, force: true });
    }
  });
});

describe('uniqueName', () => {
  it('returns distinct DNS-1123 labels of at most 63 characters', () => {
    const names = new Set<string>();
    for (let i = 0; i < 500; i++) names.add(uniqueName('Flux_System Test'));
    expect(names.size).toBe(500);
    for (const n of names) {
      expect(n).toMatch(/^flux-system-test-[a-z0-9]+$/);
    }
    const long = uniqueName('x'.repeat(100));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
    expect(uniqueName('9lives')).toMatch(/^t-9lives-/);
  });
});

describe('private kube-apiserver', () => {
  let kube: KubeApiserver;
  beforeAll(async () => {
    kube = await startKubeApiserver();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it('keeps its data, port and certificates across restarts and refuses connections while down', async () => {
    const api = new KubeHttp(kube);
    try {
      const ns = await createTestNamespace(kube, 'restart');
      const p = kubePath({
        apiVersion: 'v1',
        resource: 'configmaps',
        namespace: ns,
        name: 'kept',
      });
      await api.apply(p, cm(ns, 'kept', { value: 'before-restart' }));
      const token = await mintToken(kube, {
        name: 'survivor',
        namespaceRules: [
          {
            namespace: ns,
            rules: [
              { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
            ],
          },
        ],
      });

      await kube.stopApiserver();
      await expect(api.request('GET', p)).rejects.toThrow(
        /ECONNREFUSED|socket hang up|ECONNRESET/,
      );
      await kube.startApiserver();
      expect((await api.expect('GET', p)).body.data).toEqual({
        value: 'before-restart',
      });

      await kube.restart({ etcd: true });
      expect((await api.expect('GET', p)).body.data).toEqual({
        value: 'before-restart',
      });
      // The service-account signing key is the same, so tokens minted before still work.
      const restricted = new KubeHttp(kube, token);
      try {
        expect((await restricted.request('GET', p)).status).toBe(200);
      } finally {
        restricted.close();
      }
    } finally {
      api.close();
    }
  });

  it('stop() kills its processes and removes its files', async () => {
    const other = await startKubeApiserver();
    const dir = other.kubeconfigPath.replace(/\/kubeconfig$/, '');
    expect(fs.existsSync(dir)).toBe(true);
    const api = new KubeHttp(other);
    await other.stop();
    await expect(api.request('GET', '/readyz')).rejects.toThrow(
      /ECONNREFUSED|socket hang up|ECONNRESET/,
    );
    api.close();
    expect(fs.existsSync(dir)).toBe(false);
  });
});
