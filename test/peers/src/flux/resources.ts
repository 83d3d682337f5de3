import { KubeHttp, kubePath } from '../kube/http';
import type { K8sObject } from './patches';

/**
 * Server-side apply, prune and health checks the way fluxcd/pkg/ssa does them for
 * kustomize-controller and the Flux Operator (the simulator's version, on the test peers' HTTP
 * client):
 *
 * - objects are sorted in Flux's reconcile order and applied in stages: CRDs, Namespaces and
 *   ClusterRoles first (then waited for: CRDs Established), then everything else;
 * - every object gets the owner labels `<group>/name` and `<group>/namespace`;
 * - per object: a server-side dry-run apply, compared with the live object; only a drifted or new
 *   object is applied (force, the given field manager), so an unchanged object is not written;
 * - objects with an exclusion label/annotation (case-insensitive, e.g.
 *   `kustomize.toolkit.fluxcd.io/ssa: Ignore`) on the desired or the live object are skipped;
 * - before applying, listed labels/annotations are removed from the live object and the
 *   managedFields entries of listed field managers are merged into the applier's own entry
 *   (fluxcd/pkg/ssa `PatchReplaceFieldsManagers`), so the applier takes their fields over;
 * - prune deletes objects of the previous inventory that are not in the new one, only when the
 *   live object carries the owner labels and none of the exclusions (e.g. `…/prune: disabled`).
 */

export interface InventoryEntry {
  id: string;
  v: string;
}

export type ChangeAction =
  | 'created'
  | 'configured'
  | 'unchanged'
  | 'skipped'
  | 'deleted';

