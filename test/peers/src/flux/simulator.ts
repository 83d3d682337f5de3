/* eslint-disable consistent-return -- the reconcile functions end early with `return report(…)`, like controller code */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KubeApiserverInfo, KubeHttp, kubePath } from '../kube/http';
import {
  FluxGitSecretData,
  GitAuthError,
  GitCommandError,
  lsRemote,
  withGitAuth,
} from './gitRemote';
import { GitSnapshots } from './gitTree';
import { kustomizeBuild, KustomizeBuildError } from './kustomize';
import {
  Cond,
  createOperatorLoop,
  goDuration,
  OperatorSimOptions,
  parseGoDuration,
  progressingConds,
} from './operatorSim';
import { applyPatches, K8sObject, PatchError } from './patches';
import {
  ApplyError,
  ChangeEntry,
  FluxApplier,
  InventoryEntry,
} from './resources';

/**
 * TEST-ONLY stand-in for Flux's source-controller + kustomize-controller (+ the Deployment
 * controller, + optionally the Flux Operator). The test apiserver runs no controllers, so nothing
 * would ever report "Flux became ready"; this loop does what those controllers would do for the
 * objects bootstrap waits on:
 *
 * - GitRepository `<ns>/<name>` (source.toolkit.fluxcd.io/v1): resolves `spec.ref` on
 *   `spec.url` with a REAL `git ls-remote` using the credentials of `spec.secretRef` (SSH identity
 *   + known_hosts with strict host-key checking, or HTTPS username/password/bearerToken + ca.crt)
 *   and writes `status` (Ready, ArtifactInStorage/FetchFailed, artifact.revision
 *   `<branch>@sha1:<sha>`, observedGeneration) through the status subresource. A git failure
 *   (bad key, unknown host key, missing branch) is reported as Ready=False with git's message.
 *   Checked on every poll (faster than Flux's `spec.interval`, so tests need not wait a minute).
 * - Kustomization `<ns>/<name>` (kustomize.toolkit.fluxcd.io/v1): fetches the source's commit
 *   with git and checks `spec.path`. With `apply: true` it also does kustomize-controller's job
 *   (self-management): builds the path (kustomize.ts: `resources` + `patches`, the generated
 *   kustomization of a folder without one; anything else fails with BuildFailed), server-side
 *   applies the objects as `kustomize-controller` (force, staged, drift-detected, owner labels
 *   `kustomize.toolkit.fluxcd.io/name|namespace`), records `status.inventory`, prunes what left
 *   the build (`spec.prune`), waits for health (`spec.wait`/`spec.healthChecks`), and reports
 *   Ready with Flux's reasons (ReconciliationSucceeded, ArtifactFailed, BuildFailed,
 *   ReconciliationFailed, PruneFailed, HealthCheckFailed), lastAttemptedRevision and
 *   lastAppliedRevision. It reconciles when the source revision, the spec (generation) or the
 *   `reconcile.fluxcd.io/requestedAt` annotation changes, on `reconcileNow()`, after a failure
 *   (`retryMs`), and every `spec.interval`.
 * - Deployments labelled `app.kubernetes.io/part-of=flux` in `<ns>` and every Deployment the
 *   Kustomization or the FluxInstance applied: marks them available.
 * - With `operator`: the Flux Operator (operatorSim.ts): the `flux-operator` Deployment becomes
 *   available, the FluxInstance `flux` is reconciled and the FluxReport `flux` maintained.
 *
 * Honours `spec.suspend` (a suspended object is left alone, its status keeps its last values).
 * `failWith` injects failures, `clear()` recovers. Survives apiserver outages (errors are
 * recorded, the loop continues).
 */
export interface FluxSimulator {
  readonly namespace: string;
  /**
   * Makes the next reconciliations report this failure (source/sync: Ready=False; deployments:
   * unavailable; instance: the FluxInstance Ready=False ReconciliationFailed).
   */
  failWith(
    target: 'source' | 'sync' | 'deployments' | 'instance',
    message: string,
    opts?: { deployment?: string },
  ): void;
  /** Removes every injected failure. */
  clear(): void;
  /**
   * Runs one reconciliation pass now, like `flux reconcile` of everything: the Kustomization,
   * the FluxInstance and the FluxReport are reconciled even when nothing changed (waits for a
   * running pass first).
   */
  reconcileNow(): Promise<void>;
  /** What the simulator did, newest last (for debugging failed tests). */
  events(): string[];
  stop(): Promise<void>;
}

