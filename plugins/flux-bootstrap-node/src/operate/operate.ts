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
  FLUX_API_VERSIONS,
  generationObserved,
  readyOf,
} from '../status/fluxObjects';
import { readClusterStatus } from '../status/readClusterStatus';
import { pause } from './pause';
import { InputValidationError, OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';

/**
 * Field manager of the operate patches: `managedFields` names who changed `spec.suspend` and the
 * annotations last.
 * @public
 */
export const FLUX_OPERATE_FIELD_MANAGER = 'flux-bootstrap-operate';

/** The annotation `flux reconcile` sets; controllers echo it as `status.lastHandledReconcileAt`. @public */
export const RECONCILE_REQUESTED_AT_ANNOTATION =
  'reconcile.fluxcd.io/requestedAt';

/** The sync Kustomization and its source, as the status reader finds them. @public */
export interface FluxSyncTarget {
  /** Namespace Flux runs in. */
  namespace: string;
  sync: KubeObjectRef;
  source: KubeObjectRef;
}

/** Common options of the operate use cases. @public */
export interface FluxOperateOptions {
  /** Cluster name, for messages. */
  cluster: string;
  /** Namespace Flux runs in; detected like the status reader does when absent. */
  namespace?: string;
}

/** Collaborators of the operate use cases. @public */
export interface FluxOperateDeps {
  logger?: EngineLogger;
  signal?: AbortSignal;
  now?: () => Date;
}

/** One reconciled object after a {@link reconcileFluxSync} or {@link resumeFluxSync}. @public */
export interface FluxOperatedObject {
  kind: string;
  name: string;
  namespace: string;
  /** The controller handled the request (reconcile: `lastHandledReconcileAt` matches; resume: the new generation is observed). */
  handled: boolean;
  /** The Ready condition: true, false, or null when unknown. */
  ready: boolean | null;
  /** Artifact revision (source) or last applied revision (sync). */
  revision?: string;
  /** The Ready condition's message. */
  message?: string;
}

/**
 * A timestamp as `flux reconcile` writes it (Go's RFC3339Nano: nanoseconds, trailing zeros
 * dropped), in UTC; sub-millisecond digits from the monotonic clock so two requests within the
 * same millisecond differ.
 * @public
 */
export function fluxRequestTimestamp(now: Date = new Date()): string {
  const nanos =
    BigInt(now.getUTCMilliseconds()) * 1_000_000n +
    (process.hrtime.bigint() % 1_000_000n);
  const fraction = nanos.toString().padStart(9, '0').replace(/0+$/, '');
  return `${now.toISOString().slice(0, 19)}${fraction ? `.${fraction}` : ''}Z`;
}

function describe(ref: { kind: string; name: string; namespace?: string }) {
  return `${ref.kind} ${ref.namespace}/${ref.name}`;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Fails on kube errors with Backstage's errors (a 403 of the cluster is not the user's permission). */
function explainKubeError(error: unknown, cluster: string): unknown {
  if (isKubeApiError(error, 'forbidden', 'unauthorized')) {
    return new NotAllowedError(
      `The credentials Backstage has for cluster "${cluster}" are not allowed to do this: ${error.message}`,
    );
  }
  if (isKubeApiError(error, 'unreachable', 'server')) {
    return new ServiceUnavailableError(error.message);
  }
  return error;
}

/**
 * The sync Kustomization and its source on a cluster, found the way the status reader finds
 * them (the namespace from the FluxReport or the CRD labels, the Kustomization the FluxReport
 * names, else `<ns>/<ns>`, and its `sourceRef`), with the API versions the cluster serves.
 * Fails with a clear error when the cluster cannot be read or has no Flux sync.
 * @public
 */
export async function locateFluxSync(
  kube: KubeClient,
  options: FluxOperateOptions,
  deps: FluxOperateDeps = {},
): Promise<FluxSyncTarget> {
  const status = await readClusterStatus(kube, {
    cluster: options.cluster,
    namespace: options.namespace,
    signal: deps.signal,
    logger: deps.logger,
  });
  if (deps.signal?.aborted)
    throw new OperationAbortedError(
      `Cancelled while reading cluster ${options.cluster}`,
    );
  switch (status.state) {
    case 'unreachable':
      throw new ServiceUnavailableError(
        `Cluster "${options.cluster}" cannot be read: ${status.reason}`,
      );
    case 'forbidden':
      throw new NotAllowedError(
        `The credentials Backstage has for cluster "${options.cluster}" may not read Flux: ${status.reason}`,
      );
    case 'not-installed':
      throw new NotFoundError(
        `Flux is not installed on cluster "${options.cluster}"`,
      );
    default:
  }
  if (!status.sync || !status.source) {
    throw new NotFoundError(
      `Cluster "${options.cluster}" has no Flux sync (${
        status.sync ? 'its source' : 'the Kustomization'
      } ${
        status.flux?.namespace ?? options.namespace ?? 'flux-system'
      }/… was not found): it was not bootstrapped, or its sync has another name`,
    );
  }
  const served = async (kind: string, name: string, namespace: string) => {
    for (const apiVersion of FLUX_API_VERSIONS[kind] ?? []) {
      const obj = await kube.get(
        { apiVersion, kind, name, namespace },
        { signal: deps.signal, metadataOnly: true },
      );
      if (obj) return { apiVersion, kind, name, namespace };
    }
    throw new NotFoundError(
      `${kind} ${namespace}/${name} of cluster "${options.cluster}" is gone`,
    );
  };
  try {
    return {
      namespace: status.sync.namespace,
      sync: await served(
        'Kustomization',
        status.sync.name,
        status.sync.namespace,
      ),
      source: await served(
        status.source.kind,
        status.source.name,
        status.source.namespace,
      ),
    };
  } catch (error) {
    throw explainKubeError(error, options.cluster);
  }
}

/** The object's state after an operation. */
function operated(
  ref: KubeObjectRef,
  obj: KubeObject | undefined,
  handled: boolean,
): FluxOperatedObject {
  const status = (obj?.status ?? {}) as {
    artifact?: { revision?: unknown };
    lastAppliedRevision?: unknown;
  };
  const message = conditionOf(obj, 'Ready')?.message;
  return {
    kind: ref.kind,
    name: ref.name,
    namespace: ref.namespace ?? '',
    handled,
    ready: readyOf(obj),
    ...(str(status.artifact?.revision) ?? str(status.lastAppliedRevision)
      ? {
          revision:
            str(status.artifact?.revision) ?? str(status.lastAppliedRevision),
        }
      : {}),
    ...(message ? { message } : {}),
  };
}

interface WaitOptions {
  timeoutMs: number;
  pollIntervalMs: number;
  progressIntervalMs: number;
}

/**
 * Polls an object until `done(obj)`, logging what it waits for; the timeout returns the last
 * object read with `timedOut`.
 */
async function waitFor(
  kube: KubeClient,
  ref: KubeObjectRef,
  done: (obj: KubeObject) => boolean,
  why: (obj: KubeObject) => string,
  wait: WaitOptions,
  deps: FluxOperateDeps,
): Promise<{ obj: KubeObject | undefined; timedOut: boolean }> {
  const logger = deps.logger ?? silentLogger;
  const started = Date.now();
  let lastLog = started;
  for (;;) {
    const obj = await kube.get(ref, { signal: deps.signal });
    if (!obj) throw new NotFoundError(`${describe(ref)} was deleted meanwhile`);
    if (done(obj)) return { obj, timedOut: false };
    const waited = Date.now() - started;
    if (waited >= wait.timeoutMs) return { obj, timedOut: true };
    if (Date.now() - lastLog >= wait.progressIntervalMs) {
      lastLog = Date.now();
      logger.info(
        `Waiting for ${describe(ref)}: ${why(obj)} (${Math.round(
          waited / 1000,
        )} s so far)`,
      );
    }
    await pause(
      wait.pollIntervalMs,
      deps.signal,
      `waiting for ${describe(ref)}`,
    );
  }
}

/** Options of {@link reconcileFluxSync}. @public */
export interface ReconcileFluxSyncOptions extends FluxOperateOptions {
  /** How long to wait for each object to handle the request. Default 60 s. */
  timeoutMs?: number;
  pollIntervalMs?: number;
  progressIntervalMs?: number;
}

/** Outcome of {@link reconcileFluxSync}. @public */
export interface ReconcileFluxSyncResult {
  target: FluxSyncTarget;
  /** The `reconcile.fluxcd.io/requestedAt` value both objects were annotated with. */
  requestedAt: string;
  source: FluxOperatedObject;
  sync: FluxOperatedObject;
  /** Source and sync handled the request and are Ready. */
  ready: boolean;
  /** One sentence for people. */
  message: string;
}

/**
 * "Reconcile now", like `flux reconcile kustomization <sync> --with-source`: annotates the
 * source with `reconcile.fluxcd.io/requestedAt` (a JSON merge patch, as the flux CLI does)
 * and waits until its controller has handled it (`status.lastHandledReconcileAt` equals the
 * value), then the same for the sync Kustomization, so it applies what the source just fetched.
 * A failure the controllers report (Ready=False) is the answer, not an error; a suspended sync
 * or source is refused (ConflictError: resume it first); a request not handled within the
 * timeout fails naming what it waited for (ServiceUnavailableError: are the controllers running?).
 * Abortable through `deps.signal`.
 * @public
 */
export async function reconcileFluxSync(
  kube: KubeClient,
  options: ReconcileFluxSyncOptions,
  deps: FluxOperateDeps = {},
): Promise<ReconcileFluxSyncResult> {
  const logger = deps.logger ?? silentLogger;
  const wait: WaitOptions = {
    timeoutMs: options.timeoutMs ?? 60_000,
    pollIntervalMs: options.pollIntervalMs ?? 1_000,
    progressIntervalMs: options.progressIntervalMs ?? 5_000,
  };
  const target = await locateFluxSync(kube, options, deps);
  const requestedAt = fluxRequestTimestamp(deps.now?.());
  try {
    for (const ref of [target.source, target.sync]) {
      const obj = await kube.get(ref, { signal: deps.signal });
      if ((obj?.spec as { suspend?: unknown } | undefined)?.suspend === true) {
        throw new ConflictError(
          `${describe(ref)} of cluster "${
            options.cluster
          }" is suspended: resume it before reconciling`,
        );
      }
    }
    const results: FluxOperatedObject[] = [];
    for (const ref of [target.source, target.sync]) {
      logger.info(
        `Requesting a reconcile of ${describe(
          ref,
        )} (${RECONCILE_REQUESTED_AT_ANNOTATION}: ${requestedAt})`,
      );
      const patched = await kube.patch(
        ref,
        {
          metadata: {
            annotations: { [RECONCILE_REQUESTED_AT_ANNOTATION]: requestedAt },
          },
        },
        { fieldManager: FLUX_OPERATE_FIELD_MANAGER, signal: deps.signal },
      );
      if (!patched)
        throw new NotFoundError(`${describe(ref)} was deleted meanwhile`);
      const handledAt = (o: KubeObject | undefined) =>
        (o?.status as { lastHandledReconcileAt?: unknown } | undefined)
          ?.lastHandledReconcileAt;
      const { obj, timedOut } = await waitFor(
        kube,
        ref,
        o =>
          handledAt(o) === requestedAt &&
          generationObserved(o) &&
          readyOf(o) !== null,
        o =>
          handledAt(o) === requestedAt
            ? `handled, not ready yet (${
                conditionOf(o, 'Ready')?.message ?? 'no Ready condition'
              })`
            : `the controller has not handled the request yet (lastHandledReconcileAt: ${
                handledAt(o) ?? 'none'
              })`,
        wait,
        deps,
      );
      if (timedOut) {
        throw new ServiceUnavailableError(
          `${describe(ref)} of cluster "${
            options.cluster
          }" has not handled the reconcile request of ${requestedAt} within ${Math.round(
            wait.timeoutMs / 1000,
          )} s (its lastHandledReconcileAt is ${
            handledAt(obj) ?? 'not set'
          }): are Flux's controllers running? The request stays on the object; the controller handles it when it runs.`,
        );
      }
      const result = operated(ref, obj, true);
      results.push(result);
      logger.info(
        `${describe(ref)} handled the reconcile request: ${
          result.ready ? 'Ready' : 'not Ready'
        }${result.revision ? `, revision ${result.revision}` : ''}${
          result.message ? ` (${result.message})` : ''
        }`,
      );
      if (result.ready === false) break; // the sync would only apply the old artifact again
    }
    const [source, sync] = results;
    const syncResult = sync ?? operated(target.sync, undefined, false);
    const ready = source.ready === true && syncResult.ready === true;
    let message: string;
    if (ready) {
      message = `Reconciled: ${describe(target.source)} and ${describe(
        target.sync,
      )} handled the request${
        syncResult.revision ? `; applied revision ${syncResult.revision}` : ''
      }`;
    } else {
      const failed = source.ready === false ? source : syncResult;
      message = `${describe(failed)} handled the request but failed: ${
        failed.message ?? 'Ready=False'
      }`;
    }
    return { target, requestedAt, source, sync: syncResult, ready, message };
  } catch (error) {
    throw explainKubeError(error, options.cluster);
  }
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

const MAX_REASON = 1024;

/** A reason as stored in an annotation: trimmed, one paragraph, bounded; throws naming `reason`. @public */
export function validateOperateReason(
  value: unknown,
  required: boolean,
): string | undefined {
  if (value === undefined || value === null || value === '') {
    if (required)
      throw new InputValidationError(
        'reason',
        'is required: say why the sync is suspended (it is recorded with your name)',
      );
    return undefined;
  }
  if (typeof value !== 'string')
    throw new InputValidationError('reason', 'must be a string');
  const reason = value.trim();
  if (!reason) {
    if (required)
      throw new InputValidationError(
        'reason',
        'is required: say why the sync is suspended (it is recorded with your name)',
      );
    return undefined;
  }
  if (reason.length > MAX_REASON)
    throw new InputValidationError(
      'reason',
      `is longer than ${MAX_REASON} characters`,
    );
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(reason))
    throw new InputValidationError(
      'reason',
      'must not contain control characters',
    );
  return reason;
}

async function setSuspend(
  kube: KubeClient,
  suspend: boolean,
  options: SuspendFluxSyncOptions,
  deps: FluxOperateDeps,
): Promise<{ target: FluxSyncTarget; before: boolean; after: KubeObject }> {
  const reason = validateOperateReason(options.reason, suspend);
  const target = await locateFluxSync(kube, options, deps);
  try {
    const current = await kube.get(target.sync, { signal: deps.signal });
    if (!current)
      throw new NotFoundError(`${describe(target.sync)} was deleted meanwhile`);
    const before =
      (current.spec as { suspend?: unknown } | undefined)?.suspend === true;
    const at = (deps.now?.() ?? new Date()).toISOString();
    const annotations = suspend
      ? {
          [FLUX_SUSPENDED_REASON_ANNOTATION]: reason,
          [FLUX_SUSPENDED_BY_ANNOTATION]: options.actor,
          [FLUX_SUSPENDED_AT_ANNOTATION]: at,
          [FLUX_RESUMED_REASON_ANNOTATION]: null,
          [FLUX_RESUMED_BY_ANNOTATION]: null,
          [FLUX_RESUMED_AT_ANNOTATION]: null,
        }
      : {
          [FLUX_SUSPENDED_REASON_ANNOTATION]: null,
          [FLUX_SUSPENDED_BY_ANNOTATION]: null,
          [FLUX_SUSPENDED_AT_ANNOTATION]: null,
          [FLUX_RESUMED_REASON_ANNOTATION]: reason ?? null,
          [FLUX_RESUMED_BY_ANNOTATION]: options.actor,
          [FLUX_RESUMED_AT_ANNOTATION]: at,
        };
    const after = await kube.patch(
      target.sync,
      { metadata: { annotations }, spec: { suspend } },
      { fieldManager: FLUX_OPERATE_FIELD_MANAGER, signal: deps.signal },
    );
    if (!after)
      throw new NotFoundError(`${describe(target.sync)} was deleted meanwhile`);
    return { target, before, after };
  } catch (error) {
    throw explainKubeError(error, options.cluster);
  }
}

/**
 * Suspends the cluster's sync like `flux suspend kustomization <sync>`: `spec.suspend: true` on
 * the sync Kustomization (a JSON merge patch, as the flux CLI does), with the reason, the actor
 * and the time as annotations ({@link FLUX_SUSPENDED_REASON_ANNOTATION} …). Flux then applies
 * nothing from Git to the cluster until it is resumed. Suspending a suspended sync updates the
 * reason and actor. The reason is required (InputValidationError naming `reason`, before any
 * request).
 * @public
 */
export async function suspendFluxSync(
  kube: KubeClient,
  options: SuspendFluxSyncOptions,
  deps: FluxOperateDeps = {},
): Promise<SuspendFluxSyncResult> {
  const { target, before } = await setSuspend(kube, true, options, deps);
  const message = before
    ? `${describe(
        target.sync,
      )} was suspended already; the reason is now "${options.reason?.trim()}" (${
        options.actor
      })`
    : `Suspended ${describe(
        target.sync,
      )}: Flux applies nothing from Git until it is resumed`;
  (deps.logger ?? silentLogger).info(
    `${message}; reason: ${options.reason?.trim()}; by ${options.actor}`,
  );
  return { target, suspended: true, changed: !before, message };
}

/**
 * Resumes the cluster's sync like `flux resume kustomization <sync>`: `spec.suspend: false`
 * (the suspension annotations replaced by who resumed it, when and why), then waits — like the
 * flux CLI for one object — until kustomize-controller has observed the new generation and
 * reports Ready. Not reconciled within the timeout is not an error: the resume is done and the
 * message says Flux has not reconciled yet.
 * @public
 */
export async function resumeFluxSync(
  kube: KubeClient,
  options: SuspendFluxSyncOptions & {
    timeoutMs?: number;
    pollIntervalMs?: number;
    progressIntervalMs?: number;
  },
  deps: FluxOperateDeps = {},
): Promise<SuspendFluxSyncResult> {
  const logger = deps.logger ?? silentLogger;
  const { target, before } = await setSuspend(kube, false, options, deps);
  logger.info(
    `${before ? 'Resumed' : 'Resume requested for'} ${describe(
      target.sync,
    )} by ${options.actor}${
      options.reason?.trim() ? `; reason: ${options.reason.trim()}` : ''
    }`,
  );
  let sync: FluxOperatedObject | undefined;
  try {
    const { obj, timedOut } = await waitFor(
      kube,
      target.sync,
      o => generationObserved(o) && readyOf(o) !== null,
      o =>
        generationObserved(o)
          ? `not ready yet (${
              conditionOf(o, 'Ready')?.message ?? 'no Ready condition'
            })`
          : 'kustomize-controller has not observed the change yet',
      {
        timeoutMs: options.timeoutMs ?? 30_000,
        pollIntervalMs: options.pollIntervalMs ?? 1_000,
        progressIntervalMs: options.progressIntervalMs ?? 5_000,
      },
      deps,
    );
    sync = operated(target.sync, obj, !timedOut);
  } catch (error) {
    throw explainKubeError(error, options.cluster);
  }
  let message: string;
  if (!before) message = `${describe(target.sync)} was not suspended`;
  else if (!sync.handled)
    message = `Resumed ${describe(
      target.sync,
    )}; Flux has not reconciled it yet (is kustomize-controller running?)`;
  else if (sync.ready)
    message = `Resumed ${describe(target.sync)}; Flux reconciled it${
      sync.revision ? ` and applied revision ${sync.revision}` : ''
    }`;
  else
    message = `Resumed ${describe(target.sync)}; its reconcile failed: ${
      sync.message ?? 'Ready=False'
    }`;
  return { target, suspended: false, changed: before, sync, message };
}
