import { isKubeApiError } from '../kube/errors';
import type { KubeClient, KubeObject } from '../kube/types';
import {
  applyStaged,
  summarizeApplied,
  type AppliedObject,
} from '../install/apply';
import { FluxInstallError } from '../install/errors';
import type {
  InstallFluxOptions,
  InstallFluxResult,
} from '../install/installFlux';
import { normalizeSyncPath, type FluxInstallPlan } from '../install/plan';
import type { ResolvedFluxManifestOptions } from '../manifests/options';
import { checkInstallPreconditions } from '../install/preconditions';
import {
  describeReady,
  finalFailureCheck,
  pollUntil,
  readFluxReadiness,
  requestReconcile,
  waitForFlux,
  withTimeout,
} from '../install/wait';
import {
  conditionOf,
  deploymentStatusOf,
  generationObserved,
  record,
  str,
} from '../status/fluxObjects';
import { InputValidationError, OperationAbortedError } from '../util/errors';
import { silentLogger } from '../util/logger';
import { runCheckpointDirectly } from '../util/checkpoint';
import {
  FLUX_OPERATOR_API,
  generateFluxInstance,
  instanceRevisionVersion,
  isReconcileDisabled,
  type FluxOperatorOptions,
} from './instance';
import { loadFluxOperatorRelease, type FluxOperatorRelease } from './release';
import type { ManifestsSourceConfig } from '../manifests/releaseAsset';
import { stringifyObject } from '../manifests/yaml';

/** What {@link installFluxOperator} puts on a cluster, decided before any request. @public */
export interface FluxOperatorInstallPlan
  extends Pick<
    FluxInstallPlan,
    'namespace' | 'secret' | 'components' | 'path' | 'expectedRevision'
  > {
  release: FluxOperatorRelease;
  /** The FluxInstance `flux`, as flux:push-manifests writes it to `flux-instance.yaml`. */
  instance: KubeObject;
}

/** An object of the Flux Operator's (its Deployment, or an instance or report `flux`). */
const operatorRef = (kind: string, namespace: string, name = 'flux') => ({
  apiVersion: kind === 'Deployment' ? 'apps/v1' : FLUX_OPERATOR_API,
  kind,
  name,
  namespace,
});

/**
 * flux:install with `distribution: operator` once the cluster and the credentials are resolved:
 * reads the operator's release (`operator.release`, else the source's default version) and runs
 * {@link installFluxOperator}.
 * @public
 */
export async function installWithFluxOperator(
  client: KubeClient,
  input: {
    options: ResolvedFluxManifestOptions;
    operator: FluxOperatorOptions;
    source: ManifestsSourceConfig;
    secret?: KubeObject;
    expectedRevision?: string;
  },
  opts: InstallFluxOptions = {},
): Promise<InstallFluxResult> {
  const { options, operator, source } = input;
  const release = await loadFluxOperatorRelease(
    operator.release ?? source.defaultVersion,
    source,
    { signal: opts.signal, logger: opts.logger },
  );
  return installFluxOperator(
    client,
    {
      namespace: options.namespace,
      release,
      instance: generateFluxInstance(options, operator),
      components: options.components.components,
      path: normalizeSyncPath(options.path),
      secret: input.secret,
      expectedRevision: input.expectedRevision,
    },
    opts,
  );
}

/** What a dry run of flux:install in operator mode logs: the steps and the FluxInstance. @public */
export function fluxOperatorDryRunLines(
  clusterName: string,
  options: ResolvedFluxManifestOptions,
  operator: FluxOperatorOptions,
  source: ManifestsSourceConfig,
  secret?: KubeObject,
): string[] {
  const ns = options.namespace;
  const steps = [
    `check that the credentials may install Flux (SelfSubjectAccessReview) and that Kustomization ${ns}/${ns} does not sync another path`,
    `server-side apply the operator's install.yaml (from ${
      source.localPath ?? source.baseUrl
    }) and wait until its CRDs are served and Deployment ${ns}/flux-operator is available`,
    ...(secret
      ? [
          `Secret ${ns}/${secret.metadata.name} with keys ${Object.keys(
            record(secret.data),
          ).join(', ')} (values not shown)`,
        ]
      : []),
    'the FluxInstance, then wait until it is Ready, Flux synced the pushed revision and the FluxReport shows the sync:',
  ];
  return [
    `Would install Flux ${operator.version} through the Flux Operator ${
      operator.release ?? source.defaultVersion
    } on cluster "${clusterName}" in namespace ${ns}:`,
    ...steps.map((step, i) => `  ${i + 1}. ${step}`),
    ...stringifyObject(generateFluxInstance(options, operator))
      .trimEnd()
      .split('\n')
      .map(line => `       ${line}`),
  ];
}

/**
 * Refuses flux bootstrap's install over a Flux the Flux Operator manages (a FluxInstance in the
 * namespace): going back is not supported, the operator would keep reconciling its instance.
 * @public
 */
