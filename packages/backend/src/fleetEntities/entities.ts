import {
  DefaultNamespaceEntityPolicy,
  Entity,
  EntityPolicies,
  FieldFormatEntityPolicy,
  makeValidator,
  NoForeignRootFieldsEntityPolicy,
  parseEntityRef,
  resourceEntityV1alpha1Validator,
  SchemaValidEntityPolicy,
  stringifyEntityRef,
} from '@backstage/catalog-model';
import { InputError } from '@backstage/errors';
import yaml from 'yaml';

/**
 * Path (below `backend.baseUrl`) of the cluster entity locations. A location URL carries the
 * entity in its query — an inline location: nothing is stored, and the same inputs give the same
 * URL, so registering it again is a no-op.
 */
export const CLUSTER_ENTITY_PATH = '/api/fleet-entities/v1/cluster.yaml';

/** Annotations the cluster entity carries besides Backstage's own. */
export const FLEET_REPOSITORY_ANNOTATION = 'flux-bootstrap.io/fleet-repository';
export const FLEET_BRANCH_ANNOTATION = 'flux-bootstrap.io/fleet-branch';
export const FLEET_PATH_ANNOTATION = 'flux-bootstrap.io/fleet-path';

/** What a cluster entity is made of (the template's inputs). */
export interface ClusterEntityParams {
  /** Cluster name from kubernetes.clusterLocatorMethods; also the entity name. */
  name: string;
  title?: string;
  description?: string;
  /** Owner entity ref, e.g. group:default/platform-team. */
  owner: string;
  /** The fleet repository: its browse URL (https://…) or its git URL (ssh://…). */
  repository: string;
  branch?: string;
  path?: string;
  /** Optional system entity ref the cluster belongs to. */
  system?: string;
}

const PARAM_KEYS: (keyof ClusterEntityParams)[] = [
  'name',
  'title',
  'description',
  'owner',
  'repository',
  'branch',
  'path',
  'system',
];

const policy = EntityPolicies.allOf([
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
  new SchemaValidEntityPolicy(),
]);

function requireText(
  params: Partial<ClusterEntityParams>,
  key: keyof ClusterEntityParams,
): string {
  const value = params[key]?.trim();
  if (!value) throw new InputError(`cluster entity: "${key}" is required`);
  return value;
}

function checkUrl(value: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InputError(`cluster entity: "${field}" is not a URL: ${value}`);
  }
  if (!['https:', 'http:', 'ssh:'].includes(url.protocol)) {
    throw new InputError(
      `cluster entity: "${field}" must be an https://, http:// or ssh:// URL`,
    );
  }
  if (url.password) {
    throw new InputError(
      `cluster entity: "${field}" must not contain credentials`,
    );
  }
  return url;
}

const validator = makeValidator();

function checkRef(value: string, field: string, defaultKind: string): string {
  let ref;
  try {
    ref = parseEntityRef(value, { defaultKind, defaultNamespace: 'default' });
  } catch (e) {
    throw new InputError(
      `cluster entity: "${field}" is not an entity ref: ${
        (e as Error).message
      }`,
    );
  }
  if (
    !validator.isValidKind(ref.kind) ||
    !validator.isValidNamespace(ref.namespace) ||
    !validator.isValidEntityName(ref.name)
  ) {
    throw new InputError(
      `cluster entity: "${field}" is not an entity ref like group:default/platform-team: ${value}`,
    );
  }
  return stringifyEntityRef(ref);
}

/**
 * The `Resource` (spec.type `kubernetes-cluster`) describing a bootstrapped cluster, pointing back
 * at its fleet repository. Validated like the catalog validates entities; bad input throws an
 * InputError naming the field.
 */
