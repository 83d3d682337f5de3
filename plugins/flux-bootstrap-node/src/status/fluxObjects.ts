import type {
  FluxComponentStatus,
  FluxSourceStatus,
  FluxSyncStatus,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeObject } from '../kube/types';

/** A status condition as Kubernetes and Flux write them. */
export interface KubeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

/** The CRD whose labels tell whether and how Flux is installed (as `flux check` reads them). */
export const FLUX_SOURCE_CRD = 'gitrepositories.source.toolkit.fluxcd.io';

/** API versions tried in order for each Flux kind: the stable one first, then older ones. */
export const FLUX_API_VERSIONS: Record<string, string[]> = {
  GitRepository: [
    'source.toolkit.fluxcd.io/v1',
    'source.toolkit.fluxcd.io/v1beta2',
  ],
  OCIRepository: [
    'source.toolkit.fluxcd.io/v1',
    'source.toolkit.fluxcd.io/v1beta2',
  ],
  Bucket: ['source.toolkit.fluxcd.io/v1', 'source.toolkit.fluxcd.io/v1beta2'],
  Kustomization: [
    'kustomize.toolkit.fluxcd.io/v1',
    'kustomize.toolkit.fluxcd.io/v1beta2',
  ],
};

/** Reasons of Ready=False that mean "waiting for something else", not a failure of its own. */
const TRANSIENT_NOT_READY_REASONS = new Set([
  'DependencyNotReady',
  'Progressing',
]);

function record(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function conditionsOf(obj: KubeObject | undefined): KubeCondition[] {
  const conditions = record(obj?.status).conditions;
  if (!Array.isArray(conditions)) return [];
  return conditions.filter(
    (c): c is KubeCondition =>
      !!c &&
      typeof c === 'object' &&
      typeof (c as KubeCondition).type === 'string',
  );
}

export function conditionOf(
  obj: KubeObject | undefined,
  type: string,
): KubeCondition | undefined {
  return conditionsOf(obj).find(c => c.type === type);
}

/** True / False from the Ready condition; null when it is missing or Unknown. */
export function readyOf(obj: KubeObject | undefined): boolean | null {
  const ready = conditionOf(obj, 'Ready');
  if (ready?.status === 'True') return true;
  if (ready?.status === 'False') return false;
  return null;
}

/**
 * Whether the controller has seen the object's latest spec: `status.observedGeneration` (or the
 * Ready condition's) is at least `metadata.generation`.
 */
export function generationObserved(obj: KubeObject): boolean {
  const generation = obj.metadata.generation;
  if (typeof generation !== 'number') return true;
  const observed = record(obj.status).observedGeneration;
  if (typeof observed === 'number') return observed >= generation;
  const ready = conditionOf(obj, 'Ready');
  if (typeof ready?.observedGeneration === 'number') {
    return ready.observedGeneration >= generation;
  }
  return false;
}

/** True when Ready=False for a reason of its own (not just waiting for a dependency). */
export function isFailing(obj: KubeObject | undefined): boolean {
  const ready = conditionOf(obj, 'Ready');
  if (ready?.status !== 'False') return false;
  if (ready.reason && TRANSIENT_NOT_READY_REASONS.has(ready.reason))
    return false;
  // A Stalled=True condition is Flux's own "gave up until the spec changes".
  return true;
}

/**
 * True when a Kustomization's Ready=False only says its source had no artifact when it last ran
 * (reason `ArtifactFailed`, as kustomize-controller reports a Kustomization reconciled before its
 * GitRepository fetched anything — common for a moment during a bootstrap): it is waiting for
 * the source, not failing. That holds while the source is not ready or has no artifact yet, and
 * also when the source has one by now but the Kustomization still shows "artifact not found"
 * (kustomize-controller retries once the source has an artifact). Any other `ArtifactFailed` —
 * e.g. the artifact could not be downloaded although the source has one — is a failure, and so
 * is a missing source object (`Source '…' not found`).
 */
export function waitsForSourceArtifact(
  kustomization: KubeObject | undefined,
  source: KubeObject | undefined,
): boolean {
  const ready = conditionOf(kustomization, 'Ready');
  if (ready?.status !== 'False' || ready.reason !== 'ArtifactFailed') {
    return false;
  }
  if (!source) return false;
  const hasArtifact = !!str(record(record(source.status).artifact).revision);
  if (!hasArtifact || readyOf(source) !== true) return true;
  return /artifact not found/i.test(ready.message ?? '');
}

/**
 * A URL fit to show: no password ever; for HTTP(S) no user name either, because tokens are
 * commonly passed as the user name (`https://<token>@host/…`).
 */
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
export function branchOf(ref: unknown): string | undefined {
  const r = record(ref);
  const branch = str(r.branch);
  if (branch) return branch;
  const name = str(r.name);
  if (name?.startsWith('refs/heads/')) return name.slice('refs/heads/'.length);
  return undefined;
}

/** Facts about a source object (GitRepository, OCIRepository, Bucket). */
export function sourceStatusOf(
  obj: KubeObject,
  clean: (text: string | undefined) => string | undefined,
): FluxSourceStatus {
  const spec = record(obj.spec);
  const status = record(obj.status);
  const artifact = record(status.artifact);
  const ready = conditionOf(obj, 'Ready');
  return {
    kind: obj.kind,
    name: obj.metadata.name,
    namespace: obj.metadata.namespace ?? '',
    url: clean(displayUrl(str(spec.url) ?? str(spec.endpoint))),
    branch: branchOf(spec.ref),
    ready: readyOf(obj),
    suspended: spec.suspend === true,
    revision: str(artifact.revision),
    message: clean(str(ready?.message)),
  };
}

/** Facts about the sync Kustomization. */
export function syncStatusOf(
  obj: KubeObject,
  clean: (text: string | undefined) => string | undefined,
): FluxSyncStatus {
  const spec = record(obj.spec);
  const status = record(obj.status);
  const ready = conditionOf(obj, 'Ready');
  return {
    name: obj.metadata.name,
    namespace: obj.metadata.namespace ?? '',
    path: str(spec.path),
    ready: readyOf(obj),
    suspended: spec.suspend === true,
    lastAppliedRevision: str(status.lastAppliedRevision),
    lastAttemptedRevision: str(status.lastAttemptedRevision),
    lastTransitionTime: str(ready?.lastTransitionTime),
    message: clean(str(ready?.message)),
  };
}

/** The tag of an image reference (`repo:tag` or `repo:tag@sha256:…`); the digest when untagged. */
export function imageTag(image: string | undefined): string | undefined {
  if (!image) return undefined;
  const [name, digest] = image.split('@');
  const lastSlash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > lastSlash) return name.slice(colon + 1);
  return digest;
}