export interface ChangeEntry extends InventoryEntry {
  /** `<Kind>/<namespace>/<name>` (namespace omitted when cluster-scoped) */
  subject: string;
  action: ChangeAction;
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface FieldManagerMatch {
  name: string;
  operation: 'Apply' | 'Update';
  exact?: boolean;
}

export interface ApplyOptions {
  fieldManager: string;
  /** owner label group, e.g. `kustomize.toolkit.fluxcd.io` (`''`: no owner labels) */
  ownerGroup: string;
  ownerName?: string;
  ownerNamespace?: string;
  exclusions?: Record<string, string>;
  /** objects whose desired manifest matches are only created, never patched */
  ifNotPresent?: Record<string, string>;
  cleanup?: {
    labels?: string[];
    annotations?: string[];
    managers?: FieldManagerMatch[];
    exclusions?: Record<string, string>;
  };
  /** recreate an object whose apply fails on an immutable field (Kustomization `spec.force`) */
  force?: boolean;
}

export class ApplyError extends Error {
  constructor(message: string, readonly changes: ChangeEntry[]) {
    super(message);
  }
}

const FIRST = [
  'CustomResourceDefinition',
  'Namespace',
  'ClusterRole',
  'ClusterClass',
  'RuntimeClass',
  'PriorityClass',
  'StorageClass',
  'VolumeSnapshotClass',
  'IngressClass',
  'GatewayClass',
  'ClusterRoleBinding',
  'ResourceQuota',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'ConfigMap',
  'Secret',
  'Service',
  'LimitRange',
  'Deployment',
  'StatefulSet',
  'CronJob',
  'PodDisruptionBudget',
];
const LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

function kindRank(kind: string): number {
  const f = FIRST.indexOf(kind);
  if (f >= 0) return f;
  const l = LAST.indexOf(kind);
  return l >= 0 ? FIRST.length + 1 + l : FIRST.length;
}

/** Flux's reconcile order (fluxcd/pkg/ssa ReconcileOrder), then kind, namespace, name. */
export function sortForApply<T extends K8sObject>(objects: T[]): T[] {
  return [...objects].sort(
    (a, b) =>
      kindRank(a.kind) - kindRank(b.kind) ||
      a.kind.localeCompare(b.kind) ||
      (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}

export function splitApiVersion(apiVersion: string) {
  const i = apiVersion.indexOf('/');
  return i < 0
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

/** cli-utils ObjMetadata.String(): `<namespace>_<name>_<group>_<kind>` (`:` in names → `__`). */
export function inventoryId(ref: {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}): string {
  return `${ref.namespace ?? ''}_${ref.name.replace(/:/g, '__')}_${
    splitApiVersion(ref.apiVersion).group
  }_${ref.kind}`;
}

/** Parses an inventory entry back into an object reference. */
export function parseInventoryEntry(e: InventoryEntry) {
  const parts = e.id.split('_');
  if (parts.length < 4) throw new Error(`invalid inventory id ${e.id}`);
  const namespace = parts[0];
  const kind = parts[parts.length - 1];
  const group = parts[parts.length - 2];
  const name = parts.slice(1, -2).join('_').replace(/__/g, ':');
  return {
    apiVersion: group ? `${group}/${e.v}` : e.v,
    kind,
    name,
    namespace: namespace || undefined,
  };
}

export function subjectOf(ref: {
  kind: string;
  name: string;
  namespace?: string;
}): string {
  return ref.namespace
    ? `${ref.kind}/${ref.namespace}/${ref.name}`
    : `${ref.kind}/${ref.name}`;
}

/** fluxcd/pkg/ssa utils.AnyInMetadata: a label or annotation equals a value, case-insensitively. */
export function anyInMetadata(
  obj: { metadata?: any } | undefined,
  selector: Record<string, string> | undefined,
): boolean {
  if (!obj?.metadata || !selector) return false;
  const labels = obj.metadata.labels ?? {};
  const annotations = obj.metadata.annotations ?? {};
  return Object.entries(selector).some(
    ([k, v]) =>
      (labels[k] && String(labels[k]).toLowerCase() === v.toLowerCase()) ||
      (annotations[k] &&
        String(annotations[k]).toLowerCase() === v.toLowerCase()),
  );
}

function mergeFields(a: any, b: any): any {
  if (!a || typeof a !== 'object') return b;
  if (!b || typeof b !== 'object') return a;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = mergeFields(out[k], v);
  return out;
}

/** fluxcd/pkg/ssa PatchReplaceFieldsManagers as JSON patch operations (or none). */
function replaceFieldManagers(
  live: any,
  managers: FieldManagerMatch[],
  owner: string,
): any[] {
  const entries: any[] = live.metadata?.managedFields ?? [];
  let prev = entries.find(e => e.manager === owner && e.operation === 'Apply');
  const out: any[] = [];
  let edited = false;
  for (const e of entries) {
    if (e === prev) continue;
    const match = managers.some(
      m =>
        e.operation === m.operation &&
        !e.subresource &&
        (m.exact ? e.manager === m.name : String(e.manager).startsWith(m.name)),
    );
    if (!match) {
      out.push(e);
      continue;
    }
    edited = true;
    if (!prev) {
      prev = { ...e, manager: owner, operation: 'Apply' };
    } else {
      prev = { ...prev, fieldsV1: mergeFields(prev.fieldsV1, e.fieldsV1) };
    }
  }
  if (!edited) return [];
  out.push(prev);
  return [{ op: 'replace', path: '/metadata/managedFields', value: out }];
}

const escapeKey = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

function comparable(o: any): string {
  const c = JSON.parse(JSON.stringify(o ?? {}));
  delete c.status;
  if (c.metadata) {
    for (const k of [
      'managedFields',
      'resourceVersion',
      'generation',
      'creationTimestamp',
      'selfLink',
    ])
      delete c.metadata[k];
  }
  return JSON.stringify(c, Object.keys(flatKeys(c)).sort());
}

function flatKeys(
  o: any,
  acc: Record<string, true> = {},
): Record<string, true> {
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      if (!Array.isArray(o)) acc[k] = true;
      flatKeys(v, acc);
    }
  }
  return acc;
}

interface Mapping {
  resource: string;
  namespaced: boolean;
}

/** The simulator's apply/prune/health engine (one per simulator; discovery is cached). */
export class FluxApplier {
  private readonly discovery = new Map<string, Map<string, Mapping> | null>();

  constructor(
    private readonly api: KubeHttp,
    private readonly signal: AbortSignal,
  ) {}

  /** Forgets discovery (after CRDs were applied or changed). */
  resetDiscovery(): void {
    this.discovery.clear();
  }

  async mapping(
    apiVersion: string,
    kind: string,
  ): Promise<Mapping | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      let kinds = this.discovery.get(apiVersion);
      if (kinds === undefined || (attempt === 1 && !kinds?.has(kind))) {
        const res = await this.api.request(
          'GET',
          apiVersion.includes('/')
            ? `/apis/${apiVersion}`
            : `/api/${apiVersion}`,
          { signal: this.signal },
        );
        if (res.status === 404) kinds = null;
        else if (res.status !== 200)
          throw new Error(`discovery of ${apiVersion}: ${res.status}`);
        else {
          kinds = new Map();
          for (const r of res.body.resources ?? []) {
            if (String(r.name).includes('/')) continue;
            kinds.set(r.kind, { resource: r.name, namespaced: r.namespaced });
          }
        }
        this.discovery.set(apiVersion, kinds);
      }
      const m = kinds?.get(kind);
      if (m) return m;
    }
    return undefined;
  }