export async function renderClusterEntity(
  input: Partial<ClusterEntityParams>,
): Promise<Entity> {
  const name = requireText(input, 'name');
  const owner = checkRef(requireText(input, 'owner'), 'owner', 'group');
  const repository = requireText(input, 'repository');
  const repoUrl = checkUrl(repository, 'repository');
  const branch = input.branch?.trim() || undefined;
  const path = input.path?.trim().replace(/^\.\//, '') || undefined;
  const browsable = repoUrl.protocol !== 'ssh:';
  const viewUrl =
    browsable && path
      ? `${repository.replace(/\/+$/, '')}/${path
          .split('/')
          .map(encodeURIComponent)
          .join('/')}${
          branch ? `?at=${encodeURIComponent(`refs/heads/${branch}`)}` : ''
        }`
      : undefined;

  const annotations: Record<string, string> = {
    // The status backend and the card find the cluster by this name.
    'backstage.io/kubernetes-cluster': name,
    [FLEET_REPOSITORY_ANNOTATION]: repository,
  };
  if (branch) annotations[FLEET_BRANCH_ANNOTATION] = branch;
  if (path) annotations[FLEET_PATH_ANNOTATION] = path;
  if (browsable)
    annotations['backstage.io/source-location'] = `url:${repository.replace(
      /\/?$/,
      '/',
    )}`;
  if (viewUrl) annotations['backstage.io/view-url'] = viewUrl;

  const where = [path && `${path}`, branch && `branch ${branch}`]
    .filter(Boolean)
    .join(' on ');
  const entity: Entity = {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Resource',
    metadata: {
      name,
      ...(input.title?.trim() ? { title: input.title.trim() } : {}),
      description:
        input.description?.trim() ||
        `Kubernetes cluster bootstrapped with Flux; it syncs ${
          where || 'its manifests'
        } from ${repository}.`,
      annotations,
      tags: ['flux', 'kubernetes'],
      links: [
        {
          url: viewUrl ?? repository,
          title: 'Fleet repository',
        },
      ],
    },
    spec: {
      type: 'kubernetes-cluster',
      owner,
      ...(input.system?.trim()
        ? { system: checkRef(input.system, 'system', 'system') }
        : {}),
    },
  };
  try {
    const checked = await policy.enforce(entity);
    if (!checked || !(await resourceEntityV1alpha1Validator.check(checked))) {
      throw new Error('not a valid Resource');
    }
  } catch (e) {
    throw new InputError(
      `cluster entity "${name}" is invalid: ${(e as Error).message}`,
    );
  }
  return entity;
}

/** The entity as the YAML file the catalog reads. */
export async function renderClusterEntityYaml(
  input: Partial<ClusterEntityParams>,
): Promise<string> {
  const entity = await renderClusterEntity(input);
  return `# Generated by Backstage (fleet-entities) from this location's URL.\n${yaml.stringify(
    entity,
  )}`;
}

/** `<backend.baseUrl>/api/fleet-entities/v1/cluster.yaml?…` for these parameters. */
export function clusterEntityUrl(
  backendBaseUrl: string,
  params: Partial<ClusterEntityParams>,
): string {
  const url = new URL(
    `${backendBaseUrl.replace(/\/+$/, '')}${CLUSTER_ENTITY_PATH}`,
  );
  for (const key of PARAM_KEYS) {
    const value = params[key];
    if (typeof value === 'string' && value.trim() !== '')
      url.searchParams.set(key, value.trim());
  }
  return url.toString();
}

/** Reads the parameters back from such a URL (unknown query keys are refused). */
export function clusterEntityParamsFromUrl(
  url: URL,
): Partial<ClusterEntityParams> {
  const params: Partial<ClusterEntityParams> = {};
  for (const [key, value] of url.searchParams) {
    if (!(PARAM_KEYS as string[]).includes(key)) {
      throw new InputError(`cluster entity: unknown parameter "${key}"`);
    }
    (params as Record<string, string>)[key] = value;
  }
  return params;
}

/** Matches the URLs this backend renders itself. */
export function isClusterEntityUrl(url: URL, backendBaseUrl: string): boolean {
  const base = new URL(backendBaseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  return (
    url.origin === base.origin &&
    url.pathname === `${basePath}${CLUSTER_ENTITY_PATH}`
  );
}
