import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseFluxRevision } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeClient, KubeObject } from '../kube/types';
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

function describeReady(obj: KubeObject): string {
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
  if (isFailing(obj)) {
    // A Kustomization's failure is about the revision it last attempted: an older revision's
    // failure is stale while the expected one has not been attempted yet.
    const attempted = str(status.lastAttemptedRevision);
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
      : str(status.lastAttemptedRevision);
  if (expected && !revisionMatches(revision, expected)) {
    return waiting(
      `at revision ${revision ?? '(none)'}, waiting for ${expected}`,
    );
  }
  return { state: 'ready', revision };
}

const SYNC_KINDS = [
  ['source.toolkit.fluxcd.io/v1', 'GitRepository'],
  ['kustomize.toolkit.fluxcd.io/v1', 'Kustomization'],
] as const;

/** Reads the GitRepository and the Kustomization once and judges them. */
async function readSyncVerdicts(
  client: KubeClient,
  plan: FluxInstallPlan,
  signal?: AbortSignal,
) {
  const ns = plan.namespace;
  const [gitRepository, kustomization] = await Promise.all(
    SYNC_KINDS.map(([apiVersion, kind]) =>
      client.get({ apiVersion, kind, name: ns, namespace: ns }, { signal }),
    ),
  );
  const source = judge(gitRepository, 'artifact', plan.expectedRevision);
  // Without a pushed revision to wait for, the Kustomization must reach what the source has.
  const expectedSync =
    plan.expectedRevision ??
    (source.state === 'ready' ? source.revision : undefined);
  let sync = judge(kustomization, 'lastAttemptedRevision', expectedSync);
  if (sync.state === 'failed') {
    // A Kustomization that ran before its source had an artifact (ArtifactFailed) is retried
    // by kustomize-controller once the GitRepository has one; and one whose source is not ready
    // fails for that reason (the source's condition says why).
    if (conditionOf(kustomization, 'Ready')?.reason === 'ArtifactFailed') {
      sync = {
        state: 'waiting',
        detail: `${sync.detail} (kustomize-controller retries once the GitRepository has an artifact)`,
      };
    } else if (source.state !== 'ready') {
      sync = {
        state: 'waiting',
        detail: `${sync.detail} (waiting for the GitRepository)`,
      };
    }
  }
  if (sync.state === 'ready' && source.state !== 'ready') {
    sync = { state: 'waiting', detail: 'waiting for the GitRepository' };
  }
  return { source, sync, gitRepository, kustomization };
}

/** Flux's "reconcile now" annotation; controllers echo it as `status.lastHandledReconcileAt`. */
const RECONCILE_REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';

/**
 * Asks the controllers to reconcile the GitRepository and the Kustomization now, as
 * `flux reconcile` does: the `reconcile.fluxcd.io/requestedAt` annotation, applied with its own
 * field manager (never `flux`: nothing else of the objects is sent or changed).
 */
async function requestReconcile(
  client: KubeClient,
  plan: FluxInstallPlan,
  requestedAt: string,
  signal?: AbortSignal,
): Promise<void> {
  const ns = plan.namespace;
  for (const [apiVersion, kind] of SYNC_KINDS) {
    await client.apply(
      {
        apiVersion,
        kind,
        metadata: {
          name: ns,
          namespace: ns,
          annotations: { [RECONCILE_REQUESTED_AT]: requestedAt },
        },
      },
      { fieldManager: 'flux-bootstrap-reconcile', force: true, signal },
    );
  }
}

/** Reads every controller Deployment once. */
async function readComponents(
  client: KubeClient,
  plan: FluxInstallPlan,
  signal?: AbortSignal,
): Promise<(FluxComponentReadiness & { failed: boolean })[]> {
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
      if (!deployment) {
        return {
          name,
          ready: false,
          failed: false,
          message: 'Deployment not found',
        };
      }
      const { ready, failed, image, message } = deploymentStatusOf(deployment);
      return {
        name,
        ready,
        failed,
        image,
        message: ready ? undefined : message,
      };
    }),
  );
}

function revisionOf(kustomization: KubeObject | undefined): string | undefined {
  const status = record(kustomization?.status);
  return str(status.lastAppliedRevision) ?? str(status.lastAttemptedRevision);
}

const publicReadiness = (c: FluxComponentReadiness & { failed: boolean }) => {
  const { failed: _failed, ...rest } = c;
  return rest;
};

/** Reads where Flux stands without waiting. @public */
export async function readFluxReadiness(
  client: KubeClient,
  plan: FluxInstallPlan,
  signal?: AbortSignal,
): Promise<FluxReadiness> {
  const ns = plan.namespace;
  const [{ source, sync, kustomization }, components] = await Promise.all([
    readSyncVerdicts(client, plan, signal),
    readComponents(client, plan, signal),
  ]);
  const pending = [
    ...(source.state !== 'ready'
      ? [`GitRepository ${ns}/${ns}: ${source.detail}`]
      : []),
    ...(sync.state !== 'ready'
      ? [`Kustomization ${ns}/${ns}: ${sync.detail}`]
      : []),
    ...components
      .filter(c => !c.ready)
      .map(c => `Deployment ${ns}/${c.name}: ${c.message ?? 'not ready'}`),
  ];
  return {
    ready: pending.length === 0,
    revision: revisionOf(kustomization),
    components: components.map(publicReadiness),
    pending,
  };
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60
    ? `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`
    : `${s}s`;
}

