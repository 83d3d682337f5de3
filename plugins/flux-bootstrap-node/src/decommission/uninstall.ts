import {
  ConflictError,
  NotAllowedError,
  ServiceUnavailableError,
} from '@backstage/errors';
import type { KubeClient, KubeObject, KubeObjectRef } from '../kube/types';
import { pause } from '../operate/pause';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { throwIfAborted } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';

/**
 * Field manager of the finalizer patches (the `managedFields` entry naming who changed the
 * objects last).
 * @public
 */
export const FLUX_UNINSTALL_FIELD_MANAGER = 'flux-bootstrap-uninstall';

const PART_OF_FLUX = 'app.kubernetes.io/part-of=flux';

/** Flux's objects in its namespace, in the order `flux uninstall` deletes them (controllers first). */
const NAMESPACED_KINDS: [string, string][] = [
  ['apps/v1', 'Deployment'],
  ['v1', 'Service'],
  ['networking.k8s.io/v1', 'NetworkPolicy'],
  ['v1', 'ServiceAccount'],
  // not deleted by `flux uninstall` itself (it goes with the namespace), but part of Flux's
  // rbac.yaml: without it a kept namespace would keep a Flux object
  ['v1', 'ResourceQuota'],
];
const CLUSTER_KINDS: [string, string][] = [
  ['rbac.authorization.k8s.io/v1', 'ClusterRole'],
  ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding'],
];
const CRD_API = 'apiextensions.k8s.io/v1';

/** One object the uninstall removes (or would). @public */
export interface FluxObjectRef extends KubeObjectRef {}

/** A Flux custom resource and the finalizers it holds. @public */
export interface FluxCustomResourceRef extends FluxObjectRef {
  finalizers: string[];
}

/** Options of {@link planFluxUninstall} and {@link uninstallFlux}. @public */
export interface FluxUninstallOptions {
  /** Namespace Flux runs in (validated DNS label), e.g. `flux-system`. */
  namespace: string;
  /** Keep the namespace (`flux uninstall --keep-namespace`); default false: delete it. */
  keepNamespace?: boolean;
  /**
   * Also delete the workloads the Kustomizations applied (the objects in their
   * `status.inventory`); default false: they keep running, unmanaged, as with `flux uninstall`.
   */
  prune?: boolean;
  /** How long to wait for the CustomResourceDefinitions to be gone. Default 120 s. */
  timeoutMs?: number;
  /** Poll interval of that wait. Default 1 s. */
  pollIntervalMs?: number;
  /** Only read and report what would be removed ({@link uninstallFlux}); no write. */
  dryRun?: boolean;
}

/** Everything an uninstall removes, read from the cluster; JSON (it is checkpointed). @public */
export interface FluxUninstallPlan {
  namespace: string;
  keepNamespace: boolean;
  prune: boolean;
  /** Objects of the Kustomizations' inventories that are not Flux's own (deleted only with prune). */
  workloads: FluxObjectRef[];
  /** Flux's objects in its namespace (controllers first) and the sync source's Secret. */
  components: FluxObjectRef[];
  /** Flux's cluster-wide RBAC. */
  clusterObjects: FluxObjectRef[];
  /** Every custom resource of Flux's kinds, in every namespace (deleted with its CRD). */
  customResources: FluxCustomResourceRef[];
  /** Names of Flux's CustomResourceDefinitions (labelled `app.kubernetes.io/part-of: flux`). */
  crds: string[];
  namespaceState: 'active' | 'terminating' | 'absent';
}

/** What {@link uninstallFlux} did. @public */
export interface FluxUninstallResult {
  namespace: string;
  /** Every object deleted, as `Kind namespace/name` (workloads, Flux objects, CRDs, the namespace). */
  removed: string[];
  /** Custom resources whose finalizers were removed. */
  finalizersRemoved: string[];
  /** Workloads of the inventories left running (prune off). */
  workloadsKept: number;
  /** The namespace's deletion was requested (it then shows Terminating until its content is gone). */
  namespaceDeleted: boolean;
  /** Anything was changed on the cluster. */
  changed: boolean;
}

/** Collaborators of {@link uninstallFlux}. @public */
export interface FluxUninstallDeps {
  logger?: EngineLogger;
  signal?: AbortSignal;
  /** Wraps each side effect (`ctx.checkpoint` in an action); default: run it. */
  checkpoint?: CheckpointFn;
}

