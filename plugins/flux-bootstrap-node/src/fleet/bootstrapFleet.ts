import type { BitbucketAccess } from '../bitbucket/access';
import { gitHttpAuthHeaders } from '../bitbucket/client';
import {
  ensureFleetRepository,
  type FleetRepositoryRequest,
} from '../bitbucket/repository';
import type { FluxBootstrapSettings } from '../config/settings';
import { renderFluxManifests } from '../git/pushFluxManifests';
import { GitPushSession, type GitAuthor } from '../git/session';
import { HttpsGitTransport } from '../git/transport';
import { installFlux } from '../install/installFlux';
import { buildFluxInstallPlan } from '../install/plan';
import { readFluxReadiness } from '../install/wait';
import type { SshEndpoint } from '../keys/hostKey';
import { provisionDeployKey } from '../keys/deployKey';
import type { SshKeyOptions } from '../keys/keyPair';
import { createKubeClient } from '../kube/client';
import { resolveCluster } from '../kube/cluster';
import { loadFluxBundle } from '../manifests/bundle';
import { generateComponentObjects } from '../manifests/components';
import { KUSTOMIZATION_FILE_NAMES } from '../manifests/kustomization';
import {
  resolveFluxManifestOptions,
  type FluxManifestInput,
} from '../manifests/options';
import { generateSyncManifest } from '../manifests/sync';
import { redactedSteps, type CheckpointFn } from '../util/checkpoint';
import { FluxBootstrapError, InputValidationError } from '../util/errors';
import type { EngineLogger } from '../util/logger';
import type { Redactor } from '../util/redact';

/** A parsed `flux:bootstrap-fleet` input. @public */
export interface FleetBootstrapRequest {
  bitbucket: BitbucketAccess;
  /** Clusters of `kubernetes.clusterLocatorMethods` (or kubeconfig contexts, when allowed). */
  clusters: string[];
  /** Folder of each cluster; `<cluster>` is replaced by its name. */
  pathPattern: string;
  branch: string;
  repository: Pick<
    FleetRepositoryRequest,
    'description' | 'private' | 'groups'
  >;
  /** Flux's options, the same for every cluster. */
  flux: Omit<FluxManifestInput, 'path' | 'branch' | 'syncUrl'>;
  key: SshKeyOptions;
  readWrite: boolean;
  sshHost?: SshEndpoint;
  hostKeyFingerprint?: string;
  author: GitAuthor;
  /** Installs running at once. */
  concurrency: number;
  /** Budget of one cluster's install (its wait included). */
  timeoutMs: number;
  force: boolean;
}

/** Collaborators of {@link bootstrapFleet}. @public */
export interface FleetBootstrapDeps {
  settings: FluxBootstrapSettings;
  logger: EngineLogger;
  redactor: Redactor;
  signal?: AbortSignal;
  checkpoint?: CheckpointFn;
}

/** One cluster of a fleet run: `unchanged` = already synced at the revision, nothing written. @public */
export interface FleetClusterResult {
  cluster: string;
  path: string;
  state: 'ready' | 'unchanged' | 'failed';
  revision?: string;
  error?: string;
}

/** What {@link bootstrapFleet} did: public data only. @public */
export interface FleetBootstrapResult {
  repoContentsUrl: string;
  sshUrl: string;
  defaultBranch: string;
  commitHash: string;
  /** `<branch>@sha1:<commitHash>`: what every cluster must apply. */
  revision: string;
  /** True when this run committed. */
  changed: boolean;
  clusters: FleetClusterResult[];
  /** Markdown table: cluster, state, applied revision, error. */
  summary: string;
}

/** Runs `fn` on every item, at most `limit` at a time, results in order. */
async function inParallel<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  const workers = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return results;
}

const prefixed = (logger: EngineLogger, prefix: string): EngineLogger => ({
  error: (m, meta) => logger.error(`[${prefix}] ${m}`, meta),
  warn: (m, meta) => logger.warn(`[${prefix}] ${m}`, meta),
  info: (m, meta) => logger.info(`[${prefix}] ${m}`, meta),
  debug: (m, meta) => logger.debug(`[${prefix}] ${m}`, meta),
});

