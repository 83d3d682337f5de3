import {
  ConflictError,
  NotAllowedError,
  ServiceUnavailableError,
} from '@backstage/errors';
import type {
  KubeAccessCheck,
  KubeClient,
  KubeObject,
  KubeObjectRef,
} from '../kube/types';
import { pollUntil } from '../operate/poll';
import { record, str } from '../status/fluxObjects';
import { throwIfAborted } from '../util/errors';
import { withDefaults, type DecommissionDeps } from './shared';

/** Field manager of the finalizer patches. */
const FIELD_MANAGER = 'flux-bootstrap-uninstall';
const PART_OF_FLUX = 'app.kubernetes.io/part-of=flux';
const CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
};
const NAMESPACE = { apiVersion: 'v1', kind: 'Namespace' };

/**
 * Flux's labelled objects, in the order `flux uninstall` deletes them (controllers first), and
 * whether they live in Flux's namespace. `flux uninstall` leaves the ResourceQuota of Flux's
 * rbac.yaml to the namespace's deletion: a kept namespace would keep it, so it is deleted too.
 */
const FLUX_OBJECT_KINDS: [string, string, boolean][] = [
  ['apps/v1', 'Deployment', true],
  ['v1', 'Service', true],
  ['networking.k8s.io/v1', 'NetworkPolicy', true],
  ['v1', 'ServiceAccount', true],
  ['v1', 'ResourceQuota', true],
  ['rbac.authorization.k8s.io/v1', 'ClusterRole', false],
  ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', false],
];

/** A Flux custom resource and the finalizers it holds. @public */
export interface FluxCustomResourceRef extends KubeObjectRef {
  finalizers: string[];
}

