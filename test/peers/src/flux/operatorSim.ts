/* eslint-disable consistent-return -- the reconcile functions end early with `return write…(…)`, like controller code */
import crypto from 'node:crypto';
import semver from 'semver';
import { KubeHttp, kubePath } from '../kube/http';
import { FLUX_COMPONENTS, FluxBundle, toMultiDocYaml } from './bundle';
import { fixtureImageDigest, renderFluxInstall } from './install';
import { FLUX_OPERATOR_VERSION } from './operator';
import { K8sObject, PatchError } from './patches';
import {
  ApplyError,
  ChangeEntry,
  FieldManagerMatch,
  FluxApplier,
  InventoryEntry,
} from './resources';

/**
 * The Flux Operator part of the simulator (TEST-ONLY; see simulator.ts): reconciles the
 * FluxInstance `flux` and maintains the FluxReport `flux` in the operator's namespace, the way
 * controlplaneio-fluxcd/flux-operator's controllers do (shapes from its API and controller code).
 */

export interface OperatorSimOptions {
  /**
   * The Flux versions "embedded in the operator image": `spec.distribution.version` (exact, or a
   * semver range such as `2.9.x`) resolves to the highest matching one.
   */
  bundles: Array<Pick<FluxBundle, 'version' | 'files'>>;
  /** Operator version reported in the FluxReport when no flux-operator Deployment is found (default FLUX_OPERATOR_VERSION). */
  version?: string;
  /** How often the FluxReport is recomputed at most (default 1000 ms; the real default is 5m). */
  reportIntervalMs?: number;
}

/** A status condition as the simulated controllers write it. */
export type Cond = {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
};

const readyFalse = (reason: string, message: string): Cond => ({
  type: 'Ready',
  status: 'False',
  reason,
  message,
});

/** A reconciliation in progress: Ready=Unknown and Reconciling=True (with `message`), reason Progressing. */
export const progressingConds = (
  message = 'Reconciliation in progress',
): Cond[] => [
  {
    type: 'Ready',
    status: 'Unknown',
    reason: 'Progressing',
    message: 'Reconciliation in progress',
  },
  { type: 'Reconciling', status: 'True', reason: 'Progressing', message },
];

const API = 'fluxcd.controlplane.io/v1';
const FIELD_MANAGER = 'flux-operator';
const GROUP = 'fluxcd.controlplane.io';

/** Flux Operator's takeOwnershipFrom(["flux"]) (internal/controller/common.go). */
const TAKE_OWNERSHIP: FieldManagerMatch[] = [
  { name: 'kustomize-controller', operation: 'Apply', exact: true },
  { name: 'helm', operation: 'Update', exact: true },
  { name: 'kubectl', operation: 'Update' },
  { name: 'before-first-apply', operation: 'Update' },
  { name: 'kubectl', operation: 'Apply' },
  { name: 'flux', operation: 'Apply', exact: true },
  { name: 'flux', operation: 'Update', exact: true },
];

