import type {
  ClusterBootstrapStatus,
  FluxPullRequestInfo,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { BitbucketServerClient } from '../bitbucket/client';
import {
  BitbucketPullRequests,
  pullRequestInfo,
} from '../bitbucket/pullRequests';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { parsePullRequestUrl } from '../install/pullRequestMerge';
import { silentLogger, type EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';

/** Reads one pull request (the status reader's integration credentials). @public */
export type PullRequestLookup = (
  pullRequest: {
    host: BitbucketServerHostConfig;
    projectKey: string;
    slug: string;
    id: number;
  },
  signal?: AbortSignal,
) => Promise<FluxPullRequestInfo>;

/**
 * Adds the pull request recorded on the sync Kustomization (`url`, from `flux:install`): as
 * Bitbucket reports it (title, state, reviewers' statuses) when `lookup` answers, else as open.
 * A sync that cannot apply yet (`installing`, `failing`) waiting for an open one is
 * `awaiting-merge`; after the merge it is `installing` until Flux applied it; a declined one is
 * `failing` (the reason links it). `pullRequest` is only set while the pull request is pending:
 * the annotation outlives the task that wrote it (a timeout, `wait: false`, a cancelled task),
 * so a merged one whose merge Flux applied (the sync applied a revision), a declined one, and one
 * Bitbucket did not describe on a cluster whose sync applies are left out. Never throws.
 * @public
 */
export async function addPullRequestState(
  status: ClusterBootstrapStatus,
  url: string | undefined,
  options: {
    hosts: BitbucketServerHostConfig[];
    lookup?: PullRequestLookup;
    signal?: AbortSignal;
    redactor?: Redactor;
  },
): Promise<ClusterBootstrapStatus> {
  const ref = url ? parsePullRequestUrl(url, options.hosts) : undefined;
  if (!ref || !url) return status;
  const toBranch = status.source?.branch ?? '';
  let pr: FluxPullRequestInfo = {
    id: ref.id,
    url,
    state: 'OPEN',
    fromBranch: '',
    toBranch,
    reviewers: [],
  };
  let unknown = '';
  try {
    if (options.lookup)
      pr = { ...(await options.lookup(ref, options.signal)), url };
  } catch (error) {
    const why = (options.redactor ?? new Redactor()).redactError(error).message;
    unknown = ` (Bitbucket did not say more: ${why})`;
  }
  const pending = {
    ...status,
    pullRequest: pr as ClusterBootstrapStatus['pullRequest'],
  };
  const { pullRequest: _stale, ...settled } = status;
  const waiting = status.state === 'installing' || status.state === 'failing';
  if (pr.state === 'DECLINED') {
    if (!waiting) return settled;
    const reason = `Pull request #${pr.id} (${url}) was declined: Flux's sync has nothing to apply from ${toBranch}. Run the template again to open a new pull request.`;
    return { ...settled, state: 'failing', reason };
  }
  if (pr.state === 'MERGED') {
    // Flux applied a revision since the merge (its sync applies from the target branch, which
    // held nothing at the path before it): the pull request is history, Flux's state is the news.
    if (!waiting || status.sync?.lastAppliedRevision) return settled;
    const reason = `Pull request #${pr.id} was merged; Flux has not applied the merge yet`;
    return { ...pending, state: 'installing', reason };
  }
  // Open, or Bitbucket did not answer: pending while the sync cannot apply; on a sync that
  // applies, only a pull request Bitbucket reports open (e.g. an upgrade) is shown.
  if (!waiting) return unknown ? settled : pending;
  const reason = `Flux is installed; its sync waits for pull request #${pr.id} to be merged into ${toBranch}: ${url}${unknown}`;
  return { ...pending, state: 'awaiting-merge', reason };
}

/**
 * Reads pull requests with the engine's Bitbucket client and the integration's own credentials
 * (one client per host); a host without credentials rejects, so the pull request counts as open.
 * @public
 */
export function bitbucketPullRequestLookup(options: {
  logger?: EngineLogger;
  requestTimeoutMs?: number;
}): PullRequestLookup {
  const clients = new Map<BitbucketServerHostConfig, BitbucketServerClient>();
  return async ({ host, projectKey, slug, id }, signal) => {
    if (!host.auth)
      throw new Error(
        `integrations.bitbucketServer entry ${host.host} has no token or username/password to read pull requests with`,
      );
    const client =
      clients.get(host) ??
      new BitbucketServerClient(host, host.auth, {
        logger: options.logger ?? silentLogger,
        requestTimeoutMs: options.requestTimeoutMs,
        retries: 0,
      });
    clients.set(host, client);
    const repo = new BitbucketPullRequests(client, projectKey, slug, signal);
    return pullRequestInfo(await repo.get(id));
  };
}
