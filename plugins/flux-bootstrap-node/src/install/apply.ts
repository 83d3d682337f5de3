import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import pLimit from 'p-limit';
import { KubeApiError } from '../kube/errors';
import type { KubeClient, KubeObject } from '../kube/types';
import { conditionOf } from '../status/fluxObjects';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { withTimeout } from './wait';

/** `Kind ns/name` or `Kind name`; also the key of an object in a staged apply. */
function describeObject(o: KubeObject): string {
  const { namespace, name } = o.metadata;
  return `${o.kind} ${namespace ? `${namespace}/` : ''}${name}`;
}

/** Stage 1 of an apply (CRDs and Namespaces), as flux's `internal/utils/apply.go` does it. */
function isClusterDefinition(o: KubeObject): boolean {
  return (
    (o.kind === 'CustomResourceDefinition' &&
      o.apiVersion.startsWith('apiextensions.k8s.io/')) ||
    (o.kind === 'Namespace' && o.apiVersion === 'v1')
  );
}

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
  /** First poll interval of the CRD wait (then ×1.5 up to 250 ms, after 10 s 1 s). Default 100 ms. */
  pollIntervalMs?: number;
  /** A CRD with accepted names but not Established after this long is created again. Default 10 s. */
  stuckCrdAfterMs?: number;
  signal?: AbortSignal;
  logger?: EngineLogger;
}

/**
 * Whether two states of an object differ only in what every write changes (resourceVersion,
 * generation, managedFields' timestamps), with the same fields owned by `manager` through Apply.
 */
function sameApply(a: KubeObject, b: KubeObject, manager: string): boolean {
  const view = ({ metadata, ...o }: KubeObject) => {
    const {
      resourceVersion: _rv,
      generation: _g,
      managedFields,
      ...rest
    } = metadata;
    const owned = ((managedFields ?? []) as Record<string, unknown>[])
      .filter(
        e => e.manager === manager && e.operation === 'Apply' && !e.subresource,
      )
      .map(e => e.fieldsV1);
    return [{ ...o, metadata: rest }, owned];
  };
  return isDeepStrictEqual(view(a), view(b));
}

const applyOptions = (opts: ApplyStagedOptions) => ({
  fieldManager: opts.fieldManager,
  force: opts.force ?? true,
  signal: opts.signal,
});

const refOf = (o: KubeObject) => ({
  apiVersion: o.apiVersion,
  kind: o.kind,
  name: o.metadata.name,
  namespace: o.metadata.namespace,
});

/**
 * Applies one object unless a server-side dry run (as fluxcd/pkg/ssa does) shows that neither
 * its content nor this manager's fields change: the API server normalises a quantity like
 * `cpu: 1000m` only after its no-op check, so it would be rewritten on every apply.
 */
async function applyOne(
  client: KubeClient,
  obj: KubeObject,
  opts: ApplyStagedOptions,
  exists?: boolean,
): Promise<AppliedObject> {
  const object = describeObject(obj);
  const write = applyOptions(opts);
  const live =
    exists === false
      ? undefined
      : await client.get(refOf(obj), { signal: opts.signal });
  if (live) {
    const dry = await client.apply(obj, { ...write, dryRun: true });
    if (sameApply(dry, live, opts.fieldManager)) {
      opts.logger?.debug(`${object} unchanged`);
      return { object, result: 'unchanged' };
    }
  }
  await client.apply(obj, write);
  const result = live ? 'configured' : 'created';
  opts.logger?.debug(`${object} ${result}`);
  return { object, result };
}

/**
 * Which objects exist, from one metadata-only list per kind and namespace of two or more objects
 * instead of a GET each. A group whose list fails (may get but not list) is left out of the map.
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
  const lists = [...groups.values()].filter(g => g.length > 1);
  await Promise.all(
    lists.map(async group => {
      const { apiVersion, kind, metadata } = group[0];
      const items = await client
        .list(apiVersion, kind, {
          namespace: metadata.namespace,
          metadataOnly: true,
          signal,
        })
        .catch(e => {
          if (e instanceof KubeApiError) return undefined; // read each object instead
          throw e;
        });
      const names = new Set(items?.map(i => i.metadata.name));
      if (items)
        for (const o of group)
          known.set(describeObject(o), names.has(o.metadata.name));
    }),
  );
  return known;
}

/** CRDs created at once. */
const CRD_CONCURRENCY = 16;