export async function refuseBootstrapOverFluxInstance(
  client: KubeClient,
  namespace: string,
  signal?: AbortSignal,
): Promise<void> {
  const instance = await client
    .get(operatorRef('FluxInstance', namespace), { signal, metadataOnly: true })
    // Not allowed to read it: the permission checks that follow say what is missing.
    .catch(e => {
      if (isKubeApiError(e, 'forbidden')) return undefined;
      throw e;
    });
  if (instance)
    throw new InputValidationError(
      'distribution',
      `cluster "${client.clusterName}" runs Flux through the Flux Operator (FluxInstance ${namespace}/flux); moving back to flux bootstrap is not supported: keep distribution "operator" (uninstall Flux first to bootstrap it again). Nothing was applied`,
    );
}

/**
 * Installs Flux through the Flux Operator, in the operator's documented order:
 * 1. preconditions (permissions, sync path) — nothing applied on failure;
 * 2. the operator's release manifests (`install.yaml`), staged: its CRDs are served and its
 *    Deployment available before anything else — left alone when Helm manages the operator;
 * 3. the Git credentials Secret (token auth) and the FluxInstance — which adopts a Flux that
 *    `flux bootstrap` installed, in place — unless Flux already syncs the instance from Git;
 * 4. the wait until the instance is Ready for its latest spec, Flux synced the revision, its
 *    controllers are available and the FluxReport shows the sync.
 * Every step is idempotent and checkpointed; a re-run on a healthy cluster writes nothing.
 * @public
 */
