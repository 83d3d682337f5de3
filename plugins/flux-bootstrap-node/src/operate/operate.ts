import {
  ConflictError,
  NotAllowedError,
  NotFoundError,
  ServiceUnavailableError,
} from '@backstage/errors';
import {
  FLUX_RESUMED_AT_ANNOTATION,
  FLUX_RESUMED_BY_ANNOTATION,
  FLUX_RESUMED_REASON_ANNOTATION,
  FLUX_SUSPENDED_AT_ANNOTATION,
  FLUX_SUSPENDED_BY_ANNOTATION,
  FLUX_SUSPENDED_REASON_ANNOTATION,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { isKubeApiError } from '../kube/errors';
import type { KubeClient, KubeObject, KubeObjectRef } from '../kube/types';
import {
  conditionOf,
  generationObserved,
  getFluxObject,
  readyOf,
  record,
  str,
} from '../status/fluxObjects';
import { readClusterStatus } from '../status/readClusterStatus';
import { InputValidationError, throwIfAborted } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { pollUntil } from './poll';

const FIELD_MANAGER = 'flux-bootstrap-operate';
/** Set by `flux reconcile`; the controllers echo it as `status.lastHandledReconcileAt`. */
const REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';
const MAX_REASON = 1024;

/** The sync Kustomization and its source, as the status reader finds them. @public */
export interface FluxSyncTarget {
  /** Namespace Flux runs in. */
  namespace: string;
  sync: KubeObjectRef;
  source: KubeObjectRef;
}

/** Common options of the operate use cases. @public */
export interface FluxOperateOptions {
  cluster: string;
  /** Namespace Flux runs in; detected like the status reader does when absent. */
  namespace?: string;
}

/** How long and how often the operate use cases wait for Flux. @public */
export interface FluxOperateWait {
  timeoutMs?: number;
  pollIntervalMs?: number;
  progressIntervalMs?: number;
}

/** Collaborators of the operate use cases. @public */
export interface FluxOperateDeps {
  logger?: EngineLogger;
  signal?: AbortSignal;
  now?: () => Date;
}

/** One object after a {@link reconcileFluxSync} or {@link resumeFluxSync}. @public */
export interface FluxOperatedObject {
  kind: string;
  name: string;
  namespace: string;
  /** The controller handled the request (reconcile: `lastHandledReconcileAt` matches; resume: the new generation is observed). */
  handled: boolean;
  /** The Ready condition; null when unknown. */
  ready: boolean | null;
  /** Artifact revision (source) or last applied revision (sync). */
  revision?: string;
  message?: string;
}

/** Options of {@link reconcileFluxSync}; it waits 60 s for each object by default. @public */
export interface ReconcileFluxSyncOptions
  extends FluxOperateOptions,
    FluxOperateWait {}

/** Outcome of {@link reconcileFluxSync}. @public */
export interface ReconcileFluxSyncResult {
  target: FluxSyncTarget;
  /** The `reconcile.fluxcd.io/requestedAt` value both objects were annotated with. */
  requestedAt: string;
  source: FluxOperatedObject;
  sync: FluxOperatedObject;
  /** Source and sync handled the request and are Ready. */
  ready: boolean;
  message: string;
}

/** Options of {@link suspendFluxSync} and {@link resumeFluxSync}. @public */
export interface SuspendFluxSyncOptions extends FluxOperateOptions {
  /** Why; required to suspend, optional to resume. Stored on the Kustomization. */
  reason?: string;
  /** Who, as an entity ref (`user:default/alice`); stored on the Kustomization. */
  actor: string;
}

/** Outcome of {@link suspendFluxSync} and {@link resumeFluxSync}. @public */
export interface SuspendFluxSyncResult {
  target: FluxSyncTarget;
  /** `spec.suspend` after the operation. */
  suspended: boolean;
  /** `spec.suspend` changed (false when it already had that value). */
  changed: boolean;
  /** After a resume: the sync as Flux reconciled it (its new generation observed), when it did in time. */
  sync?: FluxOperatedObject;
  message: string;
}

/**
 * A timestamp as `flux reconcile` writes it (Go's RFC3339Nano, UTC); sub-millisecond digits from
 * the monotonic clock so two requests within the same millisecond differ.
 * @public
 */
export function fluxRequestTimestamp(now: Date = new Date()): string {
  const nanos =
    BigInt(now.getUTCMilliseconds()) * 1_000_000n +
    (process.hrtime.bigint() % 1_000_000n);
  const fraction = nanos.toString().padStart(9, '0').replace(/0+$/, '');
  return `${now.toISOString().slice(0, 19)}${fraction ? `.${fraction}` : ''}Z`;
}

/** A reason as stored in an annotation: trimmed, one paragraph, bounded; throws naming `reason`. @public */
export function validateOperateReason(
  value: unknown,
  required: boolean,
): string | undefined {
  const invalid = (message: string) =>
    new InputValidationError('reason', message);
  if (typeof value !== 'string' && value !== undefined && value !== null)
    throw invalid('must be a string');
  const reason = typeof value === 'string' ? value.trim() : '';
  if (!reason && required)
    throw invalid(
      'is required: say why the sync is suspended (it is recorded with your name)',
    );
  if (reason.length > MAX_REASON)
    throw invalid(`is longer than ${MAX_REASON} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(reason))
    throw invalid('must not contain control characters');
  return reason || undefined;
}

const describe = (ref: { kind: string; name: string; namespace?: string }) =>
  `${ref.kind} ${ref.namespace}/${ref.name}`;
const named = ({ kind, name, namespace = '' }: KubeObjectRef) => ({
  kind,
  name,
  namespace,
});
const gone = (ref: KubeObjectRef) =>
  new NotFoundError(`${describe(ref)} was deleted meanwhile`);

/** Backstage's errors for the cluster's (a 403 of the cluster is not the user's permission). */
async function onCluster<T>(cluster: string, run: () => Promise<T>) {
  try {
    return await run();
  } catch (error) {
    if (isKubeApiError(error, 'forbidden', 'unauthorized'))
      throw new NotAllowedError(
        `The credentials Backstage has for cluster "${cluster}" are not allowed to do this: ${error.message}`,
      );
    if (isKubeApiError(error, 'unreachable', 'server'))
      throw new ServiceUnavailableError(error.message);
    throw error;
  }
}

/** The sync and its source as the status reader finds them (served API versions, suspended). */
async function locateFluxSync(
  kube: KubeClient,
  { cluster, namespace }: FluxOperateOptions,
  { signal, logger }: FluxOperateDeps,
) {
  const status = await readClusterStatus(kube, {
    cluster,
    namespace,
    signal,
    logger,
  });
  throwIfAborted(signal, `reading cluster ${cluster}`);
  const { state, reason, sync, source } = status;
  if (state === 'unreachable')
    throw new ServiceUnavailableError(
      `Cluster "${cluster}" cannot be read: ${reason}`,
    );
  if (state === 'forbidden')
    throw new NotAllowedError(
      `The credentials Backstage has for cluster "${cluster}" may not read Flux: ${reason}`,
    );
  if (state === 'not-installed')
    throw new NotFoundError(`Flux is not installed on cluster "${cluster}"`);
  if (!sync || !source) {
    const missing = sync ? 'its source' : 'the Kustomization';
    const ns = status.flux?.namespace ?? namespace ?? 'flux-system';
    throw new NotFoundError(
      `Cluster "${cluster}" has no Flux sync (${missing} ${ns}/… was not found): it was not bootstrapped, or its sync has another name`,
    );
  }
  const served = async ({ name, namespace: ns }: typeof sync, kind: string) => {
    const ref = { kind, name, namespace: ns };
    const obj = await getFluxObject(kube, ref, { signal, metadataOnly: true });
    if (obj) return { ...ref, apiVersion: obj.apiVersion };
    throw new NotFoundError(`${describe(ref)} of cluster "${cluster}" is gone`);
  };
  const target: FluxSyncTarget = {
    namespace: sync.namespace,
    sync: await served(sync, 'Kustomization'),
    source: await served(source, source.kind),
  };
  return { target, suspended: [!!source.suspended, !!sync.suspended] };
}

/** Merge-patches an object under our field manager, as the flux CLI patches. */
async function patch(
  kube: KubeClient,
  ref: KubeObjectRef,
  body: Record<string, unknown>,
  signal?: AbortSignal,
) {
  if (!(await kube.patch(ref, body, { fieldManager: FIELD_MANAGER, signal })))
    throw gone(ref);
}

/** Polls an object until its controller `handled` a change and reports Ready either way. */
async function waitHandled(
  kube: KubeClient,
  ref: KubeObjectRef,
  handled: (obj: KubeObject) => boolean,
  notYet: (obj: KubeObject) => string,
  wait: FluxOperateWait & { timeoutMs: number },
  { signal, logger = silentLogger }: FluxOperateDeps,
): Promise<{ obj: KubeObject; result: FluxOperatedObject }> {
  const what = describe(ref);
  let obj!: KubeObject;
  const why = () => {
    const ready = conditionOf(obj, 'Ready')?.message ?? 'no Ready condition';
    return handled(obj) ? `handled, not ready yet (${ready})` : notYet(obj);
  };
  const done = await pollUntil(
    async () => {
      const read = await kube.get(ref, { signal });
      if (!read) throw gone(ref);
      obj = read;
      return handled(obj) && generationObserved(obj) && readyOf(obj) !== null;
    },
    {
      timeoutMs: wait.timeoutMs,
      pollIntervalMs: wait.pollIntervalMs ?? 1_000,
      progressIntervalMs: wait.progressIntervalMs,
      signal,
      what: `waiting for ${what}`,
      progress: ms =>
        logger.info(
          `Waiting for ${what}: ${why()} (${Math.round(ms / 1000)} s so far)`,
        ),
    },
  );
  const status = record(obj.status);
  const revision =
    str(record(status.artifact).revision) ?? str(status.lastAppliedRevision);
  const message = conditionOf(obj, 'Ready')?.message;
  const result: FluxOperatedObject = {
    ...named(ref),
    handled: done,
    ready: readyOf(obj),
  };
  if (revision) result.revision = revision;
  if (message) result.message = message;
  return { obj, result };
}

/**
 * `flux reconcile kustomization <sync> --with-source`: annotates the source, then the sync, with
 * `reconcile.fluxcd.io/requestedAt` and waits until each controller handled it. Ready=False is
 * the answer, not an error; suspended: ConflictError; not handled in time: ServiceUnavailableError.
 * @public
 */
export async function reconcileFluxSync(
  kube: KubeClient,
  options: ReconcileFluxSyncOptions,
  deps: FluxOperateDeps = {},
): Promise<ReconcileFluxSyncResult> {
  const { cluster, timeoutMs = 60_000 } = options;
  const { signal, logger = silentLogger } = deps;
  return onCluster(cluster, async () => {
    const { target, suspended } = await locateFluxSync(kube, options, deps);
    const requestedAt = fluxRequestTimestamp(deps.now?.());
    const refs = [target.source, target.sync];
    const held = refs.find((_, i) => suspended[i]);
    if (held)
      throw new ConflictError(
        `${describe(
          held,
        )} of cluster "${cluster}" is suspended: resume it before reconciling`,
      );
    const handledAt = (obj: KubeObject) =>
      record(obj.status).lastHandledReconcileAt;
    const results: FluxOperatedObject[] = [];
    for (const ref of refs) {
      const what = describe(ref);
      logger.info(
        `Requesting a reconcile of ${what} (${REQUESTED_AT}: ${requestedAt})`,
      );
      const annotations = { [REQUESTED_AT]: requestedAt };
      await patch(kube, ref, { metadata: { annotations } }, signal);
      const { obj, result } = await waitHandled(
        kube,
        ref,
        o => handledAt(o) === requestedAt,
        o =>
          `the controller has not handled the request yet (lastHandledReconcileAt: ${
            handledAt(o) ?? 'none'
          })`,
        { ...options, timeoutMs },
        deps,
      );
      if (!result.handled) {
        const seconds = Math.round(timeoutMs / 1000);
        const last = handledAt(obj) ?? 'not set';
        throw new ServiceUnavailableError(
          `${what} of cluster "${cluster}" has not handled the reconcile request of ${requestedAt} within ${seconds} s (its lastHandledReconcileAt is ${last}): are Flux's controllers running? The request stays on the object; the controller handles it when it runs.`,
        );
      }
      results.push(result);
      const { ready, revision, message } = result;
      logger.info(
        `${what} handled the reconcile request: ${
          ready ? 'Ready' : 'not Ready'
        }${revision ? `, revision ${revision}` : ''}${
          message ? ` (${message})` : ''
        }`,
      );
      if (ready === false) break; // the sync would only apply the old artifact again
    }
    const notReached: FluxOperatedObject = {
      ...named(target.sync),
      handled: false,
      ready: null,
    };
    const [source, sync = notReached] = results;
    const ready = source.ready === true && sync.ready === true;
    const failed = source.ready === false ? source : sync;
    const applied = sync.revision ? `; applied revision ${sync.revision}` : '';
    const message = ready
      ? `Reconciled: ${describe(source)} and ${describe(
          sync,
        )} handled the request${applied}`
      : `${describe(failed)} handled the request but failed: ${
          failed.message ?? 'Ready=False'
        }`;
    return { target, requestedAt, source, sync, ready, message };
  });
}