function summaryTable(results: FleetClusterResult[]): string {
  const cell = (s = '') => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
  return [
    '| Cluster | State | Applied revision | Error |',
    '| --- | --- | --- | --- |',
    ...results.map(
      r =>
        `| ${r.cluster} | ${r.state} | ${cell(r.revision)} | ${cell(
          r.error,
        )} |`,
    ),
  ].join('\n');
}

/**
 * `flux bootstrap` for many clusters from one fleet repository, composed of the engine's use
 * cases: the repository ensured once (ensureFleetRepository); the Flux files of every cluster
 * in ONE pair of flux's commits, their bodies listing the clusters; then per cluster, at most
 * `concurrency` at a time, its Secret and access key (provisionDeployKey) and the install
 * (installFlux). A cluster whose Flux already synced the pushed revision is left alone (reads
 * only). Checkpoint keys carry the cluster name, so a resumed task redoes only what is left.
 * One cluster failing does not stop the others: its row says why ({@link assertFleetReady}).
 * Cancelling (`signal`) stops every install.
 * @public
 */
export async function bootstrapFleet(
  req: FleetBootstrapRequest,
  deps: FleetBootstrapDeps,
): Promise<FleetBootstrapResult> {
  const { settings, logger, redactor, signal } = deps;
  if (!req.pathPattern.includes('<cluster>'))
    throw new InputValidationError(
      'pathPattern',
      'must contain <cluster>, e.g. clusters/<cluster>: every cluster needs its own folder',
    );
  // Every cluster and option is checked before any request.
  const clusters = req.clusters.map(name => {
    const connection = resolveCluster(settings, name, 'clusters');
    const path = req.pathPattern.split('<cluster>').join(connection.name);
    return { connection, path, name: connection.name };
  });
  const resolve = (path: string, syncUrl: string) =>
    resolveFluxManifestOptions(
      { ...req.flux, path, branch: req.branch, syncUrl },
      { fluxVersion: settings.manifests.defaultVersion },
    );
  if (!clusters.length)
    throw new InputValidationError('clusters', 'needs at least one cluster');
  for (const c of clusters) resolve(c.path, 'ssh://git@localhost/fleet.git');

  const repo = await ensureFleetRepository(
    { ...req.repository, bitbucket: req.bitbucket, defaultBranch: req.branch },
    { logger, redactor, signal, checkpoint: deps.checkpoint },
  );
  const planned = clusters.map(c => ({
    ...c,
    options: resolve(c.path, repo.sshUrl),
  }));
  const { version } = planned[0].options.components;
  const bundle = await loadFluxBundle(version, settings.manifests, {
    signal,
    logger,
  });
  const files = planned.map(c => renderFluxManifests(bundle.files, c.options));

  // One pair of commits for the whole fleet, each push a checkpoint.
  const step = redactedSteps(redactor, deps.checkpoint);
  const body = `\n\nClusters:\n${planned
    .map((c, i) => `- ${c.name} (${files[i].dir})`)
    .join('\n')}`;
  const { auth, host } = req.bitbucket;
  let session: GitPushSession | undefined;
  const commit = (
    key: string,
    message: string,
    edit: (
      tree: Parameters<
        Parameters<GitPushSession['commitAndPush']>[0]['edit']
      >[0],
    ) => Promise<void>,
  ) =>
    step(key, async () => {
      session ??= await GitPushSession.open({
        transport: new HttpsGitTransport({
          url: repo.remoteUrl,
          headers: gitHttpAuthHeaders(auth),
          caPem: host.caPem,
          timeoutMs: Math.max(60_000, host.requestTimeoutMs),
        }),
        branch: repo.defaultBranch,
        logger,
      });
      const r = await session.commitAndPush({
        message: message + body,
        author: req.author,
        signal,
        edit,
      });
      logger.info(
        r.changed
          ? `Pushed "${message}" for ${planned.length} clusters (${r.commit})`
          : `"${message}": the files of every cluster are up to date`,
      );
      return { changed: r.changed, head: r.head };
    });
  let pushed;
  try {
    const components = await commit(
      'fleet/push-components',
      `Add Flux ${version} component manifests`,
      async tree => {
        for (const f of files)
          tree.write(f.components.path, f.components.content);
      },
    );
    pushed = await commit(
      'fleet/push-sync',
      'Add Flux sync manifests',
      async tree => {
        for (const f of files) {
          tree.write(f.sync.path, f.sync.content);
          const exists = await Promise.all(
            KUSTOMIZATION_FILE_NAMES.map(n => tree.exists(`${f.dir}/${n}`)),
          );
          // An existing kustomization file is the user's and stays.
          if (!exists.includes(true))
            tree.write(f.kustomization.path, f.kustomization.content);
        }
      },
    );
    pushed = { ...pushed, changed: pushed.changed || components.changed };
  } finally {
    await session?.close();
  }
  const revision = `${repo.defaultBranch}@sha1:${pushed.head}`;

  const results = await inParallel(planned, req.concurrency, async c => {
    const log = prefixed(logger, c.name);
    const checkpoint: CheckpointFn = (key, fn) => step(`${c.name}/${key}`, fn);
    const row = { cluster: c.name, path: c.path };
    try {
      const plan = buildFluxInstallPlan({
        namespace: c.options.namespace,
        fluxVersion: version,
        components: c.options.components.components,
        componentObjects: generateComponentObjects(
          bundle.files,
          c.options.components,
        ),
        syncYaml: generateSyncManifest(c.options.sync),
        expectedRevision: revision,
      });
      const kube = await createKubeClient(c.connection, {
        logger: log,
        redactor,
      });
      try {
        const now = await readFluxReadiness(kube, plan, signal);
        if (now.ready && now.revision === revision) {
          log.info(
            `Flux already applied ${revision} and is ready: nothing to do`,
          );
          return { ...row, state: 'unchanged' as const, revision };
        }
        await provisionDeployKey(
          {
            bitbucket: req.bitbucket,
            cluster: c.name,
            namespace: c.options.namespace,
            secretName: c.options.sync.secretName,
            key: req.key,
            readWrite: req.readWrite,
            branch: repo.defaultBranch,
            path: c.path,
            sshHost: req.sshHost,
            hostKeyFingerprint: req.hostKeyFingerprint,
            rotate: false,
          },
          { settings, logger: log, redactor, signal, checkpoint },
        );
        const installed = await installFlux(kube, plan, {
          force: req.force,
          timeoutMs: req.timeoutMs,
          signal,
          logger: log,
          checkpoint,
        });
        return {
          ...row,
          state: 'ready' as const,
          revision: installed.revision,
        };
      } finally {
        kube.close();
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      const message = redactor.redact(
        error instanceof Error ? error.message : String(error),
      );
      log.error(`Failed: ${message}`);
      return { ...row, state: 'failed' as const, error: message };
    }
  });
  const summary = summaryTable(results);
  for (const line of summary.split('\n')) logger.info(line);
  return {
    repoContentsUrl: repo.repoContentsUrl,
    sshUrl: repo.sshUrl,
    defaultBranch: repo.defaultBranch,
    commitHash: pushed.head,
    revision,
    changed: pushed.changed,
    clusters: results,
    summary,
  };
}

/**
 * Throws when a cluster of the run failed, naming each with its reason (the task then ends
 * failed; a re-run retries only those clusters).
 * @public
 */
export function assertFleetReady(result: FleetBootstrapResult): void {
  const failed = result.clusters.filter(c => c.state === 'failed');
  if (!failed.length) return;
  throw new FluxBootstrapError(
    'ServiceUnavailableError',
    `${failed.length} of ${result.clusters.length} clusters failed: ${failed
      .map(c => `${c.cluster}: ${c.error}`)
      .join(
        '; ',
      )}. The others are ready; run again to retry only the failed ones.\n${
      result.summary
    }`,
  );
}
