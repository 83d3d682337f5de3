import {
  ensureFleetRepository,
  type FleetRepositoryRequest,
} from '../bitbucket/repository';
import type { FluxBootstrapSettings } from '../config/settings';
import {
  renderFluxManifests,
  writeComponentsManifest,
  writeSyncManifests,
} from '../git/pushFluxManifests';
import { GitPushSession, type GitAuthor } from '../git/session';
import { bitbucketGitTransport } from '../git/transport';
import type { TreeEditor } from '../git/tree';
import { installFlux } from '../install/installFlux';
import { buildFluxInstallPlan, tokenAuthSecret } from '../install/plan';
import { readFluxReadiness } from '../install/wait';
import { provisionDeployKey, type DeployKeyRequest } from '../keys/deployKey';
import type { SourceSecretDeps } from '../keys/sourceSecret';
import { createKubeClient } from '../kube/client';
import { resolveCluster } from '../kube/cluster';
import { loadFluxBundle } from '../manifests/bundle';
import { generateComponentObjects } from '../manifests/components';
import {
  resolveFluxManifestOptions,
  type FluxManifestInput,
} from '../manifests/options';
import pLimit from 'p-limit';
import { redactedSteps, type CheckpointFn } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import { dryRunFleet } from './dryRun';
import { prefixed } from './logging';
import { fleetTokenAuth, type FleetTokenAuth } from './tokenAuth';

/** A parsed `flux:bootstrap-fleet` input. @public */
export interface FleetBootstrapRequest
  extends Pick<
      FleetRepositoryRequest,
      'bitbucket' | 'description' | 'private' | 'groups'
    >,
    Pick<
      DeployKeyRequest,
      'branch' | 'key' | 'readWrite' | 'sshHost' | 'hostKeyFingerprint'
    > {
  /** Clusters of `kubernetes.clusterLocatorMethods` (or kubeconfig contexts, when allowed). */
  clusters: string[];
  /** Folder of each cluster; `<cluster>` is replaced by its name. */
  pathPattern: string;
  flux: Omit<FluxManifestInput, 'path' | 'branch' | 'syncUrl'>;
  author: GitAuthor;
  concurrency: number;
  /** Budget of one cluster's install, its wait included. */
  timeoutMs: number;
  force: boolean;
  /** Replace a newer Flux (in Git and on the clusters) by an older one, with a warning. Default false. */
  allowDowngrade?: boolean;
  /**
   * Flux's `--token-auth`: every cluster syncs over HTTPS with the run's credentials (the token
   * input, else the integration's) in its Secret (`username`, `password`, `ca.crt` when the host
   * has a CA) instead of an SSH key; checked first to belong to a user. `username` defaults to the
   * integration's, else the credentials' owner. No key pair and no access key are made.
   */
  tokenAuth?: { username?: string };
  /** Read only (the credentials' owner, the repository, each cluster) and describe what would happen. */
  dryRun?: boolean;
}

/** Collaborators of {@link bootstrapFleet}. @public */
export type FleetBootstrapDeps = SourceSecretDeps & {
  settings: FluxBootstrapSettings;
};

/**
 * One cluster of a run; `unchanged`: Flux had applied the revision already, nothing was written;
 * `planned`: a dry run read the cluster and would bootstrap it.
 * @public
 */
export interface FleetClusterResult {
  cluster: string;
  path: string;
  state: 'ready' | 'unchanged' | 'failed' | 'planned';
  revision?: string;
  error?: string;
}

/** What {@link bootstrapFleet} did: public data only. @public */
export interface FleetBootstrapResult {
  repoContentsUrl: string;
  commitHash: string;
  revision: string;
  changed: boolean;
  clusters: FleetClusterResult[];
}

/**
 * `flux bootstrap` for a fleet, composed of the engine's use cases: the repository once; every
 * cluster's files in ONE pair of flux's commits (the bodies list the clusters); then, at most
 * `concurrency` at a time, each cluster's deploy key and install — unless its Flux applied that
 * revision already (reads only). Checkpoint keys carry the cluster name, so a resumed task redoes
 * only what is left. A failing cluster does not stop the others: its row says why. With
 * `tokenAuth` each install applies the token Secret (`tokenAuthSecret`) instead of a deploy key;
 * a dry run only reads (fleet/dryRun.ts) and returns `planned` rows.
 * @public
 */