export async function installFluxOperator(
  client: KubeClient,
  plan: FluxOperatorInstallPlan,
  opts: InstallFluxOptions = {},
): Promise<InstallFluxResult> {
  const logger = opts.logger ?? silentLogger;
  const checkpoint = opts.checkpoint ?? runCheckpointDirectly;
  // Not `flux`: the operator takes over the fields of that manager (flux bootstrap's) on the
  // objects it applies, the Namespace among them, and a re-run would take them back.
  const fieldManager = opts.fieldManager ?? 'flux-bootstrap';
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const startedAt = Date.now();
  const { timeout, signal } = withTimeout(timeoutMs, opts.signal);
  const pollMs = opts.pollIntervalMs ?? 2_000;
  const cluster = client.clusterName;
  const ns = plan.namespace;
  if (plan.release.namespace !== ns)
    throw new InputValidationError(
      'namespace',
      `must be ${plan.release.namespace} with distribution operator: the Flux Operator's install.yaml runs the operator there, and a FluxInstance is only reconciled in the operator's namespace`,
    );
  const { release, instance, ...common } = plan;
  const fluxPlan: FluxInstallPlan = {
    ...common,
    fluxVersion: String(record(record(instance.spec).distribution).version),
    componentObjects: release.objects,
    syncObjects: [...release.objects, instance],
  };
  const applied: AppliedObject[] = [];
  let phase = 'checking the preconditions';
  let pending = '';
  const until = <T>(what: string, check: () => Promise<T | string[]>) => {
    phase = `waiting for ${what}`;
    return pollUntil(`${what} on cluster "${cluster}"`, check, {
      pollMs,
      progressMs: opts.progressIntervalMs ?? 5_000,
      signal,
      logger,
      onMissing: missing => (pending = missing.join('; ') || pending),
    });
  };
  const apply = async (key: string, label: string, objects: KubeObject[]) => {
    phase = `applying ${label}`;
    const results = await checkpoint(key, () =>
      applyStaged(client, objects, {
        fieldManager,
        force: true,
        concurrency: opts.concurrency,
        signal,
        logger,
      }),
    );
    applied.push(...results);
    logger.info(`✔ ${label}: ${summarizeApplied(results)}`);
  };
  const ref = (kind: string) => operatorRef(kind, ns);
  const get = (kind: string) => client.get(ref(kind), { signal });
  const operatorDeployment = operatorRef('Deployment', ns, 'flux-operator');

  const failure = finalFailureCheck(client, [ref('FluxInstance')], {
    signal,
    logger,
    asking: 'the operator is asked to reconcile now',
  });
  /** The instance judged for its latest spec. */
  const instanceReady = () =>
    until('the FluxInstance', async () => {
      const inst = await get('FluxInstance');
      if (!inst) return ['FluxInstance not found'];
      const at = `FluxInstance ${ns}/flux`;
      if (isReconcileDisabled(inst))
        throw new FluxInstallError(
          'suspended',
          `${at} on cluster "${cluster}" is suspended (fluxcd.controlplane.io/reconcile: disabled); enable it and run again`,
        );
      const ready = conditionOf(inst, 'Ready');
      const why = ready ? describeReady(inst) : 'Ready=none';
      if (!generationObserved(inst))
        return [
          `${at}: the operator has not reconciled generation ${inst.metadata.generation} yet (is the flux-operator Deployment running?)`,
        ];
      if (ready?.status === 'True') return inst;
      if (ready?.status !== 'False') return [`${at}: ${why}`];
      return [await failure(inst, at, why)];
    });

  try {
    logger.info(
      `Checking that the Flux Operator can install Flux on cluster "${cluster}"`,
    );
    const state = await checkpoint('preconditions', async () => {
      const s = await checkInstallPreconditions(client, fluxPlan, {
        force: true,
        signal,
      });
      const live = await client.get(operatorDeployment, {
        signal,
        metadataOnly: true,
      });
      return {
        selfManaged: !!s.lastAppliedRevision && !!(await get('FluxInstance')),
        operatorByHelm:
          live?.metadata.labels?.['app.kubernetes.io/managed-by'] === 'Helm',
      };
    });
    if (state.operatorByHelm) {
      logger.info(
        `The Flux Operator on cluster "${cluster}" is managed by Helm; its release manifests are not applied`,
      );
    } else {
      logger.info(
        `Installing the Flux Operator ${plan.release.version} in namespace "${ns}" (${plan.release.objects.length} objects from ${plan.release.location})`,
      );
      await apply('operator', 'the Flux Operator', plan.release.objects);
    }
    const wait = opts.wait !== false;
    if (wait) {
      const operator = await until('the Flux Operator', async () => {
        const d = await client.get(operatorDeployment, { signal });
        const r = d ? deploymentStatusOf(d) : undefined;
        if (r?.failed)
          throw new FluxInstallError(
            'component-failed',
            `The Flux Operator on cluster "${cluster}" cannot become available: ${r.message}`,
            [`Deployment ${ns}/flux-operator: ${r.message}`],
          );
        return r?.ready
          ? r
          : [`Deployment ${ns}/flux-operator: ${r?.message ?? 'not found'}`];
      });
      logger.info(`✔ flux-operator: deployment ready (${operator.image})`);
    }
    if (plan.secret)
      await apply('secret', `Secret ${ns}/${plan.secret.metadata.name}`, [
        plan.secret,
      ]);
    if (state.selfManaged) {
      logger.info(
        `Flux syncs its FluxInstance from Git on cluster "${cluster}"; it is not applied, Flux applies flux-instance.yaml from the pushed revision`,
      );
    } else {
      await apply('instance', `FluxInstance ${ns}/flux`, [plan.instance]);
      if (wait) await instanceReady();
    }
    const synced = await checkpoint('wait', async () => {
      if (!wait) return readFluxReadiness(client, fluxPlan, signal);
      phase = 'waiting for Flux';
      await waitForFlux(client, fluxPlan, {
        timeoutMs: Math.max(1, timeoutMs - (Date.now() - startedAt)),
        pollIntervalMs: pollMs,
        progressIntervalMs: opts.progressIntervalMs,
        signal: opts.signal,
        logger,
      });
      const inst = await instanceReady();
      let refreshAt = 0;
      await until('the FluxReport', async () => {
        const sync = record(record((await get('FluxReport'))?.spec).sync);
        const status = str(sync.status) ?? 'no sync reported yet';
        const sha = /@sha1:([0-9a-f]+)$/.exec(plan.expectedRevision ?? '')?.[1];
        if (sync.ready === true && (!sha || status.includes(sha))) return true;
        if (Date.now() - refreshAt >= 30_000) {
          refreshAt = Date.now();
          const now = new Date().toISOString();
          await requestReconcile(client, [ref('FluxReport')], now, signal);
        }
        return [`FluxReport ${ns}/flux: ${status}`];
      });
      const r = await readFluxReadiness(client, fluxPlan, signal);
      return {
        ...r,
        installed: instanceRevisionVersion(
          record(inst.status).lastAppliedRevision,
        ),
      };
    });
    return {
      fluxVersion:
        ('installed' in synced && synced.installed) || fluxPlan.fluxVersion,
      revision: synced.revision ?? plan.expectedRevision,
      ready: synced.ready,
      components: synced.components,
      componentsApplied: !state.selfManaged,
      applied,
    };
  } catch (e) {
    if (e instanceof FluxInstallError || e instanceof InputValidationError)
      throw e;
    if (timeout.aborted)
      throw new FluxInstallError(
        'timeout',
        `Flux Operator install on cluster "${cluster}" timed out after ${Math.round(
          timeoutMs / 1000,
        )} s while ${phase}${pending ? `; still missing: ${pending}` : ''}`,
        [pending || phase],
      );
    if (opts.signal?.aborted)
      throw new OperationAbortedError(
        `Cancelled while ${phase} on cluster "${cluster}"`,
      );
    throw new FluxInstallError(
      'interrupted',
      `Flux Operator install on cluster "${cluster}" stopped while ${phase}: ${
        e instanceof Error ? e.message : String(e)
      }. Nothing is rolled back; run the template again once the cluster answers (identical objects are not re-applied).`,
      [phase],
    );
  }
}
