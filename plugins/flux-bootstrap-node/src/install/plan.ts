import type { KubeObject } from '../kube/types';
import type { ResolvedFluxManifestOptions } from '../manifests/options';
import { generateSyncObjects } from '../manifests/sync';

/** Everything `installFlux` puts on a cluster (what flux:push-manifests commits). @public */
export interface FluxInstallPlan {
  /** Namespace Flux runs in; also the name of the GitRepository and the Kustomization. */
  namespace: string;
  fluxVersion: string;
  /** Controller names (= Deployment names) whose health is awaited. */
  components: string[];
  /** Objects of `gotk-components.yaml`, in file order. */
  componentObjects: readonly KubeObject[];
  /** GitRepository and Kustomization of `gotk-sync.yaml`. */
  syncObjects: KubeObject[];
  /** The Git credentials Secret (token auth), when the install writes it. */
  secret?: KubeObject;
  /** The sync Kustomization's `spec.path`, e.g. `./clusters/prod`. */
  path: string;
  /** Revision Flux must reach, `<branch>@sha1:<sha>`; when absent, whatever the branch head is. */
  expectedRevision?: string;
}

/** The plan for the generated objects (`generateComponentObjects`, not modified). @public */
export function buildFluxInstallPlan(input: {
  options: ResolvedFluxManifestOptions;
  componentObjects: readonly KubeObject[];
  secret?: KubeObject;
  expectedRevision?: string;
}): FluxInstallPlan {
  const { options } = input;
  return {
    namespace: options.namespace,
    fluxVersion: options.components.version,
    components: [...options.components.components],
    componentObjects: input.componentObjects,
    syncObjects: generateSyncObjects(options.sync),
    secret: input.secret,
    path: normalizeSyncPath(options.path),
    expectedRevision: input.expectedRevision || undefined,
  };
}

/** `clusters/prod`, `./clusters/prod/` and `./clusters/prod` are the same Kustomization path. */
export function normalizeSyncPath(path: string | undefined): string {
  return `./${(path ?? '')
    .trim()
    .replace(/^\.\/?/, '')
    .replace(/\/+$/, '')}`;
}

/** The Secret flux writes for `--token-auth`: username, password, and ca.crt when a CA is given. @public */
export function tokenAuthSecret(opts: {
  namespace: string;
  name: string;
  username: string;
  password: string;
  caPem?: string;
}): KubeObject {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: opts.name, namespace: opts.namespace },
    data: {
      username: b64(opts.username),
      password: b64(opts.password),
      ...(opts.caPem ? { 'ca.crt': b64(`${opts.caPem.trim()}\n`) } : {}),
    },
  };
}

/**
 * The revision a dry run of flux:push-manifests outputs (`<branch>@sha1:`, no commit); only a
 * dry run of flux:install accepts it.
 * @public
 */
export function pendingRevision(branch: string): string {
  return `${branch}@sha1:`;
}

/** True for a revision as {@link pendingRevision} makes it (no commit yet). @public */
export function isPendingRevision(revision: string | undefined): boolean {
  return !!revision && /@sha1:$/.test(revision);
}
