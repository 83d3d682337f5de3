import type {
  ClusterBootstrapStatus,
  FluxComponentStatus,
  FluxDistributionInfo,
  FluxSourceStatus,
  FluxSyncStatus,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { isKubeApiError, KubeApiError } from '../kube/errors';
import type { KubeClient, KubeObject } from '../kube/types';
import { combineSignals } from '../util/async';
import { isAbortError } from '../util/errors';
import { EngineLogger, silentLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import {
  ComponentReading,
  deploymentStatusOf,
  FLUX_API_VERSIONS,
  FLUX_SOURCE_CRD,
  generationObserved,
  imageTag,
  isFailing,
  sourceStatusOf,
  syncStatusOf,
  waitsForSourceArtifact,
} from './fluxObjects';

/** Options of {@link readClusterStatus}. @public */
export interface ReadClusterStatusOptions {
  /** Cluster name, as configured. */
  cluster: string;
  title?: string;
  /**
   * Namespace Flux runs in. When absent it is detected: the FluxReport's namespace, the CRD's
   * `app.kubernetes.io/instance` / `kustomize.toolkit.fluxcd.io/namespace` labels, a Namespace
   * labelled `app.kubernetes.io/part-of=flux`, else `flux-system`.
   */
  namespace?: string;
  signal?: AbortSignal;
  logger?: EngineLogger;
  /** Extra secrets (the cluster token) to keep out of reasons and messages. */
  redactor?: Redactor;
  now?: () => Date;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DEFAULT_NAMESPACE = 'flux-system';
const PART_OF_FLUX = 'app.kubernetes.io/part-of=flux';

interface FluxReportSpec {
  distribution?: { status?: string; version?: string; managedBy?: string };
  components?: {
    name?: string;
    ready?: boolean;
    status?: string;
    image?: string;
  }[];
  sync?: {
    id?: string;
    path?: string;
    ready?: boolean;
    status?: string;
    source?: string;
  };
}

type FluxReport = KubeObject & { spec?: FluxReportSpec };

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
function describeKubeError(error: KubeApiError): Decided {
  switch (error.kind) {
    case 'unauthorized':
      return new Decided(
        'forbidden',
        `The API server did not accept the configured credentials (401 Unauthorized). ${error.message}`,
      );
    case 'forbidden':
      return new Decided('forbidden', error.message);
    case 'unreachable':
      return new Decided('unreachable', error.message);
    default:
      return new Decided(
        'unreachable',
        `The API server failed: ${error.message}`,
      );
  }
}

/**
 * Reads one cluster's Flux bootstrap state: whether Flux is installed and by whom (CRD labels as
 * `flux check` and Flux Operator read them, or the FluxReport when one exists), the controller
 * Deployments, the sync GitRepository and Kustomization (`<ns>/<ns>`), and a state derived from
 * them. Never reads Secrets. Never throws for cluster problems: unreachable / forbidden are
 * states. `inSync` is left null; {@link addBranchHeadState} fills it in.
 * @public
 */
export async function readClusterStatus(
  client: KubeClient,
  options: ReadClusterStatusOptions,
): Promise<ClusterBootstrapStatus> {
  const { signal } = options;
  const logger = options.logger ?? silentLogger;
  const redactor = options.redactor ?? new Redactor();
  const clean = (text: string | undefined) =>
    text === undefined ? undefined : redactor.redact(text);
  const status: ClusterBootstrapStatus = {
    cluster: options.cluster,
    ...(options.title ? { title: options.title } : {}),
    state: 'installing',
    checkedAt: (options.now?.() ?? new Date()).toISOString(),
    components: [],
    inSync: null,
  };

  /** A required read: forbidden / unreachable stop the whole reading. */
  const must = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      if (isKubeApiError(error)) {
        logger.debug(
          `cluster ${options.cluster}: could not ${what} (${error.kind})`,
        );
        throw describeKubeError(error);
      }
      throw error;
    }
  };
  /** An optional read: a 403 (or a kind the server does not serve) is "no answer". */
  const may = async <T>(
    what: string,
    fn: () => Promise<T>,
  ): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (error) {
      if (isKubeApiError(error, 'forbidden', 'not-found')) {
        logger.debug(
          `cluster ${options.cluster}: not allowed to ${what}, skipping it`,
        );
        return undefined;
      }
      if (isKubeApiError(error)) throw describeKubeError(error);
      throw error;
    }
  };
  const getFirst = async (
    kind: string,
    name: string,
    namespace: string,
    readSignal: AbortSignal | undefined = signal,
  ): Promise<KubeObject | undefined> => {
    for (const apiVersion of FLUX_API_VERSIONS[kind] ?? []) {
      const obj = await must(`get ${kind} ${namespace}/${name}`, () =>
        client.get(
          { apiVersion, kind, name, namespace },
          { signal: readSignal },
        ),
      );
      if (obj) return obj;
    }
    return undefined;
  };

  // Every read that does not depend on another starts at once (one round trip instead of a
  // chain of them on a distant cluster): the Flux CRD, the FluxReports, and — for the namespace
  // bootstrap uses, which the CRD usually confirms — the Deployments, the sync Kustomization and
  // its GitRepository. Results are used in the order below, so errors take effect as they
  // would one after another; reads that turn out not to be needed are dropped and cancelled.
  const ahead = new AbortController();
  const aheadSignal = combineSignals([signal, ahead.signal]);
  const early = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = fn();
    p.catch(() => undefined); // used (and its error seen) only if needed
    return p;
  };
  const guess = options.namespace ?? DEFAULT_NAMESPACE;

  try {
    const crdRead = early(() =>
      must(`get CustomResourceDefinition ${FLUX_SOURCE_CRD}`, () =>
        client.get(
          {
            apiVersion: 'apiextensions.k8s.io/v1',
            kind: 'CustomResourceDefinition',
            name: FLUX_SOURCE_CRD,
          },
          // Only its labels are read: not the schema (hundreds of KB for Flux's CRDs).
          { signal, metadataOnly: true },
        ),
      ),
    );
    const reportsRead = early(() =>
      may('list FluxReports', () =>
        client.list<FluxReport>('fluxcd.controlplane.io/v1', 'FluxReport', {
          signal: aheadSignal.signal,
        }),
      ),
    );
    const deploymentsAhead = early(() =>
      listFluxDeployments(guess, aheadSignal.signal),
    );
    const syncAhead = early(() =>
      getFirst('Kustomization', guess, guess, aheadSignal.signal),
    );
    const sourceAhead = early(() =>
      getFirst('GitRepository', guess, guess, aheadSignal.signal),
    );

    const crd = await crdRead;
    if (!crd) {
      status.state = 'not-installed';
      status.reason = `Flux is not installed: the CustomResourceDefinition ${FLUX_SOURCE_CRD} does not exist.`;
      return status;
    }

    const reports = await reportsRead;
    const report = reports?.find(r => r.metadata.name === 'flux');

    const namespace = await detectNamespace(client, crd, report, options, may);
    const labels = crd.metadata.labels ?? {};
    const flux: FluxDistributionInfo = {
      version: labels['app.kubernetes.io/version'],
      distribution: labels['app.kubernetes.io/part-of'],
      managedBy:
        labels['app.kubernetes.io/managed-by'] ??
        (labels['kustomize.toolkit.fluxcd.io/name']
          ? 'flux bootstrap'
          : undefined),
      bootstrapped: 'kustomize.toolkit.fluxcd.io/namespace' in labels,
      namespace,
      reportedBy: 'crd-labels',
    };
    const fromReport = report?.spec?.distribution;
    if (report && fromReport) {
      flux.reportedBy = 'flux-report';
      flux.version = fromReport.version || flux.version;
      flux.managedBy = fromReport.managedBy || flux.managedBy;
    }
    status.flux = flux;

    // Controllers: the FluxReport's view when it has one (Flux Operator computes it with kstatus),
    // else the Deployments labelled part-of=flux.
    let components: ComponentReading[];
    const reported = report?.spec?.components ?? [];
    if (reported.length > 0) {
      components = reported
        .filter(c => typeof c.name === 'string')
        .map(c => ({
          name: c.name!,
          ready: c.ready === true,
          image: c.image,
          tag: imageTag(c.image),
          failed: c.ready !== true && /^Failed\b/.test(c.status ?? ''),
          ...(c.ready === true ? {} : { message: clean(c.status) }),
        }));
    } else {
      const deployments = await (namespace === guess
        ? deploymentsAhead
        : listFluxDeployments(namespace, signal));
      components = deployments.map(deploymentStatusOf);
    }
    components.sort((a, b) => a.name.localeCompare(b.name));
    status.components = components.map(
      ({ failed: _failed, ...c }): FluxComponentStatus => c,
    );

    // Sync: the Kustomization the FluxReport names, else <ns>/<ns> as bootstrap creates it.
    const reportedSync = /^kustomization\/(.+)$/i.exec(
      report?.spec?.sync?.id ?? '',
    )?.[1];
    const syncName = reportedSync ?? namespace;
    const syncObj = await (syncName === guess && namespace === guess
      ? syncAhead
      : getFirst('Kustomization', syncName, namespace));
    const sync: FluxSyncStatus | undefined = syncObj
      ? syncStatusOf(syncObj, clean)
      : undefined;

    const sourceRef = (
      syncObj?.spec as { sourceRef?: Record<string, unknown> } | undefined
    )?.sourceRef;
    const sourceKind =
      typeof sourceRef?.kind === 'string' ? sourceRef.kind : 'GitRepository';
    const sourceName =
      typeof sourceRef?.name === 'string' ? sourceRef.name : syncName;
    const sourceNamespace =
      typeof sourceRef?.namespace === 'string'
        ? sourceRef.namespace
        : namespace;
    let sourceObj: KubeObject | undefined;
    if (
      sourceKind === 'GitRepository' &&
      sourceName === guess &&
      sourceNamespace === guess
    ) {
      sourceObj = await sourceAhead;
    } else if (FLUX_API_VERSIONS[sourceKind]) {
      sourceObj = await getFirst(sourceKind, sourceName, sourceNamespace);
    }
    const source: FluxSourceStatus | undefined = sourceObj
      ? sourceStatusOf(sourceObj, clean)
      : undefined;
    if (sync) status.sync = sync;
    if (source) status.source = source;

    decideState(status, {
      namespace,
      components,
      syncObj,
      sourceObj,
      syncRef: `Kustomization ${namespace}/${syncName}`,
      sourceRef: `${sourceKind} ${sourceNamespace}/${sourceName}`,
    });
    return status;
  } catch (error) {
    if (error instanceof Decided) {
      status.state = error.state;
      status.reason = redactor.redact(error.reason);
      return status;
    }
    if (isAbortError(error) || signal?.aborted) {
      status.state = 'unreachable';
      status.reason = `No complete answer from the API server: ${
        signal?.reason instanceof Error
          ? signal.reason.message
          : 'the read was cancelled'
      }`;
      return status;
    }
    const safe = redactor.redactError(error);
    logger.error(
      `Reading the Flux status of cluster ${options.cluster} failed`,
      safe,
    );
    status.state = 'unreachable';
    status.reason = `Could not read the cluster: ${safe.message}`;
    return status;
  } finally {
    ahead.abort();
    aheadSignal.dispose();
  }

  function listFluxDeployments(
    namespace: string,
    readSignal: AbortSignal | undefined,
  ): Promise<KubeObject[]> {
    return must(`list Deployments in namespace ${namespace}`, () =>
      client.list('apps/v1', 'Deployment', {
        namespace,
        labelSelector: PART_OF_FLUX,
        signal: readSignal,
      }),
    );
  }
}

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
  for (const label of [
    'app.kubernetes.io/instance',
    'kustomize.toolkit.fluxcd.io/namespace',
  ]) {
    const value = labels[label];
    if (value && DNS_LABEL.test(value)) return value;
  }
  const namespaces = await may('list Namespaces', () =>
    client.list('v1', 'Namespace', {
      labelSelector: PART_OF_FLUX,
      signal: options.signal,
    }),
  );
  const names = (namespaces ?? []).map(n => n.metadata.name);
  if (names.includes(DEFAULT_NAMESPACE)) return DEFAULT_NAMESPACE;
  if (names.length === 1) return names[0];
  return DEFAULT_NAMESPACE;
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
  const set = (state: ClusterBootstrapStatus['state'], reason?: string) => {
    status.state = state;
    if (reason) status.reason = reason;
    else delete status.reason;
  };

  if (sync?.suspended || source?.suspended) {
    const what = [
      sync?.suspended ? facts.syncRef : '',
      source?.suspended ? facts.sourceRef : '',
    ]
      .filter(Boolean)
      .join(' and ');
    set(
      'suspended',
      `${what} ${
        what.includes(' and ') ? 'are' : 'is'
      } suspended: Flux does not reconcile the cluster from Git.`,
    );
    return;
  }

  const failures: string[] = [];
  if (facts.sourceObj && isFailing(facts.sourceObj)) {
    failures.push(`${facts.sourceRef}: ${source?.message ?? 'Ready=False'}`);
  }
  // A Kustomization that ran before its source had an artifact waits for it (see the waiting
  // reasons below); the source's own failure, if any, is reported above.
  const syncWaitsForSource = waitsForSourceArtifact(
    facts.syncObj,
    facts.sourceObj,
  );
  if (facts.syncObj && isFailing(facts.syncObj) && !syncWaitsForSource) {
    failures.push(`${facts.syncRef}: ${sync?.message ?? 'Ready=False'}`);
  }
  for (const c of facts.components.filter(x => x.failed)) {
    failures.push(`${c.name}: ${c.message ?? 'failed'}`);
  }
  if (failures.length > 0) {
    set('failing', failures.join('\n'));
    return;
  }

  const waiting: string[] = [];
  if (facts.components.length === 0) {
    waiting.push(
      `no Flux controllers (Deployments labelled ${PART_OF_FLUX}) in namespace ${facts.namespace} yet`,
    );
  } else {
    const pending = facts.components.filter(c => !c.ready);
    if (pending.length > 0) {
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
  }
  if (!facts.syncObj) {
    waiting.push(
      `${facts.syncRef} does not exist yet (Flux is installed but not synced from Git)`,
    );
  } else if (!facts.sourceObj) {
    waiting.push(`${facts.sourceRef} does not exist yet`);
  } else {
    for (const [obj, ref, s] of [
      [facts.sourceObj, facts.sourceRef, source],
      [facts.syncObj, facts.syncRef, sync],
    ] as const) {
      if (!generationObserved(obj)) {
        waiting.push(
          obj.status === undefined
            ? `${ref}: not reconciled yet`
            : `${ref}: reconciling the latest change`,
        );
      } else if (s?.ready !== true) {
        waiting.push(
          `${ref}: ${s?.message ?? 'not reconciled yet'}${
            obj === facts.syncObj && syncWaitsForSource
              ? ` (it ran before ${facts.sourceRef} had an artifact; kustomize-controller retries once it has one)`
              : ''
          }`,
        );
      }
    }
    if (sync?.ready === true && !sync.lastAppliedRevision) {
      waiting.push(`${facts.syncRef} has not applied a revision yet`);
    }
  }
  if (waiting.length > 0) {
    set('installing', waiting.join('\n'));
    return;
  }
  set('ready');
}
