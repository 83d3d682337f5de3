/**
 * The simulator's kustomize-controller self-management (`apply: true`) on a private real
 * apiserver (it owns the cluster-wide Flux CRDs) with a real git http-backend over TLS.
 */
import { KubeApiserver, startKubeApiserver } from '../kube/apiserver';
import { buildFluxUpgradeBundles, FluxBundle, toMultiDocYaml } from './bundle';
import { gotkComponentsYaml } from './install';
import { FluxSimulator } from './simulator';
import {
  changedFiles,
  commitFiles,
  fluxBootstrapState,
  startApplyingSimulator,
  eventually,
  kubeAccess,
  PASSWORD,
  readyOf,
  startFleet,
} from './simTestUtils';

jest.setTimeout(240_000);

const NS = 'flux-system';
const PATH = 'clusters/dev';

let kube: KubeApiserver;
let k: ReturnType<typeof kubeAccess>;
let fleet: Awaited<ReturnType<typeof startFleet>>;
let bundles: { from: FluxBundle; to: FluxBundle };
let sim: FluxSimulator | undefined;

const app = (replicas = 1) =>
  toMultiDocYaml([
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      // a deleted namespace never finishes terminating on the controller-less test apiserver
      metadata: {
        name: 'apps',
        annotations: { 'kustomize.toolkit.fluxcd.io/prune': 'disabled' },
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'podinfo', namespace: 'apps' },
      spec: {
        replicas,
        selector: { matchLabels: { app: 'podinfo' } },
        template: {
          metadata: { labels: { app: 'podinfo' } },
          spec: { containers: [{ name: 'podinfo', image: 'podinfo:6.7.0' }] },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'keep-me',
        namespace: 'apps',
        annotations: { 'kustomize.toolkit.fluxcd.io/prune': 'disabled' },
      },
      data: { a: 'b' },
    },
  ]);

beforeAll(async () => {
  [kube, fleet, bundles] = await Promise.all([
    startKubeApiserver(),
    startFleet(),
    buildFluxUpgradeBundles(),
  ]);
  k = kubeAccess(kube.info());
});
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});
afterAll(async () => {
  k?.close();
  await fleet?.server.stop();
  await kube?.stop();
});

/** The state flux bootstrap leaves: components applied by `flux`, the Secret, the sync objects. */
const bootstrap = (bundle: FluxBundle, extra: Record<string, string>) =>
  fluxBootstrapState(kube.info(), fleet, bundle, {
    namespace: NS,
    path: PATH,
    extra,
    message: 'Add Flux sync manifests',
  });

async function appliedAt(sha: string) {
  return eventually(
    `Kustomization applied main@sha1:${sha}`,
    async () => {
      const ks = await k.get(k.kustomization(NS, NS));
      return ks?.status?.lastAppliedRevision === `main@sha1:${sha}` &&
        readyOf(ks)?.status === 'True'
        ? ks
        : undefined;
    },
    () => sim?.events() ?? [],
  );
}

const available = (d: any) =>
  d?.status?.availableReplicas === (d?.spec?.replicas ?? 1) &&
  d?.status?.observedGeneration === d?.metadata?.generation;

