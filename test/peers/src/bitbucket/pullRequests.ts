import path from 'node:path';
import { run } from '../common/process';
import { git, logCommits, peerGitEnv, resolveCommit } from '../git/cli';
import { EX, notPermitted, RestError, restError, validation } from './errors';
import type {
  Participant,
  ParticipantStatus,
  Principal,
  PullRequest,
  Repo,
  User,
} from './model';
import { conditionsMatching } from './defaultReviewers';
import { renderCommit, renderRepo, renderUser } from './render';
import { mergeVetoes } from './restrictions';
import type { RestCall, RestContext, RestResult } from './rest';

const asObject = (body: unknown): Record<string, unknown> =>
  body && typeof body === 'object' && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : {};

const STATUSES: ParticipantStatus[] = ['UNAPPROVED', 'NEEDS_WORK', 'APPROVED'];
/** Merge strategies the double implements (Bitbucket's ids); `no-ff` is Bitbucket's default. */
const STRATEGIES = ['no-ff', 'ff', 'ff-only', 'squash'] as const;

export interface Veto {
  summaryMessage: string;
  detailedMessage: string;
}

/** `git merge-base --is-ancestor a b`. */
async function isAncestor(repoPath: string, a: string, b: string) {
  const r = await git(['-C', repoPath, 'merge-base', '--is-ancestor', a, b], {
    check: false,
  });
  return r.code === 0;
}

/** A three-way merge of `ours` and `theirs` without a work tree (`git merge-tree --write-tree`). */
async function mergeTree(repoPath: string, ours: string, theirs: string) {
  const r = await git(
    [
      '-C',
      repoPath,
      'merge-tree',
      '--write-tree',
      '--no-messages',
      ours,
      theirs,
    ],
    { check: false },
  );
  if (r.code !== 0 && r.code !== 1)
    throw new Error(`git merge-tree failed: ${r.stderr.trim()}`);
  return { tree: r.stdout.split('\n')[0].trim(), conflicted: r.code === 1 };
}

/**
 * Per-repository lock: pull-request operations and the post-receive sync of one repository run
 * one at a time, so a merge never interleaves with a rescope.
 */
class Locks {
  private tails = new Map<number, Promise<unknown>>();
  run<T>(id: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.tails.set(
      id,
      next.catch(() => undefined),
    );
    return next;
  }
}

/**
 * Pull requests of the Bitbucket double: `/rest/api/{1.0,latest}/projects/{key}/repos/{slug}/pull-requests…`,
 * on real branches of the bare repositories. A merge writes a real merge commit with git
 * plumbing (`merge-tree` + `commit-tree` + `update-ref`), so no hook runs (branch restrictions
 * such as `pull-request-only` do not apply to it; `read-only` ones veto it as a merge check).
 */
export class PullRequests {
  private readonly locks = new Locks();

  constructor(private readonly ctx: RestContext) {}

  private get state() {
    return this.ctx.state;
  }

  private userOf(slug: string): User {
    return (
      this.state.tokenOwner(slug) ?? {
        id: 0,
        name: slug,
        slug,
        displayName: slug,
        emailAddress: '',
        active: false,
      }
    );
  }

  /** Brings the open pull requests of a repository up to date with its branches (after pushes). */
  sync(repo: Repo): Promise<void> {
    return this.locks.run(repo.id, () => this.syncUnlocked(repo));
  }

  private async syncUnlocked(repo: Repo): Promise<void> {
    const open = this.state.pullRequests.filter(
      p =>
        p.state === 'OPEN' &&
        (p.repoId === repo.id || p.fromRepoId === repo.id),
    );
    for (const pr of open) {
      const target = this.state.repos.get(pr.repoId);
      const source = this.state.repos.get(pr.fromRepoId);
      if (!target || !source) continue;
      const fromSha = await resolveCommit(source.path, pr.fromRef);
      const toSha = await resolveCommit(target.path, pr.toRef);
      const now = Date.now();
      if (!fromSha || !toSha) {
        // Bitbucket declines a pull request whose source or target branch is deleted
        pr.state = 'DECLINED';
        pr.version++;
        pr.closedDate = now;
        pr.updatedDate = now;
        this.state.record(undefined, 'PR_DECLINED', {
          projectKey: target.projectKey,
          slug: target.slug,
          details: {
            id: pr.id,
            reason: `${!fromSha ? pr.fromRef : pr.toRef} was deleted`,
          },
        });
        continue;
      }
      if (fromSha !== pr.fromCommit) {
        // a push to the source branch rescopes the pull request
        pr.fromCommit = fromSha;
        pr.version++;
        pr.updatedDate = now;
      }
      pr.toCommit = toSha;
      if (await isAncestor(target.path, fromSha, toSha)) {
        // its commits reached the target outside the pull request: Bitbucket marks it merged
        pr.state = 'MERGED';
        pr.version++;
        pr.closedDate = now;
        pr.updatedDate = now;
        this.state.record(undefined, 'PR_MERGED', {
          projectKey: target.projectKey,
          slug: target.slug,
          details: { id: pr.id, remotely: true },
        });
      }
    }
  }