export interface FluxSimulatorOptions {
  kube: KubeApiserverInfo;
  /** Namespace Flux is installed in; the GitRepository and Kustomization are `<namespace>/<name>`. */
  namespace: string;
  /** Name of the GitRepository/Kustomization (default: the namespace, as flux bootstrap names them). */
  name?: string;
  /** Poll interval (default 300 ms). */
  intervalMs?: number;
  /**
   * Self-management: apply what the Kustomization's path builds, like kustomize-controller
   * (default false: status only — the path is checked, nothing is applied). With a
   * `gotk-components.yaml` in Git the simulator then owns the cluster-wide Flux CRDs, so use a
   * private apiserver for such tests.
   */
  apply?: boolean;
  /** Retry delay after a failed Kustomization reconciliation (default 1000 ms; Flux: spec.retryInterval). */
  retryMs?: number;
  /** Simulate the Flux Operator too (see OperatorSimOptions). */
  operator?: OperatorSimOptions;
}

const SOURCE_API = 'source.toolkit.fluxcd.io/v1';

/** The ref source-controller fetches for a GitRepository `spec.ref` (commit sha as the fallback). */
function fetchRefOf(ref: any, sha: string): string {
  if (ref?.name) return ref.name;
  if (ref?.tag) return `refs/tags/${ref.tag}`;
  if (ref?.branch) return `refs/heads/${ref.branch}`;
  return sha;
}
const KUSTOMIZE_API = 'kustomize.toolkit.fluxcd.io/v1';

