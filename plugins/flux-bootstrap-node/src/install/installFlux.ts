import type { KubeClient, KubeObject } from '../kube/types';
import { combineSignals } from '../util/async';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { applyStaged, summarizeApplied, type AppliedObject } from './apply';
import { FluxInstallError } from './errors';
import { describeObject, type FluxInstallPlan } from './plan';
import { checkInstallPreconditions } from './preconditions';
import {
  readFluxReadiness,
  waitForFlux,
  type FluxComponentReadiness,
} from './wait';

/** Options of {@link installFlux}. @public */
export interface InstallFluxOptions {
  /** Field manager of every apply. Default `flux` (the same result as a CLI bootstrap). */
  fieldManager?: string;
  /** Take over an installation managed by another tool. */
  force?: boolean;
  /** Wait until Flux synced the revision and its controllers are available. Default true. */
  wait?: boolean;
  /** One budget for preconditions, apply and wait. Default 5 min. */
  timeoutMs?: number;
  /** Applies in flight at once. Default 8. */
  concurrency?: number;
  /** Wait poll interval. Default 2 s. */
  pollIntervalMs?: number;
  /** At most this long between two progress lines. Default 5 s. */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  logger?: EngineLogger;
  checkpoint?: CheckpointFn;
}

/** What {@link installFlux} did and found. @public */
export interface InstallFluxResult {
  fluxVersion: string;
  /** Revision Flux applied (or attempted), e.g. `main@sha1:…`. */
  revision?: string;
  ready: boolean;
  components: FluxComponentReadiness[];
  /** False when Flux already synced itself (Kustomization had a lastAppliedRevision). */
  componentsApplied: boolean;
  /** Every apply and its effect. */
  applied: AppliedObject[];
}

/**
 * What the install would apply, for dry runs and logs: one line per object. Secret values are
 * never shown, only their keys.
 * @public
 */
export function describeFluxInstall(plan: FluxInstallPlan): string[] {
  const lines = [
    `Flux ${plan.fluxVersion} in namespace ${
      plan.namespace
    } (components ${plan.components.join(', ')})`,
    `first: ${plan.componentObjects
      .filter(o => o.kind === 'Namespace')
      .map(describeObject)
      .join(', ')}`,
    `then, together: ${plan.componentObjects
      .filter(o => o.kind === 'CustomResourceDefinition')
      .map(describeObject)
      .join(
        ', ',
      )} (then wait until they are Established and served); and ${plan.componentObjects
      .filter(
        o => o.kind !== 'CustomResourceDefinition' && o.kind !== 'Namespace',
      )
      .map(describeObject)
      .join(', ')}`,
  ];
  if (plan.secret) {
    lines.push(
      `Secret ${plan.secret.metadata.namespace}/${
        plan.secret.metadata.name
      } with keys ${Object.keys(
        (plan.secret.data as Record<string, string> | undefined) ?? {},
      ).join(', ')} (values not shown)`,
    );
  }
  lines.push(
    `sync: ${plan.syncObjects.map(describeObject).join(', ')} (path ${
      plan.path
    })`,
  );
  lines.push(
    plan.expectedRevision
      ? `then wait until Flux reconciled ${plan.expectedRevision} and its controllers are available`
      : 'then wait until Flux reconciled the branch head and its controllers are available',
  );
  return lines;
}

/**
 * Installs Flux on a cluster as `flux bootstrap` does (spec §3.2–3.5), through the engine's
 * KubeClient:
 * 1. preconditions (permissions, another manager, path conflict) — nothing applied on failure;
 * 2. the components, server-side applied with field manager `flux` in two stages — skipped when
 *    the sync Kustomization already has a lastAppliedRevision (Flux upgrades itself from Git);
 * 3. the Git credentials Secret (token auth), then the GitRepository and Kustomization;
 * 4. the wait for the revision and the controllers.
 * Every step is idempotent and runs inside `checkpoint`; a re-run on a healthy cluster changes
 * nothing and returns at once.
 * @public
 */
