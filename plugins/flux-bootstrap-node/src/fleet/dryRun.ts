import pLimit from 'p-limit';
import { resolveTokenOwner } from '../bitbucket/access';
import { BitbucketServerClient } from '../bitbucket/client';
import { isBitbucketError } from '../bitbucket/errors';
import {
  locateBitbucketRepository,
  planRepositoryOutputs,
} from '../bitbucket/repository';
import { renderFluxManifests } from '../git/pushFluxManifests';
import { buildFluxInstallPlan, pendingRevision } from '../install/plan';
import { readFluxReadiness } from '../install/wait';
import { fluxAccessKeyLabel } from '../keys/accessKey';
import { createKubeClient } from '../kube/client';
import type { ClusterConnection } from '../config/clusters';
import { loadFluxBundle } from '../manifests/bundle';
import type { ResolvedFluxManifestOptions } from '../manifests/options';
import type {
  FleetBootstrapDeps,
  FleetBootstrapRequest,
  FleetBootstrapResult,
  FleetClusterResult,
} from './bootstrapFleet';
import { prefixed } from './logging';
import type { FleetTokenAuth } from './tokenAuth';

/** The fleet as bootstrapFleet checked it before any request. */
export interface CheckedFleet {
  clusters: { connection: ClusterConnection; path: string; name: string }[];
  resolve: (path: string, syncUrl: string) => ResolvedFluxManifestOptions;
  token?: FleetTokenAuth;
}

/**
 * The dry run of bootstrapFleet: only reads. Bitbucket: the credentials' owner (token auth) and
 * whether the repository exists; the Flux bundle (rendered, as the commits would hold it); each
 * cluster: where Flux stands there (GETs). No repository, commit, push, access key, Secret or
 * apply. Every reachable cluster is `planned`; one that cannot be read is `failed`, with why.
 */
export async function dryRunFleet(
  req: FleetBootstrapRequest,
  fleet: CheckedFleet,
  deps: FleetBootstrapDeps,
): Promise<FleetBootstrapResult> {
  const { settings, logger, redactor, signal } = deps;
  const { ref, host, auth, credentials } = req.bitbucket;
  logger.info(
    'Dry run: reads only; nothing is written to Bitbucket, Git or any cluster',
  );
  const client = new BitbucketServerClient(host, auth, { logger, redactor });
  let username = fleet.token?.username;
  let located: Awaited<ReturnType<typeof locateBitbucketRepository>> | void;
  try {
    if (fleet.token) {
      const owner = await resolveTokenOwner(client, { signal, credentials });
      username ??= owner.name;
      logger.info(
        `Token auth: ${credentials} belong to user "${owner.name}"; Flux would sign in as "${username}"`,
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
  const planned = fleet.clusters.map(c => ({
    ...c,
    options: fleet.resolve(c.path, fleet.token ? urls.remoteUrl : urls.sshUrl),
  }));
  const { version } = planned[0].options.components;
  const bundle = await loadFluxBundle(version, settings.manifests, deps);
  for (const c of planned) {
    const files = renderFluxManifests(bundle.files, c.options);
    logger.info(
      `Would commit ${[files.components, files.sync]
        .map(f => f.path)
        .join(', ')} (and ${
        files.kustomization.path
      } unless the folder has one)`,
    );
  }
  const limit = pLimit(Math.max(1, req.concurrency));
  const lane = async (
    c: (typeof planned)[number],
  ): Promise<FleetClusterResult> => {
    const log = prefixed(logger, c.name);
    const row = { cluster: c.name, path: c.path };
    const { namespace, sync } = c.options;
    const secret = `Secret ${namespace}/${sync.secretName}`;
    try {
      const kube = await createKubeClient(c.connection, {
        ...deps,
        logger: log,
      });
      try {
        const plan = buildFluxInstallPlan({
          options: c.options,
          componentObjects: [],
        });
        const now = await readFluxReadiness(kube, plan, signal);
        log.info(
          now.revision
            ? `Flux here applied ${now.revision}${
                now.ready ? ' and is ready' : ''
              }`
            : `No Flux sync found in namespace ${namespace}`,
        );
      } finally {
        kube.close();
      }
      log.info(
        fleet.token
          ? `Would apply ${secret} (username "${username}", password${
              fleet.token.caPem ? ', ca.crt' : ''
            }; values not shown); no deploy key`
          : `Would generate a deploy key unless ${secret} holds one, and register access key "${fluxAccessKeyLabel(
              {
                namespace,
                branch: req.branch,
                secretName: sync.secretName,
                path: c.path,
              },
            )}" (${req.readWrite ? 'REPO_WRITE' : 'REPO_READ'})`,
      );
      log.info(
        `Would install Flux ${version} and wait up to ${Math.round(
          req.timeoutMs / 1000,
        )} s until it applied the pushed revision from ${c.options.sync.url}`,
      );
      return { ...row, state: 'planned' };
    } catch (error) {
      if (signal?.aborted) throw error;
      const message = redactor.redact(
        String((error as Error)?.message ?? error),
      );
      log.error(`Cannot be read: ${message}`);
      return { ...row, state: 'failed', error: message };
    }
  };
  return {
    repoContentsUrl: urls.repoContentsUrl,
    commitHash: '',
    revision: pendingRevision(req.branch),
    changed: true,
    clusters: await Promise.all(planned.map(c => limit(() => lane(c)))),
  };
}
