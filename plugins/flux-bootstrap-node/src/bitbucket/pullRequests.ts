import type { FluxPullRequestInfo } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { InputValidationError } from '../util/errors';
import { BitbucketServerClient, restPath } from './client';
import { BitbucketError, parseErrorDetails } from './errors';
import type { BitbucketUser } from './types';

/** A repository on Bitbucket by project key (`~user` for a personal one) and slug. @public */
export interface BitbucketRepoRef {
  projectKey: string;
  slug: string;
}

/** The parts of Bitbucket's `RestPullRequest` the engine reads. @public */
export interface BitbucketPullRequest {
  id: number;
  version: number;
  title: string;
  description?: string;
  state: 'OPEN' | 'MERGED' | 'DECLINED';
  fromRef: { id: string; latestCommit?: string };
  toRef: { id: string; latestCommit?: string };
  reviewers?: {
    user: BitbucketUser;
    status?: 'APPROVED' | 'UNAPPROVED' | 'NEEDS_WORK';
  }[];
  /** `mergeCommit` once merged (absent for merges Bitbucket saw as a push). */
  properties?: { mergeCommit?: { id: string } };
  links?: { self?: { href: string }[] };
  closedDate?: number;
}

/** What a pull request should say and who should review it. @public */
export interface PullRequestContent {
  title: string;
  description: string;
  /** User names asked to review, besides the repository's default reviewers. */
  reviewers: string[];
}

const heads = (branch: string) => `refs/heads/${branch}`;
const prPath = (repo: BitbucketRepoRef, id?: number) =>
  restPath(
    `/rest/api/1.0/projects/{}/repos/{}/pull-requests${id ? '/{}' : ''}`,
    repo.projectKey,
    repo.slug,
    ...(id ? [id] : []),
  );

/** The browse URL of a pull request (`links.self[0].href`). @public */
export const pullRequestUrl = (pr: BitbucketPullRequest) =>
  pr.links?.self?.[0]?.href ?? '';

