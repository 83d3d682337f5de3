/**
 * uninstallFlux against a private real kube-apiserver (it deletes the Flux CRDs, which the shared
 * apiserver keeps for every other test), with an audit log that proves which writes went out.
 * Flux is laid out by the test peers' applyFluxBundle (as `flux install` lays it out), plus the
 * sync GitRepository/Kustomization and their Secret as bootstrap makes them, finalizers as the
 * controllers add them, and a Kustomization inventory naming workloads in another namespace.
 * Kubernetes 1.20 without controllers: no garbage collector, and namespaces stay Terminating.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  applyFluxBundle,
  buildFluxBundle,
  KubeHttp,
  kubePath,
  mintToken,
  startKubeApiserver,
  uniqueName,
  type FluxBundle,
  type KubeApiserver,
} from '@flux-bootstrap/test-peers';
import { createKubeClient } from '../kube/client';
import type { KubeClient } from '../kube/types';
import {
  describeFluxUninstallPlan,
  inventoryEntryRef,
  planFluxUninstall,
  uninstallFlux,
} from './uninstall';

jest.setTimeout(180_000);

const FLUX_VERSION = 'v2.9.4';
const CANARY = 'canary-identity-7e1d55a0c3';

let kube: KubeApiserver;
let http: KubeHttp;
let admin: KubeClient;
let bundle: FluxBundle;
let tmp: string;
let auditLog: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uninstall-test-'));
  auditLog = path.join(tmp, 'audit.log');
  const policy = path.join(tmp, 'audit-policy.yaml');
  fs.writeFileSync(
    policy,
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      '  - level: Metadata',
      '',
    ].join('\n'),
  );
  [kube, bundle] = await Promise.all([
    startKubeApiserver({
      extraArgs: [
        `--audit-log-path=${auditLog}`,
        `--audit-policy-file=${policy}`,
      ],
    }),
    buildFluxBundle({ version: FLUX_VERSION }),
  ]);
  http = new KubeHttp(kube);
  admin = await createKubeClient({
    name: 'decommissioned',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });
});

afterAll(async () => {
  admin?.close();
  http?.close();
  await kube?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

interface AuditEvent {
  verb: string;
  user: { username: string };
  objectRef?: {
    resource?: string;
    namespace?: string;
    name?: string;
    apiGroup?: string;
  };
  responseStatus?: { code?: number };
}

/** Every write the admin user made since `mark` (lines of the audit log). */
function writesSince(mark: number, user = 'flux-test-admin'): string[] {
  const lines = fs.readFileSync(auditLog, 'utf8').split('\n').slice(mark);
  return lines
    .filter(Boolean)
    .map(l => JSON.parse(l) as AuditEvent)
    .filter(
      e =>
        e.user.username === user &&
        ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(
          e.verb,
        ) &&
        // access reviews are questions, not changes
        e.objectRef?.resource !== 'selfsubjectaccessreviews',
    )
    .map(
      e =>
        `${e.verb} ${e.objectRef?.resource}${
          e.objectRef?.namespace ? ` ${e.objectRef.namespace}` : ''
        }/${e.objectRef?.name ?? ''}`,
    );
}
async function auditMark(): Promise<number> {
  // the audit backend writes asynchronously: let earlier events land first
  await new Promise(r => setTimeout(r, 1500));
  return fs.readFileSync(auditLog, 'utf8').split('\n').length - 1;
}

const merge = (
  p: string,
  body: unknown,
  fieldManager = 'kustomize-controller',
) =>
  http.expect('PATCH', p, {
    body,
    contentType: 'application/merge-patch+json',
    query: { fieldManager },
  });

const gitRepoPath = (ns: string, name = ns) =>
  kubePath({
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    resource: 'gitrepositories',
    namespace: ns,
    name,
  });
const ksPath = (ns: string, name = ns) =>
  kubePath({
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    resource: 'kustomizations',
    namespace: ns,
    name,
  });

