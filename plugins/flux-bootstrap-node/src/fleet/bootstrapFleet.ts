import pLimit from 'p-limit';
import { resolveTokenOwner } from '../bitbucket/access';
import { BitbucketServerClient } from '../bitbucket/client';
import { isBitbucketError } from '../bitbucket/errors';
import {
  ensureFleetRepository,
  locateBitbucketRepository,
  planRepositoryOutputs,
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
import { fluxAccessKeyLabel } from '../keys/accessKey';
import { provisionDeployKey, type DeployKeyRequest } from '../keys/deployKey';
import type { SourceSecretDeps } from '../keys/sourceSecret';
import { createKubeClient } from '../kube/client';
import { resolveCluster } from '../kube/cluster';
import type { KubeClient } from '../kube/types';
import { loadFluxBundle } from '../manifests/bundle';
import { generateComponentObjects } from '../manifests/components';
import {
  resolveFluxManifestOptions,
  type FluxManifestInput,
} from '../manifests/options';
import { redactedSteps, type CheckpointFn } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import type { EngineLogger } from '../util/logger';

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
 * `flux bootstrap` for a fleet: the repository once; every cluster's files in ONE pair of flux's
 * commits; then, `concurrency` at a time, each cluster's deploy key (or token Secret) and install
 * unless its Flux applied that revision already. Checkpoint keys carry the cluster name; a failing
 * cluster does not stop the others. A dry run only reads and returns `planned` rows.
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
  // What every Secret holds, as flux:install stores it: the run's credentials, the user given,
  // else the integration's (else the owner, asked below); the host's CA for `ca.crt`.
  const { auth, host } = req.bitbucket;
  const token = req.tokenAuth && {
    username:
      req.tokenAuth.username?.trim() ||
      ('username' in auth ? auth.username : undefined),
    password: 'token' in auth ? auth.token : auth.password,
    caPem: host.caPem,
  };
  if (token) redactor.add(token.password);
  // Every cluster and option is checked before any request.
  const clusters = req.clusters.map(name => {
    const connection = resolveCluster(settings, name, 'clusters');
    const path = req.pathPattern.split('<cluster>').join(connection.name);
    resolve(path, `${token ? 'https://' : 'ssh://git@'}localhost/fleet.git`);
    return { connection, path, name: connection.name };
  });
  const dryRun = req.dryRun || deps.dryRun;
  const repo = dryRun
    ? await locateFleetRepository(req, token, deps)
    : await ensureFleetRepository(
        { ...req, defaultBranch: req.branch, tokenAuth: !!token },
        deps,
      );
  const username = token && (token.username ?? repo.tokenOwner);
  if (token && !username)
    throw new InputValidationError(
      'username',
      `is required with tokenAuth: Bitbucket ${host.host} did not say who owns ${req.bitbucket.credentials}`,
    );
  if (token && !dryRun)
    logger.info(
      `Token auth: every cluster's Secret gets user "${username}" and ${
        req.bitbucket.credentials
      }${token.caPem ? ', plus ca.crt' : ''}; no deploy keys`,
    );
  const planned = clusters.map(c => ({
    ...c,
    options: resolve(c.path, token ? repo.remoteUrl : repo.sshUrl),
  }));
  const { version } = planned[0].options.components;
  const bundle = await loadFluxBundle(version, settings.manifests, deps);
  const files = planned.map(c => renderFluxManifests(bundle.files, c.options));
  let pushed = { head: '', changed: true };
  if (dryRun) {
    for (const f of files)
      logger.info(
        `Would commit ${f.components.path}, ${f.sync.path} (and ${f.kustomization.path} unless the folder has one)`,
      );
  } else {
    // One pair of commits for the fleet, each push a checkpoint; the bodies list the clusters.
    const list = planned.map((c, i) => `- ${c.name} (${files[i].dir})`);
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
      const sync = await commit(
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
      pushed = { ...sync, changed: sync.changed || components.changed };
    } finally {
      await session?.close();
    }
  }
  // A dry run's is pendingRevision(branch).
  const revision = `${repo.defaultBranch}@sha1:${pushed.head}`;

  const lane = async (
    c: (typeof planned)[number],
    kube: KubeClient,
    log: EngineLogger,
  ): Promise<Pick<FleetClusterResult, 'state' | 'revision'>> => {
    const { namespace, sync } = c.options;
    const plan = buildFluxInstallPlan({
      options: c.options,
      componentObjects: dryRun
        ? []
        : generateComponentObjects(bundle.files, c.options.components),
      secret:
        token &&
        tokenAuthSecret({
          ...{ namespace, name: sync.secretName, caPem: token.caPem },
          ...{ username: username!, password: token.password },
        }),
      expectedRevision: dryRun ? undefined : revision,
    });
    const now = await readFluxReadiness(kube, plan, signal);
    if (dryRun) {
      const secret = `Secret ${namespace}/${sync.secretName}`;
      log.info(
        now.revision
          ? `Flux here applied ${now.revision}${
              now.ready ? ' and is ready' : ''
            }`
          : `No Flux sync found in namespace ${namespace}`,
      );
      const label = fluxAccessKeyLabel({
        namespace,
        branch: req.branch,
        secretName: sync.secretName,
        path: c.path,
      });
      log.info(
        token
          ? `Would apply ${secret} (username "${username}", password${
              token.caPem ? ', ca.crt' : ''
            }; values not shown); no deploy key`
          : `Would generate a deploy key unless ${secret} holds one, and register access key "${label}" (${
              req.readWrite ? 'REPO_WRITE' : 'REPO_READ'
            })`,
      );
      log.info(
        `Would install Flux ${version} and wait up to ${Math.round(
          req.timeoutMs / 1000,
        )} s until it applied the pushed revision from ${sync.url}`,
      );
      return { state: 'planned' };
    }
    if (now.ready && now.revision === revision) {
      log.info(`Flux applied ${revision} already and is ready: nothing to do`);
      return { state: 'unchanged', revision };
    }
    const checkpoint: CheckpointFn = (key, fn) => step(`${c.name}/${key}`, fn);
    // With token auth installFlux applies the Secret: no key pair, no access key.
    if (!token)
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
    return { state: 'ready', revision: installed.revision };
  };
  const limit = pLimit(Math.max(1, req.concurrency));
  const results = await Promise.all(
    planned.map(c =>
      limit(async (): Promise<FleetClusterResult> => {
        const log = prefixed(logger, c.name);
        const row = { cluster: c.name, path: c.path };
        try {
          const kube = await createKubeClient(c.connection, {
            ...deps,
            logger: log,
          });
          try {
            return { ...row, ...(await lane(c, kube, log)) };
          } finally {
            kube.close();
          }
        } catch (error) {
          if (signal?.aborted) throw error;
          const message = redactor.redact(
            String((error as Error)?.message ?? error),
          );
          log.error(`${dryRun ? 'Cannot be read' : 'Failed'}: ${message}`);
          return { ...row, state: 'failed', error: message };
        }
      }),
    ),
  );
  return {
    repoContentsUrl: repo.repoContentsUrl,
    revision,
    commitHash: pushed.head,
    changed: pushed.changed,
    clusters: results,
  };
}

