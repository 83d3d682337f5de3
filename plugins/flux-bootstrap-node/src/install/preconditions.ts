import pLimit from 'p-limit';
import { isKubeApiError } from '../kube/errors';
import type { KubeAccessCheck, KubeClient, KubeObject } from '../kube/types';
import {
  FLUX_API_VERSIONS,
  FLUX_SOURCE_CRD,
  record,
  str,
} from '../status/fluxObjects';
import { FluxInstallError } from './errors';
import { normalizeSyncPath, type FluxInstallPlan } from './plan';

/** Label flux and other installers put on the Flux CRDs to say who manages them. */
const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

/** What the preconditions found on the cluster. @public */
export interface FluxInstallState {
  /** Its `status.lastAppliedRevision`: Flux already syncs itself, so components are not applied. */
  lastAppliedRevision?: string;
  /** Whether the components (gotk-components.yaml) will be applied. */
  installComponents: boolean;
  /** `app.kubernetes.io/managed-by` of the Flux CRD, when Flux is installed. */
  managedBy?: string;
  /** `app.kubernetes.io/version` of the Flux CRD, when Flux is installed. */
  installedVersion?: string;
}

const groupOf = (apiVersion: string) =>
  apiVersion.includes('/') ? apiVersion.split('/')[0] : '';

function describeCheck(c: KubeAccessCheck): string {
  const resource = `${c.resource}${c.group ? `.${c.group}` : ''}${
    c.name ? ` "${c.name}"` : ''
  }`;
  return `${c.verb} ${resource} ${
    c.namespace ? `in namespace ${c.namespace}` : '(cluster-wide)'
  }`;
}

/**
 * The SelfSubjectAccessReviews an apply of `objects` needs: create and patch (server-side apply
 * creates or patches) every kind where it lives, `bind` every ClusterRole a binding references
 * (RBAC refuses to bind rights the caller lacks), and reading CRDs and the sync Kustomization.
 */
async function requiredAccess(
  client: KubeClient,
  plan: FluxInstallPlan,
  objects: KubeObject[],
  signal?: AbortSignal,
): Promise<KubeAccessCheck[]> {
  // Plurals of kinds whose CRDs are being installed (discovery does not know them yet).
  const crdPlurals = new Map<string, string>();
  for (const { kind, spec } of plan.componentObjects) {
    const { group, names } = (spec ?? {}) as {
      group?: string;
      names?: { kind?: string; plural?: string };
    };
    if (kind === 'CustomResourceDefinition' && group && names?.plural)
      crdPlurals.set(`${group}/${names.kind}`, names.plural);
  }
  const checks = new Map<string, KubeAccessCheck>();
  const add = (c: KubeAccessCheck) => checks.set(JSON.stringify(c), c);
  add({
    verb: 'get',
    group: 'apiextensions.k8s.io',
    resource: 'customresourcedefinitions',
  });
  add({
    verb: 'get',
    group: 'kustomize.toolkit.fluxcd.io',
    resource: 'kustomizations',
    namespace: plan.namespace,
  });
  const byKind = new Map<string, KubeObject[]>();
  for (const o of objects) {
    const key = `${o.apiVersion}/${o.kind}`;
    byKind.set(key, [...(byKind.get(key) ?? []), o]);
    const roleRef = o.roleRef as { kind?: string; name?: string } | undefined;
    if (
      /RoleBinding$/.test(o.kind) &&
      roleRef?.kind === 'ClusterRole' &&
      roleRef.name
    ) {
      add({
        verb: 'bind',
        group: 'rbac.authorization.k8s.io',
        resource: 'clusterroles',
        name: roleRef.name,
        namespace: o.kind === 'RoleBinding' ? o.metadata.namespace : undefined,
      });
    }
  }
  const limit = pLimit(4);
  await Promise.all(
    [...byKind.values()].map(list =>
      limit(async () => {
        const { apiVersion, kind } = list[0];
        const group = groupOf(apiVersion);
        const namespaces = new Set(list.map(o => o.metadata.namespace));
        let resource = crdPlurals.get(`${group}/${kind}`);
        let namespaced = [...namespaces].some(Boolean);
        if (!resource) {
          const info = await client.resourceFor(apiVersion, kind, { signal });
          if (!info) return; // the apply itself will report an unknown kind
          ({ name: resource, namespaced } = info);
        }
        for (const ns of namespaced ? namespaces : [undefined]) {
          for (const verb of ['create', 'patch'])
            add({ verb, group, resource, namespace: ns });
        }
      }),
    ),
  );
  return [...checks.values()];
}

/**
 * Checks, reading only, that the install may proceed: the credentials may do everything the apply
 * needs (SelfSubjectAccessReview; cluster-admin-level for a first install), Flux is not managed
 * by another tool unless `force`, an existing sync Kustomization does not sync another path.
 * Throws FluxInstallError naming what is wrong.
 * @public
 */
export async function checkInstallPreconditions(
  client: KubeClient,
  plan: FluxInstallPlan,
  opts: { force?: boolean; signal?: AbortSignal } = {},
): Promise<FluxInstallState> {
  const { signal } = opts;
  const cluster = client.clusterName;
  const ns = plan.namespace;

  let kustomization: KubeObject | undefined;
  try {
    for (const apiVersion of FLUX_API_VERSIONS.Kustomization) {
      kustomization ??= await client.get(
        { apiVersion, kind: 'Kustomization', name: ns, namespace: ns },
        { signal },
      );
    }
  } catch (e) {
    // Not allowed to read it: the access review below names the missing permission.
    if (!isKubeApiError(e, 'forbidden')) throw e;
  }
  const lastAppliedRevision = str(
    record(kustomization?.status).lastAppliedRevision,
  );
  const installComponents = !lastAppliedRevision;

  const objects = [
    ...(installComponents ? plan.componentObjects : []),
    ...(plan.secret ? [plan.secret] : []),
    ...plan.syncObjects,
  ];
  const checks = await requiredAccess(client, plan, objects, signal);
  const answers = await client.canI(checks, { signal });
  const missing = checks
    .filter((_, i) => !answers[i].allowed)
    .map(describeCheck);
  if (missing.length) {
    throw new FluxInstallError(
      'missing-permissions',
      `The credentials for cluster "${cluster}" may not install Flux${
        installComponents ? ' (it needs cluster-admin rights)' : ''
      }; nothing was applied. Missing permissions: ${missing.join('; ')}`,
      missing,
    );
  }

  const crd = await client.get(
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      name: FLUX_SOURCE_CRD,
    },
    { signal, metadataOnly: true }, // its labels, not its large schema
  );
  const labels = crd?.metadata.labels ?? {};
  const managedBy = labels[MANAGED_BY_LABEL] || undefined;
  if (managedBy && managedBy !== 'flux' && !opts.force) {
    throw new FluxInstallError(
      'managed-by-other',
      `Flux on cluster "${cluster}" is managed by "${managedBy}" (label ${MANAGED_BY_LABEL} on CRD ${FLUX_SOURCE_CRD}); nothing was applied. Set "force" to take the installation over.`,
    );
  }

  const existingPath =
    kustomization && normalizeSyncPath(str(record(kustomization.spec).path));
  if (existingPath && existingPath !== plan.path) {
    throw new FluxInstallError(
      'path-conflict',
      `sync path configuration ("${plan.path}") would overwrite path ("${existingPath}") of the existing Kustomization ${ns}/${ns} on cluster "${cluster}"; nothing was applied`,
    );
  }
  return {
    lastAppliedRevision,
    installComponents,
    managedBy,
    installedVersion: labels['app.kubernetes.io/version'] || undefined,
  };
}