/**
 * Flux as a bootstrap leaves it in namespace `ns`: the controllers and RBAC (with network
 * policies), the flux-system Secret, GitRepository and Kustomization `<ns>/<ns>`, and a second
 * Kustomization `apps` whose inventory lists two workloads in namespace `apps` and, like the
 * real flux-system inventory, some of Flux's own objects. Finalizers as the controllers set them.
 */
async function bootstrapLike(ns: string, apps: string) {
  await applyFluxBundle(kube, bundle, { namespace: ns, withPolicies: true });
  await http.apply(
    kubePath({
      apiVersion: 'v1',
      resource: 'secrets',
      namespace: ns,
      name: 'flux-system',
    }),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'flux-system', namespace: ns },
      stringData: { identity: CANARY, known_hosts: 'example' },
    },
    { fieldManager: 'flux' },
  );
  await http.apply(
    gitRepoPath(ns),
    {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: ns, namespace: ns },
      spec: {
        interval: '1m0s',
        url: 'ssh://git@bitbucket.example.com:7999/fleet/fleet.git',
        ref: { branch: 'main' },
        secretRef: { name: 'flux-system' },
      },
    },
    { fieldManager: 'flux' },
  );
  for (const name of [ns, 'apps']) {
    await http.apply(
      ksPath(ns, name),
      {
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        kind: 'Kustomization',
        metadata: { name, namespace: ns },
        spec: {
          interval: '10m0s',
          path: name === ns ? './clusters/test' : './apps',
          prune: true,
          sourceRef: { kind: 'GitRepository', name: ns },
        },
      },
      { fieldManager: 'flux' },
    );
  }
  // the workloads the apps Kustomization applied
  await http.apply(
    kubePath({ apiVersion: 'v1', resource: 'namespaces', name: apps }),
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: apps } },
    { fieldManager: 'kustomize-controller' },
  );
  await http.apply(
    kubePath({
      apiVersion: 'v1',
      resource: 'configmaps',
      namespace: apps,
      name: 'app-config',
    }),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'app-config', namespace: apps },
      data: { greeting: 'hello' },
    },
    { fieldManager: 'kustomize-controller' },
  );
  await http.apply(
    kubePath({
      apiVersion: 'v1',
      resource: 'serviceaccounts',
      namespace: apps,
      name: 'app',
    }),
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'app', namespace: apps },
    },
    { fieldManager: 'kustomize-controller' },
  );
  await http.apply(
    ksPath(ns, 'apps'),
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name: 'apps', namespace: ns },
      status: {
        inventory: {
          entries: [
            { id: `${apps}_app-config__ConfigMap`, v: 'v1' },
            { id: `${apps}_app__ServiceAccount`, v: 'v1' },
            // Flux's own objects, as the flux-system Kustomization's inventory lists them
            { id: `${ns}_source-controller_apps_Deployment`, v: 'v1' },
            {
              id: '_gitrepositories.source.toolkit.fluxcd.io_apiextensions.k8s.io_CustomResourceDefinition',
              v: 'v1',
            },
            {
              id: `${ns}_${ns}_source.toolkit.fluxcd.io_GitRepository`,
              v: 'v1',
            },
            { id: `_${ns}__Namespace`, v: 'v1' },
          ],
        },
      },
    },
    { fieldManager: 'kustomize-controller', subresource: 'status' },
  );
  for (const p of [gitRepoPath(ns), ksPath(ns), ksPath(ns, 'apps')])
    await merge(p, { metadata: { finalizers: ['finalizers.fluxcd.io'] } });
}

async function exists(p: string): Promise<boolean> {
  return (await http.request('GET', p)).status === 200;
}
async function names(p: string, labelSelector?: string): Promise<string[]> {
  const res = await http.expect('GET', p, { query: { labelSelector } });
  return (res.body.items as any[]).map(i => i.metadata.name).sort();
}
const PART_OF = 'app.kubernetes.io/part-of=flux';
const crdList = kubePath({
  apiVersion: 'apiextensions.k8s.io/v1',
  resource: 'customresourcedefinitions',
});