/** A logger whose lines start with `[prefix] `: each cluster's progress in the task log. */
function prefixed(logger: EngineLogger, prefix: string): EngineLogger {
  return {
    error: (m, meta) => logger.error(`[${prefix}] ${m}`, meta),
    warn: (m, meta) => logger.warn(`[${prefix}] ${m}`, meta),
    info: (m, meta) => logger.info(`[${prefix}] ${m}`, meta),
    debug: (m, meta) => logger.debug(`[${prefix}] ${m}`, meta),
  };
}

/**
 * The dry run's repository: reads the credentials' owner (token auth) and whether the
 * repository exists; says whether a real run would create or reuse it.
 */
async function locateFleetRepository(
  req: FleetBootstrapRequest,
  token: { username?: string } | undefined,
  deps: FleetBootstrapDeps,
) {
  const { logger, redactor, signal } = deps;
  const { ref, host, auth, credentials } = req.bitbucket;
  logger.info(
    'Dry run: reads only; nothing is written to Bitbucket, Git or any cluster',
  );
  const client = new BitbucketServerClient(host, auth, { logger, redactor });
  let tokenOwner: string | undefined;
  let located: Awaited<ReturnType<typeof locateBitbucketRepository>> | void;
  try {
    if (token) {
      tokenOwner = (await resolveTokenOwner(client, { signal, credentials }))
        .name;
      logger.info(
        `Token auth: ${credentials} belong to user "${tokenOwner}"; Flux would sign in as "${
          token.username ?? tokenOwner
        }"`,
      );
    }
    located = await locateBitbucketRepository(client, ref, {
      signal,
      credentials,
    }).catch(error => {
      // A missing repository is created by a real run; a missing project is an error there too.
      if (
        isBitbucketError(error, 'not-found') &&
        /^Repository /.test(error.message)
      )
        return undefined;
      throw error;
    });
  } finally {
    client.close();
  }
  const urls = planRepositoryOutputs(host, {
    ref: located ? located.ref : ref,
    defaultBranch: req.branch,
  });
  const where = `${urls.projectKey}/${urls.repoSlug}`;
  logger.info(
    located
      ? `Would reuse repository ${where} (it exists) and ensure branch "${req.branch}"`
      : `Would create ${
          req.private ? 'private' : 'public'
        } repository ${where} with default branch "${req.branch}"`,
  );
  return { ...urls, tokenOwner };
}