/** `Kind namespace/name` (or `Kind name` for cluster-scoped objects). @public */
export function describeObjectRef(ref: {
  kind: string;
  name: string;
  namespace?: string;
}): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

function refOf(obj: KubeObject): FluxObjectRef {
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: obj.metadata.name,
    ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
  };
}

function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
}

function identity(ref: {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}): string {
  return `${groupOf(ref.apiVersion)}|${ref.kind}|${ref.namespace ?? ''}|${
    ref.name
  }`;
}

interface FluxKind {
  crd: string;
  apiVersion: string;
  kind: string;
  group: string;
}

interface CrdSpec {
  group?: string;
  scope?: string;
  names?: { kind?: string };
  versions?: { name: string; served?: boolean; storage?: boolean }[];
}

function kindOfCrd(crd: KubeObject): FluxKind | undefined {
  const spec = (crd.spec ?? {}) as CrdSpec;
  const version =
    spec.versions?.find(v => v.storage && v.served !== false) ??
    spec.versions?.find(v => v.served !== false);
  if (!spec.group || !spec.names?.kind || !version) return undefined;
  return {
    crd: crd.metadata.name,
    apiVersion: `${spec.group}/${version.name}`,
    kind: spec.names.kind,
    group: spec.group,
  };
}

/**
 * A Kustomization's inventory entry (`<namespace>_<name>_<group>_<kind>`, `v` the version) as an
 * object reference; undefined for an entry that does not parse.
 */
export function inventoryEntryRef(entry: {
  id?: unknown;
  v?: unknown;
}): FluxObjectRef | undefined {
  if (typeof entry.id !== 'string' || typeof entry.v !== 'string')
    return undefined;
  const parts = entry.id.split('_');
  if (parts.length !== 4 || !parts[1] || !parts[3]) return undefined;
  const [namespace, name, group, kind] = parts;
  return {
    apiVersion: group ? `${group}/${entry.v}` : entry.v,
    kind,
    name,
    ...(namespace ? { namespace } : {}),
  };
}

async function readFluxKinds(
  kube: KubeClient,
  signal?: AbortSignal,
): Promise<FluxKind[]> {
  const crds = await kube.list(CRD_API, 'CustomResourceDefinition', {
    labelSelector: PART_OF_FLUX,
    signal,
  });
  return crds
    .map(kindOfCrd)
    .filter((k): k is FluxKind => !!k)
    .sort((a, b) => a.crd.localeCompare(b.crd));
}

async function listCustomResources(
  kube: KubeClient,
  kinds: FluxKind[],
  signal?: AbortSignal,
): Promise<FluxCustomResourceRef[]> {
  const out: FluxCustomResourceRef[] = [];
  for (const k of kinds) {
    const items = await kube.list(k.apiVersion, k.kind, {
      metadataOnly: true,
      signal,
    });
    for (const item of items) {
      const finalizers = Array.isArray(item.metadata.finalizers)
        ? (item.metadata.finalizers as string[])
        : [];
      out.push({ ...refOf(item), finalizers });
    }
  }
  return out;
}

/**
 * Reads what uninstalling Flux removes, like `flux uninstall --dry-run` but complete: Flux's
 * objects in its namespace (labelled `app.kubernetes.io/part-of: flux`) and the sync source's
 * Secret, its cluster-wide RBAC, every custom resource of its kinds (their finalizers are
 * removed so nothing hangs), its CustomResourceDefinitions, the namespace; with `prune`, the
 * workloads in the Kustomizations' inventories. Only reads. Refuses a cluster whose Flux the
 * Flux Operator manages (a `FluxInstance` exists): the operator would put it back.
 * @public
 */