  async pathOf(ref: {
    apiVersion: string;
    kind: string;
    name: string;
    namespace?: string;
  }): Promise<string | undefined> {
    const m = await this.mapping(ref.apiVersion, ref.kind);
    if (!m) return undefined;
    return kubePath({
      apiVersion: ref.apiVersion,
      resource: m.resource,
      namespace: m.namespaced ? ref.namespace : undefined,
      name: ref.name,
    });
  }

  async get(ref: {
    apiVersion: string;
    kind: string;
    name: string;
    namespace?: string;
  }): Promise<any | undefined> {
    const p = await this.pathOf(ref);
    if (!p) return undefined;
    const res = await this.api.request('GET', p, { signal: this.signal });
    if (res.status === 404) return undefined;
    if (res.status !== 200)
      throw new Error(
        `GET ${subjectOf(ref)}: ${res.status} ${res.body?.message ?? ''}`,
      );
    return res.body;
  }

  /** fluxcd/pkg/ssa ApplyAllStaged. Throws ApplyError (with the changes made so far) on failure. */
  async applyAllStaged(
    objects: K8sObject[],
    opts: ApplyOptions,
  ): Promise<ChangeEntry[]> {
    const owned = objects.map(o => {
      const c = JSON.parse(JSON.stringify(o)) as K8sObject;
      if (opts.ownerGroup)
        c.metadata.labels = {
          ...(c.metadata.labels ?? {}),
          [`${opts.ownerGroup}/name`]: opts.ownerName ?? '',
          [`${opts.ownerGroup}/namespace`]: opts.ownerNamespace ?? '',
        };
      return c;
    });
    const sorted = sortForApply(owned);
    const isDef = (o: K8sObject) =>
      o.kind === 'CustomResourceDefinition' ||
      o.kind === 'Namespace' ||
      o.kind === 'ClusterRole';
    const changes: ChangeEntry[] = [];
    const defs = sorted.filter(isDef);
    for (const o of defs) changes.push(await this.applyOne(o, opts, changes));
    if (defs.length) {
      await this.waitDefinitions(changes, 30_000);
      this.resetDiscovery();
    }
    for (const o of sorted.filter(x => !isDef(x)))
      changes.push(await this.applyOne(o, opts, changes));
    return changes;
  }

  private entryFor(o: any, action: ChangeAction): ChangeEntry {
    const ref = {
      apiVersion: o.apiVersion,
      kind: o.kind,
      name: o.metadata.name,
      namespace: o.metadata.namespace || undefined,
    };
    return {
      ...ref,
      id: inventoryId(ref),
      v: splitApiVersion(o.apiVersion).version,
      subject: subjectOf(ref),
      action,
    };
  }