async function fluxObjectsIn(ns: string): Promise<string[]> {
  const found: string[] = [];
  for (const [apiVersion, resource] of [
    ['apps/v1', 'deployments'],
    ['v1', 'services'],
    ['networking.k8s.io/v1', 'networkpolicies'],
    ['v1', 'serviceaccounts'],
    ['v1', 'resourcequotas'],
  ]) {
    for (const n of await names(
      kubePath({ apiVersion, resource, namespace: ns }),
      PART_OF,
    ))
      found.push(`${resource}/${n}`);
  }
  if (
    await exists(
      kubePath({
        apiVersion: 'v1',
        resource: 'secrets',
        namespace: ns,
        name: 'flux-system',
      }),
    )
  )
    found.push('secrets/flux-system');
  return found;
}
async function fluxClusterObjects(): Promise<string[]> {
  return [
    ...(await names(
      kubePath({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        resource: 'clusterroles',
      }),
      PART_OF,
    )),
    ...(await names(
      kubePath({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        resource: 'clusterrolebindings',
      }),
      PART_OF,
    )),
  ];
}

describe('inventoryEntryRef', () => {
  it('reads the <namespace>_<name>_<group>_<kind> ids of a Kustomization inventory', () => {
    expect(
      inventoryEntryRef({ id: 'apps_web_apps_Deployment', v: 'v1' }),
    ).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'web',
      namespace: 'apps',
    });
    expect(inventoryEntryRef({ id: '_apps__Namespace', v: 'v1' })).toEqual({
      apiVersion: 'v1',
      kind: 'Namespace',
      name: 'apps',
    });
    expect(inventoryEntryRef({ id: 'broken', v: 'v1' })).toBeUndefined();
    expect(inventoryEntryRef({ id: 'a_b_c_D' })).toBeUndefined();
  });
});