/** Why, who, when of a suspend and of a resume. */
const SUSPENDED = [
  FLUX_SUSPENDED_REASON_ANNOTATION,
  FLUX_SUSPENDED_BY_ANNOTATION,
  FLUX_SUSPENDED_AT_ANNOTATION,
];
const RESUMED = [
  FLUX_RESUMED_REASON_ANNOTATION,
  FLUX_RESUMED_BY_ANNOTATION,
  FLUX_RESUMED_AT_ANNOTATION,
];

/** Sets the sync's `spec.suspend` with why/who/when annotations; a resume waits for Flux. */
async function setSuspend(
  kube: KubeClient,
  suspend: boolean,
  options: SuspendFluxSyncOptions & FluxOperateWait,
  deps: FluxOperateDeps,
): Promise<SuspendFluxSyncResult> {
  const { actor, cluster } = options;
  const logger = deps.logger ?? silentLogger;
  const reason = validateOperateReason(options.reason, suspend);
  return onCluster(cluster, async () => {
    const located = await locateFluxSync(kube, options, deps);
    const { target } = located;
    const what = describe(target.sync);
    const before = located.suspended[1];
    const changed = before !== suspend;
    const [set, clear] = suspend ? [SUSPENDED, RESUMED] : [RESUMED, SUSPENDED];
    const at = (deps.now?.() ?? new Date()).toISOString();
    const values = [reason ?? null, actor, at];
    const annotations = Object.fromEntries([
      ...clear.map(key => [key, null]),
      ...set.map((key, i) => [key, values[i]]),
    ]);
    const body = { metadata: { annotations }, spec: { suspend } };
    await patch(kube, target.sync, body, deps.signal);
    if (suspend) {
      const message = before
        ? `${what} was suspended already; the reason is now "${reason}" (${actor})`
        : `Suspended ${what}: Flux applies nothing from Git until it is resumed`;
      logger.info(`${message}; reason: ${reason}; by ${actor}`);
      return { target, suspended: true, changed, message };
    }
    const why = reason ? `; reason: ${reason}` : '';
    const verb = before ? 'Resumed' : 'Resume requested for';
    logger.info(`${verb} ${what} by ${actor}${why}`);
    const { result: sync } = await waitHandled(
      kube,
      target.sync,
      generationObserved,
      () => 'kustomize-controller has not observed the change yet',
      { ...options, timeoutMs: options.timeoutMs ?? 30_000 },
      deps,
    );
    const applied = sync.revision
      ? ` and applied revision ${sync.revision}`
      : '';
    let message = `Resumed ${what}; its reconcile failed: ${
      sync.message ?? 'Ready=False'
    }`;
    if (!before) message = `${what} was not suspended`;
    else if (!sync.handled)
      message = `Resumed ${what}; Flux has not reconciled it yet (is kustomize-controller running?)`;
    else if (sync.ready)
      message = `Resumed ${what}; Flux reconciled it${applied}`;
    return { target, suspended: false, changed, sync, message };
  });
}

/**
 * `flux suspend kustomization <sync>`, recording reason (required), actor and time as
 * annotations; suspending again updates them.
 * @public
 */
export function suspendFluxSync(
  kube: KubeClient,
  options: SuspendFluxSyncOptions,
  deps: FluxOperateDeps = {},
): Promise<SuspendFluxSyncResult> {
  return setSuspend(kube, true, options, deps);
}

/**
 * `flux resume kustomization <sync>`, recording who and why, then waiting (default 30 s) until
 * Flux reconciled it; not reconciled in time is said in the message, not thrown.
 * @public
 */
export function resumeFluxSync(
  kube: KubeClient,
  options: SuspendFluxSyncOptions & FluxOperateWait,
  deps: FluxOperateDeps = {},
): Promise<SuspendFluxSyncResult> {
  return setSuspend(kube, false, options, deps);
}
