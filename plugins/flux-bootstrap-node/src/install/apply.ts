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
  /** Applies in flight at once (per stage). Default 8. */
  concurrency?: number;
  /** How long CRDs may take to become Established. Default 60 s (as flux). */
  crdTimeoutMs?: number;
  /** First poll interval of the CRD wait; later rounds back off (×1.5) to 250 ms, after 10 s to 1 s. Default 100 ms. */
  pollIntervalMs?: number;
  /**
   * A CRD that accepted its names but is still not Established after this long is deleted and
   * created again (see {@link waitForCrds}). Default 10 s.
   */
  stuckCrdAfterMs?: number;
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
 *
 * `exists` is what a list said just before (see {@link existenceOf}): an object known to be
 * absent is created without a GET or a dry run; otherwise the object is read first.
 */
async function applyOne(
  client: KubeClient,
  obj: KubeObject,
  opts: ApplyStagedOptions,
  exists?: boolean,
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
  const live =
    exists === false
      ? undefined
      : await client.get(ref, { signal: opts.signal });
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

/** `Kind ns/name` key of an object. */
function keyOf(o: {
  kind: string;
  metadata: { name: string; namespace?: string };
}) {
  return `${o.kind}\0${o.metadata.namespace ?? ''}\0${o.metadata.name}`;
}

/**
 * Which objects exist, from one metadata-only list per kind and namespace instead of a GET per
 * object (a fresh install then sends no read per object at all). Only groups of two or more
 * objects are listed (one GET is as cheap as one list); a group whose list fails (e.g. the
 * credentials may get but not list) is left to the per-object GET. Returns `true`/`false` per
 * object key, nothing when unknown.
 */
async function existenceOf(
  client: KubeClient,
  objects: KubeObject[],
  signal?: AbortSignal,
): Promise<Map<string, boolean>> {
  const groups = new Map<string, KubeObject[]>();
  for (const o of objects) {
    const key = `${o.apiVersion}\0${o.kind}\0${o.metadata.namespace ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const known = new Map<string, boolean>();
  await Promise.all(
    [...groups.values()]
      .filter(g => g.length > 1)
      .map(async group => {
        const { apiVersion, kind, metadata } = group[0];
        let names: Set<string>;
        try {
          const items = await client.list(apiVersion, kind, {
            namespace: metadata.namespace,
            metadataOnly: true,
            signal,
          });
          names = new Set(items.map(i => i.metadata.name));
        } catch (e) {
          if (e instanceof KubeApiError) return; // read each object instead
          throw e;
        }
        for (const o of group) known.set(keyOf(o), names.has(o.metadata.name));
      }),
  );
  return known;
}

/** CRDs created at once. */
const CRD_CONCURRENCY = 16;

/** `<group>/<kind>` of the kinds the CRDs define. */
function kindsDefinedBy(crds: KubeObject[]): Set<string> {
  const kinds = new Set<string>();
  for (const crd of crds) {
    const spec = crd.spec as { group?: string; names?: { kind?: string } };
    if (spec?.group && spec.names?.kind)
      kinds.add(`${spec.group}/${spec.names.kind}`);
  }
  return kinds;
}

function groupKind(o: KubeObject): string {
  const slash = o.apiVersion.indexOf('/');
  return `${slash >= 0 ? o.apiVersion.slice(0, slash) : ''}/${o.kind}`;
}

/**
 * Waits until every CRD is Established and discovery serves its kinds. Each round asks discovery
 * once per group/version of the pending CRDs (several CRDs share one): the API server lists a
 * CRD's kinds only once it is Established, so a served kind needs no read of its CRD. The pending
 * CRDs themselves (large objects) are read concurrently at most once a second, to say why they
 * are not ready in the progress lines and the timeout error. Rounds start ~100 ms apart, back
 * off to 250 ms, and to 1 s after 10 s.
 */
async function waitForCrds(
  client: KubeClient,
  crds: KubeObject[],
  opts: ApplyStagedOptions,
): Promise<void> {
  if (crds.length === 0) return;
  const logger = opts.logger ?? silentLogger;
  const timeoutMs = opts.crdTimeoutMs ?? 60_000;
  const firstInterval = opts.pollIntervalMs ?? 100;
  // The kinds are usually served within a few seconds: poll closely then (a late poll is time
  // lost), and back off to 1 s only for a long wait.
  const nearInterval = Math.max(firstInterval, 250);
  const farInterval = Math.max(firstInterval, 1_000);
  const nearPeriodMs = 10_000;
  const readEvery = 1_000;
  const progressEvery = 5_000;
  const startedAt = Date.now();
  let lastProgress = startedAt;
  let lastRead = startedAt;
  const deadline = combineSignals([opts.signal], timeoutMs);
  const pending = new Map(crds.map(c => [c.metadata.name, c]));
  let lastMessage = '';
  const stuckAfterMs = opts.stuckCrdAfterMs ?? 10_000;
  /** Since when each pending CRD has accepted names without being Established. */
  const stuckSince = new Map<string, number>();
  const recreated = new Set<string>();

  /** Why the pending CRDs are not served: their Established condition, read concurrently. */
  const readPending = async (signal: AbortSignal) => {
    const list = [...pending.values()];
    const live = await mapLimit(list, 8, crd =>
      client.get(
        { apiVersion: crd.apiVersion, kind: crd.kind, name: crd.metadata.name },
        { signal },
      ),
    );
    list.forEach((crd, i) => {
      if (!isStuckInstalling(live[i])) stuckSince.delete(crd.metadata.name);
      else if (!stuckSince.has(crd.metadata.name))
        stuckSince.set(crd.metadata.name, Date.now());
    });
    const messages = list.map((crd, i) => {
      const condition = conditionOf(live[i], 'Established');
      return condition?.status === 'True'
        ? `the API server does not serve ${kindOf(crd)} (${
            crd.metadata.name
          }) yet`
        : `CRD ${crd.metadata.name} is not Established yet${
            condition?.message ? `: ${condition.message}` : ''
          }`;
    });
    lastMessage = messages[0] ?? lastMessage;
  };

  try {
    for (let interval = firstInterval; ; ) {
      const wanted = new Map<string, Set<string>>();
      for (const crd of pending.values()) {
        for (const gv of servedGroupVersions(crd))
          wanted.set(gv, (wanted.get(gv) ?? new Set()).add(kindOf(crd)));
      }
      const served = new Set<string>();
      await Promise.all(
        [...wanted].map(async ([gv, kinds]) => {
          // One discovery request per group/version: the first lookup refreshes, the others
          // read that same answer from the client's discovery cache.
          let refresh = true;
          for (const kind of kinds) {
            const info = await client.resourceFor(gv, kind, {
              signal: deadline.signal,
              refresh,
            });
            refresh = false;
            if (info) served.add(`${gv}\0${kind}`);
          }
        }),
      );
      for (const crd of [...pending.values()]) {
        if (
          servedGroupVersions(crd).every(gv =>
            served.has(`${gv}\0${kindOf(crd)}`),
          )
        )
          pending.delete(crd.metadata.name);
      }
      if (pending.size === 0) break;
      if (Date.now() - lastRead >= readEvery) {
        lastRead = Date.now();
        await readPending(deadline.signal);
        for (const [name, since] of stuckSince) {
          // A CRD served since it was seen stuck has left `pending`: nothing to do for it.
          if (!pending.has(name)) stuckSince.delete(name);
          if (
            !pending.has(name) ||
            recreated.has(name) ||
            Date.now() - since < stuckAfterMs
          )
            continue;
          recreated.add(name);
          stuckSince.delete(name);
          await recreateCrd(client, pending.get(name)!, {
            ...opts,
            signal: deadline.signal,
          });
        }
      }
      if (Date.now() - lastProgress >= progressEvery) {
        lastProgress = Date.now();
        logger.info(
          `Still waiting for ${pending.size} of ${
            crds.length
          } CustomResourceDefinitions (${Math.round(
            (Date.now() - startedAt) / 1000,
          )} s): ${lastMessage || [...pending.keys()].join(', ')}`,
        );
      }
      await sleep(interval, deadline.signal);
      interval =
        Date.now() - startedAt < nearPeriodMs
          ? Math.min(nearInterval, Math.round(interval * 1.5))
          : farInterval;
    }
    logger.debug(
      `${crds.length} CustomResourceDefinitions are Established and served (${
        Date.now() - startedAt
      } ms)`,
    );
  } catch (e) {
    if (deadline.timedOut()) {
      if (!lastMessage && !opts.signal?.aborted) {
        // Say why, if the CRDs can still be read quickly.
        const last = combineSignals([opts.signal], 5_000);
        await readPending(last.signal).catch(() => undefined);
        last.dispose();
      }
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
 * NamesAccepted=True but Established=False (reason `Installing`): the state the API server leaves
 * a CRD in when it restarts between accepting the names and establishing it. Its naming
 * controller returns early for names it already accepted, so nothing queues the CRD for
 * establishing again, and it stays so for good (kubernetes/kubernetes#121918).
 */
function isStuckInstalling(crd: KubeObject | undefined): boolean {
  return (
    conditionOf(crd, 'NamesAccepted')?.status === 'True' &&
    conditionOf(crd, 'Established')?.status === 'False'
  );
}

/**
 * Deletes a CRD that never became Established and creates it again, which makes the API server
 * accept its names and establish it afresh. Safe: a CRD that was never Established was never
 * served, so no custom resource of it can exist.
 */
async function recreateCrd(
  client: KubeClient,
  crd: KubeObject,
  opts: ApplyStagedOptions & { signal: AbortSignal },
): Promise<void> {
  const ref = {
    apiVersion: crd.apiVersion,
    kind: crd.kind,
    name: crd.metadata.name,
  };
  (opts.logger ?? silentLogger).warn(
    `CRD ${
      crd.metadata.name
    } accepted its names but has not become Established for ${Math.round(
      (opts.stuckCrdAfterMs ?? 10_000) / 1000,
    )} s (the API server can leave a CRD so when it restarts while establishing it); it was never served, so no resource of it exists: deleting it and creating it again`,
  );
  await client.delete(ref, { signal: opts.signal });
  while (await client.get(ref, { signal: opts.signal })) {
    await sleep(200, opts.signal);
  }
  await client.apply(crd, {
    fieldManager: opts.fieldManager,
    force: opts.force ?? true,
    signal: opts.signal,
  });
}

function kindOf(crd: KubeObject): string {
  return (crd.spec as { names: { kind: string } }).names.kind;
}

/** `<group>/<version>` of every served version of a CRD. */
function servedGroupVersions(crd: KubeObject): string[] {
  const spec = crd.spec as {
    group: string;
    versions?: { name: string; served?: boolean }[];
  };
  return (spec.versions ?? [])
    .filter(v => v.served !== false)
    .map(v => `${spec.group}/${v.name}`);
}

/**
 * Server-side applies objects the way flux does (`internal/utils/apply.go`), staged by what
 * depends on what: the Namespaces first; then, at the same time, (a) the CRDs and the wait until
 * they are Established and served, and (b) the objects that are not custom resources of those
 * CRDs (RBAC, ServiceAccounts, Deployments… need the namespace, not the CRDs); last the custom
 * resources. Returns once everything is applied and the CRDs are served. Applies run in parallel
 * with bounded concurrency; re-applying identical objects changes nothing on the server.
 * @public
 */
export async function applyStaged(
  client: KubeClient,
  objects: readonly KubeObject[],
  opts: ApplyStagedOptions,
): Promise<AppliedObject[]> {
  const logger = opts.logger ?? silentLogger;
  const stage1 = objects.filter(isClusterDefinition);
  const namespaces = stage1.filter(o => o.kind !== 'CustomResourceDefinition');
  const crds = stage1.filter(o => o.kind === 'CustomResourceDefinition');
  const newKinds = kindsDefinedBy(crds);
  const rest = objects.filter(o => !isClusterDefinition(o));
  const independent = rest.filter(o => !newKinds.has(groupKind(o)));
  const customResources = rest.filter(o => newKinds.has(groupKind(o)));
  const concurrency = opts.concurrency ?? 8;
  const known = await existenceOf(
    client,
    [...stage1, ...independent],
    opts.signal,
  );
  const applyAll = (
    list: KubeObject[],
    o: ApplyStagedOptions = opts,
    limit = concurrency,
  ) =>
    mapLimit(list, limit, obj =>
      applyOne(client, obj, o, known.get(keyOf(obj))),
    );

  const results: AppliedObject[] = [];
  if (namespaces.length) results.push(...(await applyAll(namespaces)));
  if (crds.length) {
    // The CRDs (and their wait) and the independent objects run together; the first failure
    // stops the other, and both have ended before this returns or throws.
    const stop = new AbortController();
    const both = combineSignals([opts.signal, stop.signal]);
    const shared = { ...opts, signal: both.signal };
    let failure: { error: unknown } | undefined;
    const track = <T>(p: Promise<T>) =>
      p.catch(error => {
        failure ??= { error };
        stop.abort();
        throw error;
      });
    try {
      const [definitions, applied] = await Promise.allSettled([
        track(
          (async () => {
            // All CRDs at once (up to 16): the API server starts establishing each as soon
            // as it is created, and its establishing is the longest part of an install.
            const appliedCrds = await applyAll(
              crds,
              shared,
              Math.max(concurrency, CRD_CONCURRENCY),
            );
            logger.info(
              `Waiting for ${crds.length} CustomResourceDefinitions to become Established`,
            );
            await waitForCrds(client, crds, shared);
            return appliedCrds;
          })(),
        ),
        track(applyAll(independent, shared)),
      ]);
      if (failure) throw failure.error;
      if (definitions.status === 'fulfilled')
        results.push(...definitions.value);
      if (applied.status === 'fulfilled') results.push(...applied.value);
    } finally {
      both.dispose();
    }
  } else {
    results.push(...(await applyAll(independent)));
  }
  if (customResources.length)
    results.push(...(await applyAll(customResources)));
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
