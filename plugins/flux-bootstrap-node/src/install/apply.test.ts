import { startKubeApiserver, uniqueName } from '@flux-bootstrap/test-peers';
import { createKubeClient } from '../kube/client';
import { KubeApiError } from '../kube/errors';
import type {
  KubeClient,
  KubeObject,
  KubeObjectRef,
  KubeResourceInfo,
} from '../kube/types';
import {
  startFaultProxy,
  type FaultProxy,
} from '../kube/__testUtils__/faultProxy';
import { applyStaged } from './apply';
import {
  adminConnection,
  planFor,
  recordingLogger,
} from './__testUtils__/fixtures';

jest.setTimeout(120_000);

function crd(group: string, kind: string, versions = ['v1']): KubeObject {
  const plural = `${kind.toLowerCase()}s`;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      names: { kind, plural },
      scope: 'Namespaced',
      versions: versions.map(name => ({ name, served: true, storage: true })),
    },
  };
}

const ns: KubeObject = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name: 'flux-system' },
};
const obj = (apiVersion: string, kind: string, name: string): KubeObject => ({
  apiVersion,
  kind,
  metadata: { name, namespace: 'flux-system' },
});

/**
 * An in-memory API server: objects by kind/namespace/name; CRDs become Established and their
 * kinds served only when the test says so. Records every call.
 */
function fakeCluster(
  opts: { forbidList?: string[]; establishOnApply?: boolean } = {},
) {
  const store = new Map<string, KubeObject>();
  const established = new Set<string>();
  const calls: string[] = [];
  let inFlightGets = 0;
  let maxInFlightGets = 0;
  let inFlightApplies = 0;
  let maxInFlightApplies = 0;
  const applied: string[] = [];
  const appliedWaiters: { kind: string; resolve: () => void }[] = [];
  const key = (r: { kind: string; name: string; namespace?: string }) =>
    `${r.kind}/${r.namespace ?? ''}/${r.name}`;
  const servedKinds = () =>
    new Map(
      [...established].map(name => {
        const c = store.get(key({ kind: 'CustomResourceDefinition', name }))!;
        const spec = c.spec as { group: string; names: { kind: string } };
        return [`${spec.group}/${spec.names.kind}`, spec] as const;
      }),
    );
  const client = {
    clusterName: 'fake',
    async get(ref: KubeObjectRef) {
      calls.push(`GET ${ref.kind} ${ref.name}`);
      inFlightGets++;
      maxInFlightGets = Math.max(maxInFlightGets, inFlightGets);
      await new Promise(r => setImmediate(r));
      inFlightGets--;
      const o = store.get(key(ref));
      if (o && ref.kind === 'CustomResourceDefinition') {
        return {
          ...o,
          status: {
            conditions: [
              {
                type: 'Established',
                status: established.has(ref.name) ? 'True' : 'False',
                message: established.has(ref.name) ? '' : 'not yet',
              },
            ],
          },
        };
      }
      return o ? structuredClone(o) : undefined;
    },
    async list(apiVersion: string, kind: string, o: { namespace?: string }) {
      calls.push(`LIST ${kind}`);
      if (opts.forbidList?.includes(kind)) {
        throw new KubeApiError('forbidden', { kind: 'forbidden' });
      }
      return [...store.values()].filter(
        x =>
          x.kind === kind &&
          x.apiVersion === apiVersion &&
          (x.metadata.namespace ?? undefined) === (o.namespace ?? undefined),
      );
    },
    async apply(o: KubeObject, a: { dryRun?: boolean }) {
      calls.push(
        `${a.dryRun ? 'DRYRUN' : 'APPLY'} ${o.kind} ${o.metadata.name}`,
      );
      inFlightApplies++;
      maxInFlightApplies = Math.max(maxInFlightApplies, inFlightApplies);
      await new Promise(r => setImmediate(r));
      inFlightApplies--;
      const existing = store.get(key({ ...o.metadata, kind: o.kind }));
      const result = {
        ...structuredClone(o),
        metadata: { ...o.metadata, resourceVersion: '1' },
      };
      if (a.dryRun) return result;
      if (!existing) store.set(key({ ...o.metadata, kind: o.kind }), result);
      if (opts.establishOnApply && o.kind === 'CustomResourceDefinition')
        established.add(o.metadata.name);
      applied.push(`${o.kind} ${o.metadata.name}`);
      for (const w of appliedWaiters.filter(x => x.kind === o.kind))
        w.resolve();
      return result;
    },
    async resourceFor(
      apiVersion: string,
      kind: string,
      o: { refresh?: boolean } = {},
    ): Promise<KubeResourceInfo | undefined> {
      if (o.refresh) calls.push(`DISCOVERY ${apiVersion}`);
      const [group, version] = apiVersion.split('/');
      const spec = servedKinds().get(`${group}/${kind}`) as
        | { versions: { name: string }[] }
        | undefined;
      return spec?.versions.some(v => v.name === version)
        ? { name: `${kind.toLowerCase()}s`, namespaced: true, kind, verbs: [] }
        : undefined;
    },
  };
  return {
    client: client as unknown as KubeClient,
    calls,
    applied,
    store,
    maxInFlightGets: () => maxInFlightGets,
    maxInFlightApplies: () => maxInFlightApplies,
    establish(name?: string) {
      for (const o of store.values()) {
        if (
          o.kind === 'CustomResourceDefinition' &&
          (!name || o.metadata.name === name)
        )
          established.add(o.metadata.name);
      }
    },
    appliedOnce(kind: string) {
      return new Promise<void>(resolve => {
        if (applied.some(a => a.startsWith(`${kind} `))) resolve();
        else appliedWaiters.push({ kind, resolve });
      });
    },
  };
}

