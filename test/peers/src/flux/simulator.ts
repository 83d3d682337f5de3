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
  runGit,
  withGitAuth,
} from './gitRemote';

/**
 * TEST-ONLY stand-in for Flux's source-controller + kustomize-controller (+ the Deployment
 * controller). The test apiserver runs no controllers, so nothing would ever report "Flux became
 * ready"; this loop does what those controllers would do for the objects bootstrap waits on:
 *
 * - GitRepository `<ns>/<name>` (source.toolkit.fluxcd.io/v1): resolves `spec.ref` on
 *   `spec.url` with a REAL `git ls-remote` using the credentials of `spec.secretRef` (SSH identity
 *   + known_hosts with strict host-key checking, or HTTPS username/password/bearerToken + ca.crt)
 *   and writes `status` (Ready, ArtifactInStorage/FetchFailed, artifact.revision
 *   `<branch>@sha1:<sha>`, observedGeneration) through the status subresource. A git failure
 *   (bad key, unknown host key, missing branch) is reported as Ready=False with git's message.
 * - Kustomization `<ns>/<name>` (kustomize.toolkit.fluxcd.io/v1): takes the source's artifact,
 *   checks that `spec.path` exists in that commit (fetched with git), and reports Ready,
 *   lastAttemptedRevision, lastAppliedRevision, observedGeneration. It does NOT apply manifests.
 * - Deployments labelled `app.kubernetes.io/part-of=flux` in `<ns>`: marks them available.
 *
 * Honours `spec.suspend` (a suspended object is left alone). `failWith` injects failures,
 * `clear()` recovers. Survives apiserver outages (errors are recorded, the loop continues).
 */
export interface FluxSimulator {
  readonly namespace: string;
  /** Makes the next reconciliations report this failure (source/sync: Ready=False; deployments: unavailable). */
  failWith(
    target: 'source' | 'sync' | 'deployments',
    message: string,
    opts?: { deployment?: string },
  ): void;
  /** Removes every injected failure. */
  clear(): void;
  /** Runs one reconciliation pass now (waits for a running one first). */
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
}

type Cond = {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
};