export async function planFluxUninstall(
  kube: KubeClient,
  options: FluxUninstallOptions,
  deps: { signal?: AbortSignal } = {},
): Promise<FluxUninstallPlan> {
  const { signal } = deps;
  const ns = options.namespace;
  const instances = await kube.list(
    'fluxcd.controlplane.io/v1',
    'FluxInstance',
    {
      metadataOnly: true,
      signal,
    },
  );
  if (instances.length > 0) {
    const names = instances.map(i => describeObjectRef(refOf(i))).join(', ');
    throw new ConflictError(
      `Flux on cluster "${kube.clusterName}" is managed by the Flux Operator (${names}): it would install Flux again. Delete the FluxInstance (the operator then uninstalls Flux) instead; nothing was removed.`,
    );
  }

  const kinds = await readFluxKinds(kube, signal);
  const components: FluxObjectRef[] = [];
  for (const [apiVersion, kind] of NAMESPACED_KINDS) {
    const items = await kube.list(apiVersion, kind, {
      namespace: ns,
      labelSelector: PART_OF_FLUX,
      metadataOnly: true,
      signal,
    });
    components.push(
      ...items
        .map(refOf)
        .sort((a, b) => a.name.localeCompare(b.name))
        .map(r => ({ ...r, namespace: ns })),
    );
  }
  // The Secret bootstrap wrote for the sync source (GitRepository <ns>/<ns> spec.secretRef).
  const syncSource = kinds.find(
    k => k.kind === 'GitRepository' && k.group === 'source.toolkit.fluxcd.io',
  );
  if (syncSource) {
    const source = await kube.get(
      {
        apiVersion: syncSource.apiVersion,
        kind: 'GitRepository',
        name: ns,
        namespace: ns,
      },
      { signal },
    );
    const secretName = (
      source?.spec as { secretRef?: { name?: unknown } } | undefined
    )?.secretRef?.name;
    if (typeof secretName === 'string' && secretName) {
      const secret = await kube.get(
        { apiVersion: 'v1', kind: 'Secret', name: secretName, namespace: ns },
        // metadata only: the uninstall never reads a Secret's data
        { signal, metadataOnly: true },
      );
      if (secret)
        components.push({
          apiVersion: 'v1',
          kind: 'Secret',
          name: secretName,
          namespace: ns,
        });
    }
  }
  const clusterObjects: FluxObjectRef[] = [];
  for (const [apiVersion, kind] of CLUSTER_KINDS) {
    const items = await kube.list(apiVersion, kind, {
      labelSelector: PART_OF_FLUX,
      metadataOnly: true,
      signal,
    });
    clusterObjects.push(
      ...items.map(refOf).sort((a, b) => a.name.localeCompare(b.name)),
    );
  }
  const customResources = await listCustomResources(kube, kinds, signal);

  // Workloads: what the Kustomizations applied, less Flux itself (its objects are removed
  // above, its custom resources and CRDs with the CRDs, its namespace below).
  const fluxGroups = new Set(kinds.map(k => k.group));
  const own = new Set([...components, ...clusterObjects].map(r => identity(r)));
  for (const k of kinds)
    own.add(
      identity({
        apiVersion: CRD_API,
        kind: 'CustomResourceDefinition',
        name: k.crd,
      }),
    );
  own.add(identity({ apiVersion: 'v1', kind: 'Namespace', name: ns }));
  const workloads: FluxObjectRef[] = [];
  const seen = new Set<string>();
  const kustomizations = kinds.find(
    k =>
      k.kind === 'Kustomization' && k.group === 'kustomize.toolkit.fluxcd.io',
  );
  if (kustomizations) {
    const items = await kube.list(kustomizations.apiVersion, 'Kustomization', {
      signal,
    });
    for (const ks of items) {
      const entries = (
        ks.status as { inventory?: { entries?: unknown[] } } | undefined
      )?.inventory?.entries;
      for (const entry of Array.isArray(entries) ? entries : []) {
        const ref = inventoryEntryRef(
          (entry ?? {}) as { id?: unknown; v?: unknown },
        );
        if (!ref) continue;
        const id = identity(ref);
        if (own.has(id) || fluxGroups.has(groupOf(ref.apiVersion))) continue;
        if (seen.has(id)) continue;
        seen.add(id);
        workloads.push(ref);
      }
    }
  }

  const namespace = await kube.get(
    { apiVersion: 'v1', kind: 'Namespace', name: ns },
    { signal },
  );
  return {
    namespace: ns,
    keepNamespace: options.keepNamespace ?? false,
    prune: options.prune ?? false,
    workloads,
    components,
    clusterObjects,
    customResources,
    crds: kinds.map(k => k.crd),
    namespaceState: namespaceStateOf(namespace),
  };
}

function namespaceStateOf(
  namespace: KubeObject | undefined,
): FluxUninstallPlan['namespaceState'] {
  if (!namespace) return 'absent';
  const phase = (namespace.status as { phase?: string } | undefined)?.phase;
  if (phase === 'Terminating' || namespace.metadata.deletionTimestamp)
    return 'terminating';
  return 'active';
}

