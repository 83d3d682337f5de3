import type { FluxPullRequestInfo } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { InputValidationError } from '../util/errors';
import { BitbucketServerClient, restPath } from './client';
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

/**
 * Pull requests and branches of one repository (`projectKey` is `~user` for a personal one),
 * in Atlassian's documented shapes.
 * @public
 */
export class BitbucketPullRequests {
  constructor(
    readonly client: BitbucketServerClient,
    readonly projectKey: string,
    readonly slug: string,
    readonly signal?: AbortSignal,
  ) {}

  private path(api: string, suffix: string, ...more: Array<string | number>) {
    const template = `/rest/${api}/projects/{}/repos/{}/${suffix}`;
    return restPath(template, this.projectKey, this.slug, ...more);
  }

  /**
   * The newest pull request from → to in `state` (`OPEN`, or `ALL` for the last one whatever
   * became of it): Bitbucket's outgoing pull requests at the source branch, by target.
   */
  async find(from: string, to: string, state: 'OPEN' | 'ALL') {
    const query = { direction: 'OUTGOING', at: heads(from), state };
    const path = this.path('api/1.0', 'pull-requests');
    const { signal } = this;
    for await (const pr of this.client.paginate<BitbucketPullRequest>(path, {
      query,
      signal,
    })) {
      if (pr.toRef.id === heads(to)) return pr;
    }
    return undefined;
  }

  async get(id: number): Promise<BitbucketPullRequest> {
    const path = this.path('api/1.0', 'pull-requests/{}', id);
    const { signal } = this;
    return (
      await this.client.request<BitbucketPullRequest>('GET', path, { signal })
    ).body;
  }

  /**
   * The repository's default reviewers for from → to, which Bitbucket's UI adds (a REST create
   * does not), and the caller (`X-AUSERNAME`), who may not review their own pull request.
   */
  private async defaultReviewers(from: string, to: string) {
    const repo = await this.client.getRepository(
      this.projectKey,
      this.slug,
      this.signal,
    );
    const res = await this.client.request<BitbucketUser[]>(
      'GET',
      this.path('default-reviewers/1.0', 'reviewers'),
      {
        query: {
          sourceRepoId: repo?.id,
          targetRepoId: repo?.id,
          sourceRefId: heads(from),
          targetRefId: heads(to),
        },
        expectedStatus: [404], // the default-reviewers plugin is off
        signal: this.signal,
      },
    );
    const author = decodeURIComponent(res.headers.get('x-ausername') ?? '');
    const names = Array.isArray(res.body) ? res.body.map(u => u.name) : [];
    return names.filter(name => name !== author);
  }

  /**
   * Opens a pull request from → to with `reviewers` and the default reviewers, or returns the
   * one open for that pair (409 `DuplicatePullRequestException` carries it). Unknown reviewers
   * fail naming `pullRequest.reviewers`.
   */
  async open(from: string, to: string, content: PullRequestContent) {
    const defaults = await this.defaultReviewers(from, to);
    const names = new Set([...(content.reviewers ?? []), ...defaults]);
    const ref = (branch: string) => ({
      id: heads(branch),
      repository: { slug: this.slug, project: { key: this.projectKey } },
    });
    const res = await this.client.request<any>(
      'POST',
      this.path('api/1.0', 'pull-requests'),
      {
        body: {
          ...content,
          ...{ state: 'OPEN', open: true, closed: false, locked: false },
          fromRef: ref(from),
          toRef: ref(to),
          reviewers: [...names].map(name => ({ user: { name } })),
        },
        expectedStatus: [409],
        signal: this.signal,
      },
    );
    const error = res.status === 409 ? res.body?.errors?.[0] ?? {} : undefined;
    if (!error) return res.body as BitbucketPullRequest;
    if (/DuplicatePullRequestException$/.test(error.exceptionName))
      return error.existingPullRequest as BitbucketPullRequest;
    const details = parseErrorDetails(res.body);
    const why = [
      ...details,
      ...parseErrorDetails({ errors: error.reviewerErrors }),
    ]
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
    const { version, reviewers = [] } = await this.get(id); // a push changed the version
    const path = this.path('api/1.0', 'pull-requests/{}', id);
    const body = {
      ...content,
      version,
      reviewers: reviewers.map(r => ({ user: { name: r.user.name } })),
    };
    return (
      await this.client.request<BitbucketPullRequest>('PUT', path, {
        body,
        signal: this.signal,
      })
    ).body;
  }

  /**
   * Creates `branch` at the head of `from` (the branch REST API honours branch permissions), or
   * deletes it when `from` is undefined (a missing branch is no error).
   */
  async setBranch(branch: string, from: string | undefined) {
    const { signal } = this;
    if (from === undefined) {
      const body = { name: heads(branch), dryRun: false };
      const path = this.path('branch-utils/1.0', 'branches');
      await this.client.request('DELETE', path, {
        body,
        expectedStatus: [404],
        signal,
      });
    } else {
      const body = { name: branch, startPoint: heads(from) };
      await this.client.request('POST', this.path('api/1.0', 'branches'), {
        body,
        signal,
      });
    }
  }
}
