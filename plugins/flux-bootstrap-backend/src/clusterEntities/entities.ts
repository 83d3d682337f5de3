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
import {
  CLUSTER_ENTITY_PARAMS,
  ClusterEntityParams,
  FLEET_BRANCH_ANNOTATION,
  FLEET_PATH_ANNOTATION,
  FLEET_REPOSITORY_ANNOTATION,
  KUBERNETES_CLUSTER_ANNOTATION,
  KUBERNETES_CLUSTER_RESOURCE_TYPE,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import yaml from 'yaml';

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
    [KUBERNETES_CLUSTER_ANNOTATION]: name,
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
      type: KUBERNETES_CLUSTER_RESOURCE_TYPE,
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
  return `# Generated by Backstage (flux-bootstrap) from this location's URL.\n${yaml.stringify(
    entity,
  )}`;
}

/** Reads the parameters back from such a URL (unknown query keys are refused). */
export function clusterEntityParamsFromUrl(
  url: URL,
): Partial<ClusterEntityParams> {
  const params: Partial<ClusterEntityParams> = {};
  for (const [key, value] of url.searchParams) {
    if (!(CLUSTER_ENTITY_PARAMS as readonly string[]).includes(key)) {
      throw new InputError(`cluster entity: unknown parameter "${key}"`);
    }
    (params as Record<string, string>)[key] = value;
  }
  return params;
}
