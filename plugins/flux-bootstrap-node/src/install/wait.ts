import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseFluxRevision } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeClient, KubeObject, KubeObjectRef } from '../kube/types';
import {
  conditionOf,
  deploymentStatusOf,
  generationObserved,
  isFailing,
  readyOf,
  record,
  str,
} from '../status/fluxObjects';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { FluxInstallError } from './errors';
import type { FluxInstallPlan } from './plan';

/** One Flux controller as the install reports it. @public */
export interface FluxComponentReadiness {
  name: string;
  ready: boolean;
  image?: string;
  message?: string;
}

/** Where Flux stands on the cluster. @public */
export interface FluxReadiness {
  /** GitRepository and Kustomization reached the revision with Ready=True, and every controller is available. */
  ready: boolean;
  /** The Kustomization's last applied revision (or the attempted one while it is not applied yet). */
  revision?: string;
  components: FluxComponentReadiness[];
  pending: string[];
}

/** Options of {@link waitForFlux}. @public */
export interface WaitForFluxOptions {
  /** Whole wait budget. Default 5 min. */
  timeoutMs?: number;
  /** Poll interval. Default 2 s (as flux). */
  pollIntervalMs?: number;
  /** At most this long between two progress lines. Default 5 s. */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  logger?: EngineLogger;
}

/** `outer` bounded by `timeoutMs`; `timeout.aborted` tells a timeout from a cancel. */
export function withTimeout(timeoutMs: number, outer?: AbortSignal) {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
  setMaxListeners(64, signal); // every request in flight listens
  return { timeout, signal };
}

/** How {@link pollUntil} polls; `onMissing` sees what is missing (maybe `[]`) after each check. */
export interface PollOptions {
  pollMs: number;
  progressMs: number;
  signal: AbortSignal;
  logger: EngineLogger;
  onMissing?: (missing: string[]) => void;
}

/**
 * Runs `check` every `pollMs` until it returns something other than what is still missing (a
 * string array); logs `Waiting for <what>: <missing>` when that changes, or every `progressMs`.
 */
export async function pollUntil<T>(
  what: string,
  check: () => Promise<T | string[]>,
  poll: PollOptions,
): Promise<T> {
  let logged = '';
  let loggedAt = 0;
  for (;;) {
    const result = await check();
    poll.onMissing?.(Array.isArray(result) ? result : []);
    if (!Array.isArray(result)) return result;
    const text = result.join('; ');
    if (text !== logged || Date.now() - loggedAt >= poll.progressMs) {
      poll.logger.info(`Waiting for ${what}: ${text}`);
      logged = text;
      loggedAt = Date.now();
    }
    await sleep(poll.pollMs, undefined, { signal: poll.signal });
  }
}

/** Flux's "reconcile now" annotation; controllers echo it as `status.lastHandledReconcileAt`. */
const RECONCILE_REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';

/** Asks to reconcile `refs` now, as `flux reconcile` does; own field manager, nothing else sent. */
export async function requestReconcile(
  client: KubeClient,
  refs: KubeObjectRef[],
  requestedAt: string,
  signal?: AbortSignal,
): Promise<void> {
  for (const { name, namespace, ...type } of refs) {
    const annotations = { [RECONCILE_REQUESTED_AT]: requestedAt };
    await client.apply(
      { ...type, metadata: { name, namespace, annotations } },
      { fieldManager: 'flux-bootstrap-reconcile', force: true, signal },
    );
  }
}

/**
 * A failure reported before this run may be stale (a changed Secret leaves the generation as it
 * is). The first one asks the controllers to reconcile `refs` now; only a failure reported after
 * they handled that request is final (`sync-failed`). Else says what the object waits for.
 */
