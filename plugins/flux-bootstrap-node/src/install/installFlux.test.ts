import {
  getSharedKubeApiserver,
  KubeCleanup,
  mintToken,
  startKubeApiserver,
  uniqueName,
  type KubeApiserverInfo,
} from '@flux-bootstrap/test-peers';
import { createKubeClient } from '../kube/client';
import type { KubeClient, KubeObject } from '../kube/types';
import {
  startFaultProxy,
  type FaultProxy,
} from '../kube/__testUtils__/faultProxy';
import { OperationAbortedError } from '../util';
import { FluxInstallError } from './errors';
import { installFlux } from './installFlux';
import { tokenAuthSecret, type FluxInstallPlan } from './plan';
import {
  adminConnection,
  planFor,
  recordingLogger,
  trackClusterObjects,
} from './__testUtils__/fixtures';

const kube = getSharedKubeApiserver();
jest.setTimeout(120_000);

const clients: KubeClient[] = [];
const proxies: FaultProxy[] = [];
const cleanups: KubeCleanup[] = [];
async function clientFor(k: KubeApiserverInfo, over = {}, opts = {}) {
  const c = await createKubeClient(adminConnection(k, over), opts);
  clients.push(c);
  return c;
}
async function proxyFor(k: KubeApiserverInfo) {
  const p = await startFaultProxy(k);
  proxies.push(p);
  return p;
}
function cleanupFor(k: KubeApiserverInfo, plan: FluxInstallPlan) {
  const c = trackClusterObjects(new KubeCleanup(k), plan);
  cleanups.push(c);
  return c;
}
afterEach(async () => {
  clients.splice(0).forEach(c => c.close());
  await Promise.all(proxies.splice(0).map(p => p.stop()));
  for (const c of cleanups.splice(0)) await c.run();
});

function refOf(o: KubeObject) {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.metadata.name,
    namespace: o.metadata.namespace,
  };
}

const managers = (o: KubeObject | undefined) =>
  (
    (o?.metadata.managedFields ?? []) as {
      manager: string;
      operation: string;
    }[]
  ).map(f => `${f.manager}/${f.operation}`);

