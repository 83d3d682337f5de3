import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  BitbucketDouble,
  BitbucketRequestLogEntry,
  FaultProxy,
  FaultProxyRequest,
  KubeHttp,
  run,
} from '@flux-bootstrap/test-peers';
import { SANDBOX } from '../sandbox';
import type { TaskResult } from '../scaffolder';
import type { World, WorldCluster } from './world';

export const BITBUCKET_TEMPLATE =
  'template:default/flux-bootstrap-bitbucket-server';
export const GIT_TEMPLATE = 'template:default/flux-bootstrap-git';
export const DECOMMISSION_TEMPLATE = 'template:default/flux-decommission';

/** A finished task plus the raw API answers the suite scanned. */
export interface ScannedTask extends TaskResult {
  /** The failure message of the task (completion event), if it failed. */
  error?: string;
  /** Step ids in the order they reported, with their last status. */
  stepStatus: Record<string, string>;
  /** `GET /v2/tasks/:id` body. */
  taskText: string;
  /** `GET /v2/tasks/:id/events` body. */
  eventsText: string;
}

/**
 * Runs a template through the scaffolder REST API as the guest user and scans everything the
 * API returns about the task (task, events incl. logs, errors and step outputs) for secrets.
 */
export async function runTemplate(
  world: World,
  label: string,
  templateRef: string,
  values: Record<string, unknown>,
  secrets?: Record<string, string>,
  opts: {
    /** Runs while the task runs; `ended()` tells whether the task has ended meanwhile. */
    onTaskId?: (id: string, ended: () => boolean) => void | Promise<void>;
  } = {},
): Promise<ScannedTask> {
  const id = await world.api.createTask(templateRef, values, secrets);
  world.log(`[${label}] task ${id} started`);
  const waiting = world.api.waitForTask(id, line =>
    world.log(`[${label}] ${line}`),
  );
  let ended = false;
  waiting.then(
    () => {
      ended = true;
    },
    () => {
      ended = true;
    },
  );
  if (opts.onTaskId) await opts.onTaskId(id, () => ended);
  const result = await waiting;
  return finishScan(world, label, result);
}

/** Reads the task's API answers (from `api`, default the main backend) once it ended and scans them. */
export async function finishScan(
  world: World,
  label: string,
  result: TaskResult,
  api: Pick<World['api'], 'request'> = world.api,
): Promise<ScannedTask> {
  const task = await api.request(
    'GET',
    `/api/scaffolder/v2/tasks/${result.id}`,
  );
  const events = await api.request(
    'GET',
    `/api/scaffolder/v2/tasks/${result.id}/events`,
  );
  world.scanner.scan(`scaffolder task API: ${label}`, task.text);
  world.scanner.scan(
    `scaffolder task events (logs, errors, outputs): ${label}`,
    events.text,
  );
  const completion = result.events.find(e => e.type === 'completion');
  world.log(
    `[${label}] ${result.status}${
      completion?.body.error ? `: ${completion.body.error.message}` : ''
    }`,
  );
  return {
    ...result,
    error: completion?.body.error?.message,
    stepStatus: result.steps,
    taskText: task.text,
    eventsText: events.text,
  };
}

/** Parameters of the Bitbucket Server template. */
export function bitbucketValues(
  world: World,
  o: {
    repo: string;
    /** Project key, or `~demo` (default) for a personal repository. */
    project?: string;
    auth?: 'ssh' | 'token';
    cluster?: string;
    branch?: string;
    path?: string;
    host?: string;
    extra?: Record<string, unknown>;
  },
): Record<string, unknown> {
  return {
    cluster: o.cluster ?? SANDBOX.cluster,
    owner: 'group:default/platform-team',
    repoUrl: `${o.host ?? world.bitbucket.host}?project=${encodeURIComponent(
      o.project ?? `~${SANDBOX.user}`,
    )}&repo=${encodeURIComponent(o.repo)}`,
    branch: o.branch ?? 'main',
    private: true,
    authentication: o.auth ?? 'ssh',
    ...(o.path ? { path: o.path } : {}),
    ...o.extra,
  };
}