export async function bootstrapFleet(
  req: FleetBootstrapRequest,
  deps: FleetBootstrapDeps,
): Promise<FleetBootstrapResult> {
  const { settings, logger, redactor, signal } = deps;
  const step = redactedSteps(redactor, deps.checkpoint);
  if (!req.pathPattern.includes('<cluster>'))
    throw new InputValidationError('pathPattern', 'must contain <cluster>');
  if (!req.clusters.length)
    throw new InputValidationError('clusters', 'needs at least one cluster');
  const resolve = (path: string, syncUrl: string) =>
    resolveFluxManifestOptions(
      { ...req.flux, path, branch: req.branch, syncUrl },
      { fluxVersion: settings.manifests.defaultVersion },
    );
  const token = req.tokenAuth && fleetTokenAuth(req, redactor);
  // Every cluster and option is checked before any request.
  const clusters = req.clusters.map(name => {
    const connection = resolveCluster(settings, name, 'clusters');
    const path = req.pathPattern.split('<cluster>').join(connection.name);
    resolve(path, `${token ? 'https://' : 'ssh://git@'}localhost/fleet.git`);
    return { connection, path, name: connection.name };
  });
  if (req.dryRun || deps.dryRun)
    return dryRunFleet(req, { clusters, resolve, token }, deps);
  const repo = await ensureFleetRepository(
    { ...req, defaultBranch: req.branch, tokenAuth: !!token },
    deps,
  );
  const stored: FleetTokenAuth | undefined = token && {
    ...token,
    username: token.username ?? repo.tokenOwner,
  };
  if (stored && !stored.username)
    throw new InputValidationError(
      'username',
      `is required with tokenAuth: Bitbucket ${req.bitbucket.host.host} did not say who owns ${req.bitbucket.credentials}`,
    );
  if (stored)
    logger.info(
      `Token auth: every cluster's Secret gets user "${stored.username}" and ${
        req.bitbucket.credentials
      }${stored.caPem ? ', plus ca.crt' : ''}; no deploy keys`,
    );
  const planned = clusters.map(c => ({
    ...c,
    options: resolve(c.path, stored ? repo.remoteUrl : repo.sshUrl),
  }));
  const { version } = planned[0].options.components;
  const bundle = await loadFluxBundle(version, settings.manifests, deps);
  const files = planned.map(c => renderFluxManifests(bundle.files, c.options));
  // One pair of commits for the fleet, each push a checkpoint.
  const list = planned.map((c, i) => `- ${c.name} (${files[i].dir})`);
  const { auth, host } = req.bitbucket;
  let session: GitPushSession | undefined;
  const commit = (
    key: string,
    message: string,
    edit: (t: TreeEditor) => Promise<void>,
  ) =>
    step(key, async () => {
      session ??= await GitPushSession.open({
        transport: bitbucketGitTransport(repo.remoteUrl, host, auth),
        branch: repo.defaultBranch,
        logger,
      });
      const r = await session.commitAndPush({
        message: `${message}\n\nClusters:\n${list.join('\n')}`,
        author: req.author,
        signal,
        edit,
      });
      const what = r.changed ? `pushed (${r.commit})` : 'up to date';
      logger.info(`"${message}" of ${planned.length} clusters: ${what}`);
      return { changed: r.changed, head: r.head };
    });
  let pushed;
  try {
    const components = await commit(
      'fleet/push-components',
      `Add Flux ${version} component manifests`,
      async tree => {
        for (const f of files)
          await writeComponentsManifest(tree, f, version, {
            allowDowngrade: req.allowDowngrade,
            logger,
          });
      },
    );
    pushed = await commit(
      'fleet/push-sync',
      'Add Flux sync manifests',
      async tree => {
        // The gotk files are known Kubernetes YAML, not re-parsed.
        for (const f of files) {
          const known = [f.components.path, f.sync.path];
          await writeSyncManifests(tree, f, p => known.includes(p));
        }
      },
    );
    pushed = { ...pushed, changed: pushed.changed || components.changed };
  } finally {
    await session?.close();
  }
  const revision = `${repo.defaultBranch}@sha1:${pushed.head}`;
  const limit = pLimit(Math.max(1, req.concurrency));
  const lane = async (
    c: (typeof planned)[number],
  ): Promise<FleetClusterResult> => {
    const log = prefixed(logger, c.name);
    const checkpoint: CheckpointFn = (key, fn) => step(`${c.name}/${key}`, fn);
    const row = { cluster: c.name, path: c.path };
    try {
      const { namespace, sync } = c.options;
      const plan = buildFluxInstallPlan({
        options: c.options,
        componentObjects: generateComponentObjects(
          bundle.files,
          c.options.components,
        ),
        secret:
          stored &&
          tokenAuthSecret({
            ...{ namespace, name: sync.secretName, caPem: stored.caPem },
            ...{ username: stored.username!, password: stored.password },
          }),
        expectedRevision: revision,
      });
      const kube = await createKubeClient(c.connection, {
        ...deps,
        logger: log,
      });
      try {
        const now = await readFluxReadiness(kube, plan, signal);
        if (now.ready && now.revision === revision) {
          log.info(
            `Flux applied ${revision} already and is ready: nothing to do`,
          );
          return { ...row, state: 'unchanged', revision };
        }
        // With token auth installFlux applies the Secret: no key pair, no access key.
        if (!stored)
          await provisionDeployKey(
            {
              ...req,
              cluster: c.name,
              namespace,
              secretName: sync.secretName,
              branch: repo.defaultBranch,
              path: c.path,
              rotate: false,
            },
            { ...deps, logger: log, checkpoint },
          );
        const { force, timeoutMs } = req;
        const installed = await installFlux(kube, plan, {
          ...{ force, timeoutMs, signal, checkpoint, logger: log },
          allowDowngrade: req.allowDowngrade,
          kubernetesVersions: settings.kubernetesVersions,
        });
        return { ...row, state: 'ready', revision: installed.revision };
      } finally {
        kube.close();
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      const message = redactor.redact(
        String((error as Error)?.message ?? error),
      );
      log.error(`Failed: ${message}`);
      return { ...row, state: 'failed', error: message };
    }
  };
  const results = await Promise.all(planned.map(c => limit(() => lane(c))));
  return {
    repoContentsUrl: repo.repoContentsUrl,
    revision,
    commitHash: pushed.head,
    changed: pushed.changed,
    clusters: results,
  };
}
