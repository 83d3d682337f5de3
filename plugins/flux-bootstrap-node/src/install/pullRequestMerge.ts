import { setTimeout as sleep } from 'node:timers/promises';
import {
  BitbucketPullRequests,
  pullRequestInfo,
} from '../bitbucket/pullRequests';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import type { KubeClient } from '../kube/types';
import { OperationAbortedError } from '../util/errors';
import { silentLogger } from '../util/logger';
import { FluxInstallError } from './errors';
import { installFlux, type InstallFluxOptions } from './installFlux';
import type { FluxInstallPlan } from './plan';
import { waitForFlux } from './wait';

/**
 * Annotation on the sync Kustomization with the browse URL of the pull request its sync waits
 * for; the status reader reports `awaiting-merge` from it.
 * @public
 */
export const PULL_REQUEST_ANNOTATION = 'flux-bootstrap.io/pull-request';

/**
 * The host, repository and id of a pull request's browse URL
 * (`<baseUrl>/projects/KEY/repos/slug/pull-requests/ID`, `/users/NAME/…` for a personal
 * repository), or undefined when it is on none of the hosts.
 * @public
 */
export function parsePullRequestUrl(
  url: string,
  hosts: BitbucketServerHostConfig[],
) {
  const PATH =
    /^\/(projects|users)\/([^/]+)\/repos\/([^/]+)\/pull-requests\/(\d+)(?:\/overview)?\/?$/;
  for (const host of hosts) {
    const base = host.baseUrl.replace(/\/+$/, '');
    const m = url.startsWith(`${base}/`) && PATH.exec(url.slice(base.length));
    if (m) {
      const owner = decodeURIComponent(m[2]);
      const projectKey = m[1] === 'users' ? `~${owner}` : owner;
      return {
        host,
        projectKey,
        slug: decodeURIComponent(m[3]),
        id: Number(m[4]),
      };
    }
  }
  return undefined;
}

/** Sets (`url`) or removes {@link PULL_REQUEST_ANNOTATION} with its own field manager. */
function recordPullRequest(
  kube: KubeClient,
  ns: string,
  url?: string,
  signal?: AbortSignal,
) {
  const annotations = url ? { [PULL_REQUEST_ANNOTATION]: url } : undefined;
  return kube.apply(
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: {
        name: ns,
        namespace: ns,
        ...(annotations && { annotations }),
      },
    },
    { fieldManager: 'flux-bootstrap-pull-request', force: true, signal },
  );
}

/** Polling of {@link waitForPullRequestMerge}. @public */
export interface PullRequestPolling {
  /** How often Bitbucket is asked. Default 10 s. */
  pollIntervalMs?: number;
  /** At most this long between two progress lines. Default 60 s. */
  progressIntervalMs?: number;
}

/**
 * Polls Bitbucket until the pull request is merged; returns the revision Flux will apply,
 * `<target>@sha1:<merge commit>`. Logs the wait with the link and the reviewers' statuses; a
 * declined pull request fails (`sync-failed`); the signal ends the wait.
 * @public
 */
export async function waitForPullRequestMerge(
  repo: BitbucketPullRequests,
  id: number,
  opts: PullRequestPolling & Pick<InstallFluxOptions, 'logger'> = {},
): Promise<string> {
  const logger = opts.logger ?? silentLogger;
  for (let logged = '', at = 0; ; ) {
    const pr = await repo.get(id);
    const { url, toBranch, reviewers } = pullRequestInfo(pr);
    if (pr.state === 'DECLINED')
      throw new FluxInstallError(
        'sync-failed',
        `pull request #${id} (${url}) was declined: Flux is installed but its sync has nothing to apply from ${toBranch}. Run the template again to open a new pull request.`,
      );
    if (pr.state === 'MERGED') {
      const sha =
        pr.properties?.mergeCommit?.id ??
        (await repo.client.getBranchHead(
          repo.projectKey,
          repo.slug,
          toBranch,
          repo.signal,
        ));
      logger.info(`Pull request #${id} was merged (${sha})`);
      return `${toBranch}@sha1:${sha}`;
    }
    const reviews = reviewers.map(r => `${r.name}: ${r.status}`).join(', ');
    const line = `waiting for pull request #${id} to be merged: ${url}${
      reviews ? ` (reviewers ${reviews})` : ''
    }`;
    if (
      line !== logged ||
      Date.now() - at >= (opts.progressIntervalMs ?? 60_000)
    ) {
      logger.info(line);
      [logged, at] = [line, Date.now()];
    }
    await sleep(opts.pollIntervalMs ?? 10_000, undefined, {
      signal: repo.signal,
    }).catch(() => {
      throw new OperationAbortedError(
        `Cancelled while waiting for pull request #${id} to be merged`,
      );
    });
  }
}

/**
 * `flux:install` for a pull request: the components (unless Flux manages itself) and the sync
 * objects are applied at once, as flux bootstrap does; the pull request is recorded on the sync
 * Kustomization; then the wait for its merge and for Flux to apply the merge commit, all within
 * `timeoutMs` (`wait: false` returns after the apply).
 * @public
 */
export async function installFluxForPullRequest(
  kube: KubeClient,
  plan: FluxInstallPlan,
  pullRequest: { repo: BitbucketPullRequests; id: number; url: string },
  opts: InstallFluxOptions & PullRequestPolling,
) {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const left = () => Math.max(1, timeoutMs - (Date.now() - started));
  const step = opts.checkpoint ?? ((_k, fn) => fn());
  const { id, url } = pullRequest;
  const installed = await installFlux(
    kube,
    { ...plan, expectedRevision: undefined },
    { ...opts, wait: false },
  );
  await step('pull-request-record', () =>
    recordPullRequest(kube, plan.namespace, url, opts.signal),
  );
  if (opts.wait === false) return { ...installed, revision: undefined };
  const timeout = AbortSignal.timeout(left());
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, timeout])
    : timeout;
  const { client, projectKey, slug } = pullRequest.repo;
  const repo = new BitbucketPullRequests(client, projectKey, slug, signal);
  const revision = await step('pull-request-merge', () =>
    waitForPullRequestMerge(repo, id, opts),
  ).catch(e => {
    if (!timeout.aborted || opts.signal?.aborted) throw e;
    throw new FluxInstallError(
      'timeout',
      `pull request #${id} (${url}) was not merged within ${Math.round(
        timeoutMs / 1000,
      )} s; Flux is installed and applies it once it is merged`,
      [`pull request #${id}`],
    );
  });
  const readiness = await waitForFlux(
    kube,
    { ...plan, expectedRevision: revision },
    { ...opts, timeoutMs: left() },
  );
  await recordPullRequest(kube, plan.namespace, undefined, opts.signal);
  return { ...installed, ...readiness };
}