describe('uninstallFlux on a real kube-apiserver', () => {
  it('plans exactly what it removes and sends no write (the dry run); then removes it so nothing hangs and the workloads stay; a second run writes nothing', async () => {
    const ns = uniqueName('flux');
    const apps = uniqueName('apps');
    await bootstrapLike(ns, apps);
    const crdsBefore = await names(crdList, PART_OF);
    expect(crdsBefore.length).toBeGreaterThan(5);

    const mark = await auditMark();
    const plan = await planFluxUninstall(admin, { namespace: ns });
    expect(plan.components.map(c => `${c.kind}/${c.name}`)).toEqual(
      expect.arrayContaining([
        'Deployment/source-controller',
        'Deployment/kustomize-controller',
        'Service/source-controller',
        'NetworkPolicy/allow-egress',
        'ServiceAccount/kustomize-controller',
        'ResourceQuota/critical-pods',
        'Secret/flux-system',
      ]),
    );
    // controllers first, as flux uninstall deletes them
    expect(plan.components[0].kind).toBe('Deployment');
    expect(plan.clusterObjects.map(c => c.name)).toEqual(
      expect.arrayContaining([
        `crd-controller-${ns}`,
        `cluster-reconciler-${ns}`,
      ]),
    );
    expect(plan.crds).toEqual(crdsBefore);
    expect(
      plan.customResources
        .filter(r => r.namespace === ns)
        .map(r => `${r.kind}/${r.name}:${r.finalizers.join(',')}`)
        .sort(),
    ).toEqual(
      [
        `GitRepository/${ns}:finalizers.fluxcd.io`,
        `Kustomization/${ns}:finalizers.fluxcd.io`,
        'Kustomization/apps:finalizers.fluxcd.io',
      ].sort(),
    );
    // Only the workloads: Flux's own objects in the inventory are not workloads.
    expect(plan.workloads).toEqual([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: 'app-config',
        namespace: apps,
      },
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        name: 'app',
        namespace: apps,
      },
    ]);
    expect(plan.namespaceState).toBe('active');
    const lines = describeFluxUninstallPlan(plan, 'decommissioned');
    expect(lines.join('\n')).toContain(
      'would keep the 2 object(s) the Kustomizations applied running',
    );
    expect(lines.join('\n')).toContain(`would delete namespace ${ns}`);
    expect(lines.join('\n')).toContain('would remove the finalizers of');
    expect(JSON.stringify(plan) + lines.join('\n')).not.toContain(CANARY);
    expect(writesSince(mark)).toEqual([]);

    const logs: string[] = [];
    const logger = {
      info: (m: string) => logs.push(m),
      warn: (m: string) => logs.push(m),
      error: (m: string) => logs.push(m),
      debug: () => {},
    };
    const result = await uninstallFlux(
      admin,
      { namespace: ns, pollIntervalMs: 200 },
      { logger },
    );
    expect(result.changed).toBe(true);
    expect(result.namespaceDeleted).toBe(true);
    expect(result.workloadsKept).toBe(2);
    expect(result.finalizersRemoved.sort()).toEqual(
      [
        `GitRepository ${ns}/${ns}`,
        `Kustomization ${ns}/${ns}`,
        `Kustomization ${ns}/apps`,
      ].sort(),
    );
    expect(result.removed).toEqual(
      expect.arrayContaining([
        `Deployment ${ns}/source-controller`,
        `Secret ${ns}/flux-system`,
        `ClusterRole crd-controller-${ns}`,
        'CustomResourceDefinition kustomizations.kustomize.toolkit.fluxcd.io',
        `Namespace ${ns}`,
      ]),
    );

    // No Flux CRD (so no Flux custom resource), no Flux object, no Flux RBAC.
    expect(await names(crdList, PART_OF)).toEqual([]);
    expect(await fluxObjectsIn(ns)).toEqual([]);
    expect(await fluxClusterObjects()).toEqual([]);
    // The namespace is deleted: Terminating on this apiserver (no namespace controller), or gone.
    const nsRes = await http.request(
      'GET',
      kubePath({ apiVersion: 'v1', resource: 'namespaces', name: ns }),
    );
    expect(
      nsRes.status === 404 || nsRes.body.status.phase === 'Terminating',
    ).toBe(true);
    // The workloads stay.
    expect(
      await exists(
        kubePath({
          apiVersion: 'v1',
          resource: 'configmaps',
          namespace: apps,
          name: 'app-config',
        }),
      ),
    ).toBe(true);
    expect(logs.join('\n')).not.toContain(CANARY);

    const again = await auditMark();
    const second = await uninstallFlux(admin, { namespace: ns });
    expect(second).toMatchObject({
      changed: false,
      removed: [],
      finalizersRemoved: [],
    });
    expect(writesSince(again)).toEqual([]);
  });

  it('keeps the namespace and prunes the workloads when asked', async () => {
    const ns = uniqueName('flux');
    const apps = uniqueName('apps');
    await bootstrapLike(ns, apps);
    const result = await uninstallFlux(admin, {
      namespace: ns,
      keepNamespace: true,
      prune: true,
      pollIntervalMs: 200,
    });
    expect(result.namespaceDeleted).toBe(false);
    expect(result.workloadsKept).toBe(0);
    expect(result.removed).toEqual(
      expect.arrayContaining([
        `ConfigMap ${apps}/app-config`,
        `ServiceAccount ${apps}/app`,
      ]),
    );
    expect(result.removed).not.toContain(`Namespace ${ns}`);
    const nsRes = await http.expect(
      'GET',
      kubePath({ apiVersion: 'v1', resource: 'namespaces', name: ns }),
    );
    expect(nsRes.body.status.phase).toBe('Active');
    expect(await fluxObjectsIn(ns)).toEqual([]);
    expect(await names(crdList, PART_OF)).toEqual([]);
    expect(
      await exists(
        kubePath({
          apiVersion: 'v1',
          resource: 'configmaps',
          namespace: apps,
          name: 'app-config',
        }),
      ),
    ).toBe(false);
    expect(
      await exists(
        kubePath({
          apiVersion: 'v1',
          resource: 'serviceaccounts',
          namespace: apps,
          name: 'app',
        }),
      ),
    ).toBe(false);
  });

  it('refuses, before any write, credentials that may not delete the CRDs, naming what is denied', async () => {
    const ns = uniqueName('flux');
    await bootstrapLike(ns, uniqueName('apps'));
    const name = uniqueName('no-crd-delete');
    const token = await mintToken(kube.info(), {
      name,
      clusterRules: [
        { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list'] },
        {
          apiGroups: [
            '',
            'apps',
            'networking.k8s.io',
            'rbac.authorization.k8s.io',
          ],
          resources: ['*'],
          verbs: ['delete'],
        },
        {
          apiGroups: [
            'source.toolkit.fluxcd.io',
            'kustomize.toolkit.fluxcd.io',
          ],
          resources: ['*'],
          verbs: ['patch'],
        },
      ],
    });
    const restricted = await createKubeClient({
      name: 'restricted',
      url: kube.url,
      token,
      caPem: kube.caPem,
      skipTLSVerify: false,
      source: 'config',
    });
    try {
      const mark = await auditMark();
      await expect(
        uninstallFlux(restricted, { namespace: ns }),
      ).rejects.toMatchObject({
        name: 'NotAllowedError',
        message: expect.stringContaining(
          'may not delete customresourcedefinitions.apiextensions.k8s.io',
        ),
      });
      expect(
        writesSince(mark, `system:serviceaccount:flux-test-tokens:${name}`),
      ).toEqual([]);
    } finally {
      restricted.close();
    }
    // clean up for the next tests: the admin uninstalls it
    await uninstallFlux(admin, { namespace: ns, pollIntervalMs: 200 });
  });

  it('refuses a cluster whose Flux the Flux Operator manages', async () => {
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'fluxinstances.fluxcd.controlplane.io' },
      spec: {
        group: 'fluxcd.controlplane.io',
        scope: 'Namespaced',
        names: {
          kind: 'FluxInstance',
          plural: 'fluxinstances',
          singular: 'fluxinstance',
          listKind: 'FluxInstanceList',
        },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                'x-kubernetes-preserve-unknown-fields': true,
              },
            },
          },
        ],
      },
    };
    await http.apply(
      kubePath({
        apiVersion: 'apiextensions.k8s.io/v1',
        resource: 'customresourcedefinitions',
        name: crd.metadata.name,
      }),
      crd,
    );
    const ns = uniqueName('flux');
    await bootstrapLike(ns, uniqueName('apps'));
    const instance = kubePath({
      apiVersion: 'fluxcd.controlplane.io/v1',
      resource: 'fluxinstances',
      namespace: ns,
      name: 'flux',
    });
    for (let i = 0; ; i++) {
      const res = await http.request('PATCH', instance, {
        body: {
          apiVersion: 'fluxcd.controlplane.io/v1',
          kind: 'FluxInstance',
          metadata: { name: 'flux', namespace: ns },
        },
        contentType: 'application/apply-patch+yaml',
        query: { fieldManager: 'test' },
      });
      if (res.status < 300) break;
      if (i > 50) throw new Error(`FluxInstance not created: ${res.text}`);
      await new Promise(r => setTimeout(r, 200)); // the new CRD is being established
    }
    const mark = await auditMark();
    await expect(uninstallFlux(admin, { namespace: ns })).rejects.toMatchObject(
      {
        name: 'ConflictError',
        message: expect.stringContaining(`FluxInstance ${ns}/flux`),
      },
    );
    expect(writesSince(mark)).toEqual([]);
    expect(await fluxObjectsIn(ns)).toContain('deployments/source-controller');
  });
});