  private async applyOne(
    o: K8sObject,
    opts: ApplyOptions,
    done: ChangeEntry[],
  ): Promise<ChangeEntry> {
    const fail = (msg: string) => new ApplyError(msg, [...done]);
    const subject = subjectOf({
      kind: o.kind,
      name: o.metadata.name,
      namespace: o.metadata.namespace,
    });
    const m = await this.mapping(o.apiVersion, o.kind);
    if (!m)
      throw fail(
        `${subject} dry-run failed: no matches for kind "${o.kind}" in version "${o.apiVersion}"`,
      );
    if (!m.namespaced) delete o.metadata.namespace;
    if (m.namespaced && !o.metadata.namespace)
      throw fail(
        `${subject} namespace not specified: the server could not find the requested resource`,
      );
    const p = kubePath({
      apiVersion: o.apiVersion,
      resource: m.resource,
      namespace: m.namespaced ? o.metadata.namespace : undefined,
      name: o.metadata.name,
    });
    const liveRes = await this.api.request('GET', p, { signal: this.signal });
    if (liveRes.status !== 200 && liveRes.status !== 404)
      throw fail(
        `${subject} query failed: ${liveRes.status} ${
          liveRes.body?.message ?? ''
        }`,
      );
    let live = liveRes.status === 200 ? liveRes.body : undefined;
    if (
      anyInMetadata(o, opts.exclusions) ||
      anyInMetadata(live, opts.exclusions)
    )
      return this.entryFor(live ?? o, 'skipped');
    if (live && anyInMetadata(o, opts.ifNotPresent))
      return this.entryFor(live, 'skipped');

    const applyQuery = (dry: boolean) => ({
      fieldManager: opts.fieldManager,
      force: 'true',
      ...(dry ? { dryRun: 'All' } : {}),
    });
    const patch = (dry: boolean) =>
      this.api.request('PATCH', p, {
        body: o,
        contentType: 'application/apply-patch+yaml',
        query: applyQuery(dry),
        signal: this.signal,
      });
    let dry = await patch(true);
    if (
      dry.status === 422 &&
      opts.force &&
      live &&
      /immutable/i.test(dry.body?.message ?? '')
    ) {
      await this.api.request('DELETE', p, {
        query: { propagationPolicy: 'Background' },
        signal: this.signal,
      });
      for (let i = 0; i < 100; i++) {
        const r = await this.api.request('GET', p, { signal: this.signal });
        if (r.status === 404) break;
        await new Promise(res => setTimeout(res, 100));
      }
      live = undefined;
      dry = await patch(true);
    }
    if (dry.status >= 300) {
      const reason = dry.body?.reason ? ` (${dry.body.reason})` : '';
      if (dry.status === 404 && o.metadata.namespace)
        throw fail(`${subject} not found: ${dry.body?.message ?? 'not found'}`);
      throw fail(
        `${subject} dry-run failed${reason}: ${dry.body?.message ?? dry.text}`,
      );
    }

    let patched = false;
    const cleanup = opts.cleanup;
    if (
      live &&
      cleanup &&
      !anyInMetadata(o, cleanup.exclusions) &&
      !anyInMetadata(live, cleanup.exclusions)
    ) {
      const ops: any[] = [];
      for (const a of cleanup.annotations ?? [])
        if (live.metadata.annotations?.[a] !== undefined)
          ops.push({
            op: 'remove',
            path: `/metadata/annotations/${escapeKey(a)}`,
          });
      for (const l of cleanup.labels ?? [])
        if (live.metadata.labels?.[l] !== undefined)
          ops.push({ op: 'remove', path: `/metadata/labels/${escapeKey(l)}` });
      ops.push(
        ...replaceFieldManagers(
          live,
          cleanup.managers ?? [],
          opts.fieldManager,
        ),
      );
      if (ops.length) {
        const r = await this.api.request('PATCH', p, {
          body: ops,
          contentType: 'application/json-patch+json',
          query: { fieldManager: opts.fieldManager },
          signal: this.signal,
        });
        if (r.status >= 300)
          throw fail(
            `${subject} metadata.managedFields cleanup failed: ${
              r.body?.message ?? r.status
            }`,
          );
        patched = true;
      }
    }

    if (live && !patched && comparable(live) === comparable(dry.body))
      return this.entryFor(dry.body, 'unchanged');
    const res = await patch(false);
    if (res.status >= 300)
      throw fail(`${subject} apply failed: ${res.body?.message ?? res.text}`);
    return this.entryFor(res.body, live ? 'configured' : 'created');
  }

  private async waitDefinitions(changes: ChangeEntry[], timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (const c of changes.filter(
      x => x.kind === 'CustomResourceDefinition',
    )) {
      for (;;) {
        const crd = await this.get(c);
        const conds: any[] = crd?.status?.conditions ?? [];
        if (conds.some(x => x.type === 'Established' && x.status === 'True'))
          break;
        if (Date.now() > deadline)
          throw new ApplyError(
            `${c.subject} not Established after ${timeoutMs / 1000}s`,
            changes,
          );
        await new Promise(r => setTimeout(r, 100));
      }
    }
  }

