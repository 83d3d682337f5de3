import type { FluxPullRequestInfo } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { InputValidationError } from '../util/errors';
import {
  BitbucketServerClient,
  repoPath,
  type BitbucketRequestOptions,
} from './client';
import { BitbucketError, parseErrorDetails } from './errors';
import type { BitbucketUser } from './types';

/** The parts of Bitbucket's `RestPullRequest` the engine reads. @public */
export interface BitbucketPullRequest {
  id: number;
  version: number;
  title: string;
  description?: string;
  state: 'OPEN' | 'MERGED' | 'DECLINED';
  fromRef: { id: string; latestCommit?: string };
  toRef: { id: string; latestCommit?: string };
  reviewers?: { user: BitbucketUser; status?: 'APPROVED' | 'UNAPPROVED' }[];
  /** `mergeCommit` once merged (absent when a push merged it). */
  properties?: { mergeCommit?: { id: string } };
  links?: { self?: { href: string }[] };
}

/** Title, description and reviewers (user names) of a pull request. @public */
export type PullRequestContent = Pick<
  BitbucketPullRequest,
  'title' | 'description'
> & { reviewers?: string[] };

const heads = (branch: string) => `refs/heads/${branch}`;
const plain = (ref: string) => ref.replace(/^refs\/heads\//, '');

/** A pull request as the status API and the card show it. @public */
export function pullRequestInfo(pr: BitbucketPullRequest): FluxPullRequestInfo {
  return {
    id: pr.id,
    url: pr.links?.self?.[0]?.href ?? '',
    title: pr.title,
    state: pr.state,
    fromBranch: plain(pr.fromRef.id),
    toBranch: plain(pr.toRef.id),
    reviewers: (pr.reviewers ?? []).map(r => ({
      name: r.user.name,
      displayName: r.user.displayName,
      status: r.status ?? 'UNAPPROVED',
    })),
  };
}

/** Pull requests and branches of one repository, in Atlassian's documented shapes. @public */
export class BitbucketPullRequests {
  constructor(
    readonly client: BitbucketServerClient,
    readonly projectKey: string,
    readonly slug: string,
    readonly signal?: AbortSignal,
  ) {}

  /** A request to `/rest/<api>/projects/<key>/repos/<slug>/<suffix>`. */
  private call<T>(
    method: string,
    api: string,
    suffix: string,
    opts: BitbucketRequestOptions = {},
  ) {
    const path = repoPath(this.projectKey, this.slug, `/${suffix}`, api);
    return this.client.request<T>(method, path, {
      ...opts,
      signal: this.signal,
    });
  }

  /** The commit a branch points at; undefined when it does not exist. */
  head(branch: string) {
    const { projectKey, slug, signal } = this;
    return this.client.getBranchHead(projectKey, slug, branch, signal);
  }

  /** The newest pull request from → to that is open, or (`ALL`) in any state. */
  async find(from: string, to: string, state: 'OPEN' | 'ALL') {
    const path = repoPath(this.projectKey, this.slug, '/pull-requests');
    const query = { direction: 'OUTGOING', at: heads(from), state };
    const list = this.client.paginate<BitbucketPullRequest>(path, {
      query,
      signal: this.signal,
    });
    for await (const pr of list) if (pr.toRef.id === heads(to)) return pr;
    return undefined;
  }

  async get(id: number): Promise<BitbucketPullRequest> {
    return (await this.call<any>('GET', 'api/1.0', `pull-requests/${id}`)).body;
  }

  /**
   * Opens a pull request with `reviewers` plus the default reviewers (Bitbucket's UI adds them, a
   * REST create does not; never the caller), or returns the open one a 409 carries.
   */
  async open(from: string, to: string, content: PullRequestContent) {
    const { projectKey, slug, signal } = this;
    const repo = await this.client.getRepository(projectKey, slug, signal);
    const defaults = await this.call<BitbucketUser[]>(
      'GET',
      'default-reviewers/1.0',
      'reviewers',
      {
        query: {
          ...{ sourceRepoId: repo?.id, targetRepoId: repo?.id },
          ...{ sourceRefId: heads(from), targetRefId: heads(to) },
        },
        expectedStatus: [404], // no default-reviewers plugin
      },
    );
    const names = new Set(content.reviewers);
    for (const u of Array.isArray(defaults.body) ? defaults.body : [])
      if (u.name !== this.client.authenticatedUser) names.add(u.name);
    const ref = (branch: string) => ({
      id: heads(branch),
      repository: { slug, project: { key: projectKey } },
    });
    const res = await this.call<any>('POST', 'api/1.0', 'pull-requests', {
      body: {
        ...content,
        ...{ state: 'OPEN', open: true, closed: false, locked: false },
        ...{ fromRef: ref(from), toRef: ref(to) },
        reviewers: [...names].map(name => ({ user: { name } })),
      },
      expectedStatus: [409],
    });
    const error = res.status === 409 ? res.body?.errors?.[0] ?? {} : undefined;
    if (!error) return res.body as BitbucketPullRequest;
    if (/DuplicatePullRequestException$/.test(error.exceptionName))
      return error.existingPullRequest as BitbucketPullRequest;
    const details = parseErrorDetails(res.body);
    const why = details
      .concat(parseErrorDetails({ errors: error.reviewerErrors }))
      .map(d => d.message)
      .join(' ');
    if (/ReviewersException$/.test(error.exceptionName))
      throw new InputValidationError('pullRequest.reviewers', why);
    throw new BitbucketError(
      `Bitbucket refused to open a pull request from ${from} to ${to}: ${why}`,
      { kind: 'conflict', status: 409, details },
    );
  }

  /** New title and description for an open pull request; its reviewers stay. */
  async update(id: number, content: PullRequestContent) {
    const { version, reviewers = [] } = await this.get(id); // pushes change it
    const names = reviewers.map(r => ({ user: { name: r.user.name } }));
    const body = { ...content, version, reviewers: names };
    return (
      await this.call<any>('PUT', 'api/1.0', `pull-requests/${id}`, { body })
    ).body as BitbucketPullRequest;
  }

  /** Creates `branch` at the head of `from`, or deletes it (`from` undefined; gone already is fine). */
  async setBranch(branch: string, from: string | undefined) {
    await (from === undefined
      ? this.call('DELETE', 'branch-utils/1.0', 'branches', {
          body: { name: heads(branch), dryRun: false },
          expectedStatus: [404],
        })
      : this.call('POST', 'api/1.0', 'branches', {
          body: { name: branch, startPoint: heads(from) },
        }));
  }
}