/** Go's time.Duration.String() for a number of milliseconds (enough for messages). */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number(s.toFixed(3))}s`;
  const m = Math.floor(s / 60);
  const rest = Number((s - m * 60).toFixed(3));
  if (m < 60) return `${m}m${rest}s`;
  return `${Math.floor(m / 60)}h${m % 60}m${rest}s`;
}

/** Parses a Go duration string (`1m30s`, `10m0s`, `500ms`) into milliseconds. */
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1e3,
  m: 6e4,
  h: 3.6e6,
};

export function parseGoDuration(d: unknown): number | undefined {
  if (typeof d !== 'string' || !d) return undefined;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let matched = '';
  for (let m = re.exec(d); m; m = re.exec(d)) {
    matched += m[0];
    const n = Number(m[1]);
    total += n * UNIT_MS[m[2]];
  }
  return matched === d ? total : undefined;
}

function normalizeRange(range: string): string {
  return range.trim().replace(/(^|[\s<>=~^|,])v(?=\d)/g, '$1');
}

export interface OperatorLoop {
  reconcileInstance(force: boolean): Promise<void>;
  reconcileReport(force: boolean): Promise<void>;
  /** Deployments (namespace/name) the instance applied, for the Deployment loop. */
  deployments(): Array<{ namespace: string; name: string }>;
  failWith(message: string | undefined): void;
}

export function createOperatorLoop(ctx: {
  api: KubeHttp;
  applier: FluxApplier;
  namespace: string;
  signal: AbortSignal;
  opts: OperatorSimOptions;
  record(line: string): void;
  now(): string;
  withTransitions(
    next: Cond[],
    prev: any[] | undefined,
    generation: number,
  ): any[];
}): OperatorLoop {
  const { api, applier, signal, record } = ctx;
  const ns = ctx.namespace;
  const versions = ctx.opts.bundles.map(b => b.version);
  let failure: string | undefined;
  let lastRun = 0;
  let lastFailed = false;
  let lastReport = 0;
  let health:
    | {
        revision: string;
        deadline: number;
        changes: ChangeEntry[];
        start: number;
      }
    | undefined;
  let applied: Array<{ namespace: string; name: string }> = [];

  const instPath = kubePath({
    apiVersion: API,
    resource: 'fluxinstances',
    namespace: ns,
    name: 'flux',
  });
  const reportPath = kubePath({
    apiVersion: API,
    resource: 'fluxreports',
    namespace: ns,
    name: 'flux',
  });

  async function writeInstanceStatus(status: Record<string, unknown>) {
    const res = await api.request('PATCH', `${instPath}/status`, {
      body: { status },
      contentType: 'application/merge-patch+json',
      query: { fieldManager: FIELD_MANAGER },
      signal,
    });
    const ready = (status.conditions as any[] | undefined)?.find(
      c => c.type === 'Ready',
    );
    record(
      res.status >= 300
        ? `FluxInstance: status update failed ${res.status} ${
            res.body?.message ?? ''
          }`
        : `FluxInstance: Ready=${ready?.status} ${ready?.reason}: ${ready?.message}`,
    );
  }

  function upsertHistory(
    history: any[] | undefined,
    digest: string,
    reason: string,
    start: number,
    metadata?: Record<string, string>,
  ): any[] {
    const now = ctx.now();
    const entries = [...(history ?? [])];
    const i = entries.findIndex(
      h => h.digest === digest && h.lastReconciledStatus === reason,
    );
    const duration = goDuration(Date.now() - start);
    if (i >= 0) {
      const h = {
        ...entries[i],
        lastReconciled: now,
        lastReconciledDuration: duration,
        totalReconciliations: (entries[i].totalReconciliations ?? 0) + 1,
        ...(metadata ? { metadata } : {}),
      };
      entries.splice(i, 1);
      entries.unshift(h);
    } else {
      entries.unshift({
        digest,
        firstReconciled: now,
        lastReconciled: now,
        lastReconciledDuration: duration,
        lastReconciledStatus: reason,
        totalReconciliations: 1,
        ...(metadata ? { metadata } : {}),
      });
    }
    return entries.slice(0, 5);
  }

  /** The operator's build: version resolution, objects, revision. Throws Error(message) on failure. */
  function build(inst: any) {
    const spec = inst.spec ?? {};
    const dist = spec.distribution ?? {};
    for (const f of ['sharding', 'storage'] as const) {
      if (spec[f] !== undefined)
        throw new Error(`the Flux simulator does not support spec.${f}`);
    }
    if (dist.artifact)
      throw new Error(
        'the Flux simulator does not support spec.distribution.artifact (it uses the embedded manifests)',
      );
    const cluster = spec.cluster ?? {};
    if (
      cluster.size ||
      cluster.multitenant ||
      (cluster.type && cluster.type !== 'kubernetes')
    )
      throw new Error(
        'the Flux simulator does not support the cluster profiles (spec.cluster.size, .multitenant, .type other than kubernetes)',
      );
    const range = normalizeRange(String(dist.version ?? ''));
    const clean = versions
      .map(v => ({ v, s: semver.valid(v.replace(/^v/, '')) }))
      .filter(x => x.s);
    let picked: string | undefined;
    if (semver.validRange(range)) {
      const best = semver.maxSatisfying(
        clean.map(x => x.s as string),
        range,
      );
      picked = clean.find(x => x.s === best)?.v;
    }
    if (!picked)
      throw new Error(
        `no match found for semver: ${
          dist.version
        } in the simulator's embedded Flux versions (${versions.join(', ')})`,
      );
    const last = inst.status?.lastAppliedRevision as string | undefined;
    if (last) {
      const from = semver.coerce(last.split('@')[0]);
      const to = semver.coerce(picked);
      if (from && to && (to.major < from.major || to.minor < from.minor))
        throw new Error(
          `downgrading from ${
            last.split('@')[0]
          } to ${picked} is not supported, reinstall needed`,
        );
    }
    const components: string[] = spec.components?.length
      ? spec.components
      : [
          'source-controller',
          'kustomize-controller',
          'helm-controller',
          'notification-controller',
        ];
    for (const c of components)
      if (!(FLUX_COMPONENTS as readonly string[]).includes(c))
        throw new Error(`unknown component ${c}`);
    const registry = String(dist.registry ?? '').replace(/\/+$/, '');
    const digests =
      dist.variant !== undefined ||
      registry === 'ghcr.io/fluxcd' ||
      registry === 'fluxcd';
    const bundle = ctx.opts.bundles.find(b => b.version === picked)!;
    const nodeSelector = {
      patch: JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'all' },
        spec: {
          template: {
            spec: {
              nodeSelector: { 'kubernetes.io/os': 'linux' },
              ...(dist.imagePullSecret
                ? { imagePullSecrets: [{ name: dist.imagePullSecret }] }
                : {}),
            },
          },
        },
      }),
      target: { kind: 'Deployment' },
    };
    let objects: K8sObject[];
    try {
      objects = renderFluxInstall(bundle, {
        namespace: ns,
        components,
        registry,
        digests,
        networkPolicy: cluster.networkPolicy ?? true,
        podTemplateLabels: false,
        labels: { 'app.kubernetes.io/managed-by': 'flux-operator' },
        annotations: {
          'kustomize.toolkit.fluxcd.io/ssa': 'Ignore',
          'kustomize.toolkit.fluxcd.io/prune': 'Disabled',
        },
        patches: [nodeSelector, ...(spec.kustomize?.patches ?? [])],
      });
    } catch (e) {
      if (e instanceof PatchError)
        throw new Error(`failed to build kustomization: ${e.message}`);
      throw e;
    }
    for (const o of objects)
      if (o.kind === 'Namespace')
        o.metadata.annotations = {
          ...(o.metadata.annotations ?? {}),
          'fluxcd.controlplane.io/prune': 'disabled',
        };
    const sync = spec.sync;
    if (sync) {
      if (sync.kind !== 'GitRepository')
        throw new Error(
          `the Flux simulator only supports sync.kind GitRepository, not ${sync.kind}`,
        );
      const name = sync.name || ns;
      const meta = (o: { name: string; namespace: string }) => ({
        ...o,
        labels: {
          'app.kubernetes.io/instance': ns,
          'app.kubernetes.io/managed-by': 'flux-operator',
          'app.kubernetes.io/part-of': 'flux',
          'app.kubernetes.io/version': bundle.version,
        },
        annotations: {
          'kustomize.toolkit.fluxcd.io/prune': 'Disabled',
          'kustomize.toolkit.fluxcd.io/ssa': 'Ignore',
        },
      });
      const interval = parseGoDuration(sync.interval ?? '1m') ?? 60_000;
      objects.push(
        {
          apiVersion: 'source.toolkit.fluxcd.io/v1',
          kind: 'GitRepository',
          metadata: meta({ name, namespace: ns }),
          spec: {
            interval: goDuration(interval),
            ref: { name: sync.ref },
            ...(sync.pullSecret
              ? { secretRef: { name: sync.pullSecret } }
              : {}),
            ...(sync.provider ? { provider: sync.provider } : {}),
            url: sync.url,
          },
        },
        {
          apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
          kind: 'Kustomization',
          metadata: meta({ name, namespace: ns }),
          spec: {
            interval: '10m0s',
            path: sync.path,
            prune: true,
            sourceRef: { kind: 'GitRepository', name },
          },
        },
      );
    }
    if (spec.commonMetadata) {
      for (const o of objects) {
        o.metadata.labels = {
          ...(o.metadata.labels ?? {}),
          ...(spec.commonMetadata.labels ?? {}),
        };
        o.metadata.annotations = {
          ...(o.metadata.annotations ?? {}),
          ...(spec.commonMetadata.annotations ?? {}),
        };
      }
    }
    const digest = `sha256:${crypto
      .createHash('sha256')
      .update(toMultiDocYaml(objects))
      .digest('hex')}`;
    const images = components.map(c => {
      const d = objects.find(
        o => o.kind === 'Deployment' && o.metadata.name === c,
      );
      const image: string =
        d?.spec?.template?.spec?.containers?.find(
          (x: any) => x.name === 'manager',
        )?.image ?? '';
      const m = /^(.*?):([^:@/]+)(?:@(sha256:[0-9a-f]+))?$/.exec(image);
      const repository = m?.[1] ?? image;
      const tag = m?.[2] ?? 'latest';
      let imageDigest: string | undefined = m?.[3];
      if (!imageDigest && digests)
        imageDigest = fixtureImageDigest(`${repository}:${tag}`);
      return {
        name: c,
        repository,
        tag,
        ...(imageDigest ? { digest: imageDigest } : {}),
      };
    });
    return {
      version: picked,
      revision: `${picked}@${digest}`,
      digest,
      objects,
      images,
    };
  }

  async function reconcileInstance(force: boolean): Promise<void> {
    const res = await api.request('GET', instPath, { signal });
    if (res.status === 404) {
      health = undefined;
      return;
    }
    if (res.status !== 200)
      throw new Error(
        `GET FluxInstance ${ns}/flux: ${res.status} ${res.body?.message ?? ''}`,
      );
    const inst = res.body;
    const annotations = inst.metadata.annotations ?? {};
    if (
      String(
        annotations['fluxcd.controlplane.io/reconcile'] ?? '',
      ).toLowerCase() === 'disabled'
    )
      return;
    const generation: number = inst.metadata.generation;
    const prev: any[] | undefined = inst.status?.conditions;
    const requested = annotations['reconcile.fluxcd.io/requestedAt'];
    const readyCond = prev?.find(c => c.type === 'Ready');
    const every =
      parseGoDuration(annotations['fluxcd.controlplane.io/reconcileEvery']) ??
      3_600_000;
    const due =
      force ||
      lastRun === 0 ||
      health !== undefined ||
      readyCond?.observedGeneration !== generation ||
      (requested !== undefined &&
        requested !== inst.status?.lastHandledReconcileAt) ||
      (lastFailed && Date.now() - lastRun >= 1000) ||
      Date.now() - lastRun >= every;
    if (!due) return;
    const handled: Record<string, string> =
      requested !== undefined ? { lastHandledReconcileAt: requested } : {};
    const start = health?.start ?? Date.now();
    lastRun = Date.now();
    const conds = (c: Cond[]) => ctx.withTransitions(c, prev, generation);

    if (failure) {
      lastFailed = true;
      health = undefined;
      return writeInstanceStatus({
        ...handled,
        conditions: conds([
          readyFalse(
            'ReconciliationFailed',
            `reconciliation failed: ${failure}`,
          ),
        ]),
      });
    }

    let b: ReturnType<typeof build>;
    try {
      b = build(inst);
    } catch (e) {
      // A build failure is terminal (Stalled): retried only when the spec or a request changes.
      lastFailed = false;
      health = undefined;
      const msg = `build failed: ${(e as Error).message}`;
      const specDigest = `sha256:${crypto
        .createHash('sha256')
        .update(JSON.stringify(inst.spec ?? {}))
        .digest('hex')}`;
      return writeInstanceStatus({
        ...handled,
        conditions: conds([
          readyFalse('BuildFailed', msg),
          {
            type: 'Stalled',
            status: 'True',
            reason: 'BuildFailed',
            message: msg,
          },
        ]),
        history: upsertHistory(
          inst.status?.history,
          specDigest,
          'BuildFailed',
          start,
        ),
      });
    }

    if (health && health.revision === b.revision) {
      // Waiting for the applied objects to become healthy (spec.wait).
      const notReady = await applier.notReady(
        health.changes.filter(
          c => !(c.kind === 'FluxInstance' && c.namespace === ns),
        ),
      );
      if (notReady.length === 0) return succeed(inst, b, start, handled, conds);
      if (Date.now() < health.deadline) return;
      const msg = `reconciliation failed: timeout waiting for: [${notReady.join(
        ', ',
      )}]`;
      health = undefined;
      lastFailed = true;
      return writeInstanceStatus({
        ...handled,
        conditions: conds([readyFalse('ReconciliationFailed', msg)]),
        history: upsertHistory(
          inst.status?.history,
          b.digest,
          'ReconciliationFailed',
          start,
          { flux: b.version },
        ),
      });
    }

    if (inst.status?.lastAttemptedRevision !== b.revision)
      record(
        `FluxInstance: ${
          inst.status?.lastAttemptedRevision ? 'Upgrading to' : 'Installing'
        } revision ${b.revision}`,
      );
    let changes: ChangeEntry[];
    try {
      changes = await applier.applyAllStaged(b.objects, {
        fieldManager: FIELD_MANAGER,
        ownerGroup: GROUP,
        ownerName: 'flux',
        ownerNamespace: ns,
        cleanup: {
          annotations: [
            'kubectl.kubernetes.io/last-applied-configuration',
            'meta.helm.sh/release-name',
            'meta.helm.sh/release-namespace',
          ],
          labels: [
            'kustomize.toolkit.fluxcd.io/name',
            'kustomize.toolkit.fluxcd.io/namespace',
          ],
          managers: TAKE_OWNERSHIP,
        },
      });
      const oldInv: InventoryEntry[] = inst.status?.inventory?.entries ?? [];
      const ids = new Set(changes.map(c => c.id));
      const stale = oldInv.filter(e => !ids.has(e.id));
      if (stale.length) {
        const deleted = await applier.deleteAll(stale, {
          inclusions: { [`${GROUP}/name`]: 'flux', [`${GROUP}/namespace`]: ns },
          exclusions: { 'fluxcd.controlplane.io/prune': 'disabled' },
        });
        record(
          `FluxInstance: garbage collection ${deleted
            .map(d => `${d.subject} ${d.action}`)
            .join(', ')}`,
        );
      }
    } catch (e) {
      if (signal.aborted) return;
      if (!(e instanceof ApplyError)) throw e;
      lastFailed = true;
      health = undefined;
      return writeInstanceStatus({
        ...handled,
        lastAttemptedRevision: b.revision,
        conditions: conds([
          readyFalse(
            'ReconciliationFailed',
            `reconciliation failed: ${e.message}`,
          ),
        ]),
        history: upsertHistory(
          inst.status?.history,
          b.digest,
          'ReconciliationFailed',
          start,
          { flux: b.version },
        ),
      });
    }
    const changed = changes.filter(
      c => c.action === 'created' || c.action === 'configured',
    );
    if (changed.length)
      record(
        `FluxInstance: applied ${changed
          .map(c => `${c.subject} ${c.action}`)
          .join(', ')}`,
      );
    applied = changes
      .filter(c => c.kind === 'Deployment' && c.namespace)
      .map(c => ({ namespace: c.namespace!, name: c.name }));
    const inventory = { entries: changes.map(c => ({ id: c.id, v: c.v })) };
    const components = b.images;
    const wait = inst.spec?.wait ?? true;
    if (wait) {
      const notReady = await applier.notReady(changes);
      if (notReady.length) {
        const timeout =
          parseGoDuration(
            annotations['fluxcd.controlplane.io/reconcileTimeout'],
          ) ?? 300_000;
        health = {
          revision: b.revision,
          deadline: Date.now() + timeout,
          changes,
          start,
        };
        lastFailed = false;
        return writeInstanceStatus({
          ...handled,
          lastAttemptedRevision: b.revision,
          inventory,
          components,
          conditions: conds(progressingConds()),
        });
      }
    }
    return succeed(inst, b, start, handled, conds, { inventory, components });
  }

  async function succeed(
    inst: any,
    b: { revision: string; digest: string; version: string },
    start: number,
    handled: Record<string, string>,
    conds: (c: Cond[]) => any[],
    extra: Record<string, unknown> = {},
  ) {
    health = undefined;
    lastFailed = false;
    await writeInstanceStatus({
      ...handled,
      ...extra,
      lastAttemptedRevision: b.revision,
      lastAppliedRevision: b.revision,
      conditions: conds([
        {
          type: 'Ready',
          status: 'True',
          reason: 'ReconciliationSucceeded',
          message: `Reconciliation finished in ${goDuration(
            Date.now() - start,
          )}`,
        },
      ]),
      history: upsertHistory(
        inst.status?.history,
        b.digest,
        'ReconciliationSucceeded',
        start,
        {
          flux: b.version,
        },
      ),
    });
  }

  async function list(
    apiVersion: string,
    resource: string,
    query: Record<string, string> = {},
    namespace?: string,
  ) {
    const res = await api.request(
      'GET',
      kubePath({ apiVersion, resource, namespace }),
      { query, signal },
    );
    if (res.status !== 200) return [];
    return (res.body.items ?? []) as any[];
  }

  async function reconcileReport(force: boolean): Promise<void> {
    const crdRes = await api.request(
      'GET',
      kubePath({
        apiVersion: 'apiextensions.k8s.io/v1',
        resource: 'customresourcedefinitions',
        name: 'fluxreports.fluxcd.controlplane.io',
      }),
      { signal },
    );
    if (crdRes.status !== 200) return; // operator not installed
    const existing = await api.request('GET', reportPath, { signal });
    const annotations =
      existing.status === 200 ? existing.body.metadata.annotations ?? {} : {};
    if (
      String(
        annotations['fluxcd.controlplane.io/reconcile'] ?? '',
      ).toLowerCase() === 'disabled'
    )
      return;
    const requested = annotations['reconcile.fluxcd.io/requestedAt'];
    const interval = ctx.opts.reportIntervalMs ?? 1000;
    const requestPending =
      requested !== undefined &&
      requested !== existing.body?.status?.lastHandledReconcileAt;
    if (
      !force &&
      !requestPending &&
      existing.status === 200 &&
      Date.now() - lastReport < interval
    )
      return;
    lastReport = Date.now();
    const start = Date.now();

    // distribution (internal/reporter/distribution.go)
    const distribution: Record<string, string> = {
      entitlement: 'Unknown',
      status: 'Unknown',
    };
    const gr = await applier.get({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      name: 'gitrepositories.source.toolkit.fluxcd.io',
    });
    if (gr) {
      distribution.status = 'Installed';
      const l = gr.metadata.labels ?? {};
      if (l['app.kubernetes.io/version'])
        distribution.version = l['app.kubernetes.io/version'];
      if (l['app.kubernetes.io/managed-by'])
        distribution.managedBy = l['app.kubernetes.io/managed-by'];
      else if (l['kustomize.toolkit.fluxcd.io/name'])
        distribution.managedBy = 'flux bootstrap';
    } else {
      distribution.status = 'Not Installed';
    }
    // cluster
    const ver = await api.request('GET', '/version', { signal });
    const nodes = await list('v1', 'nodes');
    const cluster = {
      serverVersion: ver.body?.gitVersion ?? 'unknown',
      platform: ver.body?.platform ?? 'linux/amd64',
      ...(nodes.length ? { nodes: nodes.length } : {}),
    };
    // operator
    const opDeploy = await applier.get({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'flux-operator',
      namespace: ns,
    });
    const opImage: string =
      opDeploy?.spec?.template?.spec?.containers?.[0]?.image ?? '';
    const operator = {
      apiVersion: API,
      version:
        /:([^:@/]+)(@|$)/.exec(opImage)?.[1] ??
        ctx.opts.version ??
        FLUX_OPERATOR_VERSION,
      platform: 'linux/amd64',
    };
    // components (Deployments labelled part-of=flux)
    const deployments = await list(
      'apps/v1',
      'deployments',
      { labelSelector: 'app.kubernetes.io/part-of=flux' },
      ns,
    );
    const components = deployments
      .map(d => {
        const want = d.spec?.replicas ?? 1;
        const s = d.status ?? {};
        const current =
          (s.observedGeneration ?? 0) >= d.metadata.generation &&
          (s.availableReplicas ?? 0) >= want &&
          (s.updatedReplicas ?? 0) >= want;
        return {
          name: d.metadata.name,
          ready: current,
          status: current
            ? `Current Deployment is available. Replicas: ${want}`
            : `InProgress Available: ${s.availableReplicas ?? 0}/${want}`,
          image: d.spec?.template?.spec?.containers?.[0]?.image ?? '',
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
    // reconcilers (one entry per Flux CRD, stats over all namespaces)
    const crds = await list(
      'apiextensions.k8s.io/v1',
      'customresourcedefinitions',
      {
        labelSelector: 'app.kubernetes.io/part-of=flux',
      },
    );
    const reconcilers: any[] = [];
    for (const crd of crds) {
      const stored: string[] = crd.status?.storedVersions ?? [];
      if (!stored.length) continue;
      const apiVersion = `${crd.spec.group}/${stored[stored.length - 1]}`;
      const items = await list(apiVersion, crd.spec.names.plural);
      let suspended = 0;
      let failing = 0;
      let size = 0;
      for (const it of items) {
        if (it.spec?.suspend) suspended++;
        else if (
          (it.status?.conditions ?? []).some(
            (c: any) =>
              c.type === 'Ready' &&
              c.status === 'False' &&
              c.reason !== 'DependencyNotReady',
          )
        )
          failing++;
        size += it.status?.artifact?.size ?? 0;
      }
      reconcilers.push({
        apiVersion,
        kind: crd.spec.names.kind,
        stats: {
          running: items.length - suspended,
          failing,
          suspended,
          ...(size ? { totalSize: formatSize(size) } : {}),
        },
      });
    }
    // sync (internal/reporter/sync.go)
    const inst = await api.request('GET', instPath, { signal });
    const syncName: string =
      (inst.status === 200 && inst.body.spec?.sync?.name) || ns;
    let sync: Record<string, unknown> | undefined;
    const getSyncObject = (apiVersion: string, kind: string) =>
      applier.get({ apiVersion, kind, name: syncName, namespace: ns });
    const readyOf = (o: Record<string, any>) =>
      (o.status?.conditions ?? []).find((c: any) => c.type === 'Ready');
    const ks = await getSyncObject(
      'kustomize.toolkit.fluxcd.io/v1',
      'Kustomization',
    );
    if (ks) {
      const s: Record<string, any> = {
        id: `kustomization/${syncName}`,
        ready: false,
        status: 'not initialized',
      };
      if (ks.spec?.path !== undefined) s.path = ks.spec.path;
      const ready = readyOf(ks);
      if (ready) {
        s.ready = ready.status !== 'False';
        s.status = ready.message;
      }
      const kind = ks.spec?.sourceRef?.kind;
      if (kind === 'GitRepository') {
        const src = await getSyncObject(
          'source.toolkit.fluxcd.io/v1',
          'GitRepository',
        );
        if (src) {
          if (src.spec?.url) s.source = src.spec.url;
          const sr = readyOf(src);
          if (sr?.status === 'False') {
            s.ready = false;
            s.status += `\n${sr.message}`;
          }
        }
      }
      if (ks.spec?.suspend) s.status = `Suspended ${s.status}`;
      sync = s;
    }
    const spec = {
      distribution,
      cluster,
      operator,
      ...(components.length ? { components } : {}),
      ...(reconcilers.length ? { reconcilers } : {}),
      ...(sync ? { sync } : {}),
    };
    const sameSpec =
      existing.status === 200 &&
      JSON.stringify(sortKeys(existing.body.spec)) ===
        JSON.stringify(sortKeys(spec));
    if (!sameSpec) {
      const w = await api.request('PATCH', reportPath, {
        body: {
          apiVersion: API,
          kind: 'FluxReport',
          metadata: { name: 'flux', namespace: ns },
          spec,
        },
        contentType: 'application/apply-patch+yaml',
        query: { fieldManager: FIELD_MANAGER, force: 'true' },
        signal,
      });
      if (w.status >= 300) {
        record(
          `FluxReport: update failed ${w.status} ${w.body?.message ?? ''}`,
        );
        return;
      }
      record(
        `FluxReport: ${distribution.status} ${
          distribution.version ?? ''
        } managedBy=${distribution.managedBy ?? ''} sync=${
          sync ? `${(sync as any).ready}` : 'none'
        }`,
      );
    }
    const cur = existing.status === 200 ? existing.body : undefined;
    const readyNow = cur?.status?.conditions?.find(
      (c: any) => c.type === 'Ready',
    );
    if (!sameSpec || readyNow?.status !== 'True' || requestPending) {
      await api.request('PATCH', `${reportPath}/status`, {
        body: {
          status: {
            ...(requested !== undefined
              ? { lastHandledReconcileAt: requested }
              : {}),
            conditions: ctx.withTransitions(
              [
                {
                  type: 'Ready',
                  status: 'True',
                  reason: 'Succeeded',
                  message: `Reporting finished in ${goDuration(
                    Date.now() - start,
                  )}`,
                },
              ],
              cur?.status?.conditions,
              cur?.metadata?.generation ?? 1,
            ),
          },
        },
        contentType: 'application/merge-patch+json',
        query: { fieldManager: FIELD_MANAGER },
        signal,
      });
    }
  }

  return {
    reconcileInstance,
    reconcileReport,
    deployments: () => [...applied],
    failWith(message) {
      failure = message;
    },
  };
}

function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number(v.toFixed(1))} ${units[i]}`;
}

function sortKeys(v: any): any {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map(k => [k, sortKeys(v[k])]),
    );
  return v;
}