/** Everything a plan deletes, as `Kind namespace/name`, in the order of the uninstall. @public */
export function plannedRemovals(plan: FluxUninstallPlan): string[] {
  return [
    ...(plan.prune ? plan.workloads : []),
    ...plan.components,
    ...plan.clusterObjects,
    ...plan.crds.map(name => ({ kind: 'CustomResourceDefinition', name })),
    ...(!plan.keepNamespace && plan.namespaceState === 'active'
      ? [{ kind: 'Namespace', name: plan.namespace }]
      : []),
  ].map(describeObjectRef);
}

/** True when the plan has nothing left to remove (a second run). @public */
export function isFluxUninstallPlanEmpty(plan: FluxUninstallPlan): boolean {
  return (
    (!plan.prune || plan.workloads.length === 0) &&
    plan.components.length === 0 &&
    plan.clusterObjects.length === 0 &&
    plan.customResources.length === 0 &&
    plan.crds.length === 0 &&
    (plan.keepNamespace || plan.namespaceState !== 'active')
  );
}

function list(refs: { kind: string; name: string; namespace?: string }[]) {
  return refs.map(describeObjectRef).join(', ');
}

/**
 * What {@link uninstallFlux} would do with a plan, one line per step, for dry runs and logs.
 * @public
 */
export function describeFluxUninstallPlan(
  plan: FluxUninstallPlan,
  cluster: string,
): string[] {
  const lines: string[] = [];
  if (isFluxUninstallPlanEmpty(plan)) {
    lines.push(
      `Flux is not installed on cluster ${cluster} (namespace ${plan.namespace}): nothing to remove`,
    );
    return lines;
  }
  if (plan.workloads.length > 0) {
    lines.push(
      plan.prune
        ? `would delete the ${
            plan.workloads.length
          } object(s) the Kustomizations applied (prune): ${list(
            plan.workloads,
          )}`
        : `would keep the ${plan.workloads.length} object(s) the Kustomizations applied running, no longer managed by Flux (prune is off)`,
    );
  }
  if (plan.components.length > 0)
    lines.push(
      `would delete Flux's objects in namespace ${plan.namespace}: ${list(
        plan.components,
      )}`,
    );
  if (plan.clusterObjects.length > 0)
    lines.push(
      `would delete Flux's cluster-wide RBAC: ${list(plan.clusterObjects)}`,
    );
  const held = plan.customResources.filter(r => r.finalizers.length > 0);
  if (held.length > 0)
    lines.push(
      `would remove the finalizers of ${
        held.length
      } Flux custom resource(s), so their deletion does not wait for the controllers: ${list(
        held,
      )}`,
    );
  if (plan.crds.length > 0)
    lines.push(
      `would delete ${
        plan.crds.length
      } Flux CustomResourceDefinition(s), and with them ${
        plan.customResources.length
      } custom resource(s)${
        plan.customResources.length > 0
          ? ` (${list(plan.customResources)})`
          : ''
      }: ${plan.crds.join(', ')}`,
    );
  if (plan.keepNamespace) {
    if (plan.namespaceState !== 'absent')
      lines.push(`would keep namespace ${plan.namespace} (keepNamespace)`);
  } else if (plan.namespaceState === 'active') {
    lines.push(`would delete namespace ${plan.namespace}`);
  } else if (plan.namespaceState === 'terminating') {
    lines.push(`namespace ${plan.namespace} is already being deleted`);
  }
  return lines;
}

async function resourceName(
  kube: KubeClient,
  ref: { apiVersion: string; kind: string },
  signal?: AbortSignal,
): Promise<string | undefined> {
  return (await kube.resourceFor(ref.apiVersion, ref.kind, { signal }))?.name;
}

