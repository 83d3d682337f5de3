import { parseFluxRevision } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../kube/types';
import { InputValidationError } from '../util/errors';

/**
 * Everything `installFlux` puts on a cluster, decided before any request is sent.
 * Built with {@link buildFluxInstallPlan} from the generated `gotk-components.yaml` objects and
 * `gotk-sync.yaml` (the same content flux:push-manifests commits).
 * @public
 */
export interface FluxInstallPlan {
  /** Namespace Flux runs in; also the name of the GitRepository and the Kustomization. */
  namespace: string;
  /** Flux release, e.g. `v2.9.4`. */
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

/** Parses multi-document YAML into Kubernetes objects; anything else is an error naming `field`. @public */
export function parseKubeObjects(text: string, field: string): KubeObject[] {
  const objects: KubeObject[] = [];
  const docs = parseAllDocuments(text);
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length) {
      throw new InputValidationError(
        field,
        `document ${i + 1} is not valid YAML: ${doc.errors[0].message}`,
      );
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    const o = value as Partial<KubeObject>;
    if (
      typeof o !== 'object' ||
      typeof o.apiVersion !== 'string' ||
      typeof o.kind !== 'string' ||
      !o.metadata ||
      typeof o.metadata.name !== 'string'
    ) {
      throw new InputValidationError(
        field,
        `document ${
          i + 1
        } is not a Kubernetes object (apiVersion, kind and metadata.name are required)`,
      );
    }
    objects.push(o as KubeObject);
  }
  return objects;
}

/** `clusters/prod`, `./clusters/prod/` and `./clusters/prod` are the same Kustomization path. @public */
export function normalizeSyncPath(path: string | undefined): string {
  const trimmed = (path ?? '')
    .trim()
    .replace(/^\.\/?/, '')
    .replace(/\/+$/, '');
  return `./${trimmed}`;
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
  const data: Record<string, string> = {
    username: b64(opts.username),
    password: b64(opts.password),
  };
  if (opts.caPem) data['ca.crt'] = b64(opts.caPem.trim().concat('\n'));
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: opts.name, namespace: opts.namespace },
    data,
  };
}

/**
 * Builds and checks the plan: the sync YAML must hold exactly the GitRepository and Kustomization
 * `<namespace>/<namespace>`, and every namespaced component object must live in the namespace.
 * @public
 */
export function buildFluxInstallPlan(input: {
  namespace: string;
  fluxVersion: string;
  components: string[];
  /**
   * The objects of `gotk-components.yaml` as `generateComponentObjects` returns them (no YAML
   * round trip; they are not modified).
   */
  componentObjects?: readonly KubeObject[];
  /** Or the text of `gotk-components.yaml` (parsed here). One of the two is required. */
  componentsYaml?: string;
  syncYaml: string;
  secret?: KubeObject;
  expectedRevision?: string;
}): FluxInstallPlan {
  const { namespace } = input;
  let componentObjects: KubeObject[];
  if (input.componentObjects) {
    componentObjects = [...input.componentObjects];
  } else if (input.componentsYaml !== undefined) {
    componentObjects = parseKubeObjects(
      input.componentsYaml,
      'gotk-components.yaml',
    );
  } else {
    throw new InputValidationError(
      'gotk-components.yaml',
      'is required (componentObjects or componentsYaml)',
    );
  }
  const syncObjects = parseKubeObjects(input.syncYaml, 'gotk-sync.yaml');
  const gitRepository = syncObjects.find(o => o.kind === 'GitRepository');
  const kustomization = syncObjects.find(o => o.kind === 'Kustomization');
  for (const [kind, o] of [
    ['GitRepository', gitRepository],
    ['Kustomization', kustomization],
  ] as const) {
    if (
      !o ||
      o.metadata.name !== namespace ||
      o.metadata.namespace !== namespace
    ) {
      throw new InputValidationError(
        'gotk-sync.yaml',
        `must define ${kind} ${namespace}/${namespace}`,
      );
    }
  }
  if (
    !componentObjects.some(
      o => o.kind === 'Namespace' && o.metadata.name === namespace,
    )
  ) {
    throw new InputValidationError(
      'gotk-components.yaml',
      `must define Namespace ${namespace}`,
    );
  }
  for (const component of input.components) {
    if (
      !componentObjects.some(
        o =>
          o.kind === 'Deployment' &&
          o.metadata.name === component &&
          o.metadata.namespace === namespace,
      )
    ) {
      throw new InputValidationError(
        'gotk-components.yaml',
        `has no Deployment ${namespace}/${component} for component ${component}`,
      );
    }
  }
  const path = normalizeSyncPath(
    (kustomization!.spec as { path?: string } | undefined)?.path,
  );
  return {
    namespace,
    fluxVersion: input.fluxVersion,
    components: [...input.components],
    componentObjects,
    syncObjects: [gitRepository!, kustomization!],
    secret: input.secret,
    path,
    expectedRevision: input.expectedRevision || undefined,
  };
}

/** `Kind ns/name` or `Kind name`. @internal */
export function describeObject(o: KubeObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${
    o.metadata.name
  }`;
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
 * branch, and returns it as `<branch>@sha1:<sha>`. Empty → undefined.
 *
 * With `allowPendingCommit` (dry runs only: flux:push-manifests pushed nothing, so its revision
 * has no commit) `<branch>@sha1:` is accepted too, still checked against the branch, and
 * returned as it is. Real runs stay strict.
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
  const pending = /^(?:(.+)@)?sha1:$/.exec(value);
  if (options.allowPendingCommit && pending) {
    const ref = pending[1]?.replace(/^refs\/heads\//, '');
    if (ref && ref !== branch) {
      throw new InputValidationError(
        field,
        `is a revision of branch "${ref}", but Flux is set to sync branch "${branch}"`,
      );
    }
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
  const ref = parsed.ref?.replace(/^refs\/heads\//, '');
  if (ref && ref !== branch) {
    throw new InputValidationError(
      field,
      `is a revision of branch "${ref}", but Flux is set to sync branch "${branch}"`,
    );
  }
  return `${branch}@${digest}`;
}
