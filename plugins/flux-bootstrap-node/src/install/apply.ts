import { KubeApiError } from '../kube/errors';
import type { KubeClient, KubeObject } from '../kube/types';
import { conditionOf } from '../status/fluxObjects';
import { combineSignals, mapLimit, sleep } from '../util/async';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { describeObject, isClusterDefinition } from './plan';

/** What one server-side apply did. @public */
export interface AppliedObject {
  /** `Kind ns/name`. */
  object: string;
  result: 'created' | 'configured' | 'unchanged';
}

/** Options of {@link applyStaged}. @public */
export interface ApplyStagedOptions {
  /** Field manager of every apply (flux's CLI uses `flux`). */
  fieldManager: string;
  /** Take over fields owned by other managers (flux's SSA manager always does). Default true. */
  force?: boolean;
  /** Applies in flight at once in stage 2. Default 8. */
  concurrency?: number;
  /** How long CRDs may take to become Established. Default 60 s (as flux). */
  crdTimeoutMs?: number;
  /** Poll interval of the CRD wait. Default 500 ms. */
  pollIntervalMs?: number;
  signal?: AbortSignal;
  logger?: EngineLogger;
}

/** JSON with sorted keys, for order-independent comparison. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v).sort(([a], [b]) => Number(a > b) - Number(a < b)),
        )
      : v,
  );
}

/** The object without what every write changes (resourceVersion, managedFields times…). */
function comparable(o: KubeObject): string {
  const {
    resourceVersion: _rv,
    managedFields: _mf,
    generation: _g,
    ...metadata
  } = o.metadata;
  return canonical({ ...o, metadata });
}

/** The fields `manager` owns through Apply (no timestamps). */
function ownedFields(o: KubeObject, manager: string): string {
  const entries = (o.metadata.managedFields ?? []) as {
    manager?: string;
    operation?: string;
    subresource?: string;
    fieldsV1?: unknown;
  }[];
  return canonical(
    entries
      .filter(
        e => e.manager === manager && e.operation === 'Apply' && !e.subresource,
      )
      .map(e => e.fieldsV1),
  );
}

/**
 * Applies one object so that applying identical content never writes: for an existing object a
 * server-side dry-run apply is compared with the live object first (as fluxcd/pkg/ssa does) and
 * the real apply is skipped when neither the content nor this manager's fields would change.
 * Without this, a manifest with a quantity in non-canonical form (`cpu: 1000m`, `pods: "1000"`)
 * is rewritten on every apply — the API server only normalises it after its no-op check, and
 * bumps resourceVersion and the managedFields time.
 */
async function applyOne(
  client: KubeClient,
  obj: KubeObject,
  opts: ApplyStagedOptions,
): Promise<AppliedObject> {
  const ref = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: obj.metadata.name,
    namespace: obj.metadata.namespace,
  };
  const applyOpts = {
    fieldManager: opts.fieldManager,
    force: opts.force ?? true,
    signal: opts.signal,
  };
  const live = await client.get(ref, { signal: opts.signal });
  let result: AppliedObject['result'] = 'created';
  if (live) {
    const dry = await client.apply(obj, { ...applyOpts, dryRun: true });
    const unchanged =
      comparable(dry) === comparable(live) &&
      ownedFields(dry, opts.fieldManager) ===
        ownedFields(live, opts.fieldManager);
    if (unchanged) {
      opts.logger?.debug(`${describeObject(obj)} unchanged`);
      return { object: describeObject(obj), result: 'unchanged' };
    }
    result = 'configured';
  }
  await client.apply(obj, applyOpts);
  opts.logger?.debug(`${describeObject(obj)} ${result}`);
  return { object: describeObject(obj), result };
}

/** Waits until every CRD is Established and discovery serves its kinds. */
async function waitForCrds(
  client: KubeClient,
  crds: KubeObject[],
  opts: ApplyStagedOptions,
): Promise<void> {
  if (crds.length === 0) return;
  const timeoutMs = opts.crdTimeoutMs ?? 60_000;
  const deadline = combineSignals([opts.signal], timeoutMs);
  const pending = new Map(crds.map(c => [c.metadata.name, c]));
  let lastMessage = '';
  try {
    while (pending.size > 0) {
      for (const [name, crd] of [...pending]) {
        const live = await client.get(
          { apiVersion: crd.apiVersion, kind: crd.kind, name },
          { signal: deadline.signal },
        );
        const established = conditionOf(live, 'Established');
        if (established?.status !== 'True') {
          lastMessage = `CRD ${name} is not Established yet${
            established?.message ? `: ${established.message}` : ''
          }`;
          continue;
        }
        const spec = crd.spec as {
          group: string;
          names: { kind: string };
          versions?: { name: string; served?: boolean }[];
        };
        const served = (spec.versions ?? []).filter(v => v.served !== false);
        let known = true;
        for (const v of served) {
          const info = await client.resourceFor(
            `${spec.group}/${v.name}`,
            spec.names.kind,
            {
              signal: deadline.signal,
              refresh: true,
            },
          );
          if (!info) known = false;
        }
        if (known) pending.delete(name);
        else
          lastMessage = `the API server does not serve ${spec.names.kind} (${name}) yet`;
      }
      if (pending.size > 0)
        await sleep(opts.pollIntervalMs ?? 500, deadline.signal);
    }
  } catch (e) {
    if (deadline.timedOut()) {
      throw new KubeApiError(
        `CustomResourceDefinitions on cluster "${
          client.clusterName
        }" did not become Established within ${Math.round(
          timeoutMs / 1000,
        )} s: ${lastMessage || [...pending.keys()].join(', ')}`,
        { kind: 'server', reason: 'Timeout' },
      );
    }
    if (opts.signal?.aborted) {
      throw new OperationAbortedError(
        'Cancelled while waiting for the Flux CRDs to become Established',
      );
    }
    throw e;
  } finally {
    deadline.dispose();
  }
}

/**
 * Server-side applies objects the way flux does (`internal/utils/apply.go`): stage 1 the CRDs
 * and Namespaces, then waits until the CRDs are Established; stage 2 everything else, in parallel
 * with bounded concurrency. Re-applying identical objects changes nothing on the server.
 * @public
 */
export async function applyStaged(
  client: KubeClient,
  objects: KubeObject[],
  opts: ApplyStagedOptions,
): Promise<AppliedObject[]> {
  const logger = opts.logger ?? silentLogger;
  const stage1 = objects.filter(isClusterDefinition);
  const stage2 = objects.filter(o => !isClusterDefinition(o));
  const concurrency = opts.concurrency ?? 8;
  const results: AppliedObject[] = [];
  if (stage1.length) {
    results.push(
      ...(await mapLimit(stage1, concurrency, o => applyOne(client, o, opts))),
    );
    const crds = stage1.filter(o => o.kind === 'CustomResourceDefinition');
    if (crds.length) {
      logger.info(
        `Waiting for ${crds.length} CustomResourceDefinitions to become Established`,
      );
      await waitForCrds(client, crds, opts);
    }
  }
  if (stage2.length) {
    results.push(
      ...(await mapLimit(stage2, concurrency, o => applyOne(client, o, opts))),
    );
  }
  return results;
}

/** `3 created, 1 configured, 40 unchanged`. @public */
export function summarizeApplied(results: AppliedObject[]): string {
  const count = (r: AppliedObject['result']) =>
    results.filter(x => x.result === r).length;
  return `${count('created')} created, ${count(
    'configured',
  )} configured, ${count('unchanged')} unchanged`;
}
