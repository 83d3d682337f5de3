import { setTimeout as sleep } from 'node:timers/promises';
import {
  BitbucketPullRequests,
  pullRequestInfo,
} from '../bitbucket/pullRequests';
import { BitbucketServerClient } from '../bitbucket/client';
import { chooseBitbucketCredentials } from '../bitbucket/credentials';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import type { KubeClient } from '../kube/types';
import { InputValidationError, OperationAbortedError } from '../util/errors';
import type { Redactor } from '../util/redact';
import { silentLogger } from '../util/logger';
import { runCheckpointDirectly } from '../util/checkpoint';
import { FluxInstallError } from './errors';
import {
  installFlux,
  type InstallFluxOptions,
  type InstallFluxResult,
} from './installFlux';
import type { FluxInstallPlan } from './plan';
import { waitForFlux, withTimeout } from './wait';

/**
 * Annotation on the sync Kustomization with the browse URL of the pull request its sync waits
 * for; the status reader reports `awaiting-merge` from it.
 * @public
 */
export const PULL_REQUEST_ANNOTATION = 'flux-bootstrap.io/pull-request';

/** Host, project (`~user` for a personal one), slug and id of a pull request's browse URL. @public */
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
      const slug = decodeURIComponent(m[3]);
      return { host, projectKey, slug, id: Number(m[4]) };
    }
  }
  return undefined;
}

/**
 * Another install than {@link installFlux} (the Flux Operator's), called with `wait: false` and
 * no revision first, then (checkpoint keys prefixed `pull-request-merged-`) with the merge commit.
 */
export type PullRequestInstall = (
  expectedRevision: string | undefined,
  opts: InstallFluxOptions,
) => Promise<InstallFluxResult>;

/**
 * `flux:install` for a pull request: Flux is applied at once and the pull request recorded on the
 * sync Kustomization; then Bitbucket is polled (`pollIntervalMs`, default 10 s) until it is merged
 * (declined fails) and Flux awaited at the merge commit, all within `timeoutMs`.
 * @public
 */
export async function installFluxForPullRequest(
  kube: KubeClient,
  plan: FluxInstallPlan,
  pullRequest: { repo: BitbucketPullRequests; id: number; url: string },
  opts: InstallFluxOptions,
  install?: PullRequestInstall,
) {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const left = () => Math.max(1, timeoutMs - (Date.now() - started));
  const step = opts.checkpoint ?? runCheckpointDirectly;
  const logger = opts.logger ?? silentLogger;
  const { id, url } = pullRequest;
  const sync = {
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    name: plan.namespace,
    namespace: plan.namespace,
  };
  /** Sets (`url`) or removes {@link PULL_REQUEST_ANNOTATION} with its own field manager. */
  const record = async (prUrl?: string) => {
    // The operator creates the sync Kustomization itself: annotate it only once it exists.
    if (install && !(await kube.get(sync, { signal: opts.signal }))) return;
    const { name, namespace, ...type } = sync;
    const annotations: Record<string, string> = prUrl
      ? { [PULL_REQUEST_ANNOTATION]: prUrl }
      : {};
    await kube.apply(
      { ...type, metadata: { name, namespace, annotations } },
      {
        fieldManager: 'flux-bootstrap-pull-request',
        force: true,
        signal: opts.signal,
      },
    );
  };
  const first = { ...opts, wait: false };
  const installed = install
    ? await install(undefined, first)
    : await installFlux(kube, { ...plan, expectedRevision: undefined }, first);
  await step('pull-request-record', () => record(url));
  if (opts.wait === false) return { ...installed, revision: undefined };
  const { timeout, signal } = withTimeout(left(), opts.signal);
  const { client, projectKey, slug } = pullRequest.repo;
  const repo = new BitbucketPullRequests(client, projectKey, slug, signal);
  const merged = async () => {
    for (let logged = '', at = 0; ; ) {
      const pr = await repo.get(id);
      const { toBranch, reviewers } = pullRequestInfo(pr);
      if (pr.state === 'DECLINED')
        throw new FluxInstallError(
          'sync-failed',
          `pull request #${id} (${url}) was declined: Flux is installed but its sync has nothing to apply from ${toBranch}. Run the template again to open a new pull request.`,
        );
      if (pr.state === 'MERGED') {
        const sha =
          pr.properties?.mergeCommit?.id ?? (await repo.head(toBranch));
        logger.info(`Pull request #${id} was merged (${sha})`);
        return `${toBranch}@sha1:${sha}`;
      }
      const reviews = reviewers.map(r => ` ${r.name}: ${r.status}`).join(',');
      const line = `waiting for pull request #${id} to be merged: ${url}${
        reviews && ` (reviewers${reviews})`
      }`;
      if (
        line !== logged ||
        Date.now() - at >= (opts.progressIntervalMs ?? 60_000)
      ) {
        logger.info(line);
        [logged, at] = [line, Date.now()];
      }
      await sleep(opts.pollIntervalMs || 10_000, undefined, { signal });
    }
  };
  const revision = await step('pull-request-merge', merged).catch(e => {
    if (e instanceof FluxInstallError) throw e;
    if (opts.signal?.aborted)
      throw new OperationAbortedError(
        `Cancelled while waiting for pull request #${id} to be merged`,
      );
    if (!timeout.aborted) throw e;
    throw new FluxInstallError(
      'timeout',
      `pull request #${id} (${url}) was not merged within ${Math.round(
        timeoutMs / 1000,
      )} s; Flux is installed and applies it once it is merged`,
      [`pull request #${id}`],
    );
  });
  const done = install
    ? await install(revision, {
        ...opts,
        timeoutMs: left(),
        checkpoint: (k, fn) => step(`pull-request-merged-${k}`, fn),
      })
    : {
        ...installed,
        ...(await waitForFlux(
          kube,
          { ...plan, expectedRevision: revision },
          { ...opts, timeoutMs: left() },
        )),
      };
  await record();
  return done;
}