/** Options of {@link planFluxUninstall} and {@link uninstallFlux}. @public */
export interface FluxUninstallOptions {
  /** Namespace Flux runs in (validated DNS label), e.g. `flux-system`. */
  namespace: string;
  /** Keep the namespace (`flux uninstall --keep-namespace`); default false: delete it. */
  keepNamespace?: boolean;
  /** Also delete the objects in the Kustomizations' `status.inventory`; default false (kept). */
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
  workloads: KubeObjectRef[];
  /** Flux's objects in its namespace (controllers first) and the sync source's Secret. */
  components: KubeObjectRef[];
  /** Flux's cluster-wide RBAC. */
  clusterObjects: KubeObjectRef[];
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

/** `Kind namespace/name`, or `Kind name` for cluster-scoped objects. */
const describe = (ref: { kind: string; name: string; namespace?: string }) =>
  `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
const list = (refs: { kind: string; name: string; namespace?: string }[]) =>
  refs.map(describe).join(', ');
const groupOf = (apiVersion: string) =>
  apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
const identity = (ref: KubeObjectRef) =>
  `${groupOf(ref.apiVersion)}|${ref.kind}|${ref.namespace ?? ''}|${ref.name}`;
const byName = (a: { name: string }, b: { name: string }) =>
  a.name.localeCompare(b.name);

function refOf(obj: KubeObject): KubeObjectRef {
  const { name, namespace } = obj.metadata;
  const ref = { apiVersion: obj.apiVersion, kind: obj.kind, name };
  return namespace ? { ...ref, namespace } : ref;
}

/** A Kustomization's inventory entry (`<ns>_<name>_<group>_<kind>`, `v`) as a reference, if it parses. @public */
export function inventoryEntryRef(entry: {
  id?: unknown;
  v?: unknown;
}): KubeObjectRef | undefined {
  if (typeof entry.id !== 'string' || typeof entry.v !== 'string')
    return undefined;
  const [namespace, name, group, kind, ...rest] = entry.id.split('_');
  if (rest.length > 0 || !name || !kind) return undefined;
  const apiVersion = group ? `${group}/${entry.v}` : entry.v;
  return { apiVersion, kind, name, ...(namespace ? { namespace } : {}) };
}

/** A kind one of Flux's CustomResourceDefinitions defines. */
interface FluxKind {
  crd: string;
  apiVersion: string;
  kind: string;
  group: string;
}

/** Flux's kinds, from its CRDs (the stored version, else a served one), by CRD name. */
async function readFluxKinds(
  kube: KubeClient,
  signal?: AbortSignal,
): Promise<FluxKind[]> {
  const crds = await kube.list(CRD.apiVersion, CRD.kind, {
    labelSelector: PART_OF_FLUX,
    signal,
  });
  const kinds = crds.flatMap(crd => {
    const spec = record(crd.spec) as {
      group?: string;
      names?: { kind?: string };
      versions?: { name: string; served?: boolean; storage?: boolean }[];
    };
    const version =
      spec.versions?.find(v => v.storage && v.served !== false) ??
      spec.versions?.find(v => v.served !== false);
    const { group, names: { kind } = {} } = spec;
    if (!group || !kind || !version) return [];
    const apiVersion = `${group}/${version.name}`;
    return [{ crd: crd.metadata.name, apiVersion, kind, group }];
  });
  return kinds.sort((a, b) => a.crd.localeCompare(b.crd));
}

async function listCustomResources(
  kube: KubeClient,
  kinds: FluxKind[],
  signal?: AbortSignal,
): Promise<FluxCustomResourceRef[]> {
  const out: FluxCustomResourceRef[] = [];
  for (const k of kinds) {
    const opts = { metadataOnly: true, signal };
    for (const item of await kube.list(k.apiVersion, k.kind, opts)) {
      const { finalizers } = item.metadata;
      const held = Array.isArray(finalizers) ? (finalizers as string[]) : [];
      out.push({ ...refOf(item), finalizers: held });
    }
  }
  return out;
}

/** Reads what an uninstall removes; refuses a Flux the Flux Operator manages (it would reinstall it). @public */
export async function planFluxUninstall(
  kube: KubeClient,
  options: FluxUninstallOptions,
  deps: { signal?: AbortSignal } = {},
): Promise<FluxUninstallPlan> {
  const { signal } = deps;
  const ns = options.namespace;
  const metadata = { metadataOnly: true, signal };
  const instances = (
    await kube.list('fluxcd.controlplane.io/v1', 'FluxInstance', metadata)
  ).map(refOf);
  if (instances.length > 0) {
    const operator = `the Flux Operator (${list(instances)})`;
    throw new ConflictError(
      `Flux on cluster "${kube.clusterName}" is managed by ${operator}: it would install Flux again. Delete the FluxInstance (the operator then uninstalls Flux) instead; nothing was removed.`,
    );
  }
  const kinds = await readFluxKinds(kube, signal);
  /** The `<ns>/<ns>` object of one of Flux's kinds, as bootstrap names the sync. */
  const syncObject = (kind: string, group: string) => {
    const found = kinds.find(k => k.kind === kind && k.group === group);
    const ref = { kind, name: ns, namespace: ns };
    return found && { ...ref, apiVersion: found.apiVersion };
  };
  const components: KubeObjectRef[] = [];
  const clusterObjects: KubeObjectRef[] = [];
  for (const [apiVersion, kind, namespaced] of FLUX_OBJECT_KINDS) {
    const items = await kube.list(apiVersion, kind, {
      ...metadata,
      namespace: namespaced ? ns : undefined,
      labelSelector: PART_OF_FLUX,
    });
    const refs = items.map(refOf).sort(byName);
    if (!namespaced) clusterObjects.push(...refs);
    else components.push(...refs.map(r => ({ ...r, namespace: ns })));
  }
  // The Secret bootstrap wrote for the sync source (GitRepository <ns>/<ns> spec.secretRef).
  const gitRepository = syncObject('GitRepository', 'source.toolkit.fluxcd.io');
  const source = gitRepository && (await kube.get(gitRepository, { signal }));
  const secretName = str(record(record(source?.spec).secretRef).name);
  if (secretName) {
    const ref = { apiVersion: 'v1', kind: 'Secret', namespace: ns };
    // metadata only: the uninstall never reads a Secret's data
    if (await kube.get({ ...ref, name: secretName }, metadata))
      components.push({ ...ref, name: secretName });
  }

  // Workloads: what the Kustomizations applied, less Flux itself (its objects, custom
  // resources, CRDs and namespace go anyway).
  const own = new Set(
    [
      ...components,
      ...clusterObjects,
      ...kinds.map(k => ({ ...CRD, name: k.crd })),
      { ...NAMESPACE, name: ns },
    ].map(identity),
  );
  const fluxGroups = new Set(kinds.map(k => k.group));
  const workloads = new Map<string, KubeObjectRef>();
  const ks = syncObject('Kustomization', 'kustomize.toolkit.fluxcd.io');
  const kustomizations = ks
    ? await kube.list(ks.apiVersion, ks.kind, { signal })
    : [];
  for (const { status } of kustomizations) {
    const entries = record(record(status).inventory).entries;
    for (const entry of Array.isArray(entries) ? entries : []) {
      const ref = inventoryEntryRef(record(entry));
      if (!ref || fluxGroups.has(groupOf(ref.apiVersion))) continue;
      if (!own.has(identity(ref))) workloads.set(identity(ref), ref);
    }
  }

  const namespace = await kube.get({ ...NAMESPACE, name: ns }, { signal });
  const terminating =
    record(namespace?.status).phase === 'Terminating' ||
    !!namespace?.metadata.deletionTimestamp;
  let namespaceState: FluxUninstallPlan['namespaceState'] = 'absent';
  if (namespace) namespaceState = terminating ? 'terminating' : 'active';
  return {
    namespace: ns,
    keepNamespace: options.keepNamespace ?? false,
    prune: options.prune ?? false,
    workloads: [...workloads.values()],
    components,
    clusterObjects,
    customResources: await listCustomResources(kube, kinds, signal),
    crds: kinds.map(k => k.crd),
    namespaceState,
  };
}

/** What a plan deletes, step by step in the order of the uninstall. */
function deletions(plan: FluxUninstallPlan) {
  return {
    workloads: plan.prune ? plan.workloads : [],
    components: [...plan.components, ...plan.clusterObjects],
    crds: plan.crds.map(name => ({ ...CRD, name })),
    namespace:
      !plan.keepNamespace && plan.namespaceState === 'active'
        ? [{ ...NAMESPACE, name: plan.namespace }]
        : [],
  };
}

const held = (plan: FluxUninstallPlan) =>
  plan.customResources.filter(r => r.finalizers.length > 0);

/** What {@link uninstallFlux} would do with a plan, one line per step (dry runs, logs). @public */
export function describeFluxUninstallPlan(
  plan: FluxUninstallPlan,
  cluster: string,
): string[] {
  const { namespace: ns, workloads, customResources: crs, crds } = plan;
  const removals = Object.values(deletions(plan)).flat();
  if (removals.length === 0 && crs.length === 0)
    return [
      `Flux is not installed on cluster ${cluster} (namespace ${ns}): nothing to remove`,
    ];
  const { components, clusterObjects, prune, keepNamespace } = plan;
  const applied = `${workloads.length} object(s) the Kustomizations applied`;
  const holding = held(plan);
  const finalizers = `${holding.length} Flux custom resource(s)`;
  const heldList = list(holding);
  const crdNames = crds.join(', ');
  const definitions = `${crds.length} Flux CustomResourceDefinition(s)`;
  const resources = `${crs.length} custom resource(s)${
    crs.length > 0 ? ` (${list(crs)})` : ''
  }`;
  const namespace = keepNamespace
    ? plan.namespaceState !== 'absent' &&
      `would keep namespace ${ns} (keepNamespace)`
    : {
        active: `would delete namespace ${ns}`,
        terminating: `namespace ${ns} is already being deleted`,
        absent: false,
      }[plan.namespaceState];
  return [
    workloads.length > 0 &&
      (prune
        ? `would delete the ${applied} (prune): ${list(workloads)}`
        : `would keep the ${applied} running, no longer managed by Flux (prune is off)`),
    components.length > 0 &&
      `would delete Flux's objects in namespace ${ns}: ${list(components)}`,
    clusterObjects.length > 0 &&
      `would delete Flux's cluster-wide RBAC: ${list(clusterObjects)}`,
    holding.length > 0 &&
      `would remove the finalizers of ${finalizers}, so their deletion does not wait for the controllers: ${heldList}`,
    crds.length > 0 &&
      `would delete ${definitions}, and with them ${resources}: ${crdNames}`,
    namespace,
  ].filter((line): line is string => !!line);
}

