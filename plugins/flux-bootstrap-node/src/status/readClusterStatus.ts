import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { isKubeApiError, KubeApiError } from '../kube/errors';
import { addFluxInstanceState } from '../operator/status';
import type { KubeClient, KubeObject } from '../kube/types';
import { PULL_REQUEST_ANNOTATION } from '../install/pullRequestMerge';
import { isAbortError } from '../util/errors';
import { EngineLogger, silentLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import {
  ComponentReading,
  deploymentStatusOf,
  FLUX_SOURCE_CRD,
  getFluxObject,
  generationObserved,
  imageTag,
  isFailing,
  record,
  sourceStatusOf,
  str,
  syncStatusOf,
  waitsForSourceArtifact,
} from './fluxObjects';

/** Options of {@link readClusterStatus}. @public */
export interface ReadClusterStatusOptions {
  cluster: string;
  title?: string;
  /** Namespace Flux runs in; detected when absent (FluxReport, CRD labels, Namespace labels). */
  namespace?: string;
  signal?: AbortSignal;
  logger?: EngineLogger;
  /** Masks the cluster's secrets in reasons and messages. */
  redactor?: Redactor;
  now?: () => Date;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DEFAULT_NAMESPACE = 'flux-system';
const PART_OF_FLUX = 'app.kubernetes.io/part-of=flux';

type FluxReport = KubeObject & {
  spec?: {
    distribution?: { version?: string; managedBy?: string };
    components?: {
      name?: string;
      ready?: boolean;
      status?: string;
      image?: string;
    }[];
    sync?: { id?: string };
  };
};

/** Thrown inside the reader to stop with a decided state. */
class Decided extends Error {
  constructor(
    readonly state: 'unreachable' | 'forbidden',
    readonly reason: string,
  ) {
    super(reason);
  }
}

/** The kube layer's messages already say what was attempted, on which cluster, and the answer. */
function decided(error: KubeApiError): Decided {
  if (error.kind === 'unauthorized') {
    return new Decided(
      'forbidden',
      `The API server did not accept the configured credentials (401 Unauthorized). ${error.message}`,
    );
  }
  if (error.kind === 'forbidden')
    return new Decided('forbidden', error.message);
  return new Decided(
    'unreachable',
    error.kind === 'unreachable'
      ? error.message
      : `The API server failed: ${error.message}`,
  );
}

/**
 * One cluster's Flux bootstrap state: who installed Flux (CRD labels as `flux check` reads them,
 * or the FluxReport), its controllers, the sync and its source. Never reads Secrets; cluster
 * problems are states, not errors. `inSync` stays null ({@link addBranchHeadState} sets it).
 * @public
 */
export async function readClusterStatus(
  client: KubeClient,
  options: ReadClusterStatusOptions,
): Promise<ClusterBootstrapStatus> {
  const { signal, cluster } = options;
  const logger = options.logger ?? silentLogger;
  const redactor = options.redactor ?? new Redactor();
  const clean = (text: string | undefined) =>
    text === undefined ? undefined : redactor.redact(text);
  const status: ClusterBootstrapStatus = {
    cluster,
    ...(options.title ? { title: options.title } : {}),
    state: 'installing',
    checkedAt: (options.now?.() ?? new Date()).toISOString(),
    components: [],
    inSync: null,
  };

  /** A required read: forbidden / unreachable stop the whole reading. */
  const must = <T>(what: string, fn: () => Promise<T>): Promise<T> =>
    fn().catch(error => {
      if (!isKubeApiError(error)) throw error;
      logger.debug(`cluster ${cluster}: could not ${what} (${error.kind})`);
      throw decided(error);
    });
  /** An optional read: a 403 (or a kind the server does not serve) is "no answer". */
  const may = <T>(what: string, fn: () => Promise<T>) =>
    fn().catch(error => {
      if (!isKubeApiError(error, 'forbidden', 'not-found')) {
        throw isKubeApiError(error) ? decided(error) : error;
      }
      logger.debug(`cluster ${cluster}: not allowed to ${what}, skipping it`);
      return undefined;
    });
  const getFirst = (
    kind: string,
    name: string,
    namespace: string,
    readSignal = signal,
  ) =>
    must(`get ${kind} ${namespace}/${name}`, () =>
      getFluxObject(client, { kind, name, namespace }, { signal: readSignal }),
    );
  const listDeployments = (namespace: string, readSignal = signal) =>
    must(`list Deployments in namespace ${namespace}`, () =>
      client.list('apps/v1', 'Deployment', {
        namespace,
        labelSelector: PART_OF_FLUX,
        signal: readSignal,
      }),
    );

  // Independent reads start at once (one round trip, not a chain, on a distant cluster), those
  // of the namespace bootstrap uses included; they are used in order, so errors take effect as
  // one after another, and reads that turn out not to be needed are cancelled.
  const ahead = new AbortController();
  const aheadSignal = signal
    ? AbortSignal.any([signal, ahead.signal])
    : ahead.signal;
  const early = <T>(p: Promise<T>): Promise<T> => {
    p.catch(() => undefined); // used (and its error seen) only if needed
    return p;
  };
  const guess = options.namespace ?? DEFAULT_NAMESPACE;

  try {
    const crdRead = early(
      must(`get CustomResourceDefinition ${FLUX_SOURCE_CRD}`, () =>
        client.get(
          {
            apiVersion: 'apiextensions.k8s.io/v1',
            kind: 'CustomResourceDefinition',
            name: FLUX_SOURCE_CRD,
          },
          // Only its labels: not the schema (hundreds of KB for Flux's CRDs).
          { signal, metadataOnly: true },
        ),
      ),
    );
    const reportsRead = early(
      may('list FluxReports', () =>
        client.list<FluxReport>('fluxcd.controlplane.io/v1', 'FluxReport', {
          signal: aheadSignal,
        }),
      ),
    );
    const instancesAhead = early(
      may('list FluxInstances', () =>
        client.list('fluxcd.controlplane.io/v1', 'FluxInstance', {
          signal: aheadSignal,
        }),
      ),
    );
    const deploymentsAhead = early(listDeployments(guess, aheadSignal));
    const syncAhead = early(
      getFirst('Kustomization', guess, guess, aheadSignal),
    );
    const sourceAhead = early(
      getFirst('GitRepository', guess, guess, aheadSignal),
    );

    // GET /version, which every authenticated user may read: the cluster picker judges it.
    const versionRead = (async () =>
      (await client.version({ signal })).gitVersion)().catch(() => undefined);
    const crd = await crdRead;
    const kubernetesVersion = await versionRead;
    if (kubernetesVersion) status.kubernetesVersion = kubernetesVersion;
    if (!crd) {
      status.state = 'not-installed';
      status.reason = `Flux is not installed: the CustomResourceDefinition ${FLUX_SOURCE_CRD} does not exist.`;
      return status;
    }
    const report = (await reportsRead)?.find(r => r.metadata.name === 'flux');
    const namespace = await detectNamespace(client, crd, report, options, may);
    const labels = crd.metadata.labels ?? {};
    const distribution = report?.spec?.distribution;
    status.flux = {
      version: distribution?.version || labels['app.kubernetes.io/version'],
      distribution: labels['app.kubernetes.io/part-of'],
      managedBy:
        distribution?.managedBy ||
        (labels['app.kubernetes.io/managed-by'] ??
          (labels['kustomize.toolkit.fluxcd.io/name']
            ? 'flux bootstrap'
            : undefined)),
      bootstrapped: 'kustomize.toolkit.fluxcd.io/namespace' in labels,
      namespace,
      reportedBy: report && distribution ? 'flux-report' : 'crd-labels',
    };

    // Controllers: the FluxReport's view when it has one (Flux Operator computes it with kstatus),
    // else the Deployments labelled part-of=flux.
    const reported = (report?.spec?.components ?? []).filter(
      c => typeof c.name === 'string',
    );
    const components: ComponentReading[] = reported.length
      ? reported.map(c => ({
          name: c.name!,
          ready: c.ready === true,
          image: c.image,
          tag: imageTag(c.image),
          failed: c.ready !== true && /^Failed\b/.test(c.status ?? ''),
          ...(c.ready === true ? {} : { message: clean(c.status) }),
        }))
      : (
          await (namespace === guess
            ? deploymentsAhead
            : listDeployments(namespace))
        ).map(deploymentStatusOf);
    components.sort((a, b) => a.name.localeCompare(b.name));
    status.components = components.map(({ failed: _f, ...c }) => c);

    // Sync: the Kustomization the FluxReport names, else <ns>/<ns> as bootstrap creates it.
    const syncName =
      /^kustomization\/(.+)$/i.exec(report?.spec?.sync?.id ?? '')?.[1] ??
      namespace;
    const syncObj = await (syncName === guess && namespace === guess
      ? syncAhead
      : getFirst('Kustomization', syncName, namespace));
    const sourceRef = record(record(syncObj?.spec).sourceRef);
    const sourceKind = str(sourceRef.kind) ?? 'GitRepository';
    const sourceName = str(sourceRef.name) ?? syncName;
    const sourceNamespace = str(sourceRef.namespace) ?? namespace;
    const sourceId = `${sourceKind} ${sourceNamespace}/${sourceName}`;
    const sourceObj = await (sourceId === `GitRepository ${guess}/${guess}`
      ? sourceAhead
      : getFirst(sourceKind, sourceName, sourceNamespace));
    if (syncObj) status.sync = syncStatusOf(syncObj, clean);
    if (sourceObj) status.source = sourceStatusOf(sourceObj, clean);
    // The pull request flux:install recorded; FluxStatusReader asks Bitbucket about it.
    const pr = syncObj?.metadata.annotations?.[PULL_REQUEST_ANNOTATION];
    const prId = pr && /\/pull-requests\/(\d+)(?:\/overview)?\/?$/.exec(pr);
    if (prId) {
      const toBranch = status.source?.branch ?? '';
      const [id, url, fromBranch] = [Number(prId[1]), pr, ''];
      const open = { state: 'OPEN' as const, reviewers: [] };
      status.pullRequest = { id, url, fromBranch, toBranch, ...open };
    }

    decideState(status, {
      namespace,
      components,
      syncObj,
      sourceObj,
      syncRef: `Kustomization ${namespace}/${syncName}`,
      sourceRef: sourceId,
    });
    // The Flux Operator's FluxInstance, when it manages Flux: manager, versions, its state rules.
    addFluxInstanceState(
      status,
      (await instancesAhead)?.find(
        i => i.metadata.name === 'flux' && i.metadata.namespace === namespace,
      ),
      clean,
    );
    return status;
  } catch (error) {
    status.state = 'unreachable';
    if (error instanceof Decided) {
      status.state = error.state;
      status.reason = redactor.redact(error.reason);
    } else if (isAbortError(error) || signal?.aborted) {
      status.reason = `No complete answer from the API server: ${
        signal?.reason instanceof Error
          ? signal.reason.message
          : 'the read was cancelled'
      }`;
    } else {
      const safe = redactor.redactError(error);
      logger.error(
        `Reading the Flux status of cluster ${cluster} failed`,
        safe,
      );
      status.reason = `Could not read the cluster: ${safe.message}`;
    }
    return status;
  } finally {
    ahead.abort();
  }
}

/**
 * The FluxReport's namespace, the CRD's `app.kubernetes.io/instance` or
 * `kustomize.toolkit.fluxcd.io/namespace` label, the one Namespace labelled part-of=flux, else
 * `flux-system`.
 */
async function detectNamespace(
  client: KubeClient,
  crd: KubeObject,
  report: FluxReport | undefined,
  options: ReadClusterStatusOptions,
  may: <T>(what: string, fn: () => Promise<T>) => Promise<T | undefined>,
): Promise<string> {
  if (options.namespace) return options.namespace;
  if (report?.metadata.namespace) return report.metadata.namespace;
  const labels = crd.metadata.labels ?? {};
  const labelled = [
    labels['app.kubernetes.io/instance'],
    labels['kustomize.toolkit.fluxcd.io/namespace'],
  ].find(v => v && DNS_LABEL.test(v));
  if (labelled) return labelled;
  const namespaces = await may('list Namespaces', () =>
    client.list('v1', 'Namespace', {
      labelSelector: PART_OF_FLUX,
      signal: options.signal,
    }),
  );
  const names = (namespaces ?? []).map(n => n.metadata.name);
  return names.length === 1 && !names.includes(DEFAULT_NAMESPACE)
    ? names[0]
    : DEFAULT_NAMESPACE;
}

function decideState(
  status: ClusterBootstrapStatus,
  facts: {
    namespace: string;
    components: ComponentReading[];
    syncObj?: KubeObject;
    sourceObj?: KubeObject;
    syncRef: string;
    sourceRef: string;
  },
): void {
  const { sync, source } = status;
  const { syncObj, sourceObj, syncRef, sourceRef } = facts;
  const set = (state: ClusterBootstrapStatus['state'], reasons: string[]) => {
    status.state = state;
    if (reasons.length) status.reason = reasons.join('\n');
    else delete status.reason;
  };

  const suspended = [
    ...(sync?.suspended ? [syncRef] : []),
    ...(source?.suspended ? [sourceRef] : []),
  ];
  if (suspended.length) {
    set('suspended', [
      `${suspended.join(' and ')} ${
        suspended.length > 1 ? 'are' : 'is'
      } suspended: Flux does not reconcile the cluster from Git.`,
    ]);
    return;
  }

  // A Kustomization that ran before its source had an artifact waits for it (see below); the
  // source's own failure, if any, is reported.
  const syncWaitsForSource = waitsForSourceArtifact(syncObj, sourceObj);
  const failures = [
    ...(isFailing(sourceObj)
      ? [`${sourceRef}: ${source?.message ?? 'Ready=False'}`]
      : []),
    ...(isFailing(syncObj) && !syncWaitsForSource
      ? [`${syncRef}: ${sync?.message ?? 'Ready=False'}`]
      : []),
    ...facts.components
      .filter(c => c.failed)
      .map(c => `${c.name}: ${c.message ?? 'failed'}`),
  ];
  if (failures.length) {
    set('failing', failures);
    return;
  }

  const waiting: string[] = [];
  const pending = facts.components.filter(c => !c.ready);
  if (facts.components.length === 0) {
    waiting.push(
      `no Flux controllers (Deployments labelled ${PART_OF_FLUX}) in namespace ${facts.namespace} yet`,
    );
  } else if (pending.length) {
    // "controllers not ready: a, b (not rolled out yet)", one group per distinct message
    const groups = new Map<string, string[]>();
    for (const c of pending) {
      const why = c.message ?? 'not ready';
      groups.set(why, [...(groups.get(why) ?? []), c.name]);
    }
    waiting.push(
      `controllers not ready: ${[...groups]
        .map(([why, names]) => `${names.join(', ')} (${why})`)
        .join('; ')}`,
    );
  }
  if (!syncObj) {
    waiting.push(
      `${syncRef} does not exist yet (Flux is installed but not synced from Git)`,
    );
  } else if (!sourceObj) {
    waiting.push(`${sourceRef} does not exist yet`);
  } else {
    for (const [obj, ref, s] of [
      [sourceObj, sourceRef, source],
      [syncObj, syncRef, sync],
    ] as const) {
      if (!generationObserved(obj)) {
        waiting.push(
          `${ref}: ${
            obj.status === undefined
              ? 'not reconciled yet'
              : 'reconciling the latest change'
          }`,
        );
      } else if (s?.ready !== true) {
        waiting.push(
          `${ref}: ${s?.message ?? 'not reconciled yet'}${
            obj === syncObj && syncWaitsForSource
              ? ` (it ran before ${sourceRef} had an artifact; kustomize-controller retries once it has one)`
              : ''
          }`,
        );
      }
    }
    if (sync?.ready === true && !sync.lastAppliedRevision) {
      waiting.push(`${syncRef} has not applied a revision yet`);
    }
  }
  set(waiting.length ? 'installing' : 'ready', waiting);
}