const SOURCE_API = 'source.toolkit.fluxcd.io/v1';
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
  const log: string[] = [];
  const record = (line: string) => {
    log.push(`${new Date().toISOString()} ${line}`);
    if (log.length > 500) log.shift();
  };
  /** commit sha + path → exists (commits are immutable, so this never goes stale) */
  const pathCache = new Map<string, boolean>();
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
  ): Promise<FluxGitSecretData | { error: string }> {
    const res = await api.request(
      'GET',
      kubePath({
        apiVersion: 'v1',
        resource: 'secrets',
        namespace: ns,
        name: secretName,
      }),
      { signal: abort.signal },
    );
    if (res.status === 404)
      return {
        error: `failed to get secret '${ns}/${secretName}': secrets "${secretName}" not found`,
      };
    if (res.status !== 200)
      throw new Error(`GET secret ${ns}/${secretName}: ${res.status}`);
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

  async function pathExists(
    url: string,
    secret: FluxGitSecretData | undefined,
    fetchRef: string,
    sha: string,
    dir: string,
  ) {
    const key = `${url}|${sha}|${dir}`;
    const cached = pathCache.get(key);
    if (cached !== undefined) return cached;
    const repo = path.join(workDir, 'repo.git');
    await fs.mkdir(repo, { recursive: true });
    const exists = await withGitAuth(url, secret, async env => {
      await runGit(['init', '--quiet', '--bare', repo], {
        env,
        signal: abort.signal,
      });
      await runGit(
        [
          '-C',
          repo,
          'fetch',
          '--quiet',
          '--depth=1',
          '--no-tags',
          '--',
          url,
          `+${fetchRef}:refs/sim/head`,
        ],
        { env, signal: abort.signal, timeoutMs: 60_000 },
      );
      const fetched = (
        await runGit(['-C', repo, 'rev-parse', 'refs/sim/head^{commit}'], {
          env,
        })
      ).trim();
      if (fetched !== sha) {
        // The branch moved since ls-remote; the next pass picks the new head up.
        return undefined;
      }
      if (!dir) return true;
      try {
        const type = (
          await runGit(['-C', repo, 'cat-file', '-t', `${sha}:${dir}`], { env })
        ).trim();
        return type === 'tree';
      } catch {
        return false;
      }
    });
    if (exists !== undefined) pathCache.set(key, exists);
    return exists;
  }

  async function reconcileKustomization(): Promise<void> {
    const res = await api.request('GET', ksPath, { signal: abort.signal });
    if (res.status === 404) return;
    if (res.status !== 200)
      throw new Error(
        `GET Kustomization ${ns}/${name}: ${res.status} ${
          res.body?.message ?? ''
        }`,
      );
    const ks = res.body;
    if (ks.spec?.suspend) return;
    const generation: number = ks.metadata.generation;
    const prev: Cond[] | undefined = ks.status?.conditions;
    const handled =
      ks.metadata.annotations?.['reconcile.fluxcd.io/requestedAt'];
    const base: Record<string, unknown> = {
      observedGeneration: generation,
      ...(handled ? { lastHandledReconcileAt: handled } : {}),
    };
    const report = async (ready: Cond, extra: Record<string, unknown> = {}) => {
      await writeStatus(
        ksPath,
        ks,
        {
          ...base,
          ...extra,
          conditions: withTransitions([ready], prev, generation),
        },
        'Kustomization',
      );
    };
    const ref = ks.spec?.sourceRef ?? {};
    const srcNs = ref.namespace ?? ns;
    if (ref.kind !== 'GitRepository') {
      return report({
        type: 'Ready',
        status: 'False',
        reason: 'ArtifactFailed',
        message: `the Flux simulator only handles GitRepository sources, not ${ref.kind}`,
      });
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
      return report({
        type: 'Ready',
        status: 'False',
        reason: 'ArtifactFailed',
        message: `Source 'GitRepository/${srcNs}/${ref.name}' not found`,
      });
    }
    const artifact = srcRes.body?.status?.artifact;
    if (!artifact?.revision) {
      return report({
        type: 'Ready',
        status: 'False',
        reason: 'ArtifactFailed',
        message: 'Source artifact not found, retrying in 30s',
      });
    }
    const revision: string = artifact.revision;
    if (failures.sync) {
      return report(
        {
          type: 'Ready',
          status: 'False',
          reason: 'ReconciliationFailed',
          message: failures.sync,
        },
        { lastAttemptedRevision: revision },
      );
    }
    const dir = String(ks.spec?.path ?? '')
      .replace(/^\.?\/+/, '')
      .replace(/\/+$/, '')
      .replace(/^\.$/, '');
    if (dir) {
      const src = srcRes.body;
      const m =
        /@sha1:([0-9a-f]{40})$/.exec(revision) ??
        /^sha1:([0-9a-f]{40})$/.exec(revision);
      if (m) {
        let secret: FluxGitSecretData | undefined;
        if (src.spec?.secretRef?.name) {
          const s = await getSecret(src.spec.secretRef.name);
          if (!('error' in s)) secret = s;
        }
        const fetchRef = src.spec?.ref?.tag
          ? `refs/tags/${src.spec.ref.tag}`
          : src.spec?.ref?.name ??
            (src.spec?.ref?.branch
              ? `refs/heads/${src.spec.ref.branch}`
              : m[1]);
        let exists: boolean | undefined;
        try {
          exists = await pathExists(src.spec.url, secret, fetchRef, m[1], dir);
        } catch (e) {
          if (abort.signal.aborted) return;
          return report(
            {
              type: 'Ready',
              status: 'False',
              reason: 'ArtifactFailed',
              message: `failed to fetch artifact: ${(e as Error).message}`,
            },
            { lastAttemptedRevision: revision },
          );
        }
        if (exists === undefined) return; // source moved on; retry next pass
        if (!exists) {
          return report(
            {
              type: 'Ready',
              status: 'False',
              reason: 'ArtifactFailed',
              message: `kustomization path not found: stat /tmp/kustomization-${generation}/${dir}: no such file or directory`,
            },
            { lastAttemptedRevision: revision },
          );
        }
      }
    }
    await report(
      {
        type: 'Ready',
        status: 'True',
        reason: 'ReconciliationSucceeded',
        message: `Applied revision: ${revision}`,
      },
      { lastAppliedRevision: revision, lastAttemptedRevision: revision },
    );
  }

  async function reconcileDeployments(): Promise<void> {
    const res = await api.request(
      'GET',
      kubePath({
        apiVersion: 'apps/v1',
        resource: 'deployments',
        namespace: ns,
      }),
      {
        query: { labelSelector: 'app.kubernetes.io/part-of=flux' },
        signal: abort.signal,
      },
    );
    if (res.status !== 200)
      throw new Error(
        `list Deployments in ${ns}: ${res.status} ${res.body?.message ?? ''}`,
      );
    for (const d of res.body.items ?? []) {
      const p = kubePath({
        apiVersion: 'apps/v1',
        resource: 'deployments',
        namespace: ns,
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
    for (const [what, fn] of [
      ['source', reconcileSource],
      ['sync', reconcileKustomization],
      ['deployments', reconcileDeployments],
    ] as const) {
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
      else failures[target] = message;
    },
    clear() {
      delete failures.source;
      delete failures.sync;
      delete failures.deployments;
    },
    async reconcileNow() {
      if (running) await running;
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