/** A pull request as the status API and the card show it. @public */
export function pullRequestInfo(pr: BitbucketPullRequest): FluxPullRequestInfo {
  return {
    id: pr.id,
    url: pullRequestUrl(pr),
    title: pr.title,
    state: pr.state,
    fromBranch: pr.fromRef.id.replace(/^refs\/heads\//, ''),
    toBranch: pr.toRef.id.replace(/^refs\/heads\//, ''),
    reviewers: (pr.reviewers ?? []).map(r => ({
      name: r.user.name,
      ...(r.user.displayName ? { displayName: r.user.displayName } : {}),
      status: r.status ?? 'UNAPPROVED',
    })),
  };
}

/**
 * The newest pull request from `from` to `to` (both branch names) in `state` (`OPEN`, or `ALL`
 * for the last one whatever became of it): Bitbucket's list of outgoing pull requests at the
 * source branch, filtered by target.
 * @public
 */
export async function findPullRequest(
  client: BitbucketServerClient,
  repo: BitbucketRepoRef,
  branches: { from: string; to: string },
  state: 'OPEN' | 'ALL',
  signal?: AbortSignal,
): Promise<BitbucketPullRequest | undefined> {
  const query = { direction: 'OUTGOING', at: heads(branches.from), state };
  for await (const pr of client.paginate<BitbucketPullRequest>(prPath(repo), {
    query: { ...query, order: 'NEWEST' },
    signal,
  })) {
    if (pr.toRef.id === heads(branches.to)) return pr;
  }
  return undefined;
}

/** One pull request by id (with its current `version`). @public */
export async function getPullRequest(
  client: BitbucketServerClient,
  repo: BitbucketRepoRef,
  id: number,
  signal?: AbortSignal,
): Promise<BitbucketPullRequest> {
  const path = prPath(repo, id);
  return (await client.request<BitbucketPullRequest>('GET', path, { signal }))
    .body;
}

/**
 * The repository's default reviewers for a pull request from → to, as Bitbucket's UI adds them
 * (creating a pull request through REST does not), and the caller's user name (`X-AUSERNAME`),
 * who cannot review their own pull request. Without the default-reviewers plugin there are none.
 */
async function defaultReviewers(
  client: BitbucketServerClient,
  repo: BitbucketRepoRef,
  branches: { from: string; to: string },
  signal?: AbortSignal,
): Promise<{ names: string[]; author?: string }> {
  const found = await client.getRepository(repo.projectKey, repo.slug, signal);
  const res = await client.request<BitbucketUser[]>(
    'GET',
    restPath(
      '/rest/default-reviewers/1.0/projects/{}/repos/{}/reviewers',
      repo.projectKey,
      repo.slug,
    ),
    {
      query: {
        sourceRepoId: found?.id,
        targetRepoId: found?.id,
        sourceRefId: heads(branches.from),
        targetRefId: heads(branches.to),
      },
      expectedStatus: [404],
      signal,
    },
  );
  const author = res.headers.get('x-ausername') ?? undefined;
  const names = Array.isArray(res.body) ? res.body.map(u => u.name) : [];
  return { names, author: author && decodeURIComponent(author) };
}

/**
 * Opens a pull request from → to with the given reviewers plus the default reviewers (never
 * the author), or returns the one already open for that pair (Bitbucket answers 409
 * `DuplicatePullRequestException` with it). Unknown reviewers fail naming
 * `pullRequest.reviewers` and Bitbucket's reasons.
 * @public
 */
export async function openPullRequest(
  client: BitbucketServerClient,
  repo: BitbucketRepoRef,
  branches: { from: string; to: string },
  content: PullRequestContent,
  signal?: AbortSignal,
): Promise<{ pullRequest: BitbucketPullRequest; created: boolean }> {
  const defaults = await defaultReviewers(client, repo, branches, signal);
  const reviewers = [...new Set([...content.reviewers, ...defaults.names])]
    .filter(name => name !== defaults.author)
    .map(name => ({ user: { name } }));
  const ref = (branch: string) => ({
    id: heads(branch),
    repository: { slug: repo.slug, project: { key: repo.projectKey } },
  });
  const res = await client.request<Record<string, any>>('POST', prPath(repo), {
    body: {
      title: content.title,
      description: content.description,
      state: 'OPEN',
      open: true,
      closed: false,
      locked: false,
      fromRef: ref(branches.from),
      toRef: ref(branches.to),
      reviewers,
    },
    expectedStatus: [409],
    signal,
  });
  if (res.status !== 409)
    return { pullRequest: res.body as BitbucketPullRequest, created: true };
  const error = res.body?.errors?.[0] ?? {};
  if (/DuplicatePullRequestException$/.test(error.exceptionName ?? ''))
    return { pullRequest: error.existingPullRequest, created: false };
  const why = parseErrorDetails(res.body)
    .concat(parseErrorDetails({ errors: error.reviewerErrors }))
    .map(d => d.message)
    .join(' ');
  if (/ReviewersException$/.test(error.exceptionName ?? ''))
    throw new InputValidationError('pullRequest.reviewers', why);
  throw new BitbucketError(
    `Bitbucket refused to open a pull request from ${branches.from} to ${branches.to}: ${why}`,
    { kind: 'conflict', status: 409, details: parseErrorDetails(res.body) },
  );
}

/** Gives an open pull request a new title and description, keeping its reviewers. @public */
export async function updatePullRequest(
  client: BitbucketServerClient,
  repo: BitbucketRepoRef,
  pr: BitbucketPullRequest,
  content: Pick<PullRequestContent, 'title' | 'description'>,
  signal?: AbortSignal,
): Promise<BitbucketPullRequest> {
  // A push to its branch changed the version (Bitbucket rescoped it).
  const { version } = await getPullRequest(client, repo, pr.id, signal);
  const res = await client.request<BitbucketPullRequest>(
    'PUT',
    prPath(repo, pr.id),
    {
      body: {
        version,
        ...content,
        reviewers: (pr.reviewers ?? []).map(r => ({
          user: { name: r.user.name },
        })),
      },
      signal,
    },
  );
  return res.body;
}

/**
 * Creates `branch` at the head of `from` (Bitbucket's branch REST API, which honours branch
 * permissions), or deletes it with `from` undefined. Deleting a missing branch is a no-op.
 * @public
 */
export async function setBranch(
  client: BitbucketServerClient,
  repo: BitbucketRepoRef,
  branch: string,
  from: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const { projectKey, slug } = repo;
  if (from === undefined) {
    await client.request(
      'DELETE',
      restPath(
        '/rest/branch-utils/1.0/projects/{}/repos/{}/branches',
        projectKey,
        slug,
      ),
      {
        body: { name: heads(branch), dryRun: false },
        expectedStatus: [404],
        signal,
      },
    );
    return;
  }
  await client.request(
    'POST',
    restPath('/rest/api/1.0/projects/{}/repos/{}/branches', projectKey, slug),
    { body: { name: branch, startPoint: heads(from) }, signal },
  );
}
