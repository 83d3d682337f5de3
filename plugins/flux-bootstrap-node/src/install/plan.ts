import { parseFluxRevision } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeObject } from '../kube/types';
import { isK8sObject, parseYamlDocuments } from '../manifests/yaml';
import { InputValidationError } from '../util/errors';

/**
 * Everything `installFlux` puts on a cluster, decided before any request is sent: built by
 * {@link buildFluxInstallPlan} from the generated `gotk-components.yaml` objects and
 * `gotk-sync.yaml` (what flux:push-manifests commits).
 * @public
 */
export interface FluxInstallPlan {
  /** Namespace Flux runs in; also the name of the GitRepository and the Kustomization. */
  namespace: string;
  fluxVersion: string;
  /** Controller names (= Deployment names) whose health is awaited. */
  components: string[];
  /** Objects of `gotk-components.yaml`, in file order. */
  componentObjects: KubeObject[];
  /** GitRepository and Kustomization of `gotk-sync.yaml`. */
  syncObjects: KubeObject[];
  /** The Git credentials Secret (token auth), when the install writes it. */
  secret?: KubeObject;
  /** The sync Kustomization's `spec.path`, e.g. `./clusters/prod`. */
  path: string;
  /** Revision Flux must reach, `<branch>@sha1:<sha>`; when absent, whatever the branch head is. */
  expectedRevision?: string;
}

/** Multi-document YAML as Kubernetes objects; anything else is an error naming `field`. @public */
export function parseKubeObjects(text: string, field: string): KubeObject[] {
  let docs: unknown[];
  try {
    docs = parseYamlDocuments(text, field);
  } catch (e) {
    throw new InputValidationError(field, (e as Error).message);
  }
  const bad = docs.findIndex(d => !isK8sObject(d));
  if (bad >= 0) {
    throw new InputValidationError(
      field,
      `document ${
        bad + 1
      } is not a Kubernetes object (apiVersion, kind and metadata.name are required)`,
    );
  }
  return docs as KubeObject[];
}

/** `clusters/prod`, `./clusters/prod/` and `./clusters/prod` are the same Kustomization path. @public */
export function normalizeSyncPath(path: string | undefined): string {
  return `./${(path ?? '')
    .trim()
    .replace(/^\.\/?/, '')
    .replace(/\/+$/, '')}`;
}

/** The Secret flux writes for `--token-auth` (spec §6.1): username, password, and ca.crt when a CA is given. @public */
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
 * Builds and checks the plan: the sync YAML must hold exactly the GitRepository and Kustomization
 * `<namespace>/<namespace>`, and the components the Namespace and every controller Deployment.
 * @public
 */
export function buildFluxInstallPlan(input: {
  namespace: string;
  fluxVersion: string;
  components: string[];
  /** The objects of `gotk-components.yaml` as `generateComponentObjects` returns them (not modified). */
  componentObjects?: readonly KubeObject[];
  /** Or the text of `gotk-components.yaml` (parsed here). One of the two is required. */
  componentsYaml?: string;
  syncYaml: string;
  secret?: KubeObject;
  expectedRevision?: string;
}): FluxInstallPlan {
  const { namespace: ns } = input;
  const fail = (field: string, message: string) =>
    new InputValidationError(field, message);
  if (!input.componentObjects && input.componentsYaml === undefined) {
    throw fail(
      'gotk-components.yaml',
      'is required (componentObjects or componentsYaml)',
    );
  }
  const componentObjects = input.componentObjects
    ? [...input.componentObjects]
    : parseKubeObjects(input.componentsYaml!, 'gotk-components.yaml');
  const has = (objects: KubeObject[], kind: string, name: string) =>
    objects.find(
      o =>
        o.kind === kind &&
        o.metadata.name === name &&
        (kind === 'Namespace' || o.metadata.namespace === ns),
    );
  const sync = parseKubeObjects(input.syncYaml, 'gotk-sync.yaml');
  const syncObjects = ['GitRepository', 'Kustomization'].map(kind => {
    const o = has(sync, kind, ns);
    if (!o) throw fail('gotk-sync.yaml', `must define ${kind} ${ns}/${ns}`);
    return o;
  });
  if (!has(componentObjects, 'Namespace', ns)) {
    throw fail('gotk-components.yaml', `must define Namespace ${ns}`);
  }
  for (const c of input.components) {
    if (!has(componentObjects, 'Deployment', c)) {
      throw fail(
        'gotk-components.yaml',
        `has no Deployment ${ns}/${c} for component ${c}`,
      );
    }
  }
  return {
    namespace: ns,
    fluxVersion: input.fluxVersion,
    components: [...input.components],
    componentObjects,
    syncObjects,
    secret: input.secret,
    path: normalizeSyncPath((syncObjects[1].spec as { path?: string })?.path),
    expectedRevision: input.expectedRevision || undefined,
  };
}

