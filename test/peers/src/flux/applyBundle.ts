import { KubeApiserverInfo, KubeHttp, kubePath } from '../kube/http';
import { ensureNamespace } from '../kube/rbac';
import { FLUX_COMPONENTS, FluxBundle } from './bundle';
import { renderFluxInstall } from './install';

export { parseBundleFile } from './install';

const PLURALS: Record<string, string> = {
  CustomResourceDefinition: 'customresourcedefinitions',
  ServiceAccount: 'serviceaccounts',
  Service: 'services',
  Deployment: 'deployments',
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  ResourceQuota: 'resourcequotas',
  NetworkPolicy: 'networkpolicies',
  Namespace: 'namespaces',
};
export interface AppliedObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** REST path of a bundle object (only the kinds the bundle contains). */
export function pathOf(obj: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}): string {
  const resource = PLURALS[obj.kind];
  if (!resource) throw new Error(`no REST mapping for kind ${obj.kind}`);
  return kubePath({
    apiVersion: obj.apiVersion,
    resource,
    name: obj.metadata.name,
    namespace: obj.metadata.namespace,
  });
}

/**
 * Test helper (not the product's installer): puts the fixture bundle's objects on a cluster the
 * way `flux install` lays them out — Namespace, CRDs (waited for until Established), then the
 * namespaced objects in `namespace` and the RBAC objects with the generator's `-<namespace>` name
 * suffix and subjects moved to `namespace`, labelled `app.kubernetes.io/instance=<namespace>`,
 * `app.kubernetes.io/version=<version>`, `app.kubernetes.io/part-of=flux`. Server-side apply with
 * `fieldManager` (default `flux`, the manager flux install uses, so
 * the shared cluster-wide CRDs never conflict with an install test's apply). Returns every applied object.
 * Use it when a test needs "Flux installed" without running the install action.
 */
export async function applyFluxBundle(
  kube: KubeApiserverInfo,
  bundle: Pick<FluxBundle, 'files' | 'version'>,
  opts: {
    namespace: string;
    components?: string[];
    fieldManager?: string;
    withPolicies?: boolean;
  },
): Promise<AppliedObject[]> {
  const ns = opts.namespace;
  const fieldManager = opts.fieldManager ?? 'flux';
  const labels = {
    'app.kubernetes.io/instance': ns,
    'app.kubernetes.io/part-of': 'flux',
    'app.kubernetes.io/version': bundle.version,
  };
  const docs: Record<string, any>[] = renderFluxInstall(bundle, {
    namespace: ns,
    components: opts.components ?? [...FLUX_COMPONENTS],
    registry: '',
    networkPolicy: opts.withPolicies ?? false,
    namespaceObject: false,
  });

  const api = new KubeHttp(kube);
  const applied: AppliedObject[] = [];
  const apply = async (o: Record<string, any>) => {
    await api.apply(pathOf(o as any), o, { fieldManager, force: false });
    applied.push({
      apiVersion: o.apiVersion,
      kind: o.kind,
      name: o.metadata.name,
      namespace: o.metadata.namespace,
    });
  };
  try {
    await ensureNamespace(api, ns, labels);
    const crds = docs.filter(o => o.kind === 'CustomResourceDefinition');
    for (const crd of crds) await apply(crd);
    for (const crd of crds) await waitEstablished(api, crd.metadata.name);
    for (const o of docs.filter(d => d.kind !== 'CustomResourceDefinition'))
      await apply(o);
  } finally {
    api.close();
  }
  return applied;
}

export async function waitEstablished(
  api: KubeHttp,
  name: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api.request(
      'GET',
      kubePath({
        apiVersion: 'apiextensions.k8s.io/v1',
        resource: 'customresourcedefinitions',
        name,
      }),
    );
    const conds: any[] = res.body?.status?.conditions ?? [];
    if (conds.some(c => c.type === 'Established' && c.status === 'True'))
      return;
    if (Date.now() > deadline)
      throw new Error(
        `CRD ${name} not Established after ${timeoutMs} ms: ${JSON.stringify(
          conds,
        )}`,
      );
    await new Promise(r => setTimeout(r, 100));
  }
}

/**
 * Test helper: the sync objects `flux bootstrap` leaves next to the components — the Git Secret
 * (`secret`, as stringData), the GitRepository `<namespace>/<namespace>` of `url` at `branch`
 * (default main, interval 1m) and the Kustomization `<namespace>/<namespace>` of `path` (default
 * `./`, interval 10m, prune) — server-side applied with `fieldManager` (default `flux`).
 */
export async function applyFluxSync(
  kube: KubeApiserverInfo,
  opts: {
    namespace: string;
    url: string;
    secret: Record<string, string>;
    secretName?: string;
    branch?: string;
    path?: string;
    fieldManager?: string;
    /** The Kustomization's `spec.suspend` (left out unless given). */
    suspend?: boolean;
  },
): Promise<void> {
  const { namespace, url, secret } = opts;
  const secretName = opts.secretName ?? 'flux-system';
  const meta = (name: string) => ({ name, namespace });
  const objects = [
    {
      resource: 'secrets',
      object: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: meta(secretName),
        stringData: secret,
      },
    },
    {
      resource: 'gitrepositories',
      object: {
        apiVersion: 'source.toolkit.fluxcd.io/v1',
        kind: 'GitRepository',
        metadata: meta(namespace),
        spec: {
          interval: '1m0s',
          url,
          ref: { branch: opts.branch ?? 'main' },
          secretRef: { name: secretName },
        },
      },
    },
    {
      resource: 'kustomizations',
      object: {
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        kind: 'Kustomization',
        metadata: meta(namespace),
        spec: {
          interval: '10m0s',
          path: opts.path ?? './',
          prune: true,
          sourceRef: { kind: 'GitRepository', name: namespace },
          ...(opts.suspend === undefined ? {} : { suspend: opts.suspend }),
        },
      },
    },
  ];
  const api = new KubeHttp(kube);
  try {
    for (const { resource, object } of objects) {
      const path = kubePath({
        apiVersion: object.apiVersion,
        resource,
        namespace,
        name: object.metadata.name,
      });
      await api.apply(path, object, {
        fieldManager: opts.fieldManager ?? 'flux',
      });
    }
  } finally {
    api.close();
  }
}