/** May the cluster credentials do every write of the plan? Fails naming what is denied. */
async function assertMayUninstall(
  kube: KubeClient,
  plan: FluxUninstallPlan,
  signal?: AbortSignal,
): Promise<void> {
  const d = deletions(plan);
  const writes: [string, KubeObjectRef[]][] = [
    ['delete', [...d.workloads, ...d.components]],
    ['patch', held(plan)],
    ['delete', [...d.crds, ...d.namespace]],
  ];
  const checks = new Map<string, KubeAccessCheck>();
  for (const [verb, refs] of writes) {
    for (const { apiVersion, kind, namespace } of refs) {
      const found = await kube.resourceFor(apiVersion, kind, { signal });
      if (!found) continue;
      const group = groupOf(apiVersion);
      const check = { verb, group, resource: found.name, namespace };
      checks.set(JSON.stringify(check), check);
    }
  }
  const wanted = [...checks.values()];
  if (wanted.length === 0) return;
  const answers = await kube.canI(wanted, { signal });
  const denied = wanted
    .filter((_, i) => !answers[i].allowed)
    .map(({ verb, resource, group, namespace }) => {
      const where = namespace ? ` in ${namespace}` : '';
      return `${verb} ${resource}${group ? `.${group}` : ''}${where}`;
    });
  if (denied.length > 0) {
    const credentials = `The credentials of cluster "${kube.clusterName}"`;
    const what = denied.join('; ');
    throw new NotAllowedError(
      `${credentials} may not ${what}: Flux cannot be uninstalled with them. Nothing was removed.`,
    );
  }
}

/**
 * Uninstalls Flux as `flux uninstall` does, stripping the finalizers no controller is left to
 * honour. Checks the credentials first; each step is an idempotent checkpoint. @public
 */