const crdSpec = (crd: KubeObject) =>
  crd.spec as {
    group: string;
    names: { kind: string };
    versions?: { name: string; served?: boolean }[];
  };

/** `<group>/<version>` of every served version of a CRD. */
const servedGroupVersions = (crd: KubeObject) =>
  (crdSpec(crd).versions ?? [])
    .filter(v => v.served !== false)
    .map(v => `${crdSpec(crd).group}/${v.name}`);

/**
 * NamesAccepted=True but Established=False: the state the API server leaves a CRD in when it
 * restarts between accepting the names and establishing it; nothing queues it again, so it stays
 * so for good (kubernetes/kubernetes#121918).
 */
const isStuckInstalling = (crd: KubeObject | undefined) =>
  conditionOf(crd, 'NamesAccepted')?.status === 'True' &&
  conditionOf(crd, 'Established')?.status === 'False';

/**
 * Waits until discovery serves every CRD's kinds (it lists them once Established), asking once per
 * group/version a round. The pending CRDs (large objects) are read at most once a second, to say
 * why they are not ready and to create stuck ones again.
 */
async function waitForCrds(
  client: KubeClient,
  crds: KubeObject[],
  opts: ApplyStagedOptions,
): Promise<void> {
  if (crds.length === 0) return;
  const logger = opts.logger ?? silentLogger;
  logger.info(
    `Waiting for ${crds.length} CustomResourceDefinitions to become Established`,
  );
  const timeoutMs = opts.crdTimeoutMs ?? 60_000;
  const stuckAfterMs = opts.stuckCrdAfterMs ?? 10_000;
  const first = opts.pollIntervalMs ?? 100;
  const startedAt = Date.now();
  let lastProgress = startedAt;
  let lastRead = startedAt;
  const { timeout, signal } = withTimeout(timeoutMs, opts.signal);
  const pending = new Map(crds.map(c => [c.metadata.name, c]));
  let lastMessage = '';
  /** Since when each pending CRD is stuck; each is created again at most once. */
  const stuckSince = new Map<string, number>();
  const recreated = new Set<string>();
  const limit = pLimit(8);

  /** Why the pending CRDs are not served: their Established condition. */
  const readPending = async (readSignal: AbortSignal) => {
    const list = [...pending.values()];
    const live = await Promise.all(
      list.map(crd =>
        limit(() => client.get(refOf(crd), { signal: readSignal })),
      ),
    );
    list.forEach((crd, i) => {
      const name = crd.metadata.name;
      if (!isStuckInstalling(live[i])) stuckSince.delete(name);
      else if (!stuckSince.has(name)) stuckSince.set(name, Date.now());
    });
    const [crd] = list;
    const established = conditionOf(live[0], 'Established');
    if (!crd) return;
    lastMessage =
      established?.status === 'True'
        ? `the API server does not serve ${crdSpec(crd).names.kind} (${
            crd.metadata.name
          }) yet`
        : `CRD ${crd.metadata.name} is not Established yet${
            established?.message ? `: ${established.message}` : ''
          }`;
  };

  try {
    for (let interval = first; ; ) {
      const wanted = new Map<string, Set<string>>();
      for (const crd of pending.values()) {
        for (const gv of servedGroupVersions(crd))
          wanted.set(
            gv,
            (wanted.get(gv) ?? new Set()).add(crdSpec(crd).names.kind),
          );
      }
      const served = new Set<string>();
      await Promise.all(
        [...wanted].map(async ([gv, kinds]) => {
          // One discovery request per group/version: the first lookup refreshes the client's
          // discovery cache, the others read it.
          let refresh = true;
          for (const kind of kinds) {
            const info = await client.resourceFor(gv, kind, {
              signal,
              refresh,
            });
            refresh = false;
            if (info) served.add(`${gv}\0${kind}`);
          }
        }),
      );
      for (const crd of [...pending.values()]) {
        const kind = crdSpec(crd).names.kind;
        if (servedGroupVersions(crd).every(gv => served.has(`${gv}\0${kind}`)))
          pending.delete(crd.metadata.name);
      }
      if (pending.size === 0) break;
      if (Date.now() - lastRead >= 1_000) {
        lastRead = Date.now();
        await readPending(signal);
        for (const [name, crd] of pending) {
          const since = stuckSince.get(name) ?? Infinity;
          if (recreated.has(name) || Date.now() - since < stuckAfterMs)
            continue;
          recreated.add(name);
          stuckSince.delete(name);
          // Deleting it and creating it again makes the API server establish it afresh. Safe: a
          // CRD never Established was never served, so no custom resource of it can exist.
          logger.warn(
            `CRD ${name} accepted its names but has not become Established for ${Math.round(
              stuckAfterMs / 1000,
            )} s (the API server can leave a CRD so when it restarts while establishing it); it was never served, so no resource of it exists: deleting it and creating it again`,
          );
          await client.delete(refOf(crd), { signal });
          while (await client.get(refOf(crd), { signal }))
            await sleep(200, undefined, { signal });
          await client.apply(crd, { ...applyOptions(opts), signal });
        }
      }
      if (Date.now() - lastProgress >= 5_000) {
        lastProgress = Date.now();
        logger.info(
          `Still waiting for ${pending.size} of ${
            crds.length
          } CustomResourceDefinitions (${Math.round(
            (Date.now() - startedAt) / 1000,
          )} s): ${lastMessage || [...pending.keys()].join(', ')}`,
        );
      }
      await sleep(interval, undefined, { signal });
      interval =
        Date.now() - startedAt < 10_000
          ? Math.min(Math.max(first, 250), Math.round(interval * 1.5))
          : Math.max(first, 1_000);
    }
    logger.debug(
      `${crds.length} CustomResourceDefinitions are Established and served (${
        Date.now() - startedAt
      } ms)`,
    );
  } catch (e) {
    if (timeout.aborted) {
      if (!lastMessage && !opts.signal?.aborted) {
        // Say why, if the CRDs can still be read quickly.
        await readPending(AbortSignal.timeout(5_000)).catch(() => undefined);
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
  }
}

/**
 * Server-side applies objects as flux does (`internal/utils/apply.go`), staged by what depends
 * on what: the Namespaces first; then together (a) the CRDs and the wait until they are
 * Established and served and (b) everything that is not a custom resource of those CRDs; last the
 * custom resources. Applies run in parallel with bounded concurrency; re-applying identical
 * objects changes nothing on the server.
 * @public
 */
export async function applyStaged(
  client: KubeClient,
  objects: readonly KubeObject[],
  opts: ApplyStagedOptions,
): Promise<AppliedObject[]> {
  const definitions = objects.filter(isClusterDefinition);
  const namespaces = definitions.filter(o => o.kind === 'Namespace');
  const crds = definitions.filter(o => o.kind === 'CustomResourceDefinition');
  const newKinds = new Set(
    crds.map(c => `${crdSpec(c).group}/${crdSpec(c).names?.kind}`),
  );
  const isCustom = (o: KubeObject) =>
    newKinds.has(`${o.apiVersion.split('/').slice(0, -1).join('/')}/${o.kind}`);
  const rest = objects.filter(o => !isClusterDefinition(o));
  const independent = rest.filter(o => !isCustom(o));
  const concurrency = opts.concurrency ?? 8;
  const known = await existenceOf(
    client,
    [...definitions, ...independent],
    opts.signal,
  );
  const applyAll = (
    list: KubeObject[],
    o: ApplyStagedOptions = opts,
    limit = pLimit(concurrency),
  ) =>
    Promise.all(
      list.map(obj =>
        limit(() => applyOne(client, obj, o, known.get(describeObject(obj)))),
      ),
    );

  const results = await applyAll(namespaces);
  // The CRDs (and their wait) and the independent objects run together; the first failure
  // stops the other, and both have ended before this returns or throws.
  const stop = new AbortController();
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, stop.signal])
    : stop.signal;
  setMaxListeners(64, signal); // every request in flight listens
  const shared = { ...opts, signal };
  let failure: { error: unknown } | undefined;
  const track = (p: Promise<AppliedObject[]>) =>
    p.catch(error => {
      failure ??= { error };
      stop.abort();
      throw error;
    });
  // All CRDs at once (up to 16): the API server starts establishing each as soon as it is
  // created, and that is the longest part of an install.
  const crdLimit = pLimit(Math.max(concurrency, CRD_CONCURRENCY));
  const settled = await Promise.allSettled([
    track(
      applyAll(crds, shared, crdLimit).then(async applied => {
        await waitForCrds(client, crds, shared);
        return applied;
      }),
    ),
    track(applyAll(independent, shared)),
  ]);
  if (failure) throw failure.error;
  for (const s of settled)
    if (s.status === 'fulfilled') results.push(...s.value);
  results.push(...(await applyAll(rest.filter(isCustom))));
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