describe('applyStaged', () => {
  const crds = [
    crd('source.toolkit.fluxcd.io', 'GitRepository', ['v1', 'v1beta2']),
    crd('source.toolkit.fluxcd.io', 'HelmRepository', ['v1', 'v1beta2']),
    crd('kustomize.toolkit.fluxcd.io', 'Kustomization'),
  ];
  const deployments = [
    obj('apps/v1', 'Deployment', 'source-controller'),
    obj('apps/v1', 'Deployment', 'kustomize-controller'),
  ];
  const account = obj('v1', 'ServiceAccount', 'source-controller');
  const customResource = obj(
    'source.toolkit.fluxcd.io/v1',
    'GitRepository',
    'flux-system',
  );

  it('applies the Namespace first, then the objects that are not custom resources alongside the CRDs and their wait, and returns once the CRDs are served and the custom resources applied', async () => {
    const cluster = fakeCluster();
    let settled = false;
    const run = applyStaged(
      cluster.client,
      [customResource, ...deployments, account, ...crds, ns],
      { fieldManager: 'flux', pollIntervalMs: 1 },
    ).finally(() => {
      settled = true;
    });
    // The Deployments and the ServiceAccount go in while no CRD is Established.
    await cluster.appliedOnce('Deployment');
    await cluster.appliedOnce('ServiceAccount');
    await new Promise(r => setTimeout(r, 20));
    expect(settled).toBe(false);
    expect(cluster.applied).not.toContain('GitRepository flux-system');
    cluster.establish();
    const results = await run;
    // The Namespace first; the CRDs and the other objects after it; the custom resource last.
    expect(cluster.applied[0]).toBe('Namespace flux-system');
    expect(cluster.applied.slice(1, -1).sort()).toEqual(
      [
        ...crds.map(c => `CustomResourceDefinition ${c.metadata.name}`),
        'Deployment kustomize-controller',
        'Deployment source-controller',
        'ServiceAccount source-controller',
      ].sort(),
    );
    expect(cluster.applied[cluster.applied.length - 1]).toBe(
      'GitRepository flux-system',
    );
    expect(results.map(r => r.result)).toEqual(
      Array(results.length).fill('created'),
    );
    expect(results).toHaveLength(8);
  });

  it('asks discovery once per group/version per round, and needs no read of a CRD whose kinds are served', async () => {
    const cluster = fakeCluster({ establishOnApply: true });
    await applyStaged(cluster.client, [...crds, ns], {
      fieldManager: 'flux',
      pollIntervalMs: 1,
    });
    // One round: three group/versions asked once each (source v1 and v1beta2 are shared by two
    // CRDs); the API server lists a CRD's kinds only once it is Established.
    expect(cluster.calls.filter(c => c.startsWith('DISCOVERY')).sort()).toEqual(
      [
        'DISCOVERY kustomize.toolkit.fluxcd.io/v1',
        'DISCOVERY source.toolkit.fluxcd.io/v1',
        'DISCOVERY source.toolkit.fluxcd.io/v1beta2',
      ],
    );
    expect(
      cluster.calls.filter(c => c.startsWith('GET CustomResource')),
    ).toEqual([]);
  });

  it('reads the pending CRDs concurrently to say why they are not served, up to the timeout', async () => {
    const cluster = fakeCluster();
    const { logger, lines } = recordingLogger();
    const err = await applyStaged(cluster.client, [...crds, ns], {
      fieldManager: 'flux',
      pollIntervalMs: 1,
      crdTimeoutMs: 1_500,
      logger,
    }).catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.message).toMatch(
      /did not become Established within 2 s: CRD [a-z.]+ is not Established yet: not yet/,
    );
    expect(cluster.maxInFlightGets()).toBe(3);
    // Every round asked each group/version once, whatever the number of CRDs in it.
    const perGroupVersion = new Map<string, number>();
    for (const c of cluster.calls.filter(x => x.startsWith('DISCOVERY')))
      perGroupVersion.set(c, (perGroupVersion.get(c) ?? 0) + 1);
    expect(perGroupVersion.size).toBe(3);
    expect(new Set(perGroupVersion.values()).size).toBe(1);
    expect(lines.some(l => l.includes('Waiting for 3'))).toBe(true);
  });

  it('creates absent objects without reading them first: one list per kind and namespace, no GET, no dry run', async () => {
    const cluster = fakeCluster();
    cluster.establish();
    await applyStaged(cluster.client, [...deployments, account, ns], {
      fieldManager: 'flux',
    });
    expect(cluster.calls.filter(c => c.startsWith('LIST'))).toEqual([
      'LIST Deployment',
    ]);
    // Only the objects alone of their kind are read (a GET costs what a list does).
    expect(cluster.calls.filter(c => c.startsWith('GET')).sort()).toEqual([
      'GET Namespace flux-system',
      'GET ServiceAccount source-controller',
    ]);
    expect(cluster.calls.filter(c => c.startsWith('DRYRUN'))).toEqual([]);

    // Run again: everything exists, so each object is read and dry-run compared; nothing written.
    cluster.calls.length = 0;
    const again = await applyStaged(
      cluster.client,
      [...deployments, account, ns],
      { fieldManager: 'flux' },
    );
    expect(again.map(r => r.result)).toEqual(Array(4).fill('unchanged'));
    expect(cluster.calls.filter(c => c.startsWith('DRYRUN'))).toHaveLength(4);
    expect(cluster.calls.filter(c => c.startsWith('APPLY'))).toEqual([]);
  });

  it('applies in parallel, never more at once than the concurrency bound (default 8)', async () => {
    const accounts = Array.from({ length: 20 }, (_, i) =>
      obj('v1', 'ServiceAccount', `account-${i}`),
    );
    const bounded = fakeCluster();
    const results = await applyStaged(bounded.client, accounts, {
      fieldManager: 'flux',
      concurrency: 3,
    });
    expect(results.map(r => r.result)).toEqual(Array(20).fill('created'));
    expect(bounded.applied).toHaveLength(20);
    expect(bounded.maxInFlightApplies()).toBe(3);

    const byDefault = fakeCluster();
    await applyStaged(byDefault.client, accounts, { fieldManager: 'flux' });
    expect(byDefault.applied).toHaveLength(20);
    expect(byDefault.maxInFlightApplies()).toBe(8);
  });

  it('reads each object when it may not list its kind', async () => {
    const cluster = fakeCluster({ forbidList: ['Deployment'] });
    const results = await applyStaged(cluster.client, deployments, {
      fieldManager: 'flux',
    });
    expect(results.map(r => r.result)).toEqual(['created', 'created']);
    expect(cluster.calls.filter(c => c.startsWith('GET')).sort()).toEqual([
      'GET Deployment kustomize-controller',
      'GET Deployment source-controller',
    ]);
  });

  it('stops waiting for the CRDs when an object applied meanwhile fails, and reports that failure', async () => {
    const cluster = fakeCluster();
    const failing = {
      ...cluster.client,
      apply: async (o: KubeObject, a: { dryRun?: boolean }) => {
        if (o.kind === 'Deployment')
          throw new KubeApiError('Deployment is invalid', { kind: 'invalid' });
        return cluster.client.apply(o, { fieldManager: 'flux', ...a });
      },
    } as KubeClient;
    const err = await applyStaged(failing, [...crds, ns, ...deployments], {
      fieldManager: 'flux',
      crdTimeoutMs: 600_000,
    }).catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.message).toBe('Deployment is invalid');
  });
});

