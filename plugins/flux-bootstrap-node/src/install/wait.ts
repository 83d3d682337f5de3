import { parseFluxRevision } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeClient, KubeObject } from '../kube/types';
import {
  conditionOf,
  deploymentStatusOf,
  generationObserved,
  isFailing,
  readyOf,
} from '../status/fluxObjects';
import { combineSignals, sleep } from '../util/async';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { FluxInstallError } from './errors';
import type { FluxInstallPlan } from './plan';

/** One Flux controller as the install reports it. @public */
export interface FluxComponentReadiness {
  name: string;
  ready: boolean;
  image?: string;
  /** Why it is not ready. */
  message?: string;
}

/** Where Flux stands on the cluster. @public */
export interface FluxReadiness {
  /** GitRepository and Kustomization reached the revision with Ready=True, and every controller is available. */
  ready: boolean;
  /** The Kustomization's last applied revision (or the attempted one while it is not applied yet). */
  revision?: string;
  components: FluxComponentReadiness[];
  /** What is not ready yet, one line per object. */
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

function record(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

function plainRef(ref: string | undefined): string | undefined {
  return ref?.replace(/^refs\/heads\//, '');
}

/** `main@sha1:abc` matches `main@sha1:abc`, `refs/heads/main@sha1:abc` and the legacy `main/abc`. @public */
export function revisionMatches(
  actual: string | undefined,
  expected: string,
): boolean {
  if (!actual) return false;
  const a = parseFluxRevision(actual);
  const e = parseFluxRevision(expected);
  if (!e.sha) return actual === expected;
  if (a.sha !== e.sha) return false;
  if (e.ref && a.ref && plainRef(a.ref) !== plainRef(e.ref)) return false;
  return true;
}

type Verdict =
  | { state: 'ready'; revision?: string }
  | { state: 'waiting'; detail: string }
  | { state: 'failed' | 'suspended'; detail: string };

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
  if (!obj) return { state: 'waiting', detail: 'not found' };
  if (record(obj.spec).suspend === true)
    return { state: 'suspended', detail: 'is suspended' };
  const hasStatus = Object.keys(record(obj.status)).length > 0;
  // A status written for an older spec (say, the previous repository URL) says nothing about
  // this one, not even its failure: wait until the controller observed the current generation.
  if (hasStatus && !generationObserved(obj)) {
    return {
      state: 'waiting',
      detail: `generation ${
        obj.metadata.generation
      } not observed by its controller yet (${describeReady(obj)})`,
    };
  }
  if (isFailing(obj)) {
    // A Kustomization's failure is about the revision it last attempted: an older revision's
    // failure is stale while the expected one has not been attempted yet.
    const attempted = str(record(obj.status).lastAttemptedRevision);
    if (
      revisionField === 'lastAttemptedRevision' &&
      expected &&
      attempted &&
      !revisionMatches(attempted, expected)
    ) {
      return {
        state: 'waiting',
        detail: `last attempt at ${attempted} failed (${describeReady(
          obj,
        )}); waiting for ${expected}`,
      };
    }
    return { state: 'failed', detail: describeReady(obj) };
  }
  if (!hasStatus) {
    const controller =
      revisionField === 'artifact'
        ? 'source-controller'
        : 'kustomize-controller';
    return {
      state: 'waiting',
      detail: `not reconciled yet, no status from the ${controller} (is it running?)`,
    };
  }
  if (readyOf(obj) !== true)
    return { state: 'waiting', detail: describeReady(obj) };
  const status = record(obj.status);
  const revision =
    revisionField === 'artifact'
      ? str(record(status.artifact).revision)
      : str(status.lastAttemptedRevision);
  if (expected && !revisionMatches(revision, expected)) {
    return {
      state: 'waiting',
      detail: `at revision ${revision ?? '(none)'}, waiting for ${expected}`,
    };
  }
  return { state: 'ready', revision };
}

const GIT_REPOSITORY = 'source.toolkit.fluxcd.io/v1';
const KUSTOMIZATION = 'kustomize.toolkit.fluxcd.io/v1';

/** Reads the sync objects and controllers once. @internal */
export async function readSyncVerdicts(
  client: KubeClient,
  plan: FluxInstallPlan,
  signal?: AbortSignal,
): Promise<{
  source: Verdict;
  sync: Verdict;
  gitRepository?: KubeObject;
  kustomization?: KubeObject;
}> {
  const ns = plan.namespace;
  const [gitRepository, kustomization] = await Promise.all([
    client.get(
      {
        apiVersion: GIT_REPOSITORY,
        kind: 'GitRepository',
        name: ns,
        namespace: ns,
      },
      { signal },
    ),
    client.get(
      {
        apiVersion: KUSTOMIZATION,
        kind: 'Kustomization',
        name: ns,
        namespace: ns,
      },
      { signal },
    ),
  ]);
  const source = judge(gitRepository, 'artifact', plan.expectedRevision);
  // Without a pushed revision to wait for, the Kustomization must reach what the source has.
  const expectedSync =
    plan.expectedRevision ??
    (source.state === 'ready' ? source.revision : undefined);
  let sync = judge(kustomization, 'lastAttemptedRevision', expectedSync);
  // A Kustomization that ran before its source had an artifact ("Source artifact not found",
  // ArtifactFailed) is retried by kustomize-controller once the GitRepository has one: no
  // failure of its own, even when the source became ready in the meantime.
  if (
    sync.state === 'failed' &&
    conditionOf(kustomization, 'Ready')?.reason === 'ArtifactFailed'
  ) {
    sync = {
      state: 'waiting',
      detail: `${sync.detail} (kustomize-controller retries once the GitRepository has an artifact)`,
    };
  }
  // A Kustomization fails while its source is not ready; the source's condition says why.
  if (sync.state === 'failed' && source.state !== 'ready') {
    sync = {
      state: 'waiting',
      detail: `${sync.detail} (waiting for the GitRepository)`,
    };
  }
  if (sync.state === 'ready' && source.state !== 'ready') {
    sync = { state: 'waiting', detail: 'waiting for the GitRepository' };
  }
  return { source, sync, gitRepository, kustomization };
}

/** Flux's "reconcile now" annotation; controllers echo it as `status.lastHandledReconcileAt`. */
export const RECONCILE_REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';
/** Field manager of that annotation only (never `flux`, whose applied fields it must not touch). */
export const RECONCILE_FIELD_MANAGER = 'flux-bootstrap-reconcile';

function handledReconcile(obj: KubeObject | undefined, requestedAt: string) {
  return record(obj?.status).lastHandledReconcileAt === requestedAt;
}

/**
 * Asks the controllers to reconcile the GitRepository and the Kustomization now, as
 * `flux reconcile` does: the `reconcile.fluxcd.io/requestedAt` annotation, applied with its own
 * field manager (nothing else of the objects is sent or changed).
 */
async function requestReconcile(
  client: KubeClient,
  plan: FluxInstallPlan,
  requestedAt: string,
  signal?: AbortSignal,
): Promise<void> {
  const ns = plan.namespace;
  for (const [apiVersion, kind] of [
    [GIT_REPOSITORY, 'GitRepository'],
    [KUSTOMIZATION, 'Kustomization'],
  ]) {
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
      { fieldManager: RECONCILE_FIELD_MANAGER, force: true, signal },
    );
  }
}

/** Reads every controller Deployment once. @internal */
export async function readComponents(
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
      if (!deployment)
        return {
          name,
          ready: false,
          failed: false,
          message: 'Deployment not found',
        };
      const reading = deploymentStatusOf(deployment);
      return {
        name,
        ready: reading.ready,
        failed: reading.failed,
        image: reading.image,
        message: reading.ready ? undefined : reading.message,
      };
    }),
  );
}

