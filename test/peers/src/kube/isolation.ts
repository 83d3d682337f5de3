import crypto from 'node:crypto';
import { KubeApiserverInfo, KubeHttp, kubePath } from './http';
import { ensureNamespace } from './rbac';

let counter = 0;

/**
 * A unique DNS-1123 label `<prefix>-<random>`, ≤ 63 chars, for per-test namespaces and names.
 * Namespaces never finish deleting on this apiserver (no namespace controller), so every test uses
 * fresh names instead of re-using and deleting.
 */
export function uniqueName(prefix: string): string {
  counter = (counter + 1) % 1296;
  const suffix = `${crypto
    .randomBytes(4)
    .readUInt32BE(0)
    .toString(36)
    .padStart(7, '0')
    .slice(-7)}${counter.toString(36).padStart(2, '0')}`;
  let p = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (!p || !/^[a-z]/.test(p)) p = `t${p ? `-${p}` : ''}`;
  p = p.slice(0, 63 - suffix.length - 1).replace(/-+$/, '');
  return `${p}-${suffix}`;
}

/** Creates a fresh namespace `<prefix>-<random>` and returns its name. */
export async function createTestNamespace(
  kube: KubeApiserverInfo,
  prefix: string,
  labels?: Record<string, string>,
): Promise<string> {
  const name = uniqueName(prefix);
  const api = new KubeHttp(kube);
  try {
    await ensureNamespace(api, name, {
      'flux-test/namespace': 'true',
      ...labels,
    });
  } finally {
    api.close();
  }
  return name;
}

async function waitGone(
  api: KubeHttp,
  p: string,
  errors: string[],
  what: string,
) {
  const deadline = Date.now() + 30_000;
  while ((await api.request('GET', p)).status !== 404) {
    if (Date.now() > deadline) {
      errors.push(`${what} still exists 30 s after DELETE`);
      return;
    }
    await new Promise(r => setTimeout(r, 100));
  }
}

export interface ClusterObjectRef {
  apiVersion: string;
  /** plural resource, e.g. `clusterroles`, `customresourcedefinitions`, `namespaces` */
  resource: string;
  name: string;
  namespace?: string;
}

/**
 * Deletes the objects a test created, in reverse order of `track()`; 404 counts as done.
 * Cluster-scoped objects (ClusterRoles, ClusterRoleBindings, CRDs…) outlive a namespace, so tests
 * that create them on the shared apiserver track them here and call `run()` in `afterEach/afterAll`.
 * Namespaces are deleted without waiting (they stay Terminating); everything else is waited for
 * until it is gone. Custom finalizers are removed first (no controller would).
 */
export class KubeCleanup {
  private readonly refs: ClusterObjectRef[] = [];

  constructor(private readonly kube: KubeApiserverInfo) {}

  track(ref: ClusterObjectRef): this {
    this.refs.push(ref);
    return this;
  }

  /** Tracks every object of a resource matching a label selector (resolved when `run()` is called). */
  trackSelector(sel: {
    apiVersion: string;
    resource: string;
    labelSelector: string;
    namespace?: string;
  }): this {
    this.refs.push({ ...sel, name: `?${sel.labelSelector}` });
    return this;
  }

  async run(): Promise<void> {
    const api = new KubeHttp(this.kube);
    const errors: string[] = [];
    try {
      const refs = this.refs.splice(0).reverse();
      for (const ref of refs) {
        const targets: ClusterObjectRef[] = [];
        if (ref.name.startsWith('?')) {
          const list = await api.request(
            'GET',
            kubePath({ ...ref, name: undefined }),
            {
              query: { labelSelector: ref.name.slice(1) },
            },
          );
          for (const item of list.body?.items ?? []) {
            targets.push({
              ...ref,
              name: item.metadata.name,
              namespace: item.metadata.namespace,
            });
          }
        } else {
          targets.push(ref);
        }
        for (const t of targets) {
          const p = kubePath(t);
          const cur = await api.request('GET', p);
          if (cur.status === 404) continue;
          // Nobody would remove custom finalizers (no controllers). CRDs keep theirs: the apiserver's own
          // finalizer deletes their custom resources first.
          const keepFinalizers =
            t.resource === 'namespaces' ||
            t.resource === 'customresourcedefinitions';
          if (cur.body?.metadata?.finalizers?.length && !keepFinalizers) {
            await api.request('PATCH', p, {
              body: { metadata: { finalizers: null } },
              contentType: 'application/merge-patch+json',
            });
          }
          const res = await api.request('DELETE', p, {
            query: { propagationPolicy: 'Background' },
          });
          if (res.status >= 300 && res.status !== 404) {
            errors.push(
              `${t.resource}/${t.name}: ${res.status} ${
                res.body?.message ?? ''
              }`,
            );
          } else if (t.resource !== 'namespaces') {
            await waitGone(api, p, errors, `${t.resource}/${t.name}`);
          }
        }
      }
    } finally {
      api.close();
    }
    if (errors.length) throw new Error(`cleanup failed: ${errors.join('; ')}`);
  }
}