  /** fluxcd/pkg/ssa DeleteAll for stale inventory entries (reverse apply order). */
  async deleteAll(
    stale: InventoryEntry[],
    opts: {
      inclusions: Record<string, string>;
      exclusions: Record<string, string>;
    },
  ): Promise<ChangeEntry[]> {
    const refs = stale.map(e => ({ ...parseInventoryEntry(e), e }));
    const ordered = sortForApply(
      refs.map(r => ({
        apiVersion: r.apiVersion,
        kind: r.kind,
        metadata: { name: r.name, namespace: r.namespace },
        ref: r,
      })),
    ).reverse();
    const out: ChangeEntry[] = [];
    const errors: string[] = [];
    for (const { ref } of ordered as any[]) {
      const base = {
        apiVersion: ref.apiVersion,
        kind: ref.kind,
        name: ref.name,
        namespace: ref.namespace,
        id: ref.e.id,
        v: ref.e.v,
        subject: subjectOf(ref),
      };
      const p = await this.pathOf(ref);
      if (!p) {
        out.push({ ...base, action: 'deleted' }); // its kind is gone, so is it
        continue;
      }
      const live = await this.get(ref);
      if (!live) {
        out.push({ ...base, action: 'deleted' });
        continue;
      }
      const labels = live.metadata.labels ?? {};
      const included = Object.entries(opts.inclusions).every(
        ([k, v]) => labels[k] === v,
      );
      if (!included || anyInMetadata(live, opts.exclusions)) {
        out.push({ ...base, action: 'skipped' });
        continue;
      }
      const res = await this.api.request('DELETE', p, {
        query: { propagationPolicy: 'Background' },
        signal: this.signal,
      });
      if (res.status >= 300 && res.status !== 404)
        errors.push(
          `${base.subject} delete failed: ${res.body?.message ?? res.status}`,
        );
      else out.push({ ...base, action: 'deleted' });
    }
    if (errors.length)
      throw new ApplyError(`delete failed, errors: ${errors.join(';')};`, out);
    return out;
  }

  /**
   * kstatus-like health of applied objects: the subjects that are not Current, each with a short
   * reason (empty when all are healthy). Deployments: observed generation and all replicas
   * updated and available; CRDs: Established; Flux objects (`*.fluxcd.io`,
   * `fluxcd.controlplane.io`): Ready=True at their generation; others: Current.
   */
  async notReady(entries: ChangeEntry[]): Promise<string[]> {
    const out: string[] = [];
    for (const e of entries) {
      if (e.action === 'skipped' || e.action === 'deleted') continue;
      const o = await this.get(e);
      if (!o) {
        out.push(`${e.subject} status: 'NotFound'`);
        continue;
      }
      const conds: any[] = o.status?.conditions ?? [];
      const cond = (t: string) => conds.find(c => c.type === t);
      const group = splitApiVersion(e.apiVersion).group;
      if (e.kind === 'Deployment' && group === 'apps') {
        const want = o.spec?.replicas ?? 1;
        const s = o.status ?? {};
        const current =
          (s.observedGeneration ?? 0) >= o.metadata.generation &&
          (s.updatedReplicas ?? 0) >= want &&
          (s.availableReplicas ?? 0) >= want &&
          cond('Available')?.status === 'True';
        if (!current) {
          const failed =
            cond('Progressing')?.reason === 'ProgressDeadlineExceeded';
          out.push(
            `${e.subject} status: '${failed ? 'Failed' : 'InProgress'}'`,
          );
        }
      } else if (e.kind === 'CustomResourceDefinition') {
        if (cond('Established')?.status !== 'True')
          out.push(`${e.subject} status: 'InProgress'`);
      } else if (
        group.endsWith('.fluxcd.io') ||
        group === 'fluxcd.controlplane.io'
      ) {
        const ready = cond('Ready');
        const fresh =
          o.status?.observedGeneration === undefined ||
          o.status.observedGeneration >= o.metadata.generation;
        if (ready?.status !== 'True' || !fresh)
          out.push(
            `${e.subject} status: '${
              ready?.status === 'False' ? 'Failed' : 'InProgress'
            }'${ready?.message ? `: ${ready.message}` : ''}`,
          );
      }
    }
    return out;
  }
}
