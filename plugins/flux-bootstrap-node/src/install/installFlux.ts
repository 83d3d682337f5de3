import { ConflictError, InputError } from '@backstage/errors';
import type { KubeClient, KubeObject } from '../kube/types';
import { checkFluxVersionChange } from '../upgrade/fluxVersions';
import {
  checkKubernetesVersion,
  type KubernetesVersionSupport,
} from '../upgrade/kubernetesVersions';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { applyStaged, summarizeApplied, type AppliedObject } from './apply';
import { FluxInstallError } from './errors';
import type { FluxInstallPlan } from './plan';
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
  force?: boolean;
  /** Wait until Flux synced the revision and its controllers are available. Default true. */
  wait?: boolean;
  /** One budget for preconditions, apply and wait. Default 5 min. */
  timeoutMs?: number;
  concurrency?: number;
  /** Wait poll interval. Default 2 s. */
  pollIntervalMs?: number;
  /** At most this long between two progress lines. Default 5 s. */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  logger?: EngineLogger;
  checkpoint?: CheckpointFn;
  /**
   * Kubernetes range per Flux minor (settings' `kubernetesVersions`): when given, the cluster's
   * version is checked first, as `flux check --pre` does, before anything else is sent.
   */
  kubernetesVersions?: KubernetesVersionSupport[];
  /** Replace a newer installed Flux by `plan.fluxVersion` (warns). Default false: refused. */
  allowDowngrade?: boolean;
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
  applied: AppliedObject[];
}

/**
 * Installs Flux on a cluster as `flux bootstrap` does (spec §3.2–3.5), through the engine's
 * KubeClient:
 * 1. preconditions (Kubernetes version, permissions, another manager, path conflict, downgrade)
 *    — nothing applied on failure;
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
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, timeout])
    : timeout;
  const { clusterName: cluster } = client;
  const ns = plan.namespace;
  let phase = 'checking the preconditions';
  const applied: AppliedObject[] = [];
  const done: string[] = [];
  /** One apply step; the namespace is ensured first unless the step brings it. */
  const applyStep = async (
    key: string,
    what: string,
    label: string,
    objects: KubeObject[],
  ) => {
    phase = `applying ${what}`;
    const results = await checkpoint(key, async () => {
      if (key !== 'components')
        await client.ensureNamespace(ns, { fieldManager, signal });
      return applyStaged(client, objects, {
        fieldManager,
        force: true,
        concurrency: opts.concurrency,
        signal,
        logger,
      });
    });
    applied.push(...results);
    done.push(`${what} applied (${summarizeApplied(results)})`);
    logger.info(`✔ ${label}: ${summarizeApplied(results)}`);
  };
  try {
    logger.info(`Checking that Flux can be installed on cluster "${cluster}"`);
    const state = await checkpoint('preconditions', async () => {
      if (opts.kubernetesVersions)
        await checkKubernetesVersion(
          client,
          plan.fluxVersion,
          opts.kubernetesVersions,
          { signal, logger },
        );
      const s = await checkInstallPreconditions(client, plan, {
        force: opts.force,
        signal,
      });
      checkFluxVersionChange(s.installedVersion, plan.fluxVersion, {
        where: `installed on cluster "${cluster}"`,
        allowDowngrade: opts.allowDowngrade,
        logger,
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
      logger.info(
        `Installing Flux ${plan.fluxVersion} components in namespace "${ns}" (${plan.componentObjects.length} objects)`,
      );
      await applyStep(
        'components',
        'the Flux components',
        'installed components',
        plan.componentObjects,
      );
    } else {
      logger.info(
        `Flux already syncs itself on cluster "${cluster}" (Kustomization ${ns}/${ns} applied ${state.lastAppliedRevision}); components are not applied, Flux upgrades them from Git`,
      );
    }
    // The namespace exists after the components; when they were skipped it must exist already.
    if (plan.secret)
      await applyStep(
        'secret',
        'the Git credentials Secret',
        `reconciled source secret ${ns}/${plan.secret.metadata.name}`,
        [plan.secret],
      );
    await applyStep(
      'sync',
      'the sync configuration',
      'reconciled sync configuration',
      plan.syncObjects,
    );

    phase = 'waiting for Flux';
    const readiness = await checkpoint('wait', async () => {
      if (opts.wait !== false) {
        return waitForFlux(client, plan, {
          timeoutMs: Math.max(1, timeoutMs - (Date.now() - startedAt)),
          pollIntervalMs: opts.pollIntervalMs,
          progressIntervalMs: opts.progressIntervalMs,
          signal: opts.signal,
          logger,
        });
      }
      const r = await readFluxReadiness(client, plan, signal);
      logger.info(
        r.ready
          ? `Flux on cluster "${cluster}" is ready`
          : `Not waiting for Flux (wait: false); not ready yet: ${r.pending.join(
              '; ',
            )}`,
      );
      return r;
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
    // Refusals of the preconditions (Kubernetes version, downgrade) say themselves what is wrong.
    if (
      e instanceof FluxInstallError ||
      e instanceof InputError ||
      e instanceof ConflictError
    )
      throw e;
    if (timeout.aborted) {
      throw new FluxInstallError(
        'timeout',
        `Flux install on cluster "${cluster}" timed out after ${Math.round(
          timeoutMs / 1000,
        )} s while ${phase}`,
        [phase],
      );
    }
    if (e instanceof OperationAbortedError) throw e;
    if (opts.signal?.aborted) {
      throw new OperationAbortedError(
        `Cancelled while ${phase} on cluster "${cluster}"`,
      );
    }
    // A request failed for good (unreachable cluster, API errors after retries): say where the
    // install stopped and what is already on the cluster, so nothing half-applied goes unreported.
    const interrupted = new FluxInstallError(
      'interrupted',
      `Flux install on cluster "${cluster}" stopped while ${phase}: ${
        e instanceof Error ? e.message : String(e)
      }. ${
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
  }
}