function revisionOf(kustomization: KubeObject | undefined): string | undefined {
  const status = record(kustomization?.status);
  return str(status.lastAppliedRevision) ?? str(status.lastAttemptedRevision);
}

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
  const pending: string[] = [];
  if (source.state !== 'ready')
    pending.push(`GitRepository ${ns}/${ns}: ${source.detail}`);
  if (sync.state !== 'ready')
    pending.push(`Kustomization ${ns}/${ns}: ${sync.detail}`);
  for (const c of components) {
    if (!c.ready)
      pending.push(`Deployment ${ns}/${c.name}: ${c.message ?? 'not ready'}`);
  }
  return {
    ready: pending.length === 0,
    revision: revisionOf(kustomization),
    components: components.map(({ failed: _failed, ...c }) => c),
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
  const deadline = combineSignals([opts.signal], timeoutMs);
  let pending: string[] = ['nothing read yet'];
  let lastLogged = '';
  let lastLogAt = 0;
  const progress = (lines: string[]) => {
    const text = lines.join('; ');
    const now = Date.now();
    if (text !== lastLogged || now - lastLogAt >= progressMs) {
      logger.info(`Waiting for Flux on cluster "${cluster}": ${text}`);
      lastLogged = text;
      lastLogAt = now;
    }
  };
  const target = plan.expectedRevision ? ` at ${plan.expectedRevision}` : '';
  try {
    logger.info(
      `Waiting for GitRepository and Kustomization ${ns}/${ns} to be reconciled${target}`,
    );
    let kustomization: KubeObject | undefined;
    // A failure reported before this run changed the credentials (same generation: the Secret
    // is not part of the spec) may be stale. The first failure seen asks the controllers to
    // reconcile now; only a failure reported after that request is final.
    let requestedAt: string | undefined;
    for (;;) {
      const verdicts = await readSyncVerdicts(client, plan, deadline.signal);
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
        if (v.state === 'failed' && !requestedAt) {
          requestedAt = new Date().toISOString();
          logger.info(
            `${kind} ${ns}/${ns} reports a failure (${v.detail}); it may predate this run, so Flux is asked to reconcile now (${RECONCILE_REQUESTED_AT}) before it counts`,
          );
          await requestReconcile(client, plan, requestedAt, deadline.signal);
        } else if (
          v.state === 'failed' &&
          requestedAt &&
          handledReconcile(obj, requestedAt)
        ) {
          throw new FluxInstallError(
            'sync-failed',
            `${kind} '${ns}/${ns}' on cluster "${cluster}" is not ready: ${v.detail}`,
            [`${kind} ${ns}/${ns}: ${v.detail}`],
          );
        }
      }
      const awaited = requestedAt;
      pending = objects
        .filter(([, v]) => v.state !== 'ready')
        .map(
          ([kind, v]) =>
            `${kind} ${ns}/${ns}: ${(v as { detail: string }).detail}${
              v.state === 'failed'
                ? ` (waiting for the reconciliation requested at ${awaited})`
                : ''
            }`,
        );
      if (pending.length === 0) break;
      progress(pending);
      await sleep(pollMs, deadline.signal);
    }
    logger.info(
      `Flux on cluster "${cluster}" synced ${
        revisionOf(kustomization) ?? 'the branch'
      }; waiting for the controllers`,
    );

    for (;;) {
      const components = await readComponents(client, plan, deadline.signal);
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
          components: components.map(({ failed: _f, ...c }) => c),
          pending: [],
        };
      }
      progress(pending);
      await sleep(pollMs, deadline.signal);
    }
  } catch (e) {
    if (deadline.timedOut() && !(e instanceof FluxInstallError)) {
      throw new FluxInstallError(
        'timeout',
        `Flux on cluster "${cluster}" was not ready after ${formatDuration(
          timeoutMs,
        )}; still missing: ${pending.join('; ')}`,
        pending,
      );
    }
    if (opts.signal?.aborted && !(e instanceof FluxInstallError)) {
      throw new OperationAbortedError(
        `Cancelled while waiting for Flux on cluster "${cluster}" (still missing: ${pending.join(
          '; ',
        )})`,
      );
    }
    throw e;
  } finally {
    deadline.dispose();
  }
}