describe('applyStaged on a fresh kube-apiserver', () => {
  let own: Awaited<ReturnType<typeof startKubeApiserver>>;
  let proxy: FaultProxy;
  let client: KubeClient;
  beforeAll(async () => {
    own = await startKubeApiserver();
    proxy = await startFaultProxy(own);
    client = await createKubeClient(
      adminConnection(own, { url: proxy.url, caPem: proxy.caPem }),
    );
  }, 60_000);
  afterAll(async () => {
    client?.close();
    await proxy?.stop();
    await own?.stop();
  });

  it('creates Flux with one metadata list per kind instead of a read per object, and a re-run writes nothing', async () => {
    const namespace = uniqueName('apply-fresh');
    const plan = await planFor(namespace);
    proxy.clearRequests();
    const results = await applyStaged(client, plan.componentObjects, {
      fieldManager: 'flux',
      force: true,
    });
    expect(results.filter(r => r.result !== 'created')).toEqual([]);
    expect(results).toHaveLength(plan.componentObjects.length);
    const requests = proxy.requests();
    expect(requests.filter(r => r.query.includes('dryRun'))).toEqual([]);
    // The only objects read one by one: the CRDs (the wait) and objects alone of their kind
    // (the Namespace, the ResourceQuota: one GET costs what one list does).
    const kindCount = (kind: string) =>
      plan.componentObjects.filter(o => o.kind === kind).length;
    const objectReads = requests.filter(
      r =>
        r.method === 'GET' &&
        plan.componentObjects.some(
          o =>
            o.kind !== 'CustomResourceDefinition' &&
            kindCount(o.kind) > 1 &&
            r.path.endsWith(`/${o.metadata.name}`),
        ),
    );
    expect(objectReads).toEqual([]);
    // Every kind with several objects was listed once (metadata only).
    const deploymentsList = requests.filter(
      r =>
        r.method === 'GET' &&
        r.path === `/apis/apps/v1/namespaces/${namespace}/deployments`,
    );
    expect(deploymentsList).toHaveLength(1);
    // Real lists answer with PartialObjectMetadata: the listed names are the live ones.
    const listed = await client.list('apps/v1', 'Deployment', {
      namespace,
      metadataOnly: true,
    });
    expect(listed.map(o => o.metadata.name).sort()).toEqual(
      plan.componentObjects
        .filter(o => o.kind === 'Deployment')
        .map(o => o.metadata.name)
        .sort(),
    );
    expect(listed[0].spec).toBeUndefined();

    // Re-run: everything is compared through a dry run, nothing is written.
    proxy.clearRequests();
    await new Promise(r => setTimeout(r, 1_100));
    const again = await applyStaged(client, plan.componentObjects, {
      fieldManager: 'flux',
      force: true,
    });
    expect(again.filter(r => r.result !== 'unchanged')).toEqual([]);
    const patches = proxy.requests().filter(r => r.method === 'PATCH');
    expect(patches.filter(r => !r.query.includes('dryRun=All'))).toEqual([]);
    expect(patches).toHaveLength(plan.componentObjects.length);
  });

  // Last: it restarts the API server.
  it('creates again a CRD the API server left accepted but never Established (a restart while establishing)', async () => {
    const group = `${uniqueName('stuck')}.example.com`;
    const crds = ['Alpha', 'Beta', 'Gamma', 'Delta', 'Epsilon'].map(
      (kind): KubeObject => ({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `${kind.toLowerCase()}s.${group}` },
        spec: {
          group,
          names: { kind, plural: `${kind.toLowerCase()}s` },
          scope: 'Namespaced',
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
      }),
    );
    // Created, then the API server restarts at once: the last ones are left NamesAccepted but
    // never Established, for good (kubernetes/kubernetes#121918).
    await Promise.all(
      crds.map(c => client.apply(c, { fieldManager: 'flux', force: true })),
    );
    await own.restart();
    await new Promise(r => setTimeout(r, 3_000));
    const established = async (c: KubeObject) => {
      const live = await client.get({
        apiVersion: c.apiVersion,
        kind: c.kind,
        name: c.metadata.name,
      });
      return (
        live?.status as { conditions?: { type: string; status: string }[] }
      )?.conditions?.find(x => x.type === 'Established')?.status;
    };
    const states = await Promise.all(crds.map(established));
    expect(states).toContain('False');

    const { logger, lines } = recordingLogger();
    await applyStaged(client, crds, {
      fieldManager: 'flux',
      force: true,
      stuckCrdAfterMs: 1_000,
      crdTimeoutMs: 30_000,
      logger,
    });
    expect(await Promise.all(crds.map(established))).toEqual(
      crds.map(() => 'True'),
    );
    const recreatedLines = lines.filter(l =>
      l.includes('deleting it and creating it again'),
    );
    expect(recreatedLines).toHaveLength(
      states.filter(s => s === 'False').length,
    );
  });
});
