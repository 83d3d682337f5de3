import type {
  FluxComponentStatus,
  FluxSourceStatus,
  FluxSyncStatus,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeClient, KubeObject, KubeObjectRef } from '../kube/types';

interface KubeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

/** The CRD whose labels say whether and how Flux is installed (as `flux check` reads them). */
export const FLUX_SOURCE_CRD = 'gitrepositories.source.toolkit.fluxcd.io';

const versions = (group: string) => [`${group}/v1`, `${group}/v1beta2`];

/** API versions of each Flux kind, the stable one first. */
export const FLUX_API_VERSIONS: Record<string, string[]> = {
  GitRepository: versions('source.toolkit.fluxcd.io'),
  OCIRepository: versions('source.toolkit.fluxcd.io'),
  Bucket: versions('source.toolkit.fluxcd.io'),
  Kustomization: versions('kustomize.toolkit.fluxcd.io'),
};

/** A Flux object in the first API version the cluster serves it in. */
export async function getFluxObject(
  client: KubeClient,
  ref: Omit<KubeObjectRef, 'apiVersion'>,
  opts: { signal?: AbortSignal; metadataOnly?: boolean },
): Promise<KubeObject | undefined> {
  for (const apiVersion of FLUX_API_VERSIONS[ref.kind] ?? []) {
    const obj = await client.get({ ...ref, apiVersion }, opts);
    if (obj) return obj;
  }
  return undefined;
}

/** `value` when it is a plain object, else `{}`. */
export function record(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** `value` when it is a non-empty string. */
export function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

const num = (value: unknown) => (typeof value === 'number' ? value : undefined);

export function conditionOf(
  obj: KubeObject | undefined,
  type: string,
): KubeCondition | undefined {
  const conditions = record(obj?.status).conditions;
  return Array.isArray(conditions)
    ? conditions.find(c => record(c).type === type)
    : undefined;
}

/** True / False from the Ready condition; null when it is missing or Unknown. */
export function readyOf(obj: KubeObject | undefined): boolean | null {
  const status = conditionOf(obj, 'Ready')?.status;
  if (status === 'True' || status === 'False') return status === 'True';
  return null;
}

/** The controller saw the latest spec: `observedGeneration` (status or Ready) ≥ `generation`. */
export function generationObserved(obj: KubeObject): boolean {
  const generation = obj.metadata.generation;
  const observed =
    num(record(obj.status).observedGeneration) ??
    num(conditionOf(obj, 'Ready')?.observedGeneration);
  if (typeof generation !== 'number') return true;
  return observed !== undefined && observed >= generation;
}

/** Ready=False for a reason of its own, not while waiting (`DependencyNotReady`, `Progressing`). */
export function isFailing(obj: KubeObject | undefined): boolean {
  const ready = conditionOf(obj, 'Ready');
  return (
    ready?.status === 'False' &&
    !['DependencyNotReady', 'Progressing'].includes(ready.reason ?? '')
  );
}

/**
 * A Kustomization's `ArtifactFailed` that only says its source had no artifact yet (common during
 * a bootstrap; kustomize-controller retries): it waits, it does not fail.
 */
export function waitsForSourceArtifact(
  kustomization: KubeObject | undefined,
  source: KubeObject | undefined,
): boolean {
  const ready = conditionOf(kustomization, 'Ready');
  if (ready?.status !== 'False' || ready.reason !== 'ArtifactFailed' || !source)
    return false;
  const hasArtifact = !!str(record(record(source.status).artifact).revision);
  return (
    !hasArtifact ||
    readyOf(source) !== true ||
    /artifact not found/i.test(ready.message ?? '')
  );
}

/** A URL fit to show: no password; for HTTP(S) no user name either (often a token). */
export function displayUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.password = '';
    if (/^https?:$/.test(parsed.protocol)) parsed.username = '';
    return parsed.toString();
  } catch {
    // Not a URL we can parse: drop anything that looks like user info.
    return url.replace(/\/\/[^/@\s]*@/, '//');
  }
}

/** The branch of a GitRepository `spec.ref` (`branch`, or `name: refs/heads/<b>`). */
function branchOf(ref: unknown): string | undefined {
  const { branch, name } = record(ref);
  return str(branch) ?? str(name)?.match(/^refs\/heads\/(.+)$/)?.[1];
}