/** A pull request to follow and the credentials to follow it with. @public */
export type PullRequestAccess = ReturnType<typeof pullRequestAccess>;

/**
 * The pull request a browse URL names and the credentials to follow it with (`token`, else the
 * integration's for its host unless `requireUserCredentials`): InputValidationError naming the
 * field for a URL of no configured host or missing credentials, before any request.
 * @public
 */
export function pullRequestAccess(
  url: string,
  hosts: BitbucketServerHostConfig[],
  token?: string,
  requireUserCredentials?: boolean,
) {
  const ref = parsePullRequestUrl(url, hosts);
  if (!ref)
    throw new InputValidationError(
      'pullRequest',
      `must be the pullRequestUrl output of flux:push-manifests: a pull request on a host of integrations.bitbucketServer (got "${url}")`,
    );
  const { auth } = chooseBitbucketCredentials({
    token,
    host: ref.host,
    hostName: ref.host.host,
    requireUserCredentials,
    purpose: ` to follow pull request #${ref.id}`,
  });
  return { url, ref, auth };
}

/**
 * `flux:install`'s apply: {@link installFlux}, or with `pullRequest` ({@link pullRequestAccess})
 * `installFluxForPullRequest`.
 * @public
 */
export async function installFluxOrAwaitPullRequest(
  kube: KubeClient,
  plan: FluxInstallPlan,
  opts: InstallFluxOptions & {
    pullRequest?: PullRequestAccess;
    redactor?: Redactor;
    /** Install another way than installFlux (the Flux Operator's); see PullRequestInstall. */
    install?: PullRequestInstall;
  },
): Promise<InstallFluxResult> {
  const { pullRequest, redactor, install, ...rest } = opts;
  if (!pullRequest)
    return install
      ? install(plan.expectedRevision, rest)
      : installFlux(kube, plan, rest);
  const { url, ref, auth } = pullRequest;
  const logger = opts.logger ?? silentLogger;
  const client = new BitbucketServerClient(ref.host, auth, {
    logger,
    redactor,
  });
  try {
    const repo = new BitbucketPullRequests(client, ref.projectKey, ref.slug);
    const pr = { repo, id: ref.id, url };
    return await installFluxForPullRequest(kube, plan, pr, rest, install);
  } finally {
    client.close();
  }
}
