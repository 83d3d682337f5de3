/**
 * Test fixtures for the install tests (not exported from the package): plans generated exactly
 * as the action generates them — the project's Flux bundle fixture through the manifest
 * generator — and cleanup of the cluster-scoped objects an install creates.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildFluxBundle,
  KubeCleanup,
  startGitHttpServer,
  type GitHttpServer,
  type KubeApiserverInfo,
} from '@flux-bootstrap/test-peers';
import type { ClusterConnection } from '../../config';
import type { KubeObject } from '../../kube/types';
import { generateComponentObjects } from '../../manifests/components';
import {
  resolveFluxManifestOptions,
  type FluxManifestInput,
} from '../../manifests/options';
import type { EngineLogger } from '../../util';
import { buildFluxInstallPlan, type FluxInstallPlan } from '../plan';

export const FLUX_VERSION = 'v2.9.4';

let bundleFiles: Promise<Record<string, string>> | undefined;
export function fluxBundleFiles(): Promise<Record<string, string>> {
  bundleFiles ??= buildFluxBundle({ version: FLUX_VERSION }).then(b => b.files);
  return bundleFiles;
}

export function adminConnection(
  kube: KubeApiserverInfo,
  over: Partial<ClusterConnection> = {},
): ClusterConnection {
  return {
    name: 'test-cluster',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
    ...over,
  };
}

export async function planFor(
  namespace: string,
  input: Partial<FluxManifestInput> & {
    secret?: KubeObject;
    expectedRevision?: string;
  } = {},
): Promise<FluxInstallPlan> {
  const { secret, expectedRevision, ...manifestInput } = input;
  const resolved = resolveFluxManifestOptions(
    {
      path: 'clusters/test',
      syncUrl: 'https://127.0.0.1:1/scm/flux/fleet.git',
      ...manifestInput,
      namespace,
    },
    { fluxVersion: FLUX_VERSION },
  );
  return buildFluxInstallPlan({
    options: resolved,
    componentObjects: generateComponentObjects(
      await fluxBundleFiles(),
      resolved.components,
    ),
    secret,
    expectedRevision,
  });
}

const CLUSTER_SCOPED_PLURALS: Record<string, string> = {
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
};

/** Tracks the ClusterRoles/Bindings of a plan (its namespace-suffixed RBAC) for deletion. */
export function trackClusterObjects(
  cleanup: KubeCleanup,
  plan: FluxInstallPlan,
): KubeCleanup {
  for (const o of plan.componentObjects) {
    const resource = CLUSTER_SCOPED_PLURALS[o.kind];
    if (resource)
      cleanup.track({
        apiVersion: o.apiVersion,
        resource,
        name: o.metadata.name,
      });
  }
  return cleanup;
}

export function recordingLogger() {
  const lines: string[] = [];
  const add = (level: string) => (m: string, meta?: unknown) =>
    lines.push(`${level} ${m}${meta ? ` ${JSON.stringify(meta)}` : ''}`);
  const logger: EngineLogger = {
    error: add('error'),
    warn: add('warn'),
    info: add('info'),
    debug: add('debug'),
  };
  return { logger, lines };
}

/**
 * A fleet repository on the real git smart-HTTP peer (TLS with its own CA), readable with a
 * token, as Flux reads it with token auth. Commits are made with the git CLI in a scratch work
 * tree and pushed straight into the bare repository.
 */
export interface FleetRepo {
  server: GitHttpServer;
  /** HTTPS clone URL (GitRepository spec.url). */
  url: string;
  caPem: string;
  user: string;
  token: string;
  /** Commits `files` (path → content) on top of the work tree and moves `branch` to it; returns the sha. */
  commit(
    files: Record<string, string>,
    opts?: { branch?: string; message?: string },
  ): string;
  /** Points a branch at a commit (as a push would). */
  setBranch(branch: string, sha: string): void;
  stop(): Promise<void>;
}

export async function startFleetRepo(opts: {
  user: string;
  token: string;
}): Promise<FleetRepo> {
  const server = await startGitHttpServer({ tls: true });
  const repo = server.createRepo('fleet', { initialCommit: false });
  server.addToken({ token: opts.token, user: opts.user, access: 'read' });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-work-'));
  const env = {
    PATH: process.env.PATH,
    HOME: work,
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Flux',
    GIT_AUTHOR_EMAIL: 'flux@example.com',
    GIT_COMMITTER_NAME: 'Flux',
    GIT_COMMITTER_EMAIL: 'flux@example.com',
  };
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: work, env, encoding: 'utf8' }).trim();
  git('init', '-q', '-b', 'main');
  return {
    server,
    url: repo.url,
    caPem: server.caPem!,
    user: opts.user,
    token: opts.token,
    commit(files, o = {}) {
      for (const [file, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(work, file)), { recursive: true });
        fs.writeFileSync(path.join(work, file), content);
      }
      git('add', '-A');
      git(
        'commit',
        '-q',
        '--allow-empty',
        '-m',
        o.message ?? 'Add Flux manifests',
      );
      const sha = git('rev-parse', 'HEAD');
      git('push', '-q', repo.path, `HEAD:refs/heads/${o.branch ?? 'main'}`);
      return sha;
    },
    setBranch(branch, sha) {
      execFileSync(
        'git',
        ['--git-dir', repo.path, 'update-ref', `refs/heads/${branch}`, sha],
        { env },
      );
    },
    async stop() {
      fs.rmSync(work, { recursive: true, force: true });
      await server.stop();
    },
  };
}