describe('Flux simulator self-management (kustomize-controller)', () => {
  it('applies the bootstrap layout from Git like kustomize-controller, records the inventory, recreates a deleted Deployment, honours requestedAt and prunes', async () => {
    const before = await (async () => {
      await bootstrap(bundles.from, {});
      return k.get(k.deployment(NS, 'source-controller'));
    })();
    const head = await commitFiles(fleet.repo.path, 'main', {
      [`${PATH}/apps/podinfo.yaml`]: app(),
    });
    sim = await startApplyingSimulator(kube.info(), NS);
    const ks = await appliedAt(head);
    expect(readyOf(ks)).toMatchObject({
      reason: 'ReconciliationSucceeded',
      message: `Applied revision: main@sha1:${head}`,
    });
    expect(ks.status.lastAttemptedRevision).toBe(`main@sha1:${head}`);

    // Flux's inventory format: <namespace>_<name>_<group>_<kind>, v = version
    const ids = ks.status.inventory.entries.map((e: any) => `${e.id}@${e.v}`);
    expect(ids).toEqual(
      expect.arrayContaining([
        `_gitrepositories.source.toolkit.fluxcd.io_apiextensions.k8s.io_CustomResourceDefinition@v1`,
        `_${NS}__Namespace@v1`,
        `_apps__Namespace@v1`,
        `_crd-controller-${NS}_rbac.authorization.k8s.io_ClusterRole@v1`,
        `${NS}_source-controller_apps_Deployment@v1`,
        `${NS}_kustomize-controller__ServiceAccount@v1`,
        `${NS}_${NS}_source.toolkit.fluxcd.io_GitRepository@v1`,
        `${NS}_${NS}_kustomize.toolkit.fluxcd.io_Kustomization@v1`,
        `apps_podinfo_apps_Deployment@v1`,
        `apps_keep-me__ConfigMap@v1`,
      ]),
    );
    // CRDs and Namespaces first (Flux's staged apply order)
    expect(ks.status.inventory.entries[0].id).toMatch(
      /_CustomResourceDefinition$/,
    );

    // Server-side apply in place: same UID, kustomize-controller owns the fields, its labels set.
    const after = await k.get(k.deployment(NS, 'source-controller'));
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.metadata.labels).toMatchObject({
      'kustomize.toolkit.fluxcd.io/name': NS,
      'kustomize.toolkit.fluxcd.io/namespace': NS,
      'app.kubernetes.io/version': 'v2.9.4',
    });
    expect(after.spec.template.spec.containers[0].image).toBe(
      'ghcr.io/fluxcd/source-controller:v1.9.4',
    );
    expect(
      after.metadata.managedFields.find(
        (m: any) => m.manager === 'kustomize-controller',
      )?.operation,
    ).toBe('Apply');
    const crd = await k.get(
      k.crd('kustomizations.kustomize.toolkit.fluxcd.io'),
    );
    expect(crd.metadata.labels['kustomize.toolkit.fluxcd.io/name']).toBe(NS);

    // Deployments it applied become available, also outside the Flux namespace.
    await eventually('podinfo available', async () =>
      available(await k.get(k.deployment('apps', 'podinfo'))),
    );

    // A re-reconcile with nothing new changes nothing (dry-run drift detection).
    const gen = after.metadata.generation;
    await sim.reconcileNow();
    expect(
      (await k.get(k.deployment(NS, 'source-controller'))).metadata.generation,
    ).toBe(gen);
    expect(sim.events().join('\n')).toContain('none changed');

    // Recreate: a Deployment deleted by hand comes back with the next reconcile, from Git.
    await k.api.expect('DELETE', k.deployment(NS, 'kustomize-controller'));
    await eventually(
      'deleted',
      async () =>
        (await k.get(k.deployment(NS, 'kustomize-controller'))) === undefined,
    );
    await sim.reconcileNow();
    const recreated = await eventually(
      'kustomize-controller recreated and available',
      async () => {
        const d = await k.get(k.deployment(NS, 'kustomize-controller'));
        return available(d) ? d : undefined;
      },
      () => sim?.events() ?? [],
    );
    expect(recreated.metadata.labels['kustomize.toolkit.fluxcd.io/name']).toBe(
      NS,
    );

    // requestedAt: reconcile now, then lastHandledReconcileAt = the annotation value.
    await k.api.expect('DELETE', k.deployment(NS, 'helm-controller'));
    await k.annotate(k.gitRepository(NS, NS), {
      'reconcile.fluxcd.io/requestedAt': '2026-08-20T09:59:00Z',
    });
    await k.annotate(k.kustomization(NS, NS), {
      'reconcile.fluxcd.io/requestedAt': '2026-08-20T10:00:00Z',
    });
    await eventually(
      'requestedAt handled and helm-controller recreated',
      async () => {
        const cur = await k.get(k.kustomization(NS, NS));
        return (
          cur.status.lastHandledReconcileAt === '2026-08-20T10:00:00Z' &&
          (await k.get(k.deployment(NS, 'helm-controller')))
        );
      },
      () => sim?.events() ?? [],
    );

    expect(
      (await k.get(k.gitRepository(NS, NS))).status.lastHandledReconcileAt,
    ).toBe('2026-08-20T09:59:00Z');

    // Prune: objects that left the build are deleted, unless prune is disabled on them.
    const removed = await commitFiles(fleet.repo.path, 'main', {
      [`${PATH}/apps/podinfo.yaml`]: null,
    });
    const pruned = await appliedAt(removed);
    expect(pruned.status.inventory.entries.map((e: any) => e.id)).not.toContain(
      'apps_podinfo_apps_Deployment',
    );
    await eventually(
      'podinfo pruned',
      async () => (await k.get(k.deployment('apps', 'podinfo'))) === undefined,
    );
    expect(
      await k.get(k.p('v1', 'configmaps', 'keep-me', 'apps')),
    ).toBeDefined();
    expect(await k.get(k.deployment(NS, 'source-controller'))).toBeDefined();

    // No credential in what the simulator reports.
    expect(JSON.stringify(pruned)).not.toContain(PASSWORD);
    expect(sim.events().join('\n')).not.toContain(PASSWORD);

    // Suspend: nothing is reconciled and the status keeps its last values; resume reconciles.
    await k.patchSpec(k.kustomization(NS, NS), { suspend: true });
    const suspended = await k.get(k.kustomization(NS, NS));
    await k.api.expect('DELETE', k.deployment(NS, 'notification-controller'));
    await sim.reconcileNow();
    await sim.reconcileNow();
    expect(
      await k.get(k.deployment(NS, 'notification-controller')),
    ).toBeUndefined();
    expect((await k.get(k.kustomization(NS, NS))).status).toEqual(
      suspended.status,
    );
    await k.patchSpec(k.kustomization(NS, NS), { suspend: false });
    await eventually(
      'notification-controller recreated after resume',
      async () => k.get(k.deployment(NS, 'notification-controller')),
      () => sim?.events() ?? [],
    );
  });

  it('upgrades Flux from Git: a v2.10.0 gotk-components.yaml moves the controllers and CRDs to v2.10.0 in place', async () => {
    sim = await startApplyingSimulator(kube.info(), NS);
    const start = (await k.get(k.kustomization(NS, NS))).status
      .lastAppliedRevision;
    await sim.reconcileNow();
    const uids = Object.fromEntries(
      await Promise.all(
        ['source-controller', 'kustomize-controller'].map(async n => [
          n,
          (await k.get(k.deployment(NS, n))).metadata.uid,
        ]),
      ),
    );
    expect(start).toMatch(/^main@sha1:/);

    const upgrade = await commitFiles(
      fleet.repo.path,
      'main',
      {
        [`${PATH}/${NS}/gotk-components.yaml`]: gotkComponentsYaml(bundles.to, {
          namespace: NS,
        }),
      },
      'Upgrade Flux to v2.10.0',
    );
    expect(await changedFiles(fleet.repo.path, upgrade)).toEqual([
      `${PATH}/${NS}/gotk-components.yaml`,
    ]);
    await appliedAt(upgrade);
    const access = k;
    for (const [name, uid] of Object.entries(uids)) {
      const d = await eventually(`${name} available at v2.10.0`, async () => {
        const cur = await access.get(access.deployment(NS, name));
        return available(cur) &&
          cur.spec.template.spec.containers[0].image ===
            `ghcr.io/fluxcd/${name}:v2.10.0`
          ? cur
          : undefined;
      });
      expect(d.metadata.uid).toBe(uid);
      expect(d.metadata.labels['app.kubernetes.io/version']).toBe('v2.10.0');
    }
    const crd = await k.get(k.crd('gitrepositories.source.toolkit.fluxcd.io'));
    expect(crd.metadata.labels['app.kubernetes.io/version']).toBe('v2.10.0');
    // v2.10.0's CRD change: v1beta2 is no longer served
    expect(crd.spec.versions.map((v: any) => v.name)).toEqual(['v1']);
    const gone = await k.api.request(
      'GET',
      '/apis/source.toolkit.fluxcd.io/v1beta2',
    );
    expect(gone.status).toBe(404);
  });

  it('fails with BuildFailed on kustomize features it does not support and on a missing resource, keeps the last applied revision, and recovers', async () => {
    sim = await startApplyingSimulator(kube.info(), NS);
    await sim.reconcileNow();
    const good = (await k.get(k.kustomization(NS, NS))).status
      .lastAppliedRevision;
    const bad = await commitFiles(fleet.repo.path, 'main', {
      [`${PATH}/apps/kustomization.yaml`]:
        'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: dev-\nresources:\n- cm.yaml\n',
      [`${PATH}/apps/cm.yaml`]:
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  a: b\n',
    });
    const failed = await eventually('BuildFailed', async () => {
      const ks = await k.get(k.kustomization(NS, NS));
      return ks.status.lastAttemptedRevision === `main@sha1:${bad}` &&
        readyOf(ks)?.status === 'False'
        ? ks
        : undefined;
    });
    expect(readyOf(failed).reason).toBe('BuildFailed');
    expect(readyOf(failed).message).toContain("'namePrefix'");
    expect(readyOf(failed).message).toContain(
      `${PATH}/apps/kustomization.yaml`,
    );
    expect(failed.status.lastAppliedRevision).toBe(good);

    const missing = await commitFiles(fleet.repo.path, 'main', {
      [`${PATH}/apps/kustomization.yaml`]:
        'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- cm.yaml\n- absent.yaml\n',
    });
    const failed2 = await eventually('missing resource', async () => {
      const ks = await k.get(k.kustomization(NS, NS));
      return ks.status.lastAttemptedRevision === `main@sha1:${missing}` &&
        readyOf(ks)?.status === 'False'
        ? ks
        : undefined;
    });
    expect(readyOf(failed2)).toMatchObject({ reason: 'BuildFailed' });
    expect(readyOf(failed2).message).toContain("'absent.yaml'");

    const fixed = await commitFiles(fleet.repo.path, 'main', {
      [`${PATH}/apps/kustomization.yaml`]:
        'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- cm.yaml\npatches:\n- patch: |\n    - op: add\n      path: /data/c\n      value: d\n  target:\n    kind: ConfigMap\n    name: settings\n',
    });
    await appliedAt(fixed);
    const cm = await k.get(k.p('v1', 'configmaps', 'settings', 'default'));
    expect(cm.data).toEqual({ a: 'b', c: 'd' });
  });

  it('waits for health with spec.wait and reports HealthCheckFailed when a Deployment does not become available', async () => {
    sim = await startApplyingSimulator(kube.info(), NS);
    const head = await commitFiles(fleet.repo.path, 'main', {
      [`${PATH}/apps/podinfo.yaml`]: app(2),
      [`${PATH}/apps/kustomization.yaml`]:
        'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- cm.yaml\n- podinfo.yaml\n',
    });
    sim.failWith('deployments', 'pods do not schedule', {
      deployment: 'podinfo',
    });
    await k.patchSpec(k.kustomization(NS, NS), { wait: true, timeout: '3s' });
    const failed = await eventually(
      'HealthCheckFailed',
      async () => {
        const ks = await k.get(k.kustomization(NS, NS));
        return readyOf(ks)?.reason === 'HealthCheckFailed' ? ks : undefined;
      },
      () => sim?.events() ?? [],
    );
    expect(readyOf(failed).message).toMatch(
      /^health check failed after .*: timeout waiting for: \[.*Deployment\/apps\/podinfo status: 'Failed'/,
    );
    expect(failed.status.lastAttemptedRevision).toBe(`main@sha1:${head}`);
    sim.clear();
    const ok = await appliedAt(head);
    expect(
      ok.status.conditions.find((c: any) => c.type === 'Healthy'),
    ).toMatchObject({ status: 'True', reason: 'Succeeded' });
    await k.patchSpec(k.kustomization(NS, NS), { wait: null, timeout: null });
  });
});
