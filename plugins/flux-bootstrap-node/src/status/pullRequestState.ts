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
 * Adds the pull request `flux:install` recorded on the sync (`url`), as Bitbucket reports it
 * (else as open): a sync that cannot apply yet waits for an open one (`awaiting-merge`), for a
 * merged one's merge (`installing`), or fails on a declined one. Set only while it is pending,
 * since the annotation outlives the task that wrote it. Never throws.
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

/** One Bitbucket client per host with the integration's credentials; throws for a host without. */
export function integrationClients(
  options: { logger?: EngineLogger; requestTimeoutMs?: number },
  toWhat: string,
): (host: BitbucketServerHostConfig) => BitbucketServerClient {
  const clients = new Map<BitbucketServerHostConfig, BitbucketServerClient>();
  return host => {
    if (!host.auth)
      throw new Error(
        `integrations.bitbucketServer entry ${host.host} has no token or username/password to ${toWhat}`,
      );
    const client =
      clients.get(host) ??
      new BitbucketServerClient(host, host.auth, {
        logger: options.logger ?? silentLogger,
        requestTimeoutMs: options.requestTimeoutMs,
        retries: 0,
      });
    clients.set(host, client);
    return client;
  };
}

/** Reads pull requests with the integration's credentials; without them it counts as open. @public */
export function bitbucketPullRequestLookup(options: {
  logger?: EngineLogger;
  requestTimeoutMs?: number;
}): PullRequestLookup {
  const clientFor = integrationClients(options, 'read pull requests with');
  return async ({ host, projectKey, slug, id }, signal) => {
    const repo = new BitbucketPullRequests(
      clientFor(host),
      projectKey,
      slug,
      signal,
    );
    return pullRequestInfo(await repo.get(id));
  };
}