export async function startFluxSimulator(
  opts: FluxSimulatorOptions,
): Promise<FluxSimulator> {
  const ns = opts.namespace;
  const name = opts.name ?? ns;
  const intervalMs = opts.intervalMs ?? 300;
  const api = new KubeHttp(opts.kube);
  const abort = new AbortController();
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flux-sim-'));
  const failures: {
    source?: string;
    sync?: string;
    deployments?: { message: string; deployment?: string };
  } = {};
  const applier = new FluxApplier(api, abort.signal);
  const snapshots = new GitSnapshots(workDir, abort.signal);
  /** Set by reconcileNow/failWith/clear: the next pass reconciles everything. */
  let forced = false;
  /** kustomize-controller's scheduling state of the sync Kustomization. */
  const ks: {
    lastRun: number;
    failed: boolean;
    waiting: boolean;
    health?: {
      revision: string;
      generation: number;
      deadline: number;
      start: number;
      timeout: string;
      changes: ChangeEntry[];
      extra: Record<string, unknown>;
    };
    deployments: Array<{ namespace: string; name: string }>;
  } = { lastRun: 0, failed: false, waiting: false, deployments: [] };
  const retryMs = opts.retryMs ?? 1000;
  const log: string[] = [];
  const record = (line: string) => {
    log.push(`${new Date().toISOString()} ${line}`);
    if (log.length > 500) log.shift();
  };
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const grPath = kubePath({
    apiVersion: SOURCE_API,
    resource: 'gitrepositories',
    namespace: ns,
    name,
  });
  const ksPath = kubePath({
    apiVersion: KUSTOMIZE_API,
    resource: 'kustomizations',
    namespace: ns,
    name,
  });

  async function getSecret(
    secretName: string,
    secretNs: string = ns,
  ): Promise<FluxGitSecretData | { error: string }> {
    const res = await api.request(
      'GET',
      kubePath({
        apiVersion: 'v1',
        resource: 'secrets',
        namespace: secretNs,
        name: secretName,
      }),
      { signal: abort.signal },
    );
    if (res.status === 404)
      return {
        error: `failed to get secret '${secretNs}/${secretName}': secrets "${secretName}" not found`,
      };
    if (res.status !== 200)
      throw new Error(`GET secret ${secretNs}/${secretName}: ${res.status}`);
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries<string>(res.body.data ?? {}))
      data[k] = Buffer.from(v, 'base64').toString('utf8');
    return data as FluxGitSecretData;
  }

  /** Resolves spec.ref on the remote → { revision, sha, fetchRef } or throws with a Flux-like message. */
  async function resolve(url: string, ref: any, env: NodeJS.ProcessEnv) {
    const clone = (msg: string) =>
      new GitCommandError(
        `failed to checkout and determine revision: unable to clone '${url}': ${msg}`,
        msg,
      );
    try {
      if (ref?.commit && !ref.branch && !ref.tag && !ref.name) {
        return {
          revision: `sha1:${ref.commit}`,
          sha: ref.commit as string,
          fetchRef: ref.commit as string,
        };
      }
      if (ref?.name) {
        const sha = await lsRemote(url, ref.name, env, abort.signal);
        if (!sha) throw clone(`couldn't find remote ref "${ref.name}"`);
        return {
          revision: `${ref.name}@sha1:${sha}`,
          sha,
          fetchRef: ref.name as string,
        };
      }
      if (ref?.tag) {
        const peeled = await lsRemote(
          url,
          `refs/tags/${ref.tag}^{}`,
          env,
          abort.signal,
        );
        const sha =
          peeled ??
          (await lsRemote(url, `refs/tags/${ref.tag}`, env, abort.signal));
        if (!sha)
          throw clone(`couldn't find remote ref "refs/tags/${ref.tag}"`);
        return {
          revision: `${ref.tag}@sha1:${sha}`,
          sha,
          fetchRef: `refs/tags/${ref.tag}`,
        };
      }
      if (ref?.semver)
        throw clone('the Flux simulator does not support spec.ref.semver');
      const branch: string = ref?.branch ?? 'master';
      const sha =
        ref?.commit ??
        (await lsRemote(url, `refs/heads/${branch}`, env, abort.signal));
      if (!sha) throw clone(`couldn't find remote ref "refs/heads/${branch}"`);
      return {
        revision: `${branch}@sha1:${sha}`,
        sha,
        fetchRef: `refs/heads/${branch}`,
      };
    } catch (e) {
      if (
        e instanceof GitCommandError &&
        !e.message.startsWith('failed to checkout')
      )
        throw clone(e.message);
      throw e;
    }
  }

  function withTransitions(
    next: Cond[],
    prev: Cond[] | undefined,
    generation: number,
  ): Cond[] {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return next.map(c => {
      const old = prev?.find(p => p.type === c.type);
      return {
        ...c,
        observedGeneration: generation,
        lastTransitionTime:
          old && old.status === c.status && old.lastTransitionTime
            ? old.lastTransitionTime
            : now,
      };
    });
  }

  const operator = opts.operator
    ? createOperatorLoop({
        api,
        applier,
        namespace: ns,
        signal: abort.signal,
        opts: opts.operator,
        record,
        now: () => new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        withTransitions: (next, prev, generation) =>
          withTransitions(next, prev, generation),
      })
    : undefined;

  const comparable = (status: any) =>
    JSON.stringify(status, (k, v) =>
      k === 'lastTransitionTime' || k === 'lastUpdateTime' ? undefined : v,
    );

  async function writeStatus(
    p: string,
    current: any,
    status: Record<string, unknown>,
    what: string,
  ) {
    const merged = { ...(current.status ?? {}), ...status };
    if (comparable(merged) === comparable(current.status ?? {})) return;
    const res = await api.request('PATCH', `${p}/status`, {
      body: { status },
      contentType: 'application/merge-patch+json',
      signal: abort.signal,
    });
    if (res.status >= 300) {
      record(
        `${what}: status update failed ${res.status} ${
          res.body?.message ?? ''
        }`,
      );
    } else {
      const ready = (status.conditions as Cond[] | undefined)?.find(
        c => c.type === 'Ready',
      );
      record(
        `${what}: Ready=${ready?.status} ${ready?.reason}: ${ready?.message}`,
      );
    }
  }

  async function reconcileSource(): Promise<void> {
    const res = await api.request('GET', grPath, { signal: abort.signal });
    if (res.status === 404) return;
    if (res.status !== 200)
      throw new Error(
        `GET GitRepository ${ns}/${name}: ${res.status} ${
          res.body?.message ?? ''
        }`,
      );
    const gr = res.body;
    if (gr.spec?.suspend) return;
    const generation: number = gr.metadata.generation;
    const prev: Cond[] | undefined = gr.status?.conditions;
    const handled =
      gr.metadata.annotations?.['reconcile.fluxcd.io/requestedAt'];
    const base = {
      observedGeneration: generation,
      ...(handled ? { lastHandledReconcileAt: handled } : {}),
    };
    const fail = async (reason: string, message: string) => {
      await writeStatus(
        grPath,
        gr,
        {
          ...base,
          conditions: withTransitions(
            [
              { type: 'Ready', status: 'False', reason, message },
              { type: 'FetchFailed', status: 'True', reason, message },
              ...(gr.status?.artifact
                ? [
                    {
                      type: 'ArtifactInStorage',
                      status: 'True' as const,
                      reason: 'Succeeded',
                      message: `stored artifact for revision '${gr.status.artifact.revision}'`,
                    },
                  ]
                : []),
            ],
            prev,
            generation,
          ),
        },
        'GitRepository',
      );
    };
    if (failures.source) return fail('GitOperationFailed', failures.source);
    let secret: FluxGitSecretData | undefined;
    if (gr.spec?.secretRef?.name) {
      const s = await getSecret(gr.spec.secretRef.name);
      if ('error' in s) return fail('AuthenticationFailed', s.error as string);
      secret = s;
    }
    try {
      const r = await withGitAuth(gr.spec.url, secret, env =>
        resolve(gr.spec.url, gr.spec.ref, env),
      );
      const same = gr.status?.artifact?.revision === r.revision;
      const artifactPath = `gitrepository/${ns}/${name}/${r.sha}.tar.gz`;
      const artifact = same
        ? gr.status.artifact
        : {
            digest: `sha256:${crypto
              .createHash('sha256')
              .update(r.revision)
              .digest('hex')}`,
            lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
            path: artifactPath,
            revision: r.revision,
            size: 1024,
            url: `http://source-controller.${ns}.svc.cluster.local./${artifactPath}`,
          };
      const message = `stored artifact for revision '${r.revision}'`;
      await writeStatus(
        grPath,
        gr,
        {
          ...base,
          artifact,
          conditions: withTransitions(
            [
              { type: 'Ready', status: 'True', reason: 'Succeeded', message },
              {
                type: 'ArtifactInStorage',
                status: 'True',
                reason: 'Succeeded',
                message,
              },
            ],
            prev,
            generation,
          ),
        },
        'GitRepository',
      );
    } catch (e) {
      if (abort.signal.aborted) return;
      if (e instanceof GitAuthError)
        return fail('AuthenticationFailed', e.message);
      if (e instanceof GitCommandError)
        return fail('GitOperationFailed', e.message);
      throw e;
    }
  }

  const BUILD_FIELDS = [
    'targetNamespace',
    'namePrefix',
    'nameSuffix',
    'images',
    'components',
    'postBuild',
    'decryption',
    'healthCheckExprs',
  ];
  const RECONCILE_FIELDS = [
    'kubeConfig',
    'serviceAccountName',
    'dependsOn',
    'ignore',
  ];

  async function reconcileKustomization(force: boolean): Promise<void> {
    const res = await api.request('GET', ksPath, { signal: abort.signal });
    if (res.status === 404) {
      ks.health = undefined;
      return;
    }
    if (res.status !== 200)
      throw new Error(
        `GET Kustomization ${ns}/${name}: ${res.status} ${
          res.body?.message ?? ''
        }`,
      );
    const k = res.body;
    if (k.spec?.suspend) return;
    const generation: number = k.metadata.generation;
    const prev: Cond[] | undefined = k.status?.conditions;
    const requested: string | undefined =
      k.metadata.annotations?.['reconcile.fluxcd.io/requestedAt'];
    const base: Record<string, unknown> = {
      observedGeneration: generation,
      ...(requested ? { lastHandledReconcileAt: requested } : {}),
    };
    const report = async (
      conds: Cond[],
      extra: Record<string, unknown> = {},
    ) => {
      await writeStatus(
        ksPath,
        k,
        {
          ...base,
          ...extra,
          conditions: withTransitions(conds, prev, generation),
        },
        'Kustomization',
      );
    };
    const notReadyCond = (reason: string, message: string): Cond => ({
      type: 'Ready',
      status: 'False',
      reason,
      message,
    });
    const ref = k.spec?.sourceRef ?? {};
    const srcNs = ref.namespace ?? ns;
    if (ref.kind !== 'GitRepository') {
      ks.waiting = true;
      return report([
        notReadyCond(
          'ArtifactFailed',
          `the Flux simulator only handles GitRepository sources, not ${ref.kind}`,
        ),
      ]);
    }
    const srcRes = await api.request(
      'GET',
      kubePath({
        apiVersion: SOURCE_API,
        resource: 'gitrepositories',
        namespace: srcNs,
        name: ref.name,
      }),
      { signal: abort.signal },
    );
    if (srcRes.status === 404) {
      ks.waiting = true;
      return report([
        notReadyCond(
          'ArtifactFailed',
          `Source 'GitRepository/${srcNs}/${ref.name}' not found`,
        ),
      ]);
    }
    const artifact = srcRes.body?.status?.artifact;
    if (!artifact?.revision) {
      ks.waiting = true;
      return report([
        notReadyCond(
          'ArtifactFailed',
          'Source artifact not found, retrying in 30s',
        ),
      ]);
    }
    const revision: string = artifact.revision;
    const interval = parseGoDuration(k.spec?.interval) ?? 600_000;
    const due =
      force ||
      ks.lastRun === 0 ||
      ks.waiting ||
      ks.health !== undefined ||
      k.status?.observedGeneration !== generation ||
      k.status?.lastAttemptedRevision !== revision ||
      (requested !== undefined &&
        requested !== k.status?.lastHandledReconcileAt) ||
      (ks.failed && Date.now() - ks.lastRun >= retryMs) ||
      Date.now() - ks.lastRun >= interval;
    if (!due) return;
    ks.lastRun = Date.now();
    ks.waiting = false;
    const failed = (reason: string, message: string, extra = {}) => {
      ks.failed = true;
      ks.health = undefined;
      return report([notReadyCond(reason, message)], {
        lastAttemptedRevision: revision,
        ...extra,
      });
    };
    if (failures.sync) return failed('ReconciliationFailed', failures.sync);

    // A health check in progress (spec.wait / spec.healthChecks) of the same revision and spec.
    const h = ks.health;
    if (h && h.revision === revision && h.generation === generation) {
      const notReady = await applier.notReady(h.changes);
      if (notReady.length === 0)
        return succeed(revision, report, {
          ...h.extra,
          healthy: `Health check passed in ${goDuration(Date.now() - h.start)}`,
        });
      if (Date.now() < h.deadline) return;
      const msg = `health check failed after ${goDuration(
        Date.now() - h.start,
      )}: timeout waiting for: [${notReady.join(', ')}]`;
      ks.failed = true;
      ks.health = undefined;
      return report(
        [
          notReadyCond('HealthCheckFailed', msg),
          {
            type: 'Healthy',
            status: 'False',
            reason: 'HealthCheckFailed',
            message: msg,
          },
        ],
        { lastAttemptedRevision: revision, ...h.extra },
      );
    }
    ks.health = undefined;

    const dir = String(k.spec?.path ?? '')
      .replace(/^\.?\/+/, '')
      .replace(/\/+$/, '')
      .replace(/^\.$/, '');
    const src = srcRes.body;
    const m =
      /@sha1:([0-9a-f]{40})$/.exec(revision) ??
      /^sha1:([0-9a-f]{40})$/.exec(revision);
    if (!m) return failed('ArtifactFailed', `unsupported revision ${revision}`);
    let secret: FluxGitSecretData | undefined;
    if (src.spec?.secretRef?.name) {
      const sec = await getSecret(src.spec.secretRef.name, srcNs);
      if (!('error' in sec)) secret = sec;
    }
    const fetchRef = fetchRefOf(src.spec?.ref, m[1]);
    let tree;
    try {
      tree = await snapshots.fetch(src.spec.url, secret, fetchRef, m[1]);
    } catch (e) {
      if (abort.signal.aborted) return;
      return failed(
        'ArtifactFailed',
        `failed to fetch artifact: ${(e as Error).message}`,
      );
    }
    if (!tree) {
      ks.waiting = true; // the source moved on; the next pass takes the new head
      return;
    }
    if (dir && tree.entry(dir)?.type !== 'tree') {
      return failed(
        'ArtifactFailed',
        `kustomization path not found: stat /tmp/kustomization-${generation}/${dir}: no such file or directory`,
      );
    }
    if (!opts.apply) return succeed(revision, report, {});

    // kustomize-controller's self-management.
    const spec = k.spec ?? {};
    for (const f of BUILD_FIELDS)
      if (spec[f] !== undefined && !(Array.isArray(spec[f]) && !spec[f].length))
        return failed(
          'BuildFailed',
          `the Flux simulator does not support spec.${f} of a Kustomization`,
        );
    for (const f of RECONCILE_FIELDS)
      if (spec[f] !== undefined && !(Array.isArray(spec[f]) && !spec[f].length))
        return failed(
          'ReconciliationFailed',
          `the Flux simulator does not support spec.${f} of a Kustomization`,
        );
    let objects: K8sObject[];
    try {
      objects = await kustomizeBuild(tree, dir);
      if (spec.patches?.length)
        objects = applyPatches(
          objects,
          spec.patches,
          `Kustomization ${ns}/${name} spec.patches`,
        );
    } catch (e) {
      if (e instanceof KustomizeBuildError || e instanceof PatchError)
        return failed('BuildFailed', e.message);
      throw e;
    }
    const cm = spec.commonMetadata;
    if (cm) {
      for (const o of objects) {
        o.metadata.labels = {
          ...(o.metadata.labels ?? {}),
          ...(cm.labels ?? {}),
        };
        o.metadata.annotations = {
          ...(o.metadata.annotations ?? {}),
          ...(cm.annotations ?? {}),
        };
      }
    }
    const start = Date.now();
    let changes: ChangeEntry[];
    try {
      changes = await applier.applyAllStaged(objects, {
        fieldManager: 'kustomize-controller',
        ownerGroup: 'kustomize.toolkit.fluxcd.io',
        ownerName: name,
        ownerNamespace: ns,
        force: spec.force === true,
        exclusions: {
          'kustomize.toolkit.fluxcd.io/reconcile': 'disabled',
          'kustomize.toolkit.fluxcd.io/ssa': 'ignore',
        },
        ifNotPresent: { 'kustomize.toolkit.fluxcd.io/ssa': 'ifnotpresent' },
        cleanup: {
          annotations: [
            'kubectl.kubernetes.io/last-applied-configuration',
            'kustomize.toolkit.fluxcd.io/checksum',
            'fluxcd.io/sync-checksum',
          ],
          labels: ['fluxcd.io/sync-gc-mark'],
          managers: [
            { name: 'kubectl', operation: 'Apply' },
            { name: 'kubectl', operation: 'Update' },
            { name: 'before-first-apply', operation: 'Update' },
            { name: 'kustomize-controller', operation: 'Update' },
          ],
          exclusions: { 'kustomize.toolkit.fluxcd.io/ssa': 'merge' },
        },
      });
    } catch (e) {
      if (abort.signal.aborted) return;
      if (!(e instanceof ApplyError)) throw e;
      const changeLog = e.changes
        .filter(c => c.action === 'created' || c.action === 'configured')
        .map(c => `${c.subject} ${c.action}`)
        .join('\n');
      return failed(
        'ReconciliationFailed',
        changeLog ? `${e.message}\n${changeLog}` : e.message,
      );
    }
    const changed = changes.filter(
      c => c.action === 'created' || c.action === 'configured',
    );
    record(
      `Kustomization: applied ${revision}: ${changes.length} objects${
        changed.length
          ? ` (${changed.map(c => `${c.subject} ${c.action}`).join(', ')})`
          : ', none changed'
      }`,
    );
    ks.deployments = changes
      .filter(c => c.kind === 'Deployment' && c.namespace)
      .map(c => ({ namespace: c.namespace!, name: c.name }));
    const inventory = { entries: changes.map(c => ({ id: c.id, v: c.v })) };
    if (spec.prune) {
      const ids = new Set(changes.map(c => c.id));
      const old: InventoryEntry[] = k.status?.inventory?.entries ?? [];
      const stale = old.filter(e => !ids.has(e.id));
      if (stale.length) {
        try {
          const deleted = await applier.deleteAll(stale, {
            inclusions: {
              'kustomize.toolkit.fluxcd.io/name': name,
              'kustomize.toolkit.fluxcd.io/namespace': ns,
            },
            exclusions: {
              'kustomize.toolkit.fluxcd.io/prune': 'disabled',
              'kustomize.toolkit.fluxcd.io/reconcile': 'disabled',
              'kustomize.toolkit.fluxcd.io/ssa': 'ignore',
            },
          });
          record(
            `Kustomization: garbage collection ${deleted
              .map(d => `${d.subject} ${d.action}`)
              .join(', ')}`,
          );
        } catch (e) {
          if (abort.signal.aborted) return;
          if (!(e instanceof ApplyError)) throw e;
          return failed('PruneFailed', e.message, { inventory });
        }
      }
    }
    const extra = { inventory };
    let toCheck: ChangeEntry[] = [];
    if (spec.wait) {
      toCheck = changes.filter(
        c =>
          c.action !== 'skipped' &&
          !(
            c.kind === 'Kustomization' &&
            c.name === name &&
            c.namespace === ns
          ),
      );
    } else if (Array.isArray(spec.healthChecks) && spec.healthChecks.length) {
      toCheck = spec.healthChecks.map((r: any) => {
        const id = {
          apiVersion: r.apiVersion ?? 'apps/v1',
          kind: r.kind,
          name: r.name,
          namespace: r.namespace,
        };
        return {
          ...id,
          id: '',
          v: '',
          subject: `${id.kind}/${id.namespace ? `${id.namespace}/` : ''}${
            id.name
          }`,
          action: 'unchanged' as const,
        };
      });
    }
    if (toCheck.length) {
      const notReady = await applier.notReady(toCheck);
      if (notReady.length) {
        const timeout = spec.timeout ?? spec.interval ?? '10m0s';
        ks.health = {
          revision,
          generation,
          start,
          timeout,
          deadline: start + (parseGoDuration(timeout) ?? 600_000),
          changes: toCheck,
          extra,
        };
        ks.failed = false;
        const message = `Running health checks for revision ${revision} with a timeout of ${timeout}`;
        return report(
          [
            ...progressingConds(message),
            {
              type: 'Healthy',
              status: 'Unknown',
              reason: 'Progressing',
              message,
            },
          ],
          { lastAttemptedRevision: revision, ...extra },
        );
      }
      return succeed(revision, report, {
        ...extra,
        healthy: `Health check passed in ${goDuration(Date.now() - start)}`,
      });
    }
    return succeed(revision, report, extra);
  }

  async function succeed(
    revision: string,
    report: (c: Cond[], extra?: Record<string, unknown>) => Promise<void>,
    extra: Record<string, unknown> & { healthy?: string },
  ): Promise<void> {
    ks.failed = false;
    ks.health = undefined;
    const { healthy, ...rest } = extra;
    await report(
      [
        {
          type: 'Ready',
          status: 'True',
          reason: 'ReconciliationSucceeded',
          message: `Applied revision: ${revision}`,
        },
        ...(healthy
          ? [
              {
                type: 'Healthy',
                status: 'True' as const,
                reason: 'Succeeded',
                message: healthy,
              },
            ]
          : []),
      ],
      {
        ...rest,
        lastAppliedRevision: revision,
        lastAttemptedRevision: revision,
      },
    );
  }

  async function listDeployments(labelSelector: string): Promise<any[]> {
    const res = await api.request(
      'GET',
      kubePath({
        apiVersion: 'apps/v1',
        resource: 'deployments',
        namespace: ns,
      }),
      { query: { labelSelector }, signal: abort.signal },
    );
    if (res.status !== 200)
      throw new Error(
        `list Deployments in ${ns}: ${res.status} ${res.body?.message ?? ''}`,
      );
    return res.body.items ?? [];
  }

  async function reconcileDeployments(): Promise<void> {
    const items = await listDeployments('app.kubernetes.io/part-of=flux');
    if (operator)
      items.push(
        ...(await listDeployments('app.kubernetes.io/name=flux-operator')),
      );
    const seen = new Set(
      items.map(d => `${d.metadata.namespace}/${d.metadata.name}`),
    );
    for (const ref of [...ks.deployments, ...(operator?.deployments() ?? [])]) {
      const key = `${ref.namespace}/${ref.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const r = await api.request(
        'GET',
        kubePath({ apiVersion: 'apps/v1', resource: 'deployments', ...ref }),
        { signal: abort.signal },
      );
      if (r.status === 200) items.push(r.body);
    }
    for (const d of items) {
      const p = kubePath({
        apiVersion: 'apps/v1',
        resource: 'deployments',
        namespace: d.metadata.namespace,
        name: d.metadata.name,
      });
      const replicas: number = d.spec?.replicas ?? 1;
      const failing =
        failures.deployments &&
        (!failures.deployments.deployment ||
          failures.deployments.deployment === d.metadata.name);
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const prev: any[] = d.status?.conditions ?? [];
      const cond = (
        type: string,
        status: string,
        reason: string,
        message: string,
      ) => {
        const old = prev.find(c => c.type === type);
        const same = old && old.status === status;
        return {
          type,
          status,
          reason,
          message,
          lastUpdateTime: same ? old.lastUpdateTime : now,
          lastTransitionTime: same ? old.lastTransitionTime : now,
        };
      };
      const rs = `${d.metadata.name}-${crypto
        .createHash('sha1')
        .update(JSON.stringify(d.spec?.template ?? {}))
        .digest('hex')
        .slice(0, 10)}`;
      const status = failing
        ? {
            observedGeneration: d.metadata.generation,
            replicas,
            updatedReplicas: replicas,
            readyReplicas: 0,
            availableReplicas: 0,
            unavailableReplicas: replicas,
            conditions: [
              cond(
                'Available',
                'False',
                'MinimumReplicasUnavailable',
                failures.deployments!.message,
              ),
              cond(
                'Progressing',
                'False',
                'ProgressDeadlineExceeded',
                `ReplicaSet "${rs}" has timed out progressing. ${
                  failures.deployments!.message
                }`,
              ),
            ],
          }
        : {
            observedGeneration: d.metadata.generation,
            replicas,
            updatedReplicas: replicas,
            readyReplicas: replicas,
            availableReplicas: replicas,
            conditions: [
              cond(
                'Available',
                'True',
                'MinimumReplicasAvailable',
                'Deployment has minimum availability.',
              ),
              cond(
                'Progressing',
                'True',
                'NewReplicaSetAvailable',
                `ReplicaSet "${rs}" has successfully progressed.`,
              ),
            ],
          };
      // The apiserver omits zero counts (omitempty): leave them out, and null what must go.
      const desired: Record<string, unknown> = Object.fromEntries(
        Object.entries(status).filter(([, v]) => v !== 0),
      );
      if (comparable(desired) === comparable(d.status ?? {})) continue;
      const body = {
        status: {
          ...Object.fromEntries(
            Object.keys(d.status ?? {}).map(k => [k, null]),
          ),
          ...desired,
        },
      };
      const w = await api.request('PATCH', `${p}/status`, {
        body,
        contentType: 'application/merge-patch+json',
        signal: abort.signal,
      });
      record(
        `Deployment ${d.metadata.name}: ${
          failing ? 'unavailable' : 'available'
        }${w.status >= 300 ? ` (update failed ${w.status})` : ''}`,
      );
    }
  }

  async function pass(): Promise<void> {
    const force = forced;
    forced = false;
    const steps: Array<[string, () => Promise<void>]> = [
      ['source', reconcileSource],
      ['sync', () => reconcileKustomization(force)],
      ['deployments', reconcileDeployments],
    ];
    if (operator) {
      steps.push(
        ['instance', () => operator.reconcileInstance(force)],
        ['report', () => operator.reconcileReport(force)],
      );
    }
    for (const [what, fn] of steps) {
      if (abort.signal.aborted) return;
      try {
        await fn();
      } catch (e) {
        if (abort.signal.aborted) return;
        record(`${what}: ${(e as Error).message}`);
      }
    }
  }

  const runPass = () => {
    if (!running) {
      running = pass().finally(() => {
        running = undefined;
      });
    }
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(async () => {
      await runPass();
      schedule();
    }, intervalMs);
  };
  schedule();

  return {
    namespace: ns,
    failWith(target, message, o) {
      if (target === 'deployments')
        failures.deployments = { message, deployment: o?.deployment };
      else if (target === 'instance') {
        if (!operator)
          throw new Error(
            "failWith('instance') needs startFluxSimulator({ operator })",
          );
        operator.failWith(message);
      } else failures[target] = message;
      forced = true;
    },
    clear() {
      delete failures.source;
      delete failures.sync;
      delete failures.deployments;
      operator?.failWith(undefined);
      forced = true;
    },
    async reconcileNow() {
      if (running) await running;
      forced = true;
      await runPass();
    },
    events: () => [...log],
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      abort.abort();
      await running?.catch(() => undefined);
      api.close();
      await fs.rm(workDir, { recursive: true, force: true });
    },
  };
}
