// Helpers for the Flux simulator's own tests (not exported from the package index).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gitOk } from '../git/testUtils';
import { startGitHttpServer, GitHttpServer } from '../git';
import { KubeApiserverInfo, KubeHttp, kubePath } from '../kube/http';
import { applyFluxBundle, applyFluxSync } from './applyBundle';
import { FluxBundle } from './bundle';
import { fluxBootstrapFiles } from './install';
import { FluxSimulator, startFluxSimulator } from './simulator';

/**
 * Commits files onto `branch` of a bare repository through a temporary clone; `null` deletes a
 * file. Returns the new head.
 */
export async function commitFiles(
  bareRepo: string,
  branch: string,
  files: Record<string, string | null>,
  message = 'change',
): Promise<string> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-work-'));
  try {
    await gitOk(['init', '--quiet', `--initial-branch=${branch}`, work]);
    await gitOk(
      ['fetch', '--quiet', bareRepo, '+refs/heads/*:refs/remotes/origin/*'],
      { cwd: work },
    );
    await gitOk(['checkout', '--quiet', '-B', branch, `origin/${branch}`], {
      cwd: work,
    }).catch(() => undefined);
    for (const [f, content] of Object.entries(files)) {
      const p = path.join(work, f);
      if (content === null) fs.rmSync(p, { force: true });
      else {
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, content);
      }
    }
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '--quiet', '-m', message], { cwd: work });
    await gitOk(['push', '--quiet', bareRepo, `HEAD:refs/heads/${branch}`], {
      cwd: work,
    });
    return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Files changed by the commit `sha` (for "one commit touching only …" assertions). */
export async function changedFiles(bareRepo: string, sha: string) {
  const out = await gitOk([
    '--git-dir',
    bareRepo,
    'diff-tree',
    '--no-commit-id',
    '--name-only',
    '-r',
    sha,
  ]);
  return out.split('\n').filter(Boolean);
}

/** Polls `fn` until it returns a truthy value (30 s by default), with the simulator's events on timeout. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null>,
  events?: () => string[],
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what} (last: ${String(last)})\n${(
          events?.() ?? []
        )
          .slice(-20)
          .join('\n')}`,
      );
    await new Promise(r => setTimeout(r, 150));
  }
}

export const readyOf = (obj: any) =>
  obj?.status?.conditions?.find((c: any) => c.type === 'Ready');

export const PASSWORD = 'canary-sim-password-5d1e77';

export interface Fleet {
  server: GitHttpServer;
  repo: { url: string; path: string };
  secret: Record<string, string>;
}

/** A TLS git http-backend with a read token and one `fleet` repository on `main`. */
export async function startFleet(): Promise<Fleet> {
  const server = await startGitHttpServer({ tls: true });
  server.addToken({ token: PASSWORD, user: 'flux', access: 'read' });
  const repo = server.createRepo('fleet', {
    defaultBranch: 'main',
    initialCommit: true,
  });
  return {
    server,
    repo,
    secret: { username: 'flux', password: PASSWORD, 'ca.crt': server.caPem! },
  };
}

/** Small typed access to the apiserver for assertions. */
export function kubeAccess(kube: KubeApiserverInfo) {
  const api = new KubeHttp(kube);
  const p = (
    apiVersion: string,
    resource: string,
    name?: string,
    namespace?: string,
  ) => kubePath({ apiVersion, resource, name, namespace });
  return {
    api,
    p,
    async get(at: string): Promise<any | undefined> {
      const r = await api.request('GET', at);
      return r.status === 200 ? r.body : undefined;
    },
    deployment: (ns: string, name: string) =>
      p('apps/v1', 'deployments', name, ns),
    kustomization: (ns: string, name: string) =>
      p('kustomize.toolkit.fluxcd.io/v1', 'kustomizations', name, ns),
    gitRepository: (ns: string, name: string) =>
      p('source.toolkit.fluxcd.io/v1', 'gitrepositories', name, ns),
    crd: (name: string) =>
      p('apiextensions.k8s.io/v1', 'customresourcedefinitions', name),
    async secret(ns: string, name: string, data: Record<string, string>) {
      await api.apply(p('v1', 'secrets', name, ns), {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace: ns },
        stringData: data,
      });
    },
    async annotate(at: string, annotations: Record<string, string | null>) {
      await api.expect('PATCH', at, {
        body: { metadata: { annotations } },
        contentType: 'application/merge-patch+json',
      });
    },
    async patchSpec(at: string, spec: Record<string, unknown>) {
      await api.expect('PATCH', at, {
        body: { spec },
        contentType: 'application/merge-patch+json',
      });
    },
    close: () => api.close(),
  };
}

/** The components `flux bootstrap` installs by default. */
export const BOOTSTRAP_COMPONENTS = [
  'source-controller',
  'kustomize-controller',
  'helm-controller',
  'notification-controller',
];

/**
 * The state `flux bootstrap` leaves in `namespace`: `bundle`'s default components applied, its
 * files (and `extra`) committed to the fleet's `main` under `path`, and the Git Secret and sync
 * objects applied (field manager `flux`). Returns the commit.
 */
export async function fluxBootstrapState(
  kube: KubeApiserverInfo,
  fleet: Fleet,
  bundle: FluxBundle,
  opts: {
    namespace: string;
    path: string;
    extra?: Record<string, string>;
    message?: string;
  },
): Promise<string> {
  const { namespace, path: clusterPath } = opts;
  await applyFluxBundle(kube, bundle, {
    namespace,
    components: BOOTSTRAP_COMPONENTS,
  });
  const head = await commitFiles(
    fleet.repo.path,
    'main',
    {
      ...fluxBootstrapFiles(bundle, {
        namespace,
        url: fleet.repo.url,
        path: clusterPath,
      }),
      ...opts.extra,
    },
    opts.message,
  );
  await applyFluxSync(kube, {
    namespace,
    url: fleet.repo.url,
    secret: fleet.secret,
    secretName: namespace,
    path: `./${clusterPath}`,
  });
  return head;
}

/** A simulator whose kustomize-controller applies (`apply: true`), with the operator loop when given `operatorBundles`. */
export function startApplyingSimulator(
  kube: KubeApiserverInfo,
  namespace: string,
  operatorBundles?: FluxBundle[],
): Promise<FluxSimulator> {
  return startFluxSimulator({
    kube,
    namespace,
    intervalMs: 150,
    apply: true,
    ...(operatorBundles ? { operator: { bundles: operatorBundles } } : {}),
  });
}
