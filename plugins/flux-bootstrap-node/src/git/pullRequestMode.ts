import type { FluxPullRequestInfo } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { BitbucketServerClient } from '../bitbucket/client';
import {
  findPullRequest,
  openPullRequest,
  pullRequestInfo,
  setBranch,
  updatePullRequest,
  type BitbucketRepoRef,
  type BitbucketPullRequest,
} from '../bitbucket/pullRequests';
import { directPushVerdict } from '../bitbucket/restrictions';
import { FluxBootstrapError, InputValidationError } from '../util/errors';
import { silentLogger } from '../util/logger';
import {
  pushFluxManifests,
  type PushFluxManifestsDeps,
  type PushFluxManifestsOptions,
  type PushFluxManifestsResult,
} from './pushFluxManifests';
import { BranchProtectedError, PULL_REQUEST_ADVICE } from './pushRejection';

/** `flux:push-manifests`' `pullRequest` input, parsed. @public */
export interface PullRequestModeRequest {
  /** `auto`: a pull request only when the branch refuses a direct push. */
  mode: 'always' | 'auto';
  /** Branch the commits go to. Default `flux/<cluster>`. */
  branch?: string;
  title?: string;
  description?: string;
  /** User names asked to review, besides the repository's default reviewers. */
  reviewers?: string[];
}

/** Inputs of {@link pushFluxManifestsWithPullRequest}. @public */
export interface PullRequestPushOptions extends PushFluxManifestsOptions {
  client: BitbucketServerClient;
  repo: BitbucketRepoRef;
  /** Cluster name, for the default branch and the title. */
  cluster: string;
  pullRequest: PullRequestModeRequest;
}

/** Outcome: `revision` is empty while the pull request waits for its merge. @public */
export interface PullRequestPushResult extends PushFluxManifestsResult {
  pullRequest?: FluxPullRequestInfo;
  sourceBranch?: string;
}

/** A re-run found the bootstrap pull request declined (a `ConflictError`). @public */
export class PullRequestDeclinedError extends FluxBootstrapError {
  constructor(pr: BitbucketPullRequest, branch: string) {
    super(
      'ConflictError',
      `pull request #${pr.id} (${
        pullRequestInfo(pr).url
      }) from ${branch} was declined, so its changes never reached ${
        pullRequestInfo(pr).toBranch
      }. Its branch ${branch} was deleted: run the template again to open a new pull request.`,
    );
  }
}

/** Where a probe would have pushed: the target lacks what the commits would write. */
class WouldPush extends Error {}

function describe(
  input: PullRequestPushOptions,
  pushed: PushFluxManifestsResult,
  upgrade: boolean,
) {
  const { components, sync } = input.options;
  const files = Object.keys(pushed.files).map(f => f.split('/').pop());
  return {
    title:
      input.pullRequest.title ??
      `flux: ${upgrade ? 'upgrade to' : 'bootstrap'} Flux ${
        components.version
      } on cluster ${input.cluster}`,
    description:
      input.pullRequest.description ??
      [
        `Flux ${components.version} for cluster ${input.cluster}, as flux bootstrap writes it (opened by Backstage, flux:push-manifests).`,
        '',
        `- ${upgrade ? 'Changes only' : 'Files'} in \`${
          pushed.manifestsPath
        }\`: ${upgrade ? 'gotk-components.yaml' : files.join(', ')}`,
        `- Components: ${components.components.join(', ')}`,
        `- Flux syncs \`${sync.path || '.'}\` from branch \`${sync.branch}\``,
        '',
        `Once this is merged, Flux ${
          upgrade ? 'upgrades itself' : 'applies it'
        } on the cluster.`,
      ].join('\n'),
  };
}

/**
 * `flux:push-manifests` with a pull request: Flux's two commits go to a branch made from the
 * target branch (default `flux/<cluster>`) and a pull request to the target is opened, or the
 * open one is updated (a re-run with the same manifests changes nothing). A target that already
 * holds the manifests (the pull request was merged) is a no-op; a declined pull request fails
 * (its branch is deleted, so the next run opens a new one). `auto` reads the branch
 * restrictions and pushes directly when none refuses it; when they cannot be read it tries the
 * direct push and falls back to a pull request on a branch-protection refusal.
 * @public
 */