export function finalFailureCheck(
  client: KubeClient,
  refs: KubeObjectRef[],
  opts: { signal: AbortSignal; logger: EngineLogger; asking: string },
) {
  let requestedAt: string | undefined;
  return async (
    obj: KubeObject | undefined,
    name: string,
    detail: string,
    title = name,
  ): Promise<string> => {
    if (!requestedAt) {
      requestedAt = new Date().toISOString();
      opts.logger.info(
        `${name} reports a failure (${detail}); it may predate this run, so ${opts.asking}`,
      );
      await requestReconcile(client, refs, requestedAt, opts.signal);
    } else if (record(obj?.status).lastHandledReconcileAt === requestedAt) {
      throw new FluxInstallError(
        'sync-failed',
        `${title} on cluster "${client.clusterName}" is not ready: ${detail}`,
        [`${name}: ${detail}`],
      );
    }
    return `${name}: ${detail} (waiting for the reconciliation requested at ${requestedAt})`;
  };
}

const plainRef = (ref: string | undefined) =>
  ref?.replace(/^refs\/heads\//, '');

/** `main@sha1:abc` matches `main@sha1:abc`, `refs/heads/main@sha1:abc` and the legacy `main/abc`. */
function revisionMatches(actual: string | undefined, expected: string) {
  if (!actual) return false;
  const a = parseFluxRevision(actual);
  const e = parseFluxRevision(expected);
  if (!e.sha) return actual === expected;
  return (
    a.sha === e.sha && (!e.ref || !a.ref || plainRef(a.ref) === plainRef(e.ref))
  );
}

type Verdict =
  | { state: 'ready'; revision?: string }
  | { state: 'waiting' | 'failed' | 'suspended'; detail: string };

/** `Ready=False (Reason): message`. */
export function describeReady(obj: KubeObject | undefined): string {
  const ready = conditionOf(obj, 'Ready');
  if (!ready) return 'no Ready condition yet';
  return `Ready=${ready.status}${ready.reason ? ` (${ready.reason})` : ''}${
    ready.message ? `: ${ready.message}` : ''
  }`;
}

/** Judges a GitRepository or Kustomization like flux's `objectReconciled`. */
function judge(
  obj: KubeObject | undefined,
  revisionField: 'artifact' | 'lastAttemptedRevision',
  expected: string | undefined,
): Verdict {
  const waiting = (detail: string): Verdict => ({ state: 'waiting', detail });
  if (!obj) return waiting('not found');
  if (record(obj.spec).suspend === true)
    return { state: 'suspended', detail: 'is suspended' };
  const status = record(obj.status);
  const hasStatus = Object.keys(status).length > 0;
  // A status written for an older spec (say, the previous repository URL) says nothing about
  // this one, not even its failure: wait until the controller observed the current generation.
  if (hasStatus && !generationObserved(obj)) {
    return waiting(
      `generation ${
        obj.metadata.generation
      } not observed by its controller yet (${describeReady(obj)})`,
    );
  }
  const attempted = str(status.lastAttemptedRevision);
  if (isFailing(obj)) {
    // A Kustomization's failure is about the revision it last attempted: an older revision's
    // failure is stale while the expected one has not been attempted yet.
    if (
      revisionField === 'lastAttemptedRevision' &&
      expected &&
      attempted &&
      !revisionMatches(attempted, expected)
    ) {
      return waiting(
        `last attempt at ${attempted} failed (${describeReady(
          obj,
        )}); waiting for ${expected}`,
      );
    }
    return { state: 'failed', detail: describeReady(obj) };
  }
  if (!hasStatus) {
    return waiting(
      `not reconciled yet, no status from the ${
        revisionField === 'artifact' ? 'source' : 'kustomize'
      }-controller (is it running?)`,
    );
  }
  if (readyOf(obj) !== true) return waiting(describeReady(obj));
  const revision =
    revisionField === 'artifact'
      ? str(record(status.artifact).revision)
      : attempted;
  if (expected && !revisionMatches(revision, expected)) {
    return waiting(
      `at revision ${revision ?? '(none)'}, waiting for ${expected}`,
    );
  }
  return { state: 'ready', revision };
}

/** The GitRepository and the Kustomization `<ns>/<ns>`. */
const syncRefs = (ns: string): KubeObjectRef[] =>
  [
    ['source.toolkit.fluxcd.io/v1', 'GitRepository'],
    ['kustomize.toolkit.fluxcd.io/v1', 'Kustomization'],
  ].map(([apiVersion, kind]) => ({
    apiVersion,
    kind,
    name: ns,
    namespace: ns,
  }));

/** Reads the GitRepository and the Kustomization once and judges them. */
async function readSyncVerdicts(
  client: KubeClient,
  plan: FluxInstallPlan,
  signal?: AbortSignal,
) {
  const [gitRepository, kustomization] = await Promise.all(
    syncRefs(plan.namespace).map(ref => client.get(ref, { signal })),
  );
  const source = judge(gitRepository, 'artifact', plan.expectedRevision);
  // Without a pushed revision to wait for, the Kustomization must reach what the source has.
  const expectedSync =
    plan.expectedRevision ??
    (source.state === 'ready' ? source.revision : undefined);
  let sync = judge(kustomization, 'lastAttemptedRevision', expectedSync);
  // A Kustomization that ran before its source had an artifact (ArtifactFailed) is retried by
  // kustomize-controller once the GitRepository has one; and one whose source is not ready fails
  // for that reason (the source's condition says why).
  const retried =
    conditionOf(kustomization, 'Ready')?.reason === 'ArtifactFailed'
      ? 'kustomize-controller retries once the GitRepository has an artifact'
      : source.state !== 'ready' && 'waiting for the GitRepository';
  if (sync.state === 'failed' && retried)
    sync = { state: 'waiting', detail: `${sync.detail} (${retried})` };
  if (sync.state === 'ready' && source.state !== 'ready') {
    sync = { state: 'waiting', detail: 'waiting for the GitRepository' };
  }
  return [
    { kind: 'GitRepository', verdict: source, obj: gitRepository },
    { kind: 'Kustomization', verdict: sync, obj: kustomization },
  ] as const;
}

type ComponentReading = FluxComponentReadiness & { failed: boolean };

/** Reads every controller Deployment once. */
async function readComponents(
  client: KubeClient,
  plan: FluxInstallPlan,
  signal?: AbortSignal,
): Promise<ComponentReading[]> {
  return Promise.all(
    plan.components.map(async name => {
      const deployment = await client.get(
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name,
          namespace: plan.namespace,
        },
        { signal },
      );
      const d = deployment
        ? deploymentStatusOf(deployment)
        : { ready: false, failed: false, message: 'Deployment not found' };
      return {
        name,
        ready: d.ready,
        failed: d.failed,
        image: 'image' in d ? d.image : undefined,
        message: d.ready ? undefined : d.message,
      };
    }),
  );
}

