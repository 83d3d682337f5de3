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
 * `failing`. Never throws.
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
  const next = {
    ...status,
    pullRequest: pr as ClusterBootstrapStatus['pullRequest'],
  };
  if (status.state !== 'installing' && status.state !== 'failing') return next;
  const reasons: Record<string, [ClusterBootstrapStatus['state'], string]> = {
    OPEN: [
      'awaiting-merge',
      `Flux is installed; its sync waits for pull request #${pr.id} to be merged into ${toBranch}: ${url}${unknown}`,
    ],
    MERGED: [
      'installing',
      `Pull request #${pr.id} was merged; Flux has not applied the merge yet`,
    ],
    DECLINED: [
      'failing',
      `Pull request #${pr.id} (${url}) was declined: Flux's sync has nothing to apply from ${toBranch}. Run the template again to open a new pull request.`,
    ],
  };
  const [state, reason] = reasons[pr.state];
  return { ...next, state, reason };
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