/** A controller Deployment, judged like kstatus judges Deployments. */
export interface ComponentReading extends FluxComponentStatus {
  /** kstatus `Failed`: the rollout cannot progress on its own. */
  failed: boolean;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

/**
 * Ready when the controller observed the latest generation, all replicas are updated, ready and
 * available and the Available condition (when present) is True. Failed when Progressing=False
 * with ProgressDeadlineExceeded, or ReplicaFailure=True.
 */
export function deploymentStatusOf(obj: KubeObject): ComponentReading {
  const spec = record(obj.spec);
  const status = record(obj.status);
  const containers = record(record(spec.template).spec).containers;
  const image = Array.isArray(containers)
    ? str(record(containers[0]).image)
    : undefined;
  const base = { name: obj.metadata.name, image, tag: imageTag(image) };
  const desired = num(spec.replicas) ?? 1;
  const progressing = conditionOf(obj, 'Progressing');
  const replicaFailure = conditionOf(obj, 'ReplicaFailure');
  const available = conditionOf(obj, 'Available');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return {
      ...base,
      ready: false,
      failed: true,
      message: progressing.message ?? 'progress deadline exceeded',
    };
  }
  if (replicaFailure?.status === 'True') {
    return {
      ...base,
      ready: false,
      failed: true,
      message: replicaFailure.message ?? 'replica failure',
    };
  }
  const notReady = (message: string): ComponentReading => ({
    ...base,
    ready: false,
    failed: false,
    message,
  });
  if (!generationObserved(obj)) {
    return notReady(
      Object.keys(status).length === 0
        ? 'not rolled out yet'
        : 'rolling out the latest change',
    );
  }
  if (desired === 0) return { ...base, ready: true, failed: false };
  const updated = num(status.updatedReplicas) ?? 0;
  const ready = num(status.readyReplicas) ?? 0;
  const availableReplicas = num(status.availableReplicas) ?? 0;
  const total = num(status.replicas) ?? 0;
  if (available?.status === 'False') {
    return notReady(available.message ?? 'Deployment is not available');
  }
  if (updated < desired) {
    return notReady(`${updated} of ${desired} replicas updated`);
  }
  if (total > updated) {
    return notReady(`${total - updated} old replicas pending termination`);
  }
  if (availableReplicas < desired || ready < desired) {
    return notReady(
      `${Math.min(availableReplicas, ready)} of ${desired} replicas available`,
    );
  }
  return { ...base, ready: true, failed: false };
}
