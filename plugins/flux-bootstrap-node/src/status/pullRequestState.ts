import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  pullRequestInfo,
  type BitbucketPullRequest,
} from '../bitbucket/pullRequests';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import {
  parsePullRequestUrl,
  type PullRequestRef,
} from '../install/pullRequestMerge';
import { Redactor } from '../util/redact';

/** Reads a pull request from Bitbucket (the status reader's integration credentials). @public */
export type PullRequestLookup = (
  host: BitbucketServerHostConfig,
  ref: PullRequestRef,
  signal?: AbortSignal,
) => Promise<BitbucketPullRequest>;

const waiting = (id: number, branch: string, url: string) =>
  `Flux is installed; its sync waits for pull request #${id} to be merged into ${branch}: ${url}`;

/**
 * The pull request recorded on the sync Kustomization (its URL, as `flux:install` writes it):
 * the status gets `pullRequest` (open, until Bitbucket says otherwise), and a sync that cannot
 * apply yet (`installing`, `failing`) is `awaiting-merge` instead.
 * @public
 */
export function withRecordedPullRequest(
  status: ClusterBootstrapStatus,
  url: string | undefined,
): ClusterBootstrapStatus {
  const id = Number(/\/pull-requests\/(\d+)/.exec(url ?? '')?.[1]);
  if (!url || !id) return status;
  const toBranch = status.source?.branch ?? '';
  const pending = status.state === 'installing' || status.state === 'failing';
  return {
    ...status,
    pullRequest: {
      id,
      url,
      state: 'OPEN',
      fromBranch: '',
      toBranch,
      reviewers: [],
    },
    ...(pending
      ? { state: 'awaiting-merge', reason: waiting(id, toBranch, url) }
      : {}),
  };
}

/**
 * Fills in the recorded pull request from Bitbucket (title, branches, state, reviewers' statuses).
 * Merged: `awaiting-merge` becomes `installing` until Flux applies the merge; declined:
 * `failing`. Without a lookup, or when Bitbucket does not answer, the recorded one stays. Never throws.
 * @public
 */
export async function addPullRequestState(
  status: ClusterBootstrapStatus,
  options: {
    hosts: BitbucketServerHostConfig[];
    lookup: PullRequestLookup;
    signal?: AbortSignal;
    redactor?: Redactor;
  },
): Promise<ClusterBootstrapStatus> {
  const url = status.pullRequest?.url ?? '';
  const host = options.hosts.find(h => parsePullRequestUrl(url, h.baseUrl));
  if (!host) return status;
  let info;
  try {
    const ref = parsePullRequestUrl(url, host.baseUrl)!;
    info = pullRequestInfo(await options.lookup(host, ref, options.signal));
  } catch (error) {
    const why = (options.redactor ?? new Redactor()).redactError(error);
    return status.state === 'awaiting-merge'
      ? {
          ...status,
          reason: `${status.reason} (Bitbucket did not say more: ${why.message})`,
        }
      : status;
  }
  const next = { ...status, pullRequest: { ...info, url } };
  if (status.state !== 'awaiting-merge' || info.state === 'OPEN') return next;
  return info.state === 'MERGED'
    ? {
        ...next,
        state: 'installing',
        reason: `Pull request #${info.id} was merged; Flux has not applied the merge yet`,
      }
    : {
        ...next,
        state: 'failing',
        reason: `Pull request #${info.id} (${url}) was declined: Flux's sync has nothing to apply from ${info.toBranch}. Run the template again to open a new pull request.`,
      };
}