describe('installFlux on a real kube-apiserver (no controllers)', () => {
  it('creates exactly the bundle’s objects plus the sync objects, with field manager flux', async () => {
    const ns = uniqueName('inst-fresh');
    const plan = await planFor(ns);
    cleanupFor(kube, plan);
    const admin = await clientFor(kube);
    const { logger, lines } = recordingLogger();

    const result = await installFlux(admin, plan, { wait: false, logger });

    expect(result.componentsApplied).toBe(true);
    expect(result.ready).toBe(false);
    expect(result.fluxVersion).toBe('v2.9.4');
    const expected = [...plan.componentObjects, ...plan.syncObjects];
    expect(result.applied.map(a => a.object).sort()).toEqual(
      expected
        .map(
          o =>
            `${o.kind} ${
              o.metadata.namespace ? `${o.metadata.namespace}/` : ''
            }${o.metadata.name}`,
        )
        .sort(),
    );
    for (const o of expected) {
      const live = await admin.get(refOf(o));
      expect(live).toBeDefined();
      // CRDs are shared by every install on this apiserver (other tests may manage them too);
      // every other object is this install's alone.
      const shared = o.kind === 'CustomResourceDefinition';
      const seen = managers(live).filter(m => !shared || m === 'flux/Apply');
      expect({
        object: `${o.kind} ${o.metadata.name}`,
        managers: seen,
      }).toEqual({
        object: `${o.kind} ${o.metadata.name}`,
        managers: ['flux/Apply'],
      });
    }
    // Nothing else in the namespace: every namespaced kind of the plan, listed.
    const namespacedKinds = new Map<string, string[]>();
    for (const o of expected.filter(x => x.metadata.namespace)) {
      const key = `${o.apiVersion} ${o.kind}`;
      namespacedKinds.set(key, [
        ...(namespacedKinds.get(key) ?? []),
        o.metadata.name,
      ]);
    }
    for (const [key, names] of namespacedKinds) {
      const [apiVersion, kind] = key.split(' ');
      const live = await admin.list(apiVersion, kind, { namespace: ns });
      expect(`${kind}: ${live.map(o => o.metadata.name).sort()}`).toBe(
        `${kind}: ${[...names].sort()}`,
      );
    }
    expect(await admin.list('v1', 'Secret', { namespace: ns })).toEqual([]);
    // The RBAC of this install carries its namespace suffix.
    const clusterRoles = await admin.list(
      'rbac.authorization.k8s.io/v1',
      'ClusterRole',
      {
        labelSelector: `app.kubernetes.io/instance=${ns}`,
      },
    );
    expect(clusterRoles.map(o => o.metadata.name).sort()).toEqual(
      plan.componentObjects
        .filter(o => o.kind === 'ClusterRole')
        .map(o => o.metadata.name)
        .sort(),
    );
    // The sync objects as generated.
    const kustomization = await admin.get({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      name: ns,
      namespace: ns,
    });
    expect(kustomization?.spec).toEqual(
      expect.objectContaining({ path: './clusters/test', prune: true }),
    );
    expect(
      lines.some(
        l =>
          l.includes('Waiting for') && l.includes('CustomResourceDefinitions'),
      ),
    ).toBe(true);
    expect(lines.some(l => l.includes('installed components'))).toBe(true);

    // A second run re-applies everything (no lastAppliedRevision yet) and changes nothing.
    const versions = async () =>
      Promise.all(
        expected.map(
          async o =>
            `${refOf(o).kind}/${o.metadata.name}@${
              (await admin.get(refOf(o)))?.metadata.resourceVersion
            }`,
        ),
      );
    const before = await versions();
    // managedFields times have one-second resolution: re-applying in a later second exposes
    // any write an identical apply would still cause (non-canonical quantities do).
    await new Promise(r => setTimeout(r, 1_100));
    const again = await installFlux(admin, plan, { wait: false });
    expect(again.componentsApplied).toBe(true);
    expect(again.applied.filter(a => a.result !== 'unchanged')).toEqual([]);
    expect(await versions()).toEqual(before);
  });

  it('writes the token-auth Secret with username, password and ca.crt — and never logs the token', async () => {
    const ns = uniqueName('inst-token');
    const canary = 'canary-bitbucket-token-3d9a7e0c51';
    const caPem =
      '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----';
    const plan = await planFor(ns, {
      syncUrl: 'https://bitbucket.example.com/scm/flux/fleet.git',
      secret: tokenAuthSecret({
        namespace: ns,
        name: 'flux-system',
        username: 'alice',
        password: canary,
        caPem,
      }),
    });
    cleanupFor(kube, plan);
    const admin = await clientFor(kube);
    const { logger, lines } = recordingLogger();
    await installFlux(admin, plan, { wait: false, logger });
    const secret = await admin.get<
      KubeObject & { data: Record<string, string> }
    >({
      apiVersion: 'v1',
      kind: 'Secret',
      name: 'flux-system',
      namespace: ns,
    });
    const decoded = Object.fromEntries(
      Object.entries(secret!.data).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString('utf8'),
      ]),
    );
    expect(Object.keys(decoded).sort()).toEqual([
      'ca.crt',
      'password',
      'username',
    ]);
    expect(decoded.username).toBe('alice');
    expect(decoded.password).toBe(canary);
    expect(decoded['ca.crt'].trim()).toBe(caPem);
    expect(managers(secret)).toEqual(['flux/Apply']);
    const gitRepository = await admin.get({
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      name: ns,
      namespace: ns,
    });
    expect(gitRepository?.spec).toEqual(
      expect.objectContaining({ secretRef: { name: 'flux-system' } }),
    );
    const text = lines.join('\n');
    expect(text).not.toContain(canary);
    expect(text).not.toContain(Buffer.from(canary).toString('base64'));
  });

  it('refuses a restricted token before applying anything, naming what is missing', async () => {
    const ns = uniqueName('inst-restricted');
    const plan = await planFor(ns);
    const token = await mintToken(kube, {
      name: uniqueName('inst-ns-only'),
      clusterRules: [
        {
          apiGroups: [''],
          resources: ['namespaces'],
          verbs: ['get', 'list', 'create', 'patch'],
        },
        {
          apiGroups: ['apiextensions.k8s.io'],
          resources: ['customresourcedefinitions'],
          verbs: ['get', 'list'],
        },
      ],
    });
    const proxy = await proxyFor(kube);
    const restricted = await clientFor(kube, {
      url: proxy.url,
      caPem: proxy.caPem,
      token,
    });
    const err = await installFlux(restricted, plan, { wait: false }).catch(
      e => e,
    );
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('missing-permissions');
    expect(err.message).toContain('nothing was applied');
    expect(err.message).toContain(
      'create customresourcedefinitions.apiextensions.k8s.io (cluster-wide)',
    );
    expect(err.message).toContain(
      'create clusterroles.rbac.authorization.k8s.io (cluster-wide)',
    );
    expect(err.message).toContain(
      'create clusterrolebindings.rbac.authorization.k8s.io (cluster-wide)',
    );
    expect(err.message).toContain(
      'bind clusterroles.rbac.authorization.k8s.io "cluster-admin"',
    );
    expect(err.message).not.toContain('namespaces (cluster-wide)'); // that one it may do
    expect(err.message).not.toContain(token);
    // Only reads and access reviews reached the API server.
    const writes = proxy
      .requests()
      .filter(
        r =>
          r.method !== 'GET' && !r.path.endsWith('/selfsubjectaccessreviews'),
      );
    expect(writes).toEqual([]);
    const admin = await clientFor(kube);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: ns }),
    ).toBeUndefined();
  });

  it('refuses to change the path of an existing sync Kustomization', async () => {
    const ns = uniqueName('inst-path');
    const first = await planFor(ns, { path: 'clusters/a' });
    cleanupFor(kube, first);
    const admin = await clientFor(kube);
    await installFlux(admin, first, { wait: false });
    const proxy = await proxyFor(kube);
    const viaProxy = await clientFor(kube, {
      url: proxy.url,
      caPem: proxy.caPem,
    });
    const err = await installFlux(
      viaProxy,
      await planFor(ns, { path: './clusters/b/' }),
      {
        wait: false,
      },
    ).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('path-conflict');
    expect(err.message).toContain(
      `sync path configuration ("./clusters/b") would overwrite path ("./clusters/a") of the existing Kustomization ${ns}/${ns}`,
    );
    expect(proxy.requests().filter(r => r.method === 'PATCH')).toEqual([]);
    const k = await admin.get({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      name: ns,
      namespace: ns,
    });
    expect((k?.spec as { path: string }).path).toBe('./clusters/a');
    // the same path (written differently) is not a conflict
    await expect(
      installFlux(admin, await planFor(ns, { path: './clusters/a/' }), {
        wait: false,
      }),
    ).resolves.toEqual(expect.objectContaining({ componentsApplied: true }));
  });

  it('retries an object whose apply got an API 500 and completes the install', async () => {
    const ns = uniqueName('inst-500');
    const plan = await planFor(ns);
    cleanupFor(kube, plan);
    const proxy = await proxyFor(kube);
    const target = `/apis/apps/v1/namespaces/${ns}/deployments/kustomize-controller`;
    proxy.inject({
      method: 'PATCH',
      path: new RegExp(`^${target}$`),
      status: 500,
    });
    const { logger, lines } = recordingLogger();
    const c = await clientFor(
      kube,
      { url: proxy.url, caPem: proxy.caPem },
      { logger, retryBaseDelayMs: 10 },
    );
    const result = await installFlux(c, plan, { wait: false, logger });
    expect(result.applied).toContainEqual({
      object: `Deployment ${ns}/kustomize-controller`,
      result: 'created',
    });
    expect(
      proxy
        .requests()
        .filter(r => r.path === target && r.method === 'PATCH')
        .map(r => r.status),
    ).toEqual([500, 201]);
    expect(
      lines.some(
        l =>
          l.startsWith('warn') &&
          l.includes('kustomize-controller') &&
          l.includes('retrying'),
      ),
    ).toBe(true);
    const admin = await clientFor(kube);
    for (const o of [...plan.componentObjects, ...plan.syncObjects]) {
      expect(await admin.get(refOf(o))).toBeDefined();
    }
  });

  it('an API error that outlasts the retries stops the install with where it stopped, what was applied and what to do', async () => {
    const ns = uniqueName('inst-int');
    const plan = await planFor(ns);
    cleanupFor(kube, plan);
    const proxy = await proxyFor(kube);
    const target = `/apis/apps/v1/namespaces/${ns}/deployments/kustomize-controller`;
    proxy.inject({
      method: 'PATCH',
      path: new RegExp(`^${target}$`),
      status: 500,
      times: 50,
    });
    const c = await clientFor(
      kube,
      { url: proxy.url, caPem: proxy.caPem },
      { retries: 2, retryBaseDelayMs: 5 },
    );
    const err = await installFlux(c, plan, { wait: false }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('interrupted');
    expect(err.message).toContain('stopped while applying the Flux components');
    expect(err.message).toContain('kustomize-controller');
    expect(err.message).toContain('Done before that: preconditions checked.');
    expect(err.message).toContain(
      'Some objects of the step that stopped may already be applied',
    );
    expect(err.message).toMatch(/Run the template again/);
    expect(err.cause).toBeDefined();
    // What the message says: the CRDs (stage 1) are on the cluster; a re-run completes.
    const admin = await clientFor(kube);
    const crd = plan.componentObjects.find(
      o => o.kind === 'CustomResourceDefinition',
    )!;
    expect(await admin.get(refOf(crd))).toBeDefined();
    await expect(installFlux(admin, plan, { wait: false })).resolves.toEqual(
      expect.objectContaining({ componentsApplied: true }),
    );
  });

  it('on timeout says what was still missing', async () => {
    const ns = uniqueName('inst-timeout');
    const plan = await planFor(ns);
    cleanupFor(kube, plan);
    const admin = await clientFor(kube);
    await installFlux(admin, plan, { wait: false });
    const { logger, lines } = recordingLogger();
    // The budget covers the preconditions and the (unchanged) re-apply too: generous enough that
    // a loaded machine still reaches the wait, where the timeout must name what is missing.
    const err = await installFlux(admin, plan, {
      timeoutMs: 15_000,
      pollIntervalMs: 500,
      progressIntervalMs: 1_000,
      logger,
    }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('timeout');
    expect(err.message).toContain('still missing');
    expect(err.message).toContain(
      `GitRepository ${ns}/${ns}: not reconciled yet, no status from the source-controller (is it running?)`,
    );
    expect(err.message).toContain(
      `Kustomization ${ns}/${ns}: not reconciled yet, no status from the kustomize-controller (is it running?)`,
    );
    expect(err.missing).toHaveLength(2);
    // progress was logged while waiting
    expect(
      lines.filter(l =>
        l.includes(
          `Waiting for Flux on cluster "test-cluster": GitRepository ${ns}/${ns}`,
        ),
      ).length,
    ).toBeGreaterThan(0);
  });

  it('stops waiting promptly when the task is cancelled', async () => {
    const ns = uniqueName('inst-cancel');
    const plan = await planFor(ns);
    cleanupFor(kube, plan);
    const admin = await clientFor(kube);
    const controller = new AbortController();
    const { lines } = recordingLogger();
    const logger = {
      ...recordingLogger().logger,
      info: (m: string) => {
        lines.push(m);
        if (m.startsWith('Waiting for Flux on cluster')) controller.abort();
      },
    };
    // No timed assertion: the next poll would come after 10 minutes and the install would
    // time out after an hour, so only a wait that stops on the signal ends before this test's
    // own limit (jest.setTimeout above).
    const err = await installFlux(admin, plan, {
      timeoutMs: 3_600_000,
      pollIntervalMs: 600_000,
      signal: controller.signal,
      logger,
    }).catch(e => e);
    expect(err).toBeInstanceOf(OperationAbortedError);
    expect(err.message).toContain('Cancelled while waiting for Flux');
    expect(controller.signal.aborted).toBe(true);
  });
});