  // ---------- rendering ----------
  private refObj(ref: string, sha: string, repo: Repo) {
    return {
      id: ref,
      displayId: ref.replace(/^refs\/(heads|tags)\//, ''),
      latestCommit: sha,
      type: ref.startsWith('refs/tags/') ? 'TAG' : 'BRANCH',
      repository: renderRepo(repo, this.state, this.ctx.links()),
    };
  }

  private renderParticipant(p: Participant) {
    return {
      user: renderUser(this.userOf(p.user), this.ctx.links()),
      ...(p.lastReviewedCommit
        ? { lastReviewedCommit: p.lastReviewedCommit }
        : {}),
      role: p.role,
      approved: p.status === 'APPROVED',
      status: p.status,
    };
  }

  /** The browse URL of a pull request (honours the context path). */
  url(pr: PullRequest): string {
    const repo = this.state.repos.get(pr.repoId)!;
    const project = this.state.projects.get(repo.projectKey)!;
    const base = this.ctx.links().baseUrl;
    return project.type === 'PERSONAL'
      ? `${base}/users/${project.owner}/repos/${repo.slug}/pull-requests/${pr.id}`
      : `${base}/projects/${project.key}/repos/${repo.slug}/pull-requests/${pr.id}`;
  }

  /** `RestPullRequest`. */
  render(pr: PullRequest): Record<string, unknown> {
    const repo = this.state.repos.get(pr.repoId)!;
    const from = this.state.repos.get(pr.fromRepoId) ?? repo;
    return {
      id: pr.id,
      version: pr.version,
      title: pr.title,
      ...(pr.description !== undefined ? { description: pr.description } : {}),
      state: pr.state,
      open: pr.state === 'OPEN',
      closed: pr.state !== 'OPEN',
      draft: pr.draft,
      createdDate: pr.createdDate,
      updatedDate: pr.updatedDate,
      ...(pr.closedDate !== undefined ? { closedDate: pr.closedDate } : {}),
      fromRef: this.refObj(pr.fromRef, pr.fromCommit, from),
      toRef: this.refObj(pr.toRef, pr.toCommit, repo),
      locked: false,
      author: {
        user: renderUser(this.userOf(pr.author), this.ctx.links()),
        role: 'AUTHOR',
        approved: false,
        status: 'UNAPPROVED',
      },
      reviewers: pr.participants
        .filter(p => p.role === 'REVIEWER')
        .map(p => this.renderParticipant(p)),
      participants: pr.participants
        .filter(p => p.role === 'PARTICIPANT')
        .map(p => this.renderParticipant(p)),
      ...(pr.mergeCommit
        ? {
            properties: {
              mergeCommit: {
                id: pr.mergeCommit,
                displayId: pr.mergeCommit.slice(0, 11),
              },
            },
          }
        : {}),
      links: { self: [{ href: this.url(pr) }] },
    };
  }

  // ---------- routing ----------
  async handle(
    call: RestCall,
    repo: Repo,
    rest: string[],
  ): Promise<RestResult> {
    this.ctx.needRepo(call, repo, 1, 'view pull requests');
    return this.locks.run(repo.id, async () => {
      await this.syncUnlocked(repo);
      return this.route(call, repo, rest);
    });
  }

  private async route(
    call: RestCall,
    repo: Repo,
    rest: string[],
  ): Promise<RestResult> {
    const M = call.method;
    if (rest.length === 0) {
      if (M === 'GET') return this.list(call, repo);
      if (M === 'POST') return this.create(call, repo);
      return this.ctx.notAllowed(call);
    }
    const pr = this.byId(repo, rest[0]);
    const [, sub, arg] = rest;
    if (rest.length === 1) {
      if (M === 'GET') return { status: 200, body: this.render(pr) };
      if (M === 'PUT') return this.update(call, repo, pr);
      if (M === 'DELETE') return this.remove(call, repo, pr);
      return this.ctx.notAllowed(call);
    }
    if (rest.length === 2 && sub === 'merge') {
      if (M === 'GET') return this.canMerge(call, repo, pr);
      if (M === 'POST') return this.merge(call, repo, pr);
      return this.ctx.notAllowed(call);
    }
    if (rest.length === 2 && (sub === 'decline' || sub === 'reopen')) {
      if (M !== 'POST') return this.ctx.notAllowed(call);
      return sub === 'decline'
        ? this.decline(call, repo, pr)
        : this.reopen(call, repo, pr);
    }
    if (rest.length === 2 && sub === 'approve') {
      if (M !== 'POST' && M !== 'DELETE') return this.ctx.notAllowed(call);
      const me = this.requireUser(call);
      return this.setStatus(
        call,
        repo,
        pr,
        me.slug,
        M === 'POST' ? 'APPROVED' : 'UNAPPROVED',
      );
    }
    if (sub === 'participants' && rest.length === 2) {
      if (M === 'GET') {
        const all = [
          {
            user: renderUser(this.userOf(pr.author), this.ctx.links()),
            role: 'AUTHOR',
            approved: false,
            status: 'UNAPPROVED',
          },
          ...pr.participants.map(p => this.renderParticipant(p)),
        ];
        return { status: 200, body: this.ctx.page(all, call.query) };
      }
      if (M === 'POST') return this.assign(call, repo, pr);
      if (M === 'DELETE')
        return this.unassign(call, repo, pr, call.query.get('username') ?? '');
      return this.ctx.notAllowed(call);
    }
    if (sub === 'participants' && rest.length === 3) {
      if (M === 'PUT') {
        const me = this.requireUser(call);
        if (me.slug !== arg.toLowerCase())
          throw notPermitted(
            'You can only change your own review status of a pull request',
          );
        const body = asObject(call.body);
        const status = String(body.status ?? '').toUpperCase();
        if (!STATUSES.includes(status as ParticipantStatus))
          throw validation(
            'status',
            `The status must be one of ${STATUSES.join(', ')}.`,
          );
        if (
          typeof body.lastReviewedCommit === 'string' &&
          body.lastReviewedCommit !== pr.fromCommit
        ) {
          throw restError(
            409,
            'The pull request has been updated since the last reviewed commit you specified.',
            EX.pullRequestOutOfDate,
            { currentVersion: pr.version, pullRequest: this.render(pr) },
          );
        }
        return this.setStatus(
          call,
          repo,
          pr,
          me.slug,
          status as ParticipantStatus,
        );
      }
      if (M === 'DELETE') return this.unassign(call, repo, pr, arg);
      return this.ctx.notAllowed(call);
    }
    if (rest.length === 2 && sub === 'commits' && M === 'GET')
      return this.commits(call, repo, pr);
    if (rest.length === 2 && sub === 'changes' && M === 'GET')
      return this.changes(call, repo, pr);
    throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
  }

  private byId(repo: Repo, idText: string): PullRequest {
    const id = Number(idText);
    const pr = this.state.pullRequests.find(
      p => p.repoId === repo.id && p.id === id,
    );
    if (!pr)
      throw new RestError(
        404,
        `Pull request ${idText} does not exist in ${repo.projectKey}/${repo.slug}.`,
        EX.noSuchPullRequest,
      );
    return pr;
  }

  private requireUser(call: RestCall): User {
    if (!call.principal) throw notPermitted();
    return call.principal.user;
  }

  /** 409 PullRequestOutOfDateException unless `version` (query or body) is the current one; absent = -1. */
  private checkVersion(call: RestCall, pr: PullRequest): void {
    const body = asObject(call.body);
    const raw = call.query.get('version') ?? body.version;
    const expected =
      raw === undefined || raw === null || raw === '' ? -1 : Number(raw);
    if (expected !== pr.version) {
      throw restError(
        409,
        'You are attempting to modify a pull request based on out-of-date information.',
        EX.pullRequestOutOfDate,
        {
          currentVersion: pr.version,
          expectedVersion: expected,
          pullRequest: this.render(pr),
        },
      );
    }
  }

  /** 409 when another open pull request of `repo` has the same source (repository, ref) and target. */
  private assertNoOpenDuplicate(
    repo: Repo,
    refs: { fromRepoId: number; fromRef: string; toRef: string },
    self?: PullRequest,
  ): void {
    const dup = this.state.pullRequests.find(
      p =>
        p !== self &&
        p.state === 'OPEN' &&
        p.repoId === repo.id &&
        p.fromRepoId === refs.fromRepoId &&
        p.fromRef === refs.fromRef &&
        p.toRef === refs.toRef,
    );
    if (dup)
      throw restError(
        409,
        `Only one pull request may be open for a given source and target branch (pull request #${dup.id}).`,
        EX.duplicatePullRequest,
        { existingPullRequest: this.render(dup) },
      );
  }

  /** Records a pull request event of `repo` in the audit log (`state().audit`). */
  private audit(
    call: RestCall,
    repo: Repo,
    action: string,
    details: Record<string, unknown>,
  ): void {
    this.state.record(call.principal, action, {
      projectKey: repo.projectKey,
      slug: repo.slug,
      details,
    });
  }

  private notOpen(pr: PullRequest, what: string): RestError {
    return restError(
      409,
      `The pull request is ${pr.state.toLowerCase()} and cannot be ${what}.`,
      EX.illegalPullRequestState,
      { pullRequest: this.render(pr) },
    );
  }

  // ---------- list / create ----------
  private list(call: RestCall, repo: Repo): RestResult {
    const q = call.query;
    const state = (q.get('state') ?? 'OPEN').toUpperCase();
    if (!['OPEN', 'DECLINED', 'MERGED', 'ALL'].includes(state))
      throw validation('state', 'state must be OPEN, DECLINED, MERGED or ALL.');
    const direction = (q.get('direction') ?? 'INCOMING').toUpperCase();
    if (!['INCOMING', 'OUTGOING'].includes(direction))
      throw validation('direction', 'direction must be INCOMING or OUTGOING.');
    const order = (q.get('order') ?? 'NEWEST').toUpperCase();
    if (!['NEWEST', 'OLDEST'].includes(order))
      throw validation('order', 'order must be NEWEST or OLDEST.');
    const atRaw = q.get('at');
    let at: string | undefined;
    if (atRaw) at = atRaw.startsWith('refs/') ? atRaw : `refs/heads/${atRaw}`;
    const text = (q.get('filterText') ?? '').toLowerCase();
    const draft = q.get('draft');
    const filters: { user: string; role?: string; approved?: boolean }[] = [];
    for (let n = 1; q.get(`username.${n}`); n++) {
      filters.push({
        user: q.get(`username.${n}`)!.toLowerCase(),
        role: q.get(`role.${n}`)?.toUpperCase(),
        approved:
          q.get(`approved.${n}`) === null
            ? undefined
            : q.get(`approved.${n}`) === 'true',
      });
    }
    const values = this.state.pullRequests
      .filter(p =>
        direction === 'INCOMING'
          ? p.repoId === repo.id && (!at || p.toRef === at)
          : p.fromRepoId === repo.id && (!at || p.fromRef === at),
      )
      .filter(p => state === 'ALL' || p.state === state)
      .filter(
        p =>
          !text ||
          p.title.toLowerCase().includes(text) ||
          (p.description ?? '').toLowerCase().includes(text),
      )
      .filter(p => draft === null || p.draft === (draft === 'true'))
      .filter(p =>
        filters.every(f => {
          if (p.author === f.user)
            return (!f.role || f.role === 'AUTHOR') && f.approved !== true;
          const part = p.participants.find(x => x.user === f.user);
          if (!part) return false;
          if (f.role && f.role !== part.role) return false;
          if (
            f.approved !== undefined &&
            f.approved !== (part.status === 'APPROVED')
          )
            return false;
          return true;
        }),
      )
      .sort((x, y) =>
        order === 'NEWEST'
          ? y.createdDate - x.createdDate || y.id - x.id
          : x.createdDate - y.createdDate || x.id - y.id,
      )
      .map(p => this.render(p));
    return { status: 200, body: this.ctx.page(values, q) };
  }

  /** Resolves a `{id, repository}` ref of a request body in `fallback` (the path's repository). */
  private async resolveRef(
    raw: unknown,
    field: 'fromRef' | 'toRef',
    fallback: Repo,
  ): Promise<{ ref: string; sha: string; repo: Repo }> {
    const o = asObject(raw);
    const idRaw = typeof o.id === 'string' ? o.id.trim() : '';
    if (!idRaw)
      throw validation(
        field,
        `The ${
          field === 'fromRef' ? 'source' : 'target'
        } ref (${field}.id) is required.`,
      );
    let repo = fallback;
    const r = asObject(o.repository);
    if (typeof r.slug === 'string') {
      const key = String(asObject(r.project).key ?? fallback.projectKey);
      repo = this.ctx.repoOr404(key, r.slug);
    }
    let candidates = [`refs/heads/${idRaw}`, `refs/tags/${idRaw}`];
    if (field === 'toRef') candidates = [`refs/heads/${idRaw}`];
    if (idRaw.startsWith('refs/')) candidates = [idRaw];
    for (const ref of candidates) {
      if (field === 'toRef' && !ref.startsWith('refs/heads/'))
        throw validation(
          'toRef',
          'The target of a pull request must be a branch; tags are immutable.',
        );
      const sha = await resolveCommit(repo.path, ref);
      if (sha) return { ref, sha, repo };
    }
    throw new RestError(
      404,
      `Repository "${repo.slug}" of project with key "${repo.projectKey}" has no branch "${candidates[0]}".`,
      EX.noSuchBranch,
      field,
    );
  }

  /** Reviewer names of a request body → slugs; 409 InvalidPullRequestReviewersException listing the bad ones. */
  private reviewerSlugs(raw: unknown, repo: Repo, author: string): string[] {
    if (raw === undefined || raw === null) return [];
    if (!Array.isArray(raw))
      throw validation('reviewers', 'reviewers must be an array.');
    const errors: {
      context: string;
      message: string;
      exceptionName: null;
    }[] = [];
    const valid: User[] = [];
    for (const r of raw) {
      const u = asObject(asObject(r).user);
      const name = String(u.name ?? u.slug ?? '');
      const user = name ? this.state.user(name) : undefined;
      if (!user || !user.active) {
        errors.push({
          context: name,
          message: `${name} is not a user.`,
          exceptionName: null,
        });
        continue;
      }
      if (user.slug === author) {
        errors.push({
          context: name,
          message: `${name} is the author and cannot be included as a reviewer.`,
          exceptionName: null,
        });
        continue;
      }
      if (this.state.repoLevel({ user }, repo) < 1) {
        errors.push({
          context: name,
          message: `${name} does not have permission to view repository ${repo.projectKey}/${repo.slug}.`,
          exceptionName: null,
        });
        continue;
      }
      if (!valid.some(v => v.slug === user.slug)) valid.push(user);
    }
    if (errors.length) {
      throw restError(
        409,
        'Errors encountered while adding some reviewers to this pull request.',
        EX.invalidReviewers,
        {
          reviewerErrors: errors,
          validReviewers: valid.map(v => renderUser(v, this.ctx.links())),
        },
        'reviewers',
      );
    }
    return valid.map(v => v.slug);
  }

  private async create(call: RestCall, repo: Repo): Promise<RestResult> {
    const me = this.requireUser(call);
    const body = asObject(call.body);
    const title = typeof body.title === 'string' ? body.title.trim() : '';
    if (!title) throw validation('title', 'A pull request title is required.');
    const from = await this.resolveRef(body.fromRef, 'fromRef', repo);
    const to = await this.resolveRef(body.toRef, 'toRef', repo);
    if (to.repo.id !== repo.id)
      throw validation(
        'toRef',
        `The target repository must be ${repo.projectKey}/${repo.slug} (the repository of this resource).`,
      );
    if (from.repo.id !== repo.id) {
      this.ctx.needRepo(call, from.repo, 1, 'view the source repository');
      if (from.repo.hierarchyId !== repo.hierarchyId)
        throw restError(
          409,
          'The source and target repositories must belong to the same fork hierarchy.',
          EX.invalidPullRequestTarget,
        );
    }
    if (from.repo.id === to.repo.id && from.ref === to.ref)
      throw restError(
        409,
        'The source and target refs of a pull request must be different.',
        EX.invalidPullRequestTarget,
      );
    this.assertNoOpenDuplicate(repo, {
      fromRepoId: from.repo.id,
      fromRef: from.ref,
      toRef: to.ref,
    });
    if (await isAncestor(repo.path, from.sha, to.sha)) {
      throw restError(
        409,
        `Pull request cannot be created because ${to.ref} already contains all the commits of ${from.ref}.`,
        EX.emptyPullRequest,
      );
    }
    const reviewers = this.reviewerSlugs(body.reviewers, repo, me.slug);
    const now = Date.now();
    const pr: PullRequest = {
      id:
        Math.max(
          0,
          ...this.state.pullRequests
            .filter(p => p.repoId === repo.id)
            .map(p => p.id),
        ) + 1,
      repoId: repo.id,
      fromRepoId: from.repo.id,
      fromRef: from.ref,
      toRef: to.ref,
      title,
      description:
        typeof body.description === 'string' ? body.description : undefined,
      state: 'OPEN',
      version: 0,
      draft: body.draft === true,
      createdDate: now,
      updatedDate: now,
      author: me.slug,
      participants: reviewers.map(user => ({
        user,
        role: 'REVIEWER' as const,
        status: 'UNAPPROVED' as const,
      })),
      fromCommit: from.sha,
      toCommit: to.sha,
    };
    this.state.pullRequests.push(pr);
    this.audit(call, repo, 'PR_OPENED', {
      id: pr.id,
      fromRef: pr.fromRef,
      toRef: pr.toRef,
      fromCommit: pr.fromCommit,
      reviewers,
    });
    return { status: 201, body: this.render(pr) };
  }

  // ---------- update / delete ----------
  private async update(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
  ): Promise<RestResult> {
    const me = this.requireUser(call);
    if (me.slug !== pr.author)
      this.ctx.needRepo(call, repo, 2, 'update pull requests');
    const body = asObject(call.body);
    if (body.version === undefined || body.version === null)
      throw validation(
        'version',
        'The version of the pull request is required.',
      );
    this.checkVersion(call, pr);
    if (pr.state !== 'OPEN') throw this.notOpen(pr, 'updated');
    const author = asObject(asObject(body.author).user);
    if (
      (author.name !== undefined || author.slug !== undefined) &&
      String(author.name ?? author.slug).toLowerCase() !== pr.author
    )
      throw validation(
        'author',
        'The author of a pull request cannot be changed.',
      );
    if (body.title !== undefined) {
      const t = typeof body.title === 'string' ? body.title.trim() : '';
      if (!t) throw validation('title', 'A pull request title is required.');
      pr.title = t;
    }
    if ('description' in body)
      pr.description =
        typeof body.description === 'string' ? body.description : undefined;
    if (typeof body.draft === 'boolean') pr.draft = body.draft;
    if (body.toRef !== undefined) {
      const to = await this.resolveRef(body.toRef, 'toRef', repo);
      if (to.ref !== pr.toRef) {
        this.assertNoOpenDuplicate(repo, { ...pr, toRef: to.ref }, pr);
        pr.toRef = to.ref;
        pr.toCommit = to.sha;
      }
    }
    // a PUT replaces the reviewers: omitted ones are removed (those who reviewed stay as participants)
    const slugs = this.reviewerSlugs(body.reviewers ?? [], repo, pr.author);
    const kept: Participant[] = [];
    for (const p of pr.participants) {
      if (slugs.includes(p.user)) kept.push({ ...p, role: 'REVIEWER' });
      else if (p.status !== 'UNAPPROVED' || p.role === 'PARTICIPANT')
        kept.push({ ...p, role: 'PARTICIPANT' });
    }
    for (const s of slugs)
      if (!kept.some(p => p.user === s))
        kept.push({ user: s, role: 'REVIEWER', status: 'UNAPPROVED' });
    pr.participants = kept;
    pr.version++;
    pr.updatedDate = Date.now();
    this.audit(call, repo, 'PR_UPDATED', { id: pr.id, version: pr.version });
    return { status: 200, body: this.render(pr) };
  }

  private remove(call: RestCall, repo: Repo, pr: PullRequest): RestResult {
    const me = this.requireUser(call);
    if (me.slug !== pr.author)
      this.ctx.needRepo(call, repo, 3, 'delete pull requests');
    this.checkVersion(call, pr);
    this.state.pullRequests = this.state.pullRequests.filter(p => p !== pr);
    this.audit(call, repo, 'PR_DELETED', { id: pr.id });
    return { status: 204 };
  }

  // ---------- reviews ----------
  private upsertParticipant(pr: PullRequest, slug: string): Participant {
    let p = pr.participants.find(x => x.user === slug);
    if (!p) {
      p = { user: slug, role: 'PARTICIPANT', status: 'UNAPPROVED' };
      pr.participants.push(p);
    }
    return p;
  }

  private setStatus(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
    slug: string,
    status: ParticipantStatus,
  ): RestResult {
    if (slug === pr.author)
      throw restError(
        400,
        'The author of a pull request cannot review it.',
        EX.pullRequestAuthor,
      );
    const v = call.query.get('version');
    if (v !== null && Number(v) !== pr.version) this.checkVersion(call, pr);
    if (pr.state !== 'OPEN') throw this.notOpen(pr, 'reviewed');
    const p = this.upsertParticipant(pr, slug);
    p.status = status;
    if (status !== 'UNAPPROVED') p.lastReviewedCommit = pr.fromCommit;
    this.audit(call, repo, 'PR_REVIEWED', { id: pr.id, status });
    return { status: 200, body: this.renderParticipant(p) };
  }

  private assign(call: RestCall, repo: Repo, pr: PullRequest): RestResult {
    this.ctx.needRepo(call, repo, 2, 'add reviewers to pull requests');
    const body = asObject(call.body);
    const u = asObject(body.user);
    const name = String(u.name ?? u.slug ?? '');
    const role = String(body.role ?? 'REVIEWER').toUpperCase();
    if (!name)
      throw validation('user', 'The user to assign (user.name) is required.');
    if (role !== 'REVIEWER' && role !== 'PARTICIPANT')
      throw validation('role', 'Only the REVIEWER role can be assigned.');
    const [slug] = this.reviewerSlugs([{ user: { name } }], repo, pr.author);
    const p = this.upsertParticipant(pr, slug);
    p.role = role as Participant['role'];
    return { status: 200, body: this.renderParticipant(p) };
  }

  private unassign(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
    name: string,
  ): RestResult {
    this.ctx.needRepo(call, repo, 2, 'remove reviewers from pull requests');
    if (!name) throw validation('username', 'A user name is required.');
    const p = pr.participants.find(x => x.user === name.toLowerCase());
    if (p) p.role = 'PARTICIPANT';
    return { status: 204 };
  }

  // ---------- merge ----------
  /** Reasons a merge is refused for `user` now: conflicts, and merge-check vetoes. */
  private async mergeability(
    pr: PullRequest,
    repo: Repo,
    principal: Principal | undefined,
  ): Promise<{ conflicted: boolean; vetoes: Veto[] }> {
    const { conflicted } = await mergeTree(
      repo.path,
      pr.toCommit,
      pr.fromCommit,
    );
    const vetoes: Veto[] = [];
    const user = principal?.user;
    if (!user || this.state.repoLevel(principal, repo) < 2) {
      vetoes.push({
        summaryMessage: 'Insufficient permissions',
        detailedMessage:
          'You need write access to the repository to merge this pull request.',
      });
    } else if (user.type === 'SERVICE' || !user.emailAddress) {
      vetoes.push({
        summaryMessage: 'A commit author is required',
        detailedMessage:
          'Only users with a valid e-mail address can create the merge commit; an access token cannot merge a pull request.',
      });
    }
    if (pr.draft)
      vetoes.push({
        summaryMessage: 'This pull request is a draft',
        detailedMessage: 'Draft pull requests cannot be merged.',
      });
    const approvedBy = (users?: string[]) =>
      pr.participants.filter(
        p => p.status === 'APPROVED' && (!users || users.includes(p.user)),
      ).length;
    const from = this.state.repos.get(pr.fromRepoId) ?? repo;
    for (const c of conditionsMatching(
      this.state,
      repo,
      from,
      pr.fromRef,
      pr.toRef,
    )) {
      const have = approvedBy(c.reviewers);
      if (c.requiredApprovals > have) {
        vetoes.push({
          summaryMessage: 'Not enough approvals from default reviewers',
          detailedMessage: `${c.requiredApprovals - have} more approval${
            c.requiredApprovals - have === 1 ? '' : 's'
          } from the default reviewers (${c.reviewers.join(', ')}) ${
            c.requiredApprovals - have === 1 ? 'is' : 'are'
          } required to merge this pull request.`,
        });
      }
    }
    const checks = this.state.mergeChecks.get(repo.id);
    if (checks?.requiredApprovals && approvedBy() < checks.requiredApprovals) {
      const missing = checks.requiredApprovals - approvedBy();
      vetoes.push({
        summaryMessage: 'Not enough approvals',
        detailedMessage: `You need ${missing} more approval${
          missing === 1 ? '' : 's'
        } before this pull request can be merged.`,
      });
    }
    if (
      checks?.noNeedsWork &&
      pr.participants.some(p => p.status === 'NEEDS_WORK')
    ) {
      vetoes.push({
        summaryMessage: 'Changes requested',
        detailedMessage:
          'A reviewer requested changes; the pull request cannot be merged until they approve or withdraw it.',
      });
    }
    if (user) vetoes.push(...mergeVetoes(this.state, repo, user, pr.toRef));
    return { conflicted, vetoes };
  }

  private async canMerge(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
  ): Promise<RestResult> {
    if (pr.state !== 'OPEN') throw this.notOpen(pr, 'merged');
    const { conflicted, vetoes } = await this.mergeability(
      pr,
      repo,
      call.principal,
    );
    return {
      status: 200,
      body: {
        canMerge: !conflicted && vetoes.length === 0,
        conflicted,
        outcome: conflicted ? 'CONFLICTED' : 'CLEAN',
        vetoes,
      },
    };
  }

  private mergeMessage(
    pr: PullRequest,
    repo: Repo,
    body: Record<string, unknown>,
    commits: { id: string; message: string }[],
  ): string {
    const subject = `Pull request #${pr.id}: ${pr.title}`;
    if (typeof body.message === 'string' && body.message.trim()) {
      return body.autoSubject === false || body.autoSubject === 'false'
        ? body.message
        : `${subject}\n\n${body.message}`;
    }
    const from = pr.fromRef.replace(/^refs\/(heads|tags)\//, '');
    const to = pr.toRef.replace(/^refs\/heads\//, '');
    const summaries = commits
      .slice(0, 20)
      .map(c => `* commit '${c.id}':\n  ${c.message.split('\n')[0]}`);
    return [
      subject,
      '',
      `Merge in ${repo.projectKey}/${repo.slug} from ${from} to ${to}`,
      ...(summaries.length ? ['', ...summaries] : []),
    ].join('\n');
  }

  private async merge(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
  ): Promise<RestResult> {
    this.ctx.needRepo(call, repo, 2, 'merge pull requests');
    const me = call.principal!.user;
    this.checkVersion(call, pr);
    if (pr.state !== 'OPEN') throw this.notOpen(pr, 'merged');
    const body = asObject(call.body);
    const strategy = String(body.strategyId ?? 'no-ff');
    if (!(STRATEGIES as readonly string[]).includes(strategy))
      throw validation(
        'strategyId',
        `The merge strategy "${strategy}" is not enabled; use one of ${STRATEGIES.join(
          ', ',
        )}.`,
      );
    if (body.autoMerge === true)
      throw new RestError(
        403,
        'Auto-merge is not enabled for this repository.',
        EX.authorisation,
      );
    const { conflicted, vetoes } = await this.mergeability(
      pr,
      repo,
      call.principal,
    );
    if (conflicted)
      throw restError(
        409,
        'The pull request has conflicts and cannot be merged.',
        EX.pullRequestMergeVetoed,
        { conflicted: true, vetoes: [] },
      );
    if (vetoes.length)
      throw restError(
        409,
        'Merging the pull request has been vetoed.',
        EX.pullRequestMergeVetoed,
        { conflicted: false, vetoes },
      );
    const toSha = pr.toCommit;
    const fromSha = pr.fromCommit;
    const canFastForward = await isAncestor(repo.path, toSha, fromSha);
    let head: string;
    if (strategy === 'ff-only' && !canFastForward) {
      throw restError(
        409,
        'Merging the pull request has been vetoed.',
        EX.pullRequestMergeVetoed,
        {
          conflicted: false,
          vetoes: [
            {
              summaryMessage: 'Fast-forward merge is not possible',
              detailedMessage: `${pr.toRef} has commits that are not on ${pr.fromRef}.`,
            },
          ],
        },
      );
    }
    if ((strategy === 'ff' || strategy === 'ff-only') && canFastForward) {
      head = fromSha;
    } else {
      const commits = await logCommits(repo.path, {
        until: fromSha,
        since: toSha,
        max: 20,
      });
      const { tree } = await mergeTree(repo.path, toSha, fromSha);
      const parents = strategy === 'squash' ? [toSha] : [toSha, fromSha];
      const message = this.mergeMessage(pr, repo, body, commits);
      const ident = {
        GIT_AUTHOR_NAME: me.displayName,
        GIT_AUTHOR_EMAIL: me.emailAddress,
        GIT_COMMITTER_NAME: me.displayName,
        GIT_COMMITTER_EMAIL: me.emailAddress,
      };
      const r = await run(
        'git',
        [
          '-C',
          repo.path,
          'commit-tree',
          tree,
          ...parents.flatMap(p => ['-p', p]),
          '-F',
          '-',
        ],
        { env: peerGitEnv(ident), input: message },
      );
      head = r.stdout.trim();
    }
    // compare-and-swap: the target must still be where the merge was computed
    const upd = await git(
      ['-C', repo.path, 'update-ref', pr.toRef, head, toSha],
      { check: false },
    );
    if (upd.code !== 0)
      throw restError(
        409,
        `${pr.toRef} moved while the pull request was being merged; retry the merge.`,
        EX.pullRequestOutOfDate,
        { currentVersion: pr.version, pullRequest: this.render(pr) },
      );
    const now = Date.now();
    pr.state = 'MERGED';
    pr.mergeCommit = head;
    pr.version++;
    pr.closedDate = now;
    pr.updatedDate = now;
    pr.closedBy = me.slug;
    this.audit(call, repo, 'PR_MERGED', {
      id: pr.id,
      mergeCommit: head,
      strategy,
      toRef: pr.toRef,
    });
    await this.syncUnlocked(repo);
    return { status: 200, body: this.render(pr) };
  }

  private decline(call: RestCall, repo: Repo, pr: PullRequest): RestResult {
    const me = this.requireUser(call);
    this.checkVersion(call, pr);
    if (pr.state !== 'OPEN') throw this.notOpen(pr, 'declined');
    const now = Date.now();
    pr.state = 'DECLINED';
    pr.version++;
    pr.closedDate = now;
    pr.updatedDate = now;
    pr.closedBy = me.slug;
    this.audit(call, repo, 'PR_DECLINED', { id: pr.id });
    return { status: 200, body: this.render(pr) };
  }

  private async reopen(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
  ): Promise<RestResult> {
    this.requireUser(call);
    this.checkVersion(call, pr);
    if (pr.state !== 'DECLINED') throw this.notOpen(pr, 'reopened');
    const from = this.state.repos.get(pr.fromRepoId) ?? repo;
    const fromSha = await resolveCommit(from.path, pr.fromRef);
    const toSha = await resolveCommit(repo.path, pr.toRef);
    if (!fromSha || !toSha)
      throw restError(
        409,
        `The pull request cannot be reopened: ${
          !fromSha ? pr.fromRef : pr.toRef
        } no longer exists.`,
        EX.illegalPullRequestState,
      );
    this.assertNoOpenDuplicate(repo, pr, pr);
    pr.state = 'OPEN';
    pr.version++;
    pr.closedDate = undefined;
    pr.closedBy = undefined;
    pr.fromCommit = fromSha;
    pr.toCommit = toSha;
    pr.updatedDate = Date.now();
    this.audit(call, repo, 'PR_REOPENED', { id: pr.id });
    return { status: 200, body: this.render(pr) };
  }

  // ---------- commits / changes ----------
  private async commits(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
  ): Promise<RestResult> {
    const all = await logCommits(repo.path, {
      until: pr.fromCommit,
      since: pr.toCommit,
    });
    const paged = this.ctx.page(all.map(renderCommit), call.query);
    const withCounts = call.query.get('withCounts') === 'true';
    return {
      status: 200,
      body: withCounts
        ? {
            ...paged,
            totalCount: all.length,
            authorCount: new Set(all.map(c => c.authorEmail)).size,
          }
        : paged,
    };
  }

  private async changes(
    call: RestCall,
    repo: Repo,
    pr: PullRequest,
  ): Promise<RestResult> {
    const mb = await git(
      ['-C', repo.path, 'merge-base', pr.toCommit, pr.fromCommit],
      { check: false },
    );
    const base = mb.stdout.trim() || pr.toCommit;
    const { stdout } = await git([
      '-C',
      repo.path,
      'diff',
      '--raw',
      '-z',
      '-M',
      '--no-abbrev',
      base,
      pr.fromCommit,
    ]);
    const parts = stdout.split('\0');
    const values: Record<string, unknown>[] = [];
    const pathObj = (p: string) => {
      const name = path.posix.basename(p);
      const dot = name.lastIndexOf('.');
      return {
        components: p.split('/'),
        parent: path.posix.dirname(p) === '.' ? '' : path.posix.dirname(p),
        name,
        ...(dot > 0 ? { extension: name.slice(dot + 1) } : {}),
        toString: p,
      };
    };
    const TYPES: Record<string, [string, string]> = {
      A: ['ADD', 'ADD'],
      M: ['MODIFY', 'MODIFY'],
      D: ['DELETE', 'DELETE'],
      R: ['MOVE', 'RENAME'],
      C: ['COPY', 'COPY'],
      T: ['MODIFY', 'MODIFY'],
    };
    for (let i = 0; i < parts.length; ) {
      const head = parts[i++];
      if (!head || !head.startsWith(':')) continue;
      const [oldMode, newMode, oldSha, newSha, status] = head
        .slice(1)
        .split(' ');
      const letter = status.charAt(0);
      const score = Number(status.slice(1));
      const src = parts[i++];
      const dst = letter === 'R' || letter === 'C' ? parts[i++] : src;
      const [type, gitType] = TYPES[letter] ?? ['UNKNOWN', 'UNKNOWN'];
      values.push({
        contentId: newSha,
        fromContentId: oldSha,
        path: pathObj(dst),
        ...(dst !== src ? { srcPath: pathObj(src) } : {}),
        executable: newMode === '100755',
        srcExecutable: oldMode === '100755',
        percentUnchanged: letter === 'R' || letter === 'C' ? score : -1,
        type,
        nodeType: newMode === '160000' ? 'SUBMODULE' : 'FILE',
        properties: { gitChangeType: gitType },
      });
    }
    const paged = this.ctx.page(values, call.query);
    return {
      status: 200,
      body: {
        fromHash: base,
        toHash: pr.fromCommit,
        properties: { changeScope: 'ALL' },
        ...paged,
      },
    };
  }
}