/** `Kind ns/name` or `Kind name`. @internal */
export function describeObject(o: KubeObject): string {
  const { namespace, name } = o.metadata;
  return `${o.kind} ${namespace ? `${namespace}/` : ''}${name}`;
}

/** Stage 1 of an apply (CRDs and Namespaces), as flux's `internal/utils/apply.go` does it. @internal */
export function isClusterDefinition(o: KubeObject): boolean {
  return (
    (o.kind === 'CustomResourceDefinition' &&
      o.apiVersion.startsWith('apiextensions.k8s.io/')) ||
    (o.kind === 'Namespace' && o.apiVersion === 'v1')
  );
}

/**
 * The revision flux:push-manifests outputs in a dry run, where nothing is pushed:
 * `<branch>@sha1:` without a commit. Only {@link validateExpectedRevision} with
 * `allowPendingCommit` (a dry run of flux:install) accepts it.
 * @public
 */
export function pendingRevision(branch: string): string {
  return `${branch}@sha1:`;
}

/** True for a revision as {@link pendingRevision} makes it (no commit yet). @public */
export function isPendingRevision(revision: string | undefined): boolean {
  return !!revision && /@sha1:$/.test(revision);
}

/**
 * Checks the revision Flux must reach — what flux:push-manifests pushed, `<branch>@sha1:<sha>`
 * (also accepted: `refs/heads/<branch>@sha1:…`, a bare `sha1:<sha>`) — against the synced
 * branch, and returns it as `<branch>@sha1:<sha>`. Empty → undefined. With
 * `allowPendingCommit` (dry runs only) `<branch>@sha1:` is accepted too and returned as is.
 * @public
 */
export function validateExpectedRevision(
  value: unknown,
  branch: string,
  field = 'revision',
  options: { allowPendingCommit?: boolean } = {},
): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string')
    throw new InputValidationError(field, 'must be a string');
  const checkBranch = (ref: string | undefined) => {
    const name = ref?.replace(/^refs\/heads\//, '');
    if (name && name !== branch) {
      throw new InputValidationError(
        field,
        `is a revision of branch "${name}", but Flux is set to sync branch "${branch}"`,
      );
    }
  };
  const pending = /^(?:(.+)@)?sha1:$/.exec(value);
  if (options.allowPendingCommit && pending) {
    checkBranch(pending[1]);
    return pendingRevision(branch);
  }
  const parsed = parseFluxRevision(value);
  const digest = `${parsed.algorithm}:${parsed.sha}`;
  if (
    !parsed.sha ||
    !/^(sha1:[0-9a-f]{40}|sha256:[0-9a-f]{64})$/.test(digest) ||
    !value.includes(':')
  ) {
    throw new InputValidationError(
      field,
      `must be <branch>@sha1:<commit sha> as flux:push-manifests outputs it (got "${value}")`,
    );
  }
  checkBranch(parsed.ref);
  return `${branch}@${digest}`;
}
