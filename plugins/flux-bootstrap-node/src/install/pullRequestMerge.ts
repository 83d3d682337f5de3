import { setTimeout as sleep } from 'node:timers/promises';
import type { BitbucketServerClient } from '../bitbucket/client';
import {
  getPullRequest,
  pullRequestInfo,
  type BitbucketRepoRef,
} from '../bitbucket/pullRequests';
import type { KubeClient } from '../kube/types';
import { OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { FluxInstallError } from './errors';
import {
  installFlux,
  type InstallFluxOptions,
  type InstallFluxResult,
} from './installFlux';
import type { FluxInstallPlan } from './plan';
import { waitForFlux } from './wait';

/**
 * Annotation on the sync Kustomization naming the pull request Flux's sync waits for (its
 * browse URL); the status reader reports `awaiting-merge` from it.
 * @public
 */
export const PULL_REQUEST_ANNOTATION = 'flux-bootstrap.io/pull-request';

/** A pull request on Bitbucket: its repository, id and browse URL. @public */
export interface PullRequestRef extends BitbucketRepoRef {
  id: number;
  url: string;
}

/**
 * Reads a pull request's browse URL
 * (`<baseUrl>/projects/KEY/repos/slug/pull-requests/ID`, `/users/NAME/…` for a personal one)
 * relative to a Bitbucket base URL; undefined when it is not one of that server's.
 * @public
 */
export function parsePullRequestUrl(
  url: string,
  baseUrl: string,
): PullRequestRef | undefined {
  const base = baseUrl.replace(/\/+$/, '');
  if (!url.startsWith(`${base}/`)) return undefined;
  const m =
    /^(projects|users)\/([^/]+)\/repos\/([^/]+)\/pull-requests\/(\d+)\/?(?:overview)?$/.exec(
      url.slice(base.length + 1),
    );
  if (!m) return undefined;
  const owner = decodeURIComponent(m[2]);
  return {
    projectKey: m[1] === 'users' ? `~${owner}` : owner,
    slug: decodeURIComponent(m[3]),
    id: Number(m[4]),
    url,
  };
}

/** Sets (or with `url` undefined removes) {@link PULL_REQUEST_ANNOTATION} on the sync Kustomization. */
async function recordPullRequest(
  kube: KubeClient,
  namespace: string,
  url: string | undefined,
  signal?: AbortSignal,
) {
  await kube.apply(
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: {
        name: namespace,
        namespace,
        ...(url ? { annotations: { [PULL_REQUEST_ANNOTATION]: url } } : {}),
      },
    },
    { fieldManager: 'flux-bootstrap-pull-request', force: true, signal },
  );
}

/** Options of {@link waitForPullRequestMerge}. @public */
export interface WaitForMergeOptions {
  signal?: AbortSignal;
  logger?: EngineLogger;
  /** How often Bitbucket is asked. Default 10 s. */
  pollIntervalMs?: number;
  /** At most this long between two progress lines. Default 60 s. */
  progressIntervalMs?: number;
}

/**
 * Polls Bitbucket until the pull request is merged and returns the revision Flux will apply,
 * `<target>@sha1:<merge commit>`; logs the wait with the link and the reviewers' statuses. A
 * declined pull request fails (`sync-failed`); the signal ends the wait.
 * @public
 */
export async function waitForPullRequestMerge(
  client: BitbucketServerClient,
  ref: PullRequestRef,
  opts: WaitForMergeOptions = {},
): Promise<string> {
  const logger = opts.logger ?? silentLogger;
  let logged = '';
  let loggedAt = 0;
  for (;;) {
    const pr = await getPullRequest(client, ref, ref.id, opts.signal);
    const info = pullRequestInfo(pr);
    if (pr.state === 'MERGED') {
      const sha =
        pr.properties?.mergeCommit?.id ??
        (await client.getBranchHead(
          ref.projectKey,
          ref.slug,
          info.toBranch,
          opts.signal,
        ));
      logger.info(`Pull request #${pr.id} was merged (${sha})`);
      return `${info.toBranch}@sha1:${sha}`;
    }
    if (pr.state === 'DECLINED') {
      throw new FluxInstallError(
        'sync-failed',
        `pull request #${pr.id} (${ref.url}) was declined: Flux stays installed but its sync has nothing to apply from ${info.toBranch}. Run the template again to open a new pull request.`,
      );
    }
    const reviews = info.reviewers.map(r => `${r.name}: ${r.status}`);
    const line = `waiting for pull request #${pr.id} to be merged: ${ref.url}${
      reviews.length ? ` (reviewers ${reviews.join(', ')})` : ''
    }`;
    if (
      line !== logged ||
      Date.now() - loggedAt >= (opts.progressIntervalMs ?? 60_000)
    ) {
      logger.info(line);
      [logged, loggedAt] = [line, Date.now()];
    }
    await sleep(opts.pollIntervalMs ?? 10_000, undefined, {
      signal: opts.signal,
    }).catch(() => {
      throw new OperationAbortedError(
        `Cancelled while waiting for pull request #${pr.id} to be merged`,
      );
    });
  }
}

/**
 * `flux:install` for a pull request: installs the components and the sync objects at once (as
 * flux bootstrap does; not the components over a Flux that manages itself), records the pull
 * request on the sync Kustomization, waits for its merge, then for Flux to apply the merge
 * commit; `timeoutMs` bounds all of it, `wait: false` returns after the apply.
 * @public
 */
export async function installFluxForPullRequest(
  kube: KubeClient,
  plan: FluxInstallPlan,
  pullRequest: { client: BitbucketServerClient; ref: PullRequestRef },
  opts: InstallFluxOptions & Pick<WaitForMergeOptions, 'pollIntervalMs'>,
): Promise<InstallFluxResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const left = () => Math.max(1, timeoutMs - (Date.now() - started));
  const step = opts.checkpoint ?? ((_k, fn) => fn());
  const { ref } = pullRequest;
  const installed = await installFlux(
    kube,
    { ...plan, expectedRevision: undefined },
    { ...opts, wait: false },
  );
  await step('pull-request-record', () =>
    recordPullRequest(kube, plan.namespace, ref.url, opts.signal),
  );
  if (opts.wait === false) return { ...installed, revision: undefined };
  const timeout = AbortSignal.timeout(left());
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, timeout])
    : timeout;
  const revision = await step('pull-request-merge', () =>
    waitForPullRequestMerge(pullRequest.client, ref, { ...opts, signal }),
  ).catch(error => {
    if (!timeout.aborted || opts.signal?.aborted) throw error;
    throw new FluxInstallError(
      'timeout',
      `pull request #${ref.id} (${ref.url}) was not merged within ${Math.round(
        timeoutMs / 1000,
      )} s; Flux is installed and applies it once it is merged`,
      [`pull request #${ref.id}`],
    );
  });
  const readiness = await waitForFlux(
    kube,
    { ...plan, expectedRevision: revision },
    { ...opts, timeoutMs: left() },
  );
  await recordPullRequest(kube, plan.namespace, undefined, opts.signal);
  return { ...installed, ...readiness, revision: readiness.revision };
}
