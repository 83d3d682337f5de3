import type { FluxPullRequestInfo } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  BitbucketPullRequests,
  pullRequestInfo,
  type PullRequestContent,
} from '../bitbucket/pullRequests';
import { directPushVerdict } from '../bitbucket/restrictions';
import { BitbucketServerClient } from '../bitbucket/client';
import type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
} from '../config/bitbucketServer';
import { validateBranch } from '../manifests/validation';
import type { CheckpointFn } from '../util/checkpoint';
import { FluxBootstrapError, InputValidationError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import type { Redactor } from '../util/redact';
import {
  commitFluxManifests,
  type CommitFluxManifestsInput,
} from './pushFluxManifests';
import { BranchProtectedError, PULL_REQUEST_ADVICE } from './pushRejection';
import type { GitTransport } from './transport';

/** What the commits of {@link commitFluxManifests} need. */
export interface CommitDeps {
  logger: EngineLogger;
  redactor?: Redactor;
  signal?: AbortSignal;
  checkpoint?: CheckpointFn;
}

type CommitResult = Awaited<ReturnType<typeof commitFluxManifests>>;

/** `flux:push-manifests`' `pullRequest` input, parsed. @public */
export interface PullRequestModeRequest extends Partial<PullRequestContent> {
  /** A pull request only when the branch refuses a direct push (read from its restrictions). */
  auto: boolean;
  /** Branch the commits go to. Default `flux/<cluster>`. */
  branch?: string;
}

/** The pull request (open, or the one whose merge brought the changes) and its source branch. */
type PullRequestState = {
  pullRequest?: FluxPullRequestInfo;
  sourceBranch?: string;
};

/** Outcome: `revision` is empty while the pull request is open. @public */
export type PullRequestPushResult = CommitResult & PullRequestState;

/** Stops the probe of the target branch where it would push. */
class WouldPush extends Error {}

/** What the commit step(s) on a pull request's branch return. */
export interface PullRequestCommitResult {
  changed: boolean;
  commitHash: string;
  revision: string;
  manifestsPath: string;
}

/**
 * The commit step(s) a pull request carries: `push` makes them on `branch` (closing `transport`;
 * also used to probe the target), `describe` titles the pull request (`open`: one already open).
 */
export interface PullRequestCommits<R extends PullRequestCommitResult> {
  push(
    to: { transport: GitTransport; branch: string },
    deps: CommitDeps,
  ): Promise<R>;
  describe(
    pushed: R,
    open?: { title: string },
  ): { title: string; description: string };
}

/**
 * Commit step(s) through a pull request from a branch made from the target (an open one gets the
 * new commits). Content already on the target: a no-op; a declined pull request fails and its
 * branch is deleted. `auto` pushes directly unless the branch restrictions (or a refusal) say no.
 */
export async function pushWithPullRequest<R extends PullRequestCommitResult>(
  input: {
    transport: GitTransport;
    /** The target branch. */
    branch: string;
    repo: BitbucketPullRequests;
    cluster: string;
    pullRequest: PullRequestModeRequest;
    commits: PullRequestCommits<R>;
  },
  deps: CommitDeps,
): Promise<R & PullRequestState> {
  const { repo, transport, pullRequest: request, commits } = input;
  const logger = deps.redactor?.wrapLogger(deps.logger) ?? deps.logger;
  const step = deps.checkpoint ?? ((_k, fn) => fn());
  const target = input.branch;
  const source = request.branch ?? `flux/${input.cluster}`;
  const direct = () => commits.push({ transport, branch: target }, deps);

  if (request.auto) {
    const verdict = await step('pull-request-decision', async () =>
      directPushVerdict(repo, target, (await repo.client.whoami()).name),
    );
    logger.info(`pullRequest auto: ${verdict.reason}`);
    if (verdict.decision === 'direct') return direct();
    if (verdict.decision === 'unknown') {
      try {
        return await direct();
      } catch (error) {
        if (!(error instanceof BranchProtectedError)) throw error;
        const why = error.message.replace(PULL_REQUEST_ADVICE, '');
        logger.info(`Opening a pull request instead: ${why}`);
      }
    }
  }

  const open = await repo.find(source, target, 'OPEN');
  if (!open) {
    // Does the target hold the content already (merged, or pushed by someone)? Push nowhere.
    const probing: GitTransport = {
      displayUrl: transport.displayUrl,
      listRefs: transport.listRefs.bind(transport),
      fetch: transport.fetch.bind(transport),
      push: () => Promise.reject(new WouldPush()),
      close: async () => undefined,
    };
    const quiet = { ...deps, logger: silentLogger, checkpoint: undefined };
    const probe = await commits
      .push({ branch: target, transport: probing }, quiet)
      .catch(e => (e instanceof WouldPush ? undefined : Promise.reject(e)));
    const last = await repo.find(source, target, 'ALL');
    if (probe) {
      await transport.close(); // the probe's transport does not close it
      const pr = last ? ` (pull request #${last.id} is ${last.state})` : '';
      logger.info(`The changes are on ${target} already${pr}; nothing to do`);
      return { ...probe, pullRequest: last && pullRequestInfo(last) };
    }
    // The branch of a closed pull request is spent: it starts again from the target.
    const head = await repo.head(source);
    const spent = !!head && last?.fromRef.latestCommit === head;
    if (spent) await repo.setBranch(source, undefined);
    if (spent && last.state === 'DECLINED') {
      await transport.close();
      const { url } = pullRequestInfo(last);
      throw new FluxBootstrapError(
        'ConflictError',
        `pull request #${last.id} (${url}) was declined, so its changes never reached ${target}. Its branch ${source} was deleted: run the template again to open a new pull request.`,
      );
    }
    if (!head || spent) {
      logger.info(`Creating branch ${source} from ${target}`);
      await repo.setBranch(source, target);
    }
  }

  const pushed = await commits.push(
    { transport, branch: source },
    {
      ...deps,
      checkpoint: deps.checkpoint && ((k, fn) => step(`pull-request-${k}`, fn)),
    },
  );
  const said = commits.describe(pushed, open);
  const content = {
    title: request.title ?? said.title,
    description: request.description ?? said.description,
    reviewers: request.reviewers,
  };
  const pr = await step('pull-request', async () => {
    if (!open) return repo.open(source, target, content);
    return pushed.changed && open.description !== content.description
      ? repo.update(open.id, content)
      : open;
  });
  const info = pullRequestInfo(pr);
  logger.info(
    `Pull request #${pr.id} from ${source} to ${target}: ${info.url} (Flux applies the changes once it is merged)`,
  );
  return { ...pushed, revision: '', pullRequest: info, sourceBranch: source };
}

/** flux bootstrap's two commits ({@link commitFluxManifests}) as a pull request's commits. */
function fluxManifestCommits(
  input: CommitFluxManifestsInput & { cluster: string },
): PullRequestCommits<CommitResult> {
  const { version, cluster } = input;
  return {
    push: (to, deps) => commitFluxManifests({ ...input, ...to }, deps),
    describe: (pushed, open) => {
      const upgrade = open
        ? /^flux: upgrade/.test(open.title)
        : !!pushed.componentsCommit && !pushed.syncCommit;
      const files = upgrade
        ? 'gotk-components.yaml'
        : 'gotk-components.yaml, gotk-sync.yaml, kustomization.yaml';
      const verb = upgrade ? 'upgrade to' : 'bootstrap';
      const then = upgrade ? 'upgrades itself' : 'syncs it';
      return {
        title: `flux: ${verb} Flux ${version} on cluster ${cluster}`,
        description: `Flux ${version} for cluster ${cluster}, as flux bootstrap writes it: ${files} in \`${pushed.manifestsPath}\`. Flux ${then} once this is merged. (Opened by Backstage, flux:push-manifests.)`,
      };
    },
  };
}

/** `flux:push-manifests` through a pull request ({@link pushWithPullRequest}). @public */
export async function pushFluxManifestsWithPullRequest(
  input: CommitFluxManifestsInput & {
    repo: BitbucketPullRequests;
    cluster: string;
    pullRequest: PullRequestModeRequest;
  },
  deps: CommitDeps,
): Promise<PullRequestPushResult> {
  return pushWithPullRequest(
    { ...input, commits: fluxManifestCommits(input) },
    deps,
  );
}

/** The pull request's outputs while one is open, and the branch the commits went to. */
type PullRequestOutputs = {
  pullRequestUrl?: string;
  pullRequestId?: number;
  sourceBranch?: string;
};

/** `flux:push-manifests`' outputs: the pull request's while one is open. @public */
export type PushFluxManifestsOrPullRequestResult = CommitResult &
  PullRequestOutputs;

/** `flux:push-manifests`' `pullRequest` input: off, on, `'auto'`, or on with details. @public */
export type PullRequestInput =
  | boolean
  | 'auto'
  | {
      auto?: boolean;
      branch?: string;
      title?: string;
      description?: string;
      reviewers?: string[];
    };

/** Where a pull request is opened: a Bitbucket repository and the credentials to use. */
export interface PullRequestRepository {
  host: BitbucketServerHostConfig;
  auth: BitbucketServerAuth;
  projectKey: string;
  slug: string;
}

/** `commits` to `branch`, or {@link pushWithPullRequest} when `pullRequest` is on (needs `bitbucket`). */
export async function pushOrPullRequest<R extends PullRequestCommitResult>(
  input: {
    transport: GitTransport;
    branch: string;
    pullRequest?: PullRequestInput;
    cluster?: string;
    bitbucket?: PullRequestRepository;
    commits: PullRequestCommits<R>;
  },
  deps: CommitDeps,
): Promise<R & PullRequestOutputs> {
  const { pullRequest, bitbucket, commits, transport, branch } = input;
  if (!pullRequest) return commits.push({ transport, branch }, deps);
  if (!bitbucket)
    throw new InputValidationError(
      'pullRequest',
      'needs repoUrl (a Bitbucket repository): a pull request is opened through its REST API, which an ssh:// remote does not offer',
    );
  const request: PullRequestModeRequest =
    typeof pullRequest === 'object'
      ? { ...pullRequest, auto: pullRequest.auto === true }
      : { auto: pullRequest === 'auto' };
  if (request.branch !== undefined) {
    request.branch = validateBranch(request.branch, 'pullRequest.branch');
    if (request.branch === branch)
      throw new InputValidationError(
        'pullRequest.branch',
        `must differ from branch ("${request.branch}"): the pull request goes from it to branch`,
      );
  }
  const client = new BitbucketServerClient(bitbucket.host, bitbucket.auth, {
    logger: deps.logger,
    redactor: deps.redactor,
  });
  try {
    const { projectKey, slug } = bitbucket;
    const { pullRequest: pr, ...pushed } = await pushWithPullRequest(
      {
        transport,
        branch,
        commits,
        repo: new BitbucketPullRequests(client, projectKey, slug, deps.signal),
        cluster: input.cluster || 'cluster',
        pullRequest: request,
      },
      deps,
    );
    const out = pushed as unknown as R;
    if (pr?.state !== 'OPEN') return out;
    return { ...out, pullRequestUrl: pr.url, pullRequestId: pr.id };
  } finally {
    client.close();
  }
}

/** `flux:push-manifests`' push: flux bootstrap's two commits through {@link pushOrPullRequest}. @public */
export async function pushFluxManifestsOrPullRequest(
  input: CommitFluxManifestsInput & {
    pullRequest?: PullRequestInput;
    cluster?: string;
    bitbucket?: PullRequestRepository;
  },
  deps: CommitDeps,
): Promise<PushFluxManifestsOrPullRequestResult> {
  const cluster = input.cluster || 'cluster';
  return pushOrPullRequest(
    { ...input, commits: fluxManifestCommits({ ...input, cluster }) },
    deps,
  );
}