export async function pushFluxManifestsWithPullRequest(
  input: PullRequestPushOptions,
  deps: PushFluxManifestsDeps,
): Promise<PullRequestPushResult> {
  const { client, repo, options, transport, signal } = { ...input, ...deps };
  const logger = deps.redactor?.wrapLogger(deps.logger) ?? deps.logger;
  const step = deps.checkpoint ?? ((_k, fn) => fn());
  const target = options.branch;
  const source = input.pullRequest.branch ?? `flux/${input.cluster}`;
  const branches = { from: source, to: target };

  if (input.pullRequest.mode === 'auto') {
    const verdict = await step('pull-request-decision', async () => {
      const owner = (await client.whoami(signal)).name;
      return directPushVerdict(client, repo, target, owner, signal);
    });
    logger.info(`pullRequest auto: ${verdict.reason}`);
    if (verdict.decision === 'direct') return pushFluxManifests(input, deps);
    if (verdict.decision === 'unknown') {
      try {
        return await pushFluxManifests(input, deps);
      } catch (error) {
        if (!(error instanceof BranchProtectedError)) throw error;
        logger.info(
          `Opening a pull request instead: ${error.message.replace(
            PULL_REQUEST_ADVICE,
            '',
          )}`,
        );
      }
    }
  }

  let open = await findPullRequest(client, repo, branches, 'OPEN', signal);
  if (!open) {
    if (
      !(await client.getBranchHead(repo.projectKey, repo.slug, target, signal))
    )
      throw new InputValidationError(
        'branch',
        `${target} does not exist in ${repo.projectKey}/${repo.slug}: a pull request needs a target branch (create it, or push directly with pullRequest: false)`,
      );
    // Already on the target (the pull request was merged, or someone pushed the same files)?
    const probe = await pushFluxManifests(
      {
        ...input,
        transport: {
          displayUrl: transport.displayUrl,
          listRefs: s => transport.listRefs(s),
          fetch: (dir, branch, s) => transport.fetch(dir, branch, s),
          push: () => Promise.reject(new WouldPush()),
          close: async () => undefined,
        },
      },
      { ...deps, logger: silentLogger, checkpoint: undefined },
    ).catch(e => {
      if (e instanceof WouldPush) return undefined;
      throw e;
    });
    const last = await findPullRequest(client, repo, branches, 'ALL', signal);
    if (probe) {
      logger.info(
        `The Flux manifests are on ${target} already${
          last ? ` (pull request #${last.id} is ${last.state})` : ''
        }; nothing to do`,
      );
      return { ...probe, pullRequest: last && pullRequestInfo(last) };
    }
    const head = await client.getBranchHead(
      repo.projectKey,
      repo.slug,
      source,
      signal,
    );
    // The branch of a closed pull request is spent: start again from the target.
    if (head && last && last.fromRef.latestCommit === head) {
      await setBranch(client, repo, source, undefined, signal);
      if (last.state === 'DECLINED')
        throw new PullRequestDeclinedError(last, source);
    }
    if (!head || last?.fromRef.latestCommit === head) {
      logger.info(`Creating branch ${source} from ${target}`);
      await setBranch(client, repo, source, target, signal);
    }
  }

  const pushed = await pushFluxManifests(
    { ...input, options: { ...options, branch: source } },
    {
      ...deps,
      checkpoint: deps.checkpoint && ((k, fn) => step(`pull-request-${k}`, fn)),
    },
  );
  const upgrade = open
    ? /^flux: upgrade/.test(open.title)
    : !!pushed.componentsCommit && !pushed.syncCommit;
  const content = {
    ...describe(input, pushed, upgrade),
    reviewers: input.pullRequest.reviewers ?? [],
  };
  const pr = await step('pull-request', async () => {
    if (open && pushed.changed && open.description !== content.description)
      open = await updatePullRequest(client, repo, open, content, signal);
    return (
      open ??
      (await openPullRequest(client, repo, branches, content, signal))
        .pullRequest
    );
  });
  const info = pullRequestInfo(pr);
  logger.info(
    `Pull request #${pr.id} from ${source} to ${target}: ${info.url} (merge it for Flux to apply the changes)`,
  );
  return { ...pushed, revision: '', pullRequest: info, sourceBranch: source };
}