const componentsPending = (ns: string, components: ComponentReading[]) =>
  components
    .filter(c => !c.ready)
    .map(c => `Deployment ${ns}/${c.name}: ${c.message ?? 'not ready'}`);

function revisionOf(kustomization: KubeObject | undefined) {
  const status = record(kustomization?.status);
  return str(status.lastAppliedRevision) ?? str(status.lastAttemptedRevision);
}

const readiness = (
  kustomization: KubeObject | undefined,
  components: ComponentReading[],
  pending: string[],
): FluxReadiness => ({
  ready: pending.length === 0,
  revision: revisionOf(kustomization),
  components: components.map(({ failed: _failed, ...c }) => c),
  pending,
});

/** Reads where Flux stands without waiting. @public */
export async function readFluxReadiness(
  client: KubeClient,
  plan: FluxInstallPlan,
  signal?: AbortSignal,
): Promise<FluxReadiness> {
  const ns = plan.namespace;
  const [sync, components] = await Promise.all([
    readSyncVerdicts(client, plan, signal),
    readComponents(client, plan, signal),
  ]);
  const pending = [
    ...sync.flatMap(({ kind, verdict: v }) =>
      v.state === 'ready' ? [] : [`${kind} ${ns}/${ns}: ${v.detail}`],
    ),
    ...componentsPending(ns, components),
  ];
  return readiness(sync[1].obj, components, pending);
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60
    ? `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`
    : `${s}s`;
}