/** `git log` of a branch of a bare repository of a Bitbucket double: oldest first. */
export async function branchHistory(
  bb: BitbucketDouble,
  projectKey: string,
  slug: string,
  branch = 'main',
): Promise<{ sha: string; subject: string }[]> {
  const repo = bb.repoPath(projectKey, slug);
  const res = await run(
    'git',
    ['-C', repo, 'log', '--reverse', '--format=%H %s', `refs/heads/${branch}`],
    {
      check: false,
    },
  );
  if (res.code !== 0) return [];
  return res.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map(l => ({ sha: l.slice(0, 40), subject: l.slice(41) }));
}

/** Every bare repository of a double (`<root>/<key>/<slug>.git`). */
export function bareRepos(bb: BitbucketDouble): string[] {
  const out: string[] = [];
  if (!fs.existsSync(bb.reposRoot)) return out;
  for (const project of fs.readdirSync(bb.reposRoot)) {
    const dir = path.join(bb.reposRoot, project);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const repo of fs.readdirSync(dir)) {
      if (repo.endsWith('.git')) out.push(path.join(dir, repo));
    }
  }
  return out.sort();
}

/**
 * Scans every commit and file ever pushed (`git log -p --all` plus every ref name and every
 * object's raw content via `cat-file --batch-all-objects`) of every repository of the doubles.
 */
export async function scanRepositories(world: World): Promise<number> {
  let n = 0;
  for (const bb of [world.bitbucket, world.untrusted]) {
    for (const repo of bareRepos(bb)) {
      const rel = path.relative(bb.reposRoot, repo);
      world.scanner.scan(
        `git log -p --all of pushed repositories: ${rel}`,
        gitOutput(repo, ['log', '-p', '--all', '--format=fuller']),
      );
      const refs = gitOutput(repo, [
        'for-each-ref',
        '--format=%(refname) %(objectname)',
      ]);
      const objects = gitOutput(repo, [
        'cat-file',
        '--batch-all-objects',
        '--batch',
        '--unordered',
      ]);
      world.scanner.scan(
        `git refs and raw objects of pushed repositories: ${rel}`,
        `${refs}\n${objects}`,
      );
      n++;
    }
  }
  return n;
}

/** Output of a git command in a bare repository (no stdin: git may exit before reading it). */
function gitOutput(repo: string, args: string[]): string {
  try {
    return execFileSync('git', ['-C', repo, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 512 * 1024 * 1024,
    }).toString('utf8');
  } catch (e) {
    return `git ${args.join(' ')} failed: ${
      e instanceof Error ? e.message : e
    }`;
  }
}

/** The Bitbucket double's access keys of one repository. */
export function accessKeysOf(
  bb: BitbucketDouble,
  projectKey: string,
  slug: string,
) {
  return bb
    .state()
    .accessKeys.filter(
      k =>
        k.projectKey?.toUpperCase() === projectKey.toUpperCase() &&
        k.slug === slug,
    );
}

/** Repositories of a project in the double's state. */
export function reposOf(bb: BitbucketDouble, projectKey: string) {
  return bb
    .state()
    .repos.filter(r => r.projectKey.toUpperCase() === projectKey.toUpperCase());
}

/** Requests to the double after a mark (an index into its log). */
export function bitbucketRequestsSince(
  bb: BitbucketDouble,
  mark: number,
): BitbucketRequestLogEntry[] {
  return bb.requests().slice(mark);
}

/** Requests through a cluster's fault proxy after sequence number `seq`. */
export function kubeRequestsSince(
  proxy: FaultProxy,
  seq: number,
): FaultProxyRequest[] {
  return proxy.requests().filter(r => r.seq > seq);
}

export function lastSeq(proxy: FaultProxy): number {
  return proxy.requests().at(-1)?.seq ?? 0;
}

/** Requests that change the cluster (server-side dry runs do not). */
export function kubeWrites(requests: FaultProxyRequest[]): FaultProxyRequest[] {
  return requests.filter(
    r =>
      ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method) &&
      !/(^|&)dryRun=All(&|$)/.test(r.query) &&
      // Access reviews are POSTs that read, not write.
      !r.path.includes('/selfsubjectaccessreviews'),
  );
}

/** State of one cluster object, for before/after comparisons. */
export interface ObjectState {
  resourceVersion: string;
  generation?: number;
  /** Everything but status and bookkeeping metadata. */
  content: string;
  /** Field managers with their operation and time. */
  managers: string[];
}