/**
 * Waits, as `flux bootstrap` does, until the GitRepository's artifact and the Kustomization's
 * last attempted revision equal the expected revision with Ready=True and the generation
 * observed, then until every controller Deployment is available. Logs what it waits for and why
 * every few seconds; fails at once on Ready=False (with the controller's message) or a
 * suspended object; on timeout says what was still missing; honours the abort signal.
 * @public
 */
export async function waitForFlux(
  client: KubeClient,
  plan: FluxInstallPlan,
  opts: WaitForFluxOptions = {},
): Promise<FluxReadiness> {
  const logger = opts.logger ?? silentLogger;
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const pollMs = opts.pollIntervalMs ?? 2_000;
  const progressMs = opts.progressIntervalMs ?? 5_000;
  const ns = plan.namespace;
  const cluster = client.clusterName;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, timeout])
    : timeout;
  setMaxListeners(64, signal); // every request in flight listens
  let pending: string[] = ['nothing read yet'];
  let lastLogged = '';
  let lastLogAt = 0;
  /** Logs what is missing when it changed, or every `progressMs`; then waits a poll. */
  const progress = async () => {
    const text = pending.join('; ');
    if (text !== lastLogged || Date.now() - lastLogAt >= progressMs) {
      logger.info(`Waiting for Flux on cluster "${cluster}": ${text}`);
      lastLogged = text;
      lastLogAt = Date.now();
    }
    await sleep(pollMs, undefined, { signal });
  };
  try {
    logger.info(
      `Waiting for GitRepository and Kustomization ${ns}/${ns} to be reconciled${
        plan.expectedRevision ? ` at ${plan.expectedRevision}` : ''
      }`,
    );
    let kustomization: KubeObject | undefined;
    // A failure reported before this run changed the credentials (same generation: the Secret
    // is not part of the spec) may be stale. The first failure seen asks the controllers to
    // reconcile now; only a failure reported after that request is final.
    let requestedAt: string | undefined;
    for (;;) {
      const verdicts = await readSyncVerdicts(client, plan, signal);
      kustomization = verdicts.kustomization;
      const objects = [
        ['GitRepository', verdicts.source, verdicts.gitRepository],
        ['Kustomization', verdicts.sync, verdicts.kustomization],
      ] as const;
      for (const [kind, v, obj] of objects) {
        if (v.state === 'suspended') {
          throw new FluxInstallError(
            'suspended',
            `${kind} '${ns}/${ns}' on cluster "${cluster}" is suspended; resume it (spec.suspend: false) and run again`,
          );
        }
        if (v.state !== 'failed') continue;
        if (!requestedAt) {
          requestedAt = new Date().toISOString();
          logger.info(
            `${kind} ${ns}/${ns} reports a failure (${v.detail}); it may predate this run, so Flux is asked to reconcile now (${RECONCILE_REQUESTED_AT}) before it counts`,
          );
          await requestReconcile(client, plan, requestedAt, signal);
        } else if (record(obj?.status).lastHandledReconcileAt === requestedAt) {
          throw new FluxInstallError(
            'sync-failed',
            `${kind} '${ns}/${ns}' on cluster "${cluster}" is not ready: ${v.detail}`,
            [`${kind} ${ns}/${ns}: ${v.detail}`],
          );
        }
      }
      const awaited = requestedAt;
      pending = objects.flatMap(([kind, v]) =>
        v.state === 'ready'
          ? []
          : [
              `${kind} ${ns}/${ns}: ${v.detail}${
                v.state === 'failed'
                  ? ` (waiting for the reconciliation requested at ${awaited})`
                  : ''
              }`,
            ],
      );
      if (pending.length === 0) break;
      await progress();
    }
    logger.info(
      `Flux on cluster "${cluster}" synced ${
        revisionOf(kustomization) ?? 'the branch'
      }; waiting for the controllers`,
    );

    for (;;) {
      const components = await readComponents(client, plan, signal);
      const failed = components.filter(c => c.failed);
      if (failed.length) {
        throw new FluxInstallError(
          'component-failed',
          `Flux controllers on cluster "${cluster}" cannot become available: ${failed
            .map(c => `${c.name}: ${c.message}`)
            .join('; ')}`,
          failed.map(c => `Deployment ${ns}/${c.name}: ${c.message}`),
        );
      }
      pending = components
        .filter(c => !c.ready)
        .map(c => `Deployment ${ns}/${c.name}: ${c.message ?? 'not ready'}`);
      if (pending.length === 0) {
        for (const c of components)
          logger.info(
            `✔ ${c.name}: deployment ready (${c.image ?? 'no image'})`,
          );
        return {
          ready: true,
          revision: revisionOf(kustomization),
          components: components.map(publicReadiness),
          pending: [],
        };
      }
      await progress();
    }
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