/**
 * Waits, as `flux bootstrap` does, until the GitRepository's artifact and the Kustomization's last
 * attempted revision are the expected one with Ready=True for the current generation, then until
 * every controller is available. Fails at once on a final Ready=False or a suspended object.
 * @public
 */
export async function waitForFlux(
  client: KubeClient,
  plan: FluxInstallPlan,
  opts: WaitForFluxOptions = {},
): Promise<FluxReadiness> {
  const logger = opts.logger ?? silentLogger;
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const ns = plan.namespace;
  const cluster = client.clusterName;
  const { timeout, signal } = withTimeout(timeoutMs, opts.signal);
  let pending: string[] = ['nothing read yet'];
  const poll: PollOptions = {
    pollMs: opts.pollIntervalMs ?? 2_000,
    progressMs: opts.progressIntervalMs ?? 5_000,
    signal,
    logger,
    onMissing: missing => (pending = missing),
  };
  const what = `Flux on cluster "${cluster}"`;
  const failure = finalFailureCheck(client, syncRefs(ns), {
    signal,
    logger,
    asking: `Flux is asked to reconcile now (${RECONCILE_REQUESTED_AT}) before it counts`,
  });
  try {
    logger.info(
      `Waiting for GitRepository and Kustomization ${ns}/${ns} to be reconciled${
        plan.expectedRevision ? ` at ${plan.expectedRevision}` : ''
      }`,
    );
    const kustomization = await pollUntil(
      what,
      async () => {
        const objects = await readSyncVerdicts(client, plan, signal);
        const missing: string[] = [];
        for (const { kind, verdict: v, obj } of objects) {
          const name = `${kind} ${ns}/${ns}`;
          if (v.state === 'suspended') {
            throw new FluxInstallError(
              'suspended',
              `${kind} '${ns}/${ns}' on cluster "${cluster}" is suspended; resume it (spec.suspend: false) and run again`,
            );
          }
          if (v.state === 'failed')
            missing.push(
              await failure(obj, name, v.detail, `${kind} '${ns}/${ns}'`),
            );
          else if (v.state === 'waiting') missing.push(`${name}: ${v.detail}`);
        }
        return missing.length ? missing : objects[1].obj;
      },
      poll,
    );
    logger.info(
      `Flux on cluster "${cluster}" synced ${
        revisionOf(kustomization) ?? 'the branch'
      }; waiting for the controllers`,
    );
    const { read: components } = await pollUntil(
      what,
      async () => {
        const read = await readComponents(client, plan, signal);
        const failed = read.filter(c => c.failed);
        if (failed.length) {
          throw new FluxInstallError(
            'component-failed',
            `Flux controllers on cluster "${cluster}" cannot become available: ${failed
              .map(c => `${c.name}: ${c.message}`)
              .join('; ')}`,
            failed.map(c => `Deployment ${ns}/${c.name}: ${c.message}`),
          );
        }
        const missing = componentsPending(ns, read);
        return missing.length ? missing : { read };
      },
      poll,
    );
    for (const c of components)
      logger.info(`✔ ${c.name}: deployment ready (${c.image ?? 'no image'})`);
    return readiness(kustomization, components, []);
  } catch (e) {
    if (e instanceof FluxInstallError) throw e;
    if (timeout.aborted) {
      throw new FluxInstallError(
        'timeout',
        `Flux on cluster "${cluster}" was not ready after ${formatDuration(
          timeoutMs,
        )}; still missing: ${pending.join('; ')}`,
        pending,
      );
    }
    if (opts.signal?.aborted) {
      throw new OperationAbortedError(
        `Cancelled while waiting for Flux on cluster "${cluster}" (still missing: ${pending.join(
          '; ',
        )})`,
      );
    }
    throw e;
  }
}