/** May the cluster credentials do every write of the plan? Fails naming what is denied. */
async function assertMayUninstall(
  kube: KubeClient,
  plan: FluxUninstallPlan,
  signal?: AbortSignal,
): Promise<void> {
  const checks = new Map<
    string,
    { verb: string; group: string; resource: string; namespace?: string }
  >();
  const add = async (
    verb: string,
    ref: { apiVersion: string; kind: string; namespace?: string },
  ) => {
    const resource = await resourceName(kube, ref, signal);
    if (!resource) return;
    const check = {
      verb,
      group: groupOf(ref.apiVersion),
      resource,
      namespace: ref.namespace,
    };
    checks.set(JSON.stringify(check), check);
  };
  for (const r of [
    ...(plan.prune ? plan.workloads : []),
    ...plan.components,
    ...plan.clusterObjects,
  ])
    await add('delete', r);
  for (const r of plan.customResources)
    if (r.finalizers.length > 0) await add('patch', r);
  if (plan.crds.length > 0)
    await add('delete', {
      apiVersion: CRD_API,
      kind: 'CustomResourceDefinition',
    });
  if (!plan.keepNamespace && plan.namespaceState === 'active')
    await add('delete', { apiVersion: 'v1', kind: 'Namespace' });
  const wanted = [...checks.values()];
  if (wanted.length === 0) return;
  const answers = await kube.canI(wanted, { signal });
  const denied = wanted
    .filter((_, i) => !answers[i].allowed)
    .map(
      c =>
        `${c.verb} ${c.resource}${c.group ? `.${c.group}` : ''}${
          c.namespace ? ` in ${c.namespace}` : ''
        }`,
    );
  if (denied.length > 0) {
    throw new NotAllowedError(
      `The credentials of cluster "${kube.clusterName}" may not ${denied.join(
        '; ',
      )}: Flux cannot be uninstalled with them. Nothing was removed.`,
    );
  }
}

/**
 * Uninstalls Flux from a cluster the way `flux uninstall` does, so that nothing hangs and the
 * workloads keep running: (with `prune`, first the workloads of the Kustomizations' inventories,)
 * then the controllers and Flux's other objects in its namespace and its cluster-wide RBAC, then
 * the finalizers of every Flux custom resource (no controller is left to honour them), then the
 * CustomResourceDefinitions — the API server deletes their custom resources — waited for until
 * gone, then the namespace unless `keepNamespace`. Checks first that the credentials may do all
 * of it. Each step is one checkpoint and idempotent; a second run finds nothing and writes
 * nothing. Never reads a Secret's data.
 * @public
 */