describe('installFlux with Flux installed by another tool (private apiserver: the Flux CRDs are changed)', () => {
  let own: Awaited<ReturnType<typeof startKubeApiserver>>;
  beforeAll(async () => {
    own = await startKubeApiserver();
  }, 60_000);
  afterAll(async () => {
    await own?.stop();
  });

  it('is refused without force, and taken over with force', async () => {
    const ns = uniqueName('inst-other');
    const plan = await planFor(ns);
    const admin = await clientFor(own);
    const crd = plan.componentObjects.find(
      o =>
        o.kind === 'CustomResourceDefinition' &&
        o.metadata.name === 'gitrepositories.source.toolkit.fluxcd.io',
    )!;
    await admin.apply(
      {
        ...crd,
        metadata: {
          ...crd.metadata,
          labels: {
            ...crd.metadata.labels,
            'app.kubernetes.io/managed-by': 'helm',
          },
        },
      },
      { fieldManager: 'helm' },
    );
    const err = await installFlux(admin, plan, { wait: false }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('managed-by-other');
    expect(err.message).toContain('managed by "helm"');
    expect(err.message).toContain('force');
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: ns }),
    ).toBeUndefined();

    const { logger, lines } = recordingLogger();
    const result = await installFlux(admin, plan, {
      wait: false,
      force: true,
      logger,
    });
    expect(result.componentsApplied).toBe(true);
    expect(
      lines.some(l =>
        l.includes('Taking over the Flux installation managed by "helm"'),
      ),
    ).toBe(true);
    const live = await admin.get(refOf(crd));
    expect(managers(live)).toContain('flux/Apply');
  });
});