export async function uninstallFlux(
  kube: KubeClient,
  options: FluxUninstallOptions,
  deps: DecommissionDeps = {},
): Promise<FluxUninstallResult & { plan: FluxUninstallPlan }> {
  const { signal, logger, step } = withDefaults(deps);
  const timeoutMs = options.timeoutMs ?? 120_000;
  const cluster = kube.clusterName;
  const metadataOnly = { signal, metadataOnly: true };

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
  const planned = deletions(plan);
  const removals = Object.values(planned).flat();
  const result = {
    namespace: plan.namespace,
    removed: [] as string[],
    finalizersRemoved: [] as string[],
    workloadsKept: plan.prune ? 0 : plan.workloads.length,
    namespaceDeleted: false,
    changed: false,
    plan,
  };
  if (options.dryRun) {
    result.removed = removals.map(describe);
    result.finalizersRemoved = held(plan).map(describe);
    return result;
  }
  if (removals.length + plan.customResources.length === 0) return result;
  await step('uninstall-preflight', async () => {
    await assertMayUninstall(kube, plan, signal);
    return true;
  });

  /** Removes the finalizers of these CRDs' custom resources (read again: the controllers are gone). */
  const stripFinalizers = async (crds: string[]) => {
    const kinds = await readFluxKinds(kube, signal);
    const ours = kinds.filter(k => crds.includes(k.crd));
    const resources = await listCustomResources(kube, ours, signal);
    const stripped: string[] = [];
    const body = { metadata: { finalizers: null } };
    const opts = { fieldManager: FIELD_MANAGER, signal };
    for (const { finalizers, ...ref } of resources) {
      if (finalizers.length === 0) continue;
      if (await kube.patch(ref, body, opts)) {
        stripped.push(describe(ref));
        logger.info(
          `Removed the finalizers ${finalizers.join(', ')} of ${describe(ref)}`,
        );
      }
    }
    return stripped;
  };
  /** Waits until the CRDs are gone: the API server first deletes their custom resources. */
  const waitForCrdsGone = async () => {
    let pending = plan.crds;
    const gone = await pollUntil(
      async () => {
        const left: string[] = [];
        for (const name of pending)
          if (await kube.get({ ...CRD, name }, metadataOnly)) left.push(name);
        pending = left;
        return left.length === 0;
      },
      {
        timeoutMs,
        pollIntervalMs: options.pollIntervalMs ?? 1_000,
        signal,
        what: `waiting for the CustomResourceDefinitions of ${cluster} to be deleted`,
        progress: async waited => {
          const names = pending.join(', ');
          const seconds = Math.round(waited / 1000);
          logger.info(
            `Waiting for the CustomResourceDefinitions ${names} to be deleted (the API server deletes their custom resources first; ${seconds} s so far)`,
          );
          // A controller that was still shutting down may have added a finalizer meanwhile.
          result.finalizersRemoved.push(...(await stripFinalizers(pending)));
        },
      },
    );
    const crds = `The CustomResourceDefinitions ${pending.join(', ')}`;
    const seconds = Math.round(timeoutMs / 1000);
    if (!gone)
      throw new ServiceUnavailableError(
        `${crds} of cluster "${cluster}" are still being deleted after ${seconds} s: the API server first deletes their custom resources, and one still holds a finalizer (is a Flux controller still running?). Run the uninstall again to continue.`,
      );
  };
  /** One checkpointed step deleting `refs`, then `after` (inside the checkpoint). */
  const deleting = async (
    key: string,
    refs: KubeObjectRef[],
    after?: () => Promise<void>,
  ) => {
    if (refs.length === 0) return [];
    const gone = await step(key, async () => {
      const deleted: string[] = [];
      for (const ref of refs) {
        throwIfAborted(signal, `uninstalling Flux from ${cluster}`);
        if (await kube.delete(ref, { signal })) {
          deleted.push(describe(ref));
          logger.info(`Deleted ${describe(ref)}`);
        }
      }
      await after?.();
      return deleted;
    });
    result.removed.push(...gone);
    return gone;
  };

  await deleting('uninstall-workloads', planned.workloads);
  await deleting('uninstall-components', planned.components);
  result.finalizersRemoved.push(
    ...(await step('uninstall-finalizers', () => stripFinalizers(plan.crds))),
  );
  await deleting('uninstall-crds', planned.crds, waitForCrdsGone);
  const namespace = await deleting('uninstall-namespace', planned.namespace);
  if (namespace.length > 0) {
    result.namespaceDeleted = true;
    logger.info(
      `Namespace ${plan.namespace} shows Terminating until Kubernetes has removed what is left in it`,
    );
  }
  result.changed =
    result.removed.length > 0 || result.finalizersRemoved.length > 0;
  logger.info(
    `Flux is uninstalled from cluster ${cluster}: ${result.removed.length} object(s) deleted, finalizers removed from ${result.finalizersRemoved.length}`,
  );
  return result;
}