const NAMESPACED = [
  ['apps/v1', 'deployments'],
  ['v1', 'services'],
  ['v1', 'serviceaccounts'],
  ['v1', 'secrets'],
  ['networking.k8s.io/v1', 'networkpolicies'],
  ['v1', 'resourcequotas'],
  ['source.toolkit.fluxcd.io/v1', 'gitrepositories'],
  ['kustomize.toolkit.fluxcd.io/v1', 'kustomizations'],
] as const;
const CLUSTER_SCOPED = [
  ['apiextensions.k8s.io/v1', 'customresourcedefinitions'],
  ['rbac.authorization.k8s.io/v1', 'clusterroles'],
  ['rbac.authorization.k8s.io/v1', 'clusterrolebindings'],
] as const;

function apiPath(
  apiVersion: string,
  resource: string,
  namespace?: string,
): string {
  const base = apiVersion.includes('/')
    ? `/apis/${apiVersion}`
    : `/api/${apiVersion}`;
  return `${base}${namespace ? `/namespaces/${namespace}` : ''}/${resource}`;
}

/**
 * Every object Flux's install owns on a cluster (flux-system namespace, Flux CRDs and RBAC) with
 * its resourceVersion, generation, content and field managers.
 */
export async function fluxObjects(
  http: KubeHttp,
  namespace = 'flux-system',
): Promise<Map<string, ObjectState>> {
  const out = new Map<string, ObjectState>();
  const add = (resource: string, o: any) => {
    const { status: _s, metadata, ...rest } = o;
    const key = `${resource}/${
      metadata.namespace ? `${metadata.namespace}/` : ''
    }${metadata.name}`;
    out.set(key, {
      resourceVersion: metadata.resourceVersion,
      generation: metadata.generation,
      content: JSON.stringify({
        labels: metadata.labels,
        annotations: metadata.annotations,
        ...rest,
      }),
      managers: (metadata.managedFields ?? []).map(
        (m: any) =>
          `${m.manager}/${m.operation}${
            m.subresource ? `/${m.subresource}` : ''
          }@${m.time}`,
      ),
    });
  };
  const ns = await http.request('GET', `/api/v1/namespaces/${namespace}`);
  if (ns.status === 200) add('namespaces', ns.body);
  for (const [apiVersion, resource] of NAMESPACED) {
    const res = await http.request(
      'GET',
      apiPath(apiVersion, resource, namespace),
    );
    if (res.status !== 200) continue;
    for (const o of res.body.items ?? []) {
      if (
        resource === 'secrets' &&
        o.type === 'kubernetes.io/service-account-token'
      )
        continue;
      add(resource, o);
    }
  }
  for (const [apiVersion, resource] of CLUSTER_SCOPED) {
    const res = await http.request('GET', apiPath(apiVersion, resource), {
      query: { labelSelector: 'app.kubernetes.io/part-of=flux' },
    });
    if (res.status !== 200) continue;
    for (const o of res.body.items ?? []) add(resource, o);
  }
  return out;
}

/** The decoded data of a Secret (for checks and to plant generated keys into the scanner). */
export async function secretData(
  cluster: WorldCluster,
  name = 'flux-system',
  namespace = 'flux-system',
): Promise<Record<string, string> | undefined> {
  const res = await cluster.http.request(
    'GET',
    `/api/v1/namespaces/${namespace}/secrets/${name}`,
  );
  if (res.status !== 200) return undefined;
  return Object.fromEntries(
    Object.entries((res.body.data ?? {}) as Record<string, string>).map(
      ([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')],
    ),
  );
}

/** A Flux object's status (GitRepository / Kustomization `<ns>/<ns>`). */
export async function fluxStatus(
  cluster: WorldCluster,
  kind: 'gitrepositories' | 'kustomizations',
) {
  const group =
    kind === 'gitrepositories'
      ? 'source.toolkit.fluxcd.io/v1'
      : 'kustomize.toolkit.fluxcd.io/v1';
  const res = await cluster.http.request(
    'GET',
    `${apiPath(group, kind, 'flux-system')}/flux-system`,
  );
  return res.status === 200 ? res.body : undefined;
}

/** Compact, single-line text for the report. */
export function short(text: string | undefined, max = 220): string {
  const t = (text ?? '').replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** Polls until `check` returns a truthy value (no timeout of its own: the test's bounds it). */
export async function until<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  intervalMs = 100,
): Promise<T> {
  for (;;) {
    const v = await check();
    if (v) return v;
    await new Promise(r => setTimeout(r, intervalMs));
  }
}
