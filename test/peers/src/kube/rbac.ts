import { KubeApiserverInfo, KubeHttp, kubePath } from './http';

/** rbac.authorization.k8s.io/v1 PolicyRule */
export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface MintTokenOptions {
  /** DNS-1123 name of the ServiceAccount and of its roles/bindings (use `uniqueName`). */
  name: string;
  /** Rules of a ClusterRole `flux-test:<name>` bound cluster-wide. */
  clusterRules?: PolicyRule[];
  /** Rules of a Role `flux-test:<name>` in each namespace (created when missing unless `createNamespaces: false`). */
  namespaceRules?: { namespace: string; rules: PolicyRule[] }[];
  /** Namespace that holds the ServiceAccount (default `flux-test-tokens`, created when missing). */
  serviceAccountNamespace?: string;
  /** Create the namespaces of `namespaceRules` when they do not exist (default true). */
  createNamespaces?: boolean;
  /** Token lifetime (default 3600 s; the apiserver's minimum is 600). */
  expirationSeconds?: number;
}

const FIELD_MANAGER = 'flux-test-peers';

/**
 * Mints a restricted bearer token: creates ServiceAccount `<saNamespace>/<name>`, a ClusterRole +
 * ClusterRoleBinding for `clusterRules`, a Role + RoleBinding per entry of `namespaceRules`, and
 * returns a TokenRequest token for the ServiceAccount. Idempotent for the same name (objects are
 * server-side applied). Everything not granted is refused with 403 by RBAC.
 */
export async function mintToken(
  kube: KubeApiserverInfo,
  opts: MintTokenOptions,
): Promise<string> {
  if (
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(opts.name) ||
    opts.name.length > 63
  ) {
    throw new Error(`mintToken: name "${opts.name}" is not a DNS-1123 label`);
  }
  const api = new KubeHttp(kube);
  try {
    const saNs = opts.serviceAccountNamespace ?? 'flux-test-tokens';
    await ensureNamespace(api, saNs);
    await api.apply(
      kubePath({
        apiVersion: 'v1',
        resource: 'serviceaccounts',
        namespace: saNs,
        name: opts.name,
      }),
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: opts.name,
          namespace: saNs,
          labels: { 'flux-test/minted': 'true' },
        },
      },
      { fieldManager: FIELD_MANAGER },
    );
    const roleName = `flux-test:${opts.name}`;
    const subject = {
      kind: 'ServiceAccount',
      name: opts.name,
      namespace: saNs,
    };
    const rbac = 'rbac.authorization.k8s.io/v1';
    if (opts.clusterRules?.length) {
      await api.apply(
        kubePath({
          apiVersion: rbac,
          resource: 'clusterroles',
          name: roleName,
        }),
        {
          apiVersion: rbac,
          kind: 'ClusterRole',
          metadata: { name: roleName, labels: { 'flux-test/minted': 'true' } },
          rules: opts.clusterRules,
        },
        { fieldManager: FIELD_MANAGER },
      );
      await api.apply(
        kubePath({
          apiVersion: rbac,
          resource: 'clusterrolebindings',
          name: roleName,
        }),
        {
          apiVersion: rbac,
          kind: 'ClusterRoleBinding',
          metadata: { name: roleName, labels: { 'flux-test/minted': 'true' } },
          roleRef: {
            apiGroup: 'rbac.authorization.k8s.io',
            kind: 'ClusterRole',
            name: roleName,
          },
          subjects: [subject],
        },
        { fieldManager: FIELD_MANAGER },
      );
    }
    for (const { namespace, rules } of opts.namespaceRules ?? []) {
      if (opts.createNamespaces !== false)
        await ensureNamespace(api, namespace);
      await api.apply(
        kubePath({
          apiVersion: rbac,
          resource: 'roles',
          namespace,
          name: roleName,
        }),
        {
          apiVersion: rbac,
          kind: 'Role',
          metadata: {
            name: roleName,
            namespace,
            labels: { 'flux-test/minted': 'true' },
          },
          rules,
        },
        { fieldManager: FIELD_MANAGER },
      );
      await api.apply(
        kubePath({
          apiVersion: rbac,
          resource: 'rolebindings',
          namespace,
          name: roleName,
        }),
        {
          apiVersion: rbac,
          kind: 'RoleBinding',
          metadata: {
            name: roleName,
            namespace,
            labels: { 'flux-test/minted': 'true' },
          },
          roleRef: {
            apiGroup: 'rbac.authorization.k8s.io',
            kind: 'Role',
            name: roleName,
          },
          subjects: [subject],
        },
        { fieldManager: FIELD_MANAGER },
      );
    }
    const res = await api.expect(
      'POST',
      `${kubePath({
        apiVersion: 'v1',
        resource: 'serviceaccounts',
        namespace: saNs,
        name: opts.name,
      })}/token`,
      {
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: opts.expirationSeconds ?? 3600 },
        },
      },
    );
    const token = res.body?.status?.token;
    if (typeof token !== 'string' || !token)
      throw new Error('mintToken: TokenRequest returned no token');
    return token;
  } finally {
    api.close();
  }
}

/** Creates a Namespace when it does not exist (server-side apply). */
export async function ensureNamespace(
  api: KubeHttp,
  name: string,
  labels?: Record<string, string>,
): Promise<void> {
  await api.apply(
    kubePath({ apiVersion: 'v1', resource: 'namespaces', name }),
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, ...(labels ? { labels } : {}) },
    },
    { fieldManager: FIELD_MANAGER },
  );
}