type Clean = (text: string | undefined) => string | undefined;

/** What a status reports of every Flux object. */
function objectFacts(obj: KubeObject, clean: Clean) {
  return {
    name: obj.metadata.name,
    namespace: obj.metadata.namespace ?? '',
    ready: readyOf(obj),
    suspended: record(obj.spec).suspend === true,
    message: clean(str(conditionOf(obj, 'Ready')?.message)),
  };
}

/** A source (GitRepository, OCIRepository, Bucket) as the status reports it. */
export function sourceStatusOf(
  obj: KubeObject,
  clean: Clean,
): FluxSourceStatus {
  const spec = record(obj.spec);
  return {
    kind: obj.kind,
    ...objectFacts(obj, clean),
    url: clean(displayUrl(str(spec.url) ?? str(spec.endpoint))),
    branch: branchOf(spec.ref),
    revision: str(record(record(obj.status).artifact).revision),
  };
}

/** The sync Kustomization as the status reports it. */
export function syncStatusOf(obj: KubeObject, clean: Clean): FluxSyncStatus {
  const status = record(obj.status);
  return {
    ...objectFacts(obj, clean),
    path: str(record(obj.spec).path),
    lastAppliedRevision: str(status.lastAppliedRevision),
    lastAttemptedRevision: str(status.lastAttemptedRevision),
    lastTransitionTime: str(conditionOf(obj, 'Ready')?.lastTransitionTime),
  };
}

/** The tag of an image reference (`repo:tag` or `repo:tag@sha256:…`); the digest when untagged. */
export function imageTag(image: string | undefined): string | undefined {
  if (!image) return undefined;
  const [name, digest] = image.split('@');
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(colon + 1) : digest;
}

/** A controller Deployment, judged like kstatus judges Deployments. */
export interface ComponentReading extends FluxComponentStatus {
  /** kstatus `Failed`: the rollout cannot progress on its own. */
  failed: boolean;
}

/**
 * Ready when the latest generation is observed and all replicas updated, ready and available;
 * failed on ProgressDeadlineExceeded or ReplicaFailure=True.
 */
export function deploymentStatusOf(obj: KubeObject): ComponentReading {
  const spec = record(obj.spec);
  const status = record(obj.status);
  const containers = record(record(spec.template).spec).containers;
  const image = Array.isArray(containers)
    ? str(record(containers[0]).image)
    : undefined;
  const base = { name: obj.metadata.name, image, tag: imageTag(image) };
  const notReady = (message: string, failed = false) => {
    return { ...base, ready: false, failed, message };
  };
  const failed = (message: string) => notReady(message, true);
  const progressing = conditionOf(obj, 'Progressing');
  const replicaFailure = conditionOf(obj, 'ReplicaFailure');
  const available = conditionOf(obj, 'Available');
  if (progressing?.reason === 'ProgressDeadlineExceeded')
    return failed(progressing.message ?? 'progress deadline exceeded');
  if (replicaFailure?.status === 'True')
    return failed(replicaFailure.message ?? 'replica failure');
  if (!generationObserved(obj)) {
    return notReady(
      Object.keys(status).length === 0
        ? 'not rolled out yet'
        : 'rolling out the latest change',
    );
  }
  const desired = num(spec.replicas) ?? 1;
  if (desired === 0) return { ...base, ready: true, failed: false };
  const updated = num(status.updatedReplicas) ?? 0;
  const ready = num(status.readyReplicas) ?? 0;
  const availableReplicas = num(status.availableReplicas) ?? 0;
  const total = num(status.replicas) ?? 0;
  if (available?.status === 'False')
    return notReady(available.message ?? 'Deployment is not available');
  if (updated < desired)
    return notReady(`${updated} of ${desired} replicas updated`);
  if (total > updated)
    return notReady(`${total - updated} old replicas pending termination`);
  if (availableReplicas < desired || ready < desired) {
    return notReady(
      `${Math.min(availableReplicas, ready)} of ${desired} replicas available`,
    );
  }
  return { ...base, ready: true, failed: false };
}