export async function uninstallFlux(
  kube: KubeClient,
  options: FluxUninstallOptions,
  deps: FluxUninstallDeps = {},
): Promise<FluxUninstallResult & { plan: FluxUninstallPlan }> {
  const { signal } = deps;
  const logger = deps.logger ?? silentLogger;
  const step = deps.checkpoint ?? runCheckpointDirectly;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const pollMs = options.pollIntervalMs ?? 1_000;
  const cluster = kube.clusterName;

  logger.info(
    `Reading what Flux has on cluster ${cluster} (namespace ${options.namespace})`,
  );
  const plan = await step('uninstall-plan', () =>
    planFluxUninstall(kube, options, { signal }),
  );
  for (const line of describeFluxUninstallPlan(plan, cluster))
    logger.info(
      options.dryRun ? `Dry run: ${line}` : line.replace(/^would /, 'Will '),
    );
  if (options.dryRun) {
    return {
      namespace: plan.namespace,
      removed: plannedRemovals(plan),
      finalizersRemoved: plan.customResources
        .filter(r => r.finalizers.length > 0)
        .map(describeObjectRef),
      workloadsKept: plan.prune ? 0 : plan.workloads.length,
      namespaceDeleted: false,
      changed: false,
      plan,
    };
  }
  const result: FluxUninstallResult = {
    namespace: plan.namespace,
    removed: [],
    finalizersRemoved: [],
    workloadsKept: plan.prune ? 0 : plan.workloads.length,
    namespaceDeleted: false,
    changed: false,
  };
  if (isFluxUninstallPlanEmpty(plan)) return { ...result, plan };
  await step('uninstall-preflight', async () => {
    await assertMayUninstall(kube, plan, signal);
    return true;
  });

  const deleteAll = async (refs: FluxObjectRef[]) => {
    const gone: string[] = [];
    for (const ref of refs) {
      throwIfAborted(signal, `uninstalling Flux from ${cluster}`);
      if (await kube.delete(ref, { signal })) {
        gone.push(describeObjectRef(ref));
        logger.info(`Deleted ${describeObjectRef(ref)}`);
      }
    }
    return gone;
  };

  if (plan.prune && plan.workloads.length > 0) {
    result.removed.push(
      ...(await step('uninstall-workloads', () => deleteAll(plan.workloads))),
    );
  }
  result.removed.push(
    ...(await step('uninstall-components', () =>
      deleteAll([...plan.components, ...plan.clusterObjects]),
    )),
  );

  const kinds = (): Promise<FluxKind[]> =>
    readFluxKinds(kube, signal).then(all =>
      all.filter(k => plan.crds.includes(k.crd)),
    );
  /** Removes the finalizers Flux's custom resources still hold (read again: the controllers are gone now). */
  const stripFinalizers = async (only?: FluxKind[]) => {
    const stripped: string[] = [];
    const resources = await listCustomResources(
      kube,
      only ?? (await kinds()),
      signal,
    );
    for (const r of resources) {
      if (r.finalizers.length === 0) continue;
      const { finalizers: _finalizers, ...ref } = r;
      const patched = await kube.patch(
        ref,
        { metadata: { finalizers: null } },
        { fieldManager: FLUX_UNINSTALL_FIELD_MANAGER, signal },
      );
      if (patched) {
        stripped.push(describeObjectRef(ref));
        logger.info(
          `Removed the finalizers ${r.finalizers.join(
            ', ',
          )} of ${describeObjectRef(ref)}`,
        );
      }
    }
    return stripped;
  };
  result.finalizersRemoved.push(
    ...(await step('uninstall-finalizers', () => stripFinalizers())),
  );

  if (plan.crds.length > 0) {
    result.removed.push(
      ...(await step('uninstall-crds', async () => {
        const gone = await deleteAll(
          plan.crds.map(name => ({
            apiVersion: CRD_API,
            kind: 'CustomResourceDefinition',
            name,
          })),
        );
        await waitForCrdsGone(plan.crds);
        return gone;
      })),
    );
  }

  if (!plan.keepNamespace && plan.namespaceState === 'active') {
    result.namespaceDeleted = await step('uninstall-namespace', async () => {
      const deleted = await kube.delete(
        { apiVersion: 'v1', kind: 'Namespace', name: plan.namespace },
        { signal },
      );
      if (deleted) {
        logger.info(
          `Deleted namespace ${plan.namespace}; it shows Terminating until Kubernetes has removed what is left in it`,
        );
      }
      return deleted;
    });
    if (result.namespaceDeleted)
      result.removed.push(`Namespace ${plan.namespace}`);
  }
  result.changed =
    result.removed.length > 0 || result.finalizersRemoved.length > 0;
  logger.info(
    `Flux is uninstalled from cluster ${cluster}: ${result.removed.length} object(s) deleted, finalizers removed from ${result.finalizersRemoved.length}`,
  );
  return { ...result, plan };

  async function waitForCrdsGone(names: string[]): Promise<void> {
    const started = Date.now();
    let lastLog = started;
    let pending = names;
    for (;;) {
      const left: string[] = [];
      for (const name of pending) {
        const crd = await kube.get(
          { apiVersion: CRD_API, kind: 'CustomResourceDefinition', name },
          { signal, metadataOnly: true },
        );
        if (crd) left.push(name);
      }
      pending = left;
      if (pending.length === 0) return;
      const waited = Date.now() - started;
      if (waited >= timeoutMs) {
        throw new ServiceUnavailableError(
          `The CustomResourceDefinitions ${pending.join(
            ', ',
          )} of cluster "${cluster}" are still being deleted after ${Math.round(
            timeoutMs / 1000,
          )} s: the API server first deletes their custom resources, and one still holds a finalizer (is a Flux controller still running?). Run the uninstall again to continue.`,
        );
      }
      if (Date.now() - lastLog >= 5_000) {
        lastLog = Date.now();
        logger.info(
          `Waiting for the CustomResourceDefinitions ${pending.join(
            ', ',
          )} to be deleted (the API server deletes their custom resources first; ${Math.round(
            waited / 1000,
          )} s so far)`,
        );
        // A controller that was still shutting down may have added a finalizer meanwhile.
        const stillThere = new Set(pending);
        const terminating = (await readFluxKinds(kube, signal)).filter(k =>
          stillThere.has(k.crd),
        );
        result.finalizersRemoved.push(...(await stripFinalizers(terminating)));
      }
      await pause(
        pollMs,
        signal,
        `waiting for the CustomResourceDefinitions of ${cluster} to be deleted`,
      );
    }
  }
}
