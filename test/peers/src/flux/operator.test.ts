/**
 * The Flux Operator fixture (install.yaml, served like a GitHub release) and the simulator's
 * operator loop (FluxInstance, FluxReport, upgrade, migration from flux bootstrap) on private real
 * apiservers with a real git http-backend.
 */
import crypto from 'node:crypto';
import YAML from 'yaml';
import { KubeApiserver, startKubeApiserver } from '../kube/apiserver';
import { buildFluxUpgradeBundles, FluxBundle, toMultiDocYaml } from './bundle';
import { GOTK_KUSTOMIZATION_YAML } from './install';
import {
  applyFluxOperatorRelease,
  buildFluxOperatorRelease,
  serveFluxOperatorReleases,
} from './operator';
import { FluxSimulator } from './simulator';
import {
  BOOTSTRAP_COMPONENTS,
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
const API = 'fluxcd.controlplane.io/v1';

let bundles: { from: FluxBundle; to: FluxBundle };
beforeAll(async () => {
  bundles = await buildFluxUpgradeBundles();
});

describe('Flux Operator release fixture', () => {
  it('has install.yaml with the real kinds and names, no CEL, and is served with goreleaser checksums', async () => {
    const release = buildFluxOperatorRelease();
    expect(release.version).toBe('v0.58.1');
    const objs = YAML.parseAllDocuments(release.installYaml)
      .map(d => d.toJS())
      .filter(Boolean);
    expect(
      objs.map(
        (o: any) =>
          `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${
            o.metadata.name
          }`,
      ),
    ).toEqual([
      'Namespace/flux-system',
      'CustomResourceDefinition/fluxinstances.fluxcd.controlplane.io',
      'CustomResourceDefinition/fluxreports.fluxcd.controlplane.io',
      'CustomResourceDefinition/resourcesets.fluxcd.controlplane.io',
      'CustomResourceDefinition/resourcesetinputproviders.fluxcd.controlplane.io',
      'ServiceAccount/flux-system/flux-operator',
      'ClusterRole/flux-operator-edit',
      'ClusterRole/flux-operator-view',
      'ClusterRole/flux-web-user',
      'ClusterRole/flux-web-admin',
      'ClusterRoleBinding/flux-operator-cluster-admin',
      'Service/flux-system/flux-operator',
      'Deployment/flux-system/flux-operator',
    ]);
    const deploy = objs.find((o: any) => o.kind === 'Deployment');
    expect(deploy.spec.template.spec.containers[0]).toMatchObject({
      name: 'manager',
      image: 'ghcr.io/controlplaneio-fluxcd/flux-operator:v0.58.1',
    });
    expect(release.installYaml).not.toContain('x-kubernetes-validations');
    expect(
      buildFluxOperatorRelease({ version: 'v0.59.0' }).installYaml,
    ).toContain('flux-operator:v0.59.0');
    expect(() => buildFluxOperatorRelease({ version: '0.58' })).toThrow(
      /not a tag/,
    );

    const server = await serveFluxOperatorReleases([release]);
    try {
      const yaml = await (await fetch(server.urlFor('v0.58.1'))).text();
      expect(yaml).toBe(release.installYaml);
      const sums = await fetch(server.checksumsUrlFor('v0.58.1'));
      expect(server.checksumsUrlFor('v0.58.1')).toMatch(
        /\/v0\.58\.1\/flux-operator_0\.58\.1_checksums\.txt$/,
      );
      expect(await sums.text()).toBe(
        `${crypto
          .createHash('sha256')
          .update(yaml)
          .digest('hex')}  install.yaml\n`,
      );
      expect((await fetch(server.urlFor('v9.9.9'))).status).toBe(404);
      server.injectFault({ path: '/v0.58.1/install.yaml', status: 503 });
      expect((await fetch(server.urlFor('v0.58.1'))).status).toBe(503);
      expect(server.requests().map(r => `${r.path} ${r.status}`)).toEqual([
        '/v0.58.1/install.yaml 200',
        '/v0.58.1/flux-operator_0.58.1_checksums.txt 200',
        '/v9.9.9/install.yaml 404',
        '/v0.58.1/install.yaml 503',
      ]);
    } finally {
      await server.stop();
    }
  });
});

describe('Flux Operator simulator', () => {
  let kube: KubeApiserver;
  let k: ReturnType<typeof kubeAccess>;
  let fleet: Awaited<ReturnType<typeof startFleet>>;
  let sim: FluxSimulator | undefined;
  const instPath = () => k.p(API, 'fluxinstances', 'flux', NS);
  const reportPath = () => k.p(API, 'fluxreports', 'flux', NS);

  const instance = (version: string) => ({
    apiVersion: API,
    kind: 'FluxInstance',
    metadata: { name: 'flux', namespace: NS },
    spec: {
      distribution: { version, registry: 'ghcr.io/fluxcd' },
      components: BOOTSTRAP_COMPONENTS,
      cluster: {
        type: 'kubernetes',
        networkPolicy: true,
        domain: 'cluster.local',
      },
      sync: {
        kind: 'GitRepository',
        url: fleet.repo.url,
        ref: 'refs/heads/main',
        path: PATH,
        pullSecret: NS,
      },
    },
  });
  const instanceFiles = (version: string) => ({
    [`${PATH}/${NS}/flux-instance.yaml`]: toMultiDocYaml([instance(version)]),
    [`${PATH}/${NS}/kustomization.yaml`]:
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- flux-instance.yaml\n',
  });

  async function instanceWhere(
    what: string,
    fn: (i: any) => boolean,
  ): Promise<any> {
    return eventually(
      what,
      async () => {
        const i = await k.get(instPath());
        return i && fn(i) ? i : undefined;
      },
      () => sim?.events() ?? [],
      60_000,
    );
  }

  beforeEach(async () => {
    [kube, fleet] = await Promise.all([startKubeApiserver(), startFleet()]);
    k = kubeAccess(kube.info());
  });
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
    k?.close();
    await fleet?.server.stop();
    await kube?.stop();
  });

  it('installs Flux from a FluxInstance, syncs from Git, reports in FluxReport, upgrades, refuses a minor downgrade and can be told to fail', async () => {
    sim = await startApplyingSimulator(kube.info(), NS, [
      bundles.from,
      bundles.to,
    ]);
    await applyFluxOperatorRelease(kube.info(), buildFluxOperatorRelease());
    await eventually('flux-operator available', async () => {
      const d = await k.get(k.deployment(NS, 'flux-operator'));
      return d?.status?.availableReplicas === 1;
    });
    // Before any Flux: the operator reports it as not installed.
    const empty = await eventually('FluxReport', async () =>
      k.get(reportPath()),
    );
    expect(empty.spec.distribution).toEqual({
      entitlement: 'Unknown',
      status: 'Not Installed',
    });
    expect(empty.spec.operator).toMatchObject({
      apiVersion: API,
      version: 'v0.58.1',
    });

    await k.secret(NS, NS, fleet.secret);
    const head = await commitFiles(
      fleet.repo.path,
      'main',
      instanceFiles('2.9.x'),
    );
    await k.api.apply(instPath(), instance('2.9.x'), { fieldManager: 'flux' });

    const ready = await instanceWhere(
      'FluxInstance Ready',
      i => readyOf(i)?.status === 'True',
    );
    expect(readyOf(ready)).toMatchObject({
      reason: 'ReconciliationSucceeded',
      message: expect.stringMatching(/^Reconciliation finished in /),
    });
    expect(ready.status.lastAppliedRevision).toMatch(
      /^v2\.9\.4@sha256:[0-9a-f]{64}$/,
    );
    expect(ready.status.lastAttemptedRevision).toBe(
      ready.status.lastAppliedRevision,
    );
    expect(ready.status.components).toEqual(
      expect.arrayContaining([
        {
          name: 'source-controller',
          repository: 'ghcr.io/fluxcd/source-controller',
          tag: 'v1.9.4',
          digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        },
      ]),
    );
    expect(ready.status.history[0]).toMatchObject({
      digest: ready.status.lastAppliedRevision.split('@')[1],
      lastReconciledStatus: 'ReconciliationSucceeded',
      metadata: { flux: 'v2.9.4' },
    });
    const ids = ready.status.inventory.entries.map((e: any) => e.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        `${NS}_source-controller_apps_Deployment`,
        `${NS}_${NS}_source.toolkit.fluxcd.io_GitRepository`,
        `${NS}_${NS}_kustomize.toolkit.fluxcd.io_Kustomization`,
      ]),
    );

    // What the operator applied: its labels and annotations, digests, the sync objects.
    const sc = await k.get(k.deployment(NS, 'source-controller'));
    expect(sc.metadata.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'flux-operator',
      'app.kubernetes.io/version': 'v2.9.4',
      'fluxcd.controlplane.io/name': 'flux',
      'fluxcd.controlplane.io/namespace': NS,
    });
    expect(sc.metadata.annotations).toMatchObject({
      'kustomize.toolkit.fluxcd.io/ssa': 'Ignore',
      'kustomize.toolkit.fluxcd.io/prune': 'Disabled',
    });
    expect(sc.spec.template.spec.containers[0].image).toMatch(
      /^ghcr\.io\/fluxcd\/source-controller:v1\.9\.4@sha256:[0-9a-f]{64}$/,
    );
    expect(
      sc.metadata.managedFields.some((m: any) => m.manager === 'flux-operator'),
    ).toBe(true);
    const gr = await k.get(k.gitRepository(NS, NS));
    expect(gr.spec).toMatchObject({
      interval: '1m0s',
      ref: { name: 'refs/heads/main' },
      secretRef: { name: NS },
      url: fleet.repo.url,
    });
    const ks = await eventually('sync Kustomization applied', async () => {
      const cur = await k.get(k.kustomization(NS, NS));
      return cur?.status?.lastAppliedRevision === `refs/heads/main@sha1:${head}`
        ? cur
        : undefined;
    });
    expect(ks.spec).toMatchObject({
      interval: '10m0s',
      path: PATH,
      prune: true,
    });

    // FluxReport
    const report = await eventually(
      'FluxReport with the sync',
      async () => {
        const r = await k.get(reportPath());
        return r?.spec?.sync?.ready && r.spec.distribution.version === 'v2.9.4'
          ? r
          : undefined;
      },
      () => sim?.events() ?? [],
    );
    expect(report.spec.distribution).toEqual({
      entitlement: 'Unknown',
      managedBy: 'flux-operator',
      status: 'Installed',
      version: 'v2.9.4',
    });
    expect(report.spec.sync).toEqual({
      id: `kustomization/${NS}`,
      path: PATH,
      ready: true,
      source: fleet.repo.url,
      status: `Applied revision: refs/heads/main@sha1:${head}`,
    });
    const version = (await k.api.expect('GET', '/version')).body;
    expect(report.spec.cluster).toMatchObject({
      serverVersion: version.gitVersion,
      platform: version.platform,
    });
    expect(report.spec.components.map((c: any) => c.name)).toEqual([
      'helm-controller',
      'kustomize-controller',
      'notification-controller',
      'source-controller',
    ]);
    expect(report.spec.components[0]).toMatchObject({
      ready: true,
      status: 'Current Deployment is available. Replicas: 1',
      image: expect.stringMatching(
        /^ghcr\.io\/fluxcd\/helm-controller:v1\.6\.3@sha256:/,
      ),
    });
    expect(report.spec.reconcilers).toEqual(
      expect.arrayContaining([
        {
          apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
          kind: 'Kustomization',
          stats: { running: 1, failing: 0, suspended: 0 },
        },
      ]),
    );
    expect(readyOf(report)).toMatchObject({
      status: 'True',
      reason: 'Succeeded',
      message: expect.stringMatching(/^Reporting finished in /),
    });

    // Upgrade: a version change committed to Git reaches the instance through the Kustomization.
    const uid = sc.metadata.uid;
    const up = await commitFiles(
      fleet.repo.path,
      'main',
      instanceFiles('2.10.x'),
    );
    expect(await changedFiles(fleet.repo.path, up)).toEqual([
      `${PATH}/${NS}/flux-instance.yaml`,
    ]);
    const upgraded = await instanceWhere(
      'FluxInstance at v2.10.0',
      i =>
        readyOf(i)?.status === 'True' &&
        String(i.status.lastAppliedRevision).startsWith('v2.10.0@'),
    );
    expect(upgraded.status.history[0].metadata).toEqual({ flux: 'v2.10.0' });
    const sc2 = await k.get(k.deployment(NS, 'source-controller'));
    expect(sc2.metadata.uid).toBe(uid);
    expect(sc2.spec.template.spec.containers[0].image).toMatch(
      /^ghcr\.io\/fluxcd\/source-controller:v2\.10\.0@sha256:/,
    );
    await eventually('FluxReport shows v2.10.0', async () => {
      const r = await k.get(reportPath());
      return r?.spec?.distribution?.version === 'v2.10.0';
    });

    // A minor downgrade is refused like the operator does.
    await commitFiles(fleet.repo.path, 'main', instanceFiles('2.9.x'));
    const refused = await instanceWhere(
      'downgrade refused',
      i => readyOf(i)?.reason === 'BuildFailed',
    );
    expect(readyOf(refused).message).toBe(
      'build failed: downgrading from v2.10.0 to v2.9.4 is not supported, reinstall needed',
    );
    expect(
      refused.status.conditions.find((c: any) => c.type === 'Stalled'),
    ).toMatchObject({ status: 'True', reason: 'BuildFailed' });
    expect(refused.status.lastAppliedRevision).toBe(
      upgraded.status.lastAppliedRevision,
    );

    // Back to a valid version, then an injected failure, then recovery.
    await commitFiles(fleet.repo.path, 'main', instanceFiles('2.10.x'));
    await instanceWhere('back to Ready', i => readyOf(i)?.status === 'True');
    sim.failWith('instance', 'simulated apply error');
    const failing = await instanceWhere(
      'injected failure',
      i => readyOf(i)?.status === 'False',
    );
    expect(readyOf(failing)).toMatchObject({
      reason: 'ReconciliationFailed',
      message: 'reconciliation failed: simulated apply error',
    });
    sim.clear();
    await instanceWhere('recovered', i => readyOf(i)?.status === 'True');

    // requestedAt is echoed as lastHandledReconcileAt; reconcile: disabled pauses.
    await k.annotate(instPath(), {
      'reconcile.fluxcd.io/requestedAt': 'now-1',
    });
    await instanceWhere(
      'requestedAt handled',
      i => i.status.lastHandledReconcileAt === 'now-1',
    );
    await k.annotate(instPath(), {
      'fluxcd.controlplane.io/reconcile': 'disabled',
      'reconcile.fluxcd.io/requestedAt': 'now-2',
    });
    await sim.reconcileNow();
    await sim.reconcileNow();
    expect((await k.get(instPath())).status.lastHandledReconcileAt).toBe(
      'now-1',
    );

    expect(sim.events().join('\n')).not.toContain(PASSWORD);
    expect(JSON.stringify(await k.get(reportPath()))).not.toContain(PASSWORD);
  });

  it('migrates a flux bootstrap installation in place: same Deployment UIDs, labels switched, the bootstrap files replaced in one commit prune nothing of Flux', async () => {
    sim = await startApplyingSimulator(kube.info(), NS, [
      bundles.from,
      bundles.to,
    ]);
    // flux bootstrap (v2.9.4)
    const boot = await fluxBootstrapState(kube.info(), fleet, bundles.from, {
      namespace: NS,
      path: PATH,
    });
    await eventually(
      'bootstrap synced',
      async () =>
        (await k.get(k.kustomization(NS, NS)))?.status?.lastAppliedRevision ===
        `main@sha1:${boot}`,
      () => sim?.events() ?? [],
    );
    const names = BOOTSTRAP_COMPONENTS;
    const uidsOf = async () =>
      Object.fromEntries(
        await Promise.all(
          [
            ...names.map(n => k.deployment(NS, n)),
            k.gitRepository(NS, NS),
            k.kustomization(NS, NS),
            k.crd('gitrepositories.source.toolkit.fluxcd.io'),
          ].map(async p => [p, (await k.get(p))?.metadata?.uid]),
        ),
      );
    const before = await uidsOf();
    expect(
      (await k.get(k.deployment(NS, 'source-controller'))).metadata.labels[
        'kustomize.toolkit.fluxcd.io/name'
      ],
    ).toBe(NS);

    // The operator arrives; its report sees a bootstrapped Flux.
    await applyFluxOperatorRelease(kube.info(), buildFluxOperatorRelease());
    const seen = await eventually(
      'FluxReport of the bootstrap install',
      async () => {
        const r = await k.get(reportPath());
        return r?.spec?.distribution?.status === 'Installed' ? r : undefined;
      },
    );
    expect(seen.spec.distribution).toMatchObject({
      managedBy: 'flux bootstrap',
      version: 'v2.9.4',
    });
    expect(seen.spec.sync).toMatchObject({
      id: `kustomization/${NS}`,
      ready: true,
      path: `./${PATH}`,
    });

    // The instance adopts the installation (applied by hand, as the product's install does).
    await k.api.apply(instPath(), instance('2.9.x'), { fieldManager: 'flux' });
    await instanceWhere('instance Ready', i => readyOf(i)?.status === 'True');
    const adopted = await uidsOf();
    expect(adopted).toEqual(before);
    for (const n of names) {
      const d = await k.get(k.deployment(NS, n));
      expect(
        d.metadata.labels['kustomize.toolkit.fluxcd.io/name'],
      ).toBeUndefined();
      expect(
        d.metadata.labels['kustomize.toolkit.fluxcd.io/namespace'],
      ).toBeUndefined();
      expect(d.metadata.labels['app.kubernetes.io/managed-by']).toBe(
        'flux-operator',
      );
      expect(d.metadata.managedFields.map((m: any) => m.manager)).not.toContain(
        'kustomize-controller',
      );
    }
    const crd = await k.get(k.crd('gitrepositories.source.toolkit.fluxcd.io'));
    expect(crd.metadata.labels['app.kubernetes.io/managed-by']).toBe(
      'flux-operator',
    );
    expect(
      crd.metadata.labels['kustomize.toolkit.fluxcd.io/name'],
    ).toBeUndefined();
    expect((await k.get(k.gitRepository(NS, NS))).spec.ref.name).toBe(
      'refs/heads/main',
    );

    // One commit replaces the bootstrap files by the instance; the Kustomization prunes its old
    // inventory, but nothing of Flux goes (the operator stripped the owner labels).
    const migrate = await commitFiles(
      fleet.repo.path,
      'main',
      {
        [`${PATH}/${NS}/gotk-components.yaml`]: null,
        [`${PATH}/${NS}/gotk-sync.yaml`]: null,
        ...instanceFiles('2.9.x'),
      },
      'Migrate to the Flux Operator',
    );
    expect((await changedFiles(fleet.repo.path, migrate)).sort()).toEqual(
      [
        `${PATH}/${NS}/flux-instance.yaml`,
        `${PATH}/${NS}/gotk-components.yaml`,
        `${PATH}/${NS}/gotk-sync.yaml`,
        `${PATH}/${NS}/kustomization.yaml`,
      ].sort(),
    );
    expect(GOTK_KUSTOMIZATION_YAML).toContain('gotk-components.yaml');
    const ks = await eventually(
      'migration commit applied',
      async () => {
        const cur = await k.get(k.kustomization(NS, NS));
        return String(cur?.status?.lastAppliedRevision).endsWith(migrate) &&
          readyOf(cur)?.status === 'True'
          ? cur
          : undefined;
      },
      () => sim?.events() ?? [],
      60_000,
    );
    expect(ks.status.inventory.entries.map((e: any) => e.id)).toEqual([
      `${NS}_flux_fluxcd.controlplane.io_FluxInstance`,
    ]);
    expect(await uidsOf()).toEqual(before);
    const report = await eventually(
      'FluxReport managed by the operator',
      async () => {
        const r = await k.get(reportPath());
        return r?.spec?.distribution?.managedBy === 'flux-operator' &&
          r.spec.sync?.ready
          ? r
          : undefined;
      },
    );
    expect(report.spec.sync.path).toBe(PATH);
    expect(sim.events().join('\n')).toMatch(/garbage collection .*skipped/);
  });
});