export async function installFlux(
  client: KubeClient,
  plan: FluxInstallPlan,
  opts: InstallFluxOptions = {},
): Promise<InstallFluxResult> {
  const logger = opts.logger ?? silentLogger;
  const checkpoint = opts.checkpoint ?? runCheckpointDirectly;
  const fieldManager = opts.fieldManager ?? 'flux';
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const startedAt = Date.now();
  const budget = combineSignals([opts.signal], timeoutMs);
  const cluster = client.clusterName;
  const applyOpts = {
    fieldManager,
    force: true,
    concurrency: opts.concurrency,
    signal: budget.signal,
    logger,
  };
  let phase = 'checking the preconditions';
  const applied: AppliedObject[] = [];
  const done: string[] = [];
  try {
    logger.info(`Checking that Flux can be installed on cluster "${cluster}"`);
    const state = await checkpoint('preconditions', async () => {
      const s = await checkInstallPreconditions(client, plan, {
        force: opts.force,
        signal: budget.signal,
      });
      return {
        installComponents: s.installComponents,
        lastAppliedRevision: s.lastAppliedRevision ?? null,
        managedBy: s.managedBy ?? null,
      };
    });
    if (state.managedBy && state.managedBy !== 'flux') {
      logger.warn(
        `Taking over the Flux installation managed by "${state.managedBy}" (force)`,
      );
    }

    done.push('preconditions checked');
    if (state.installComponents) {
      phase = 'applying the Flux components';
      logger.info(
        `Installing Flux ${plan.fluxVersion} components in namespace "${plan.namespace}" (${plan.componentObjects.length} objects)`,
      );
      const results = await checkpoint('components', () =>
        applyStaged(client, plan.componentObjects, applyOpts),
      );
      applied.push(...results);
      done.push(`components applied (${summarizeApplied(results)})`);
      logger.info(`✔ installed components: ${summarizeApplied(results)}`);
    } else {
      logger.info(
        `Flux already syncs itself on cluster "${cluster}" (Kustomization ${plan.namespace}/${plan.namespace} applied ${state.lastAppliedRevision}); components are not applied, Flux upgrades them from Git`,
      );
    }

    if (plan.secret) {
      const secret: KubeObject = plan.secret;
      phase = 'applying the Git credentials Secret';
      const results = await checkpoint('secret', async () => {
        // The namespace exists after the components; when they were skipped it must exist already.
        await client.ensureNamespace(plan.namespace, {
          fieldManager,
          signal: budget.signal,
        });
        return applyStaged(client, [secret], applyOpts);
      });
      applied.push(...results);
      done.push(`Secret ${plan.namespace}/${secret.metadata.name} applied`);
      logger.info(
        `✔ reconciled source secret ${plan.namespace}/${secret.metadata.name} (${results[0]?.result})`,
      );
    }

    phase = 'applying the sync configuration';
    const syncResults = await checkpoint('sync', async () => {
      await client.ensureNamespace(plan.namespace, {
        fieldManager,
        signal: budget.signal,
      });
      return applyStaged(client, plan.syncObjects, applyOpts);
    });
    applied.push(...syncResults);
    done.push('sync configuration applied');
    logger.info(
      `✔ reconciled sync configuration: ${summarizeApplied(syncResults)}`,
    );

    phase = 'waiting for Flux';
    const readiness = await checkpoint('wait', async () => {
      if (opts.wait === false) {
        const r = await readFluxReadiness(client, plan, budget.signal);
        logger.info(
          r.ready
            ? `Flux on cluster "${cluster}" is ready`
            : `Not waiting for Flux (wait: false); not ready yet: ${r.pending.join(
                '; ',
              )}`,
        );
        return r;
      }
      return waitForFlux(client, plan, {
        timeoutMs: Math.max(1, timeoutMs - (Date.now() - startedAt)),
        pollIntervalMs: opts.pollIntervalMs,
        progressIntervalMs: opts.progressIntervalMs,
        signal: opts.signal,
        logger,
      });
    });

    return {
      fluxVersion: plan.fluxVersion,
      revision: readiness.revision ?? plan.expectedRevision,
      ready: readiness.ready,
      components: readiness.components,
      componentsApplied: state.installComponents,
      applied,
    };
  } catch (e) {
    if (e instanceof FluxInstallError) throw e;
    if (budget.timedOut()) {
      throw new FluxInstallError(
        'timeout',
        `Flux install on cluster "${cluster}" timed out after ${Math.round(
          timeoutMs / 1000,
        )} s while ${phase}`,
        [phase],
      );
    }
    if (opts.signal?.aborted && !(e instanceof OperationAbortedError)) {
      throw new OperationAbortedError(
        `Cancelled while ${phase} on cluster "${cluster}"`,
      );
    }
    if (e instanceof OperationAbortedError) throw e;
    // A request failed for good (unreachable cluster, API errors after retries): say where the
    // install stopped and what is already on the cluster, so nothing half-applied goes unreported.
    const message = e instanceof Error ? e.message : String(e);
    const interrupted = new FluxInstallError(
      'interrupted',
      `Flux install on cluster "${cluster}" stopped while ${phase}: ${message}. ${
        done.length
          ? `Done before that: ${done.join('; ')}.`
          : 'Nothing was applied.'
      }${
        phase.startsWith('applying')
          ? ' Some objects of the step that stopped may already be applied.'
          : ''
      } Nothing is rolled back: objects already applied stay as they are. Run the template again once the cluster answers; the install continues where it stopped (identical objects are not re-applied).`,
      [phase],
    );
    (interrupted as { cause?: unknown }).cause = e;
    throw interrupted;
  } finally {
    budget.dispose();
  }
}
