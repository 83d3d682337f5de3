import { EX, notPermitted, RestError, validation } from './errors';
import type {
  BitbucketState,
  Repo,
  ReviewerCondition,
  Scope,
  User,
} from './model';
import { parseMatcher, refMatches, renderMatcher } from './refmatch';
import { renderUser } from './render';
import { projectOrRepoPath } from './restrictions';
import type { RestCall, RestContext, RestResult } from './rest';

const asObject = (body: unknown): Record<string, unknown> =>
  body && typeof body === 'object' && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : {};

/** Input of a default-reviewer condition (REST body `RestDefaultReviewersRequest`, or the test helper). */
export interface ConditionInput {
  sourceMatcher: unknown;
  targetMatcher: unknown;
  /** User objects (`{id}`, `{name}` or `{slug}`) or names. */
  reviewers: unknown[];
  requiredApprovals?: number;
}

/** Validates a condition (400 naming the field). */
export function validateCondition(
  state: BitbucketState,
  scope: Scope,
  input: ConditionInput,
): Omit<ReviewerCondition, 'id'> {
  const source = parseMatcher(input.sourceMatcher, 'sourceMatcher', true);
  const target = parseMatcher(input.targetMatcher, 'targetMatcher', true);
  if (!Array.isArray(input.reviewers) || input.reviewers.length === 0)
    throw validation('reviewers', 'At least one reviewer is required.');
  const reviewers: string[] = [];
  for (const r of input.reviewers) {
    let user: User | undefined;
    if (typeof r === 'string') user = state.user(r);
    else {
      const o = asObject(r);
      if (typeof o.id === 'number')
        user = [...state.users.values()].find(u => u.id === o.id);
      else if (typeof o.name === 'string' || typeof o.slug === 'string')
        user = state.user(String(o.name ?? o.slug));
    }
    if (!user)
      throw validation(
        'reviewers',
        `Reviewer ${JSON.stringify(r)} is not a user.`,
      );
    if (!reviewers.includes(user.slug)) reviewers.push(user.slug);
  }
  const required = input.requiredApprovals ?? 0;
  if (
    !Number.isInteger(required) ||
    required < 0 ||
    required > reviewers.length
  )
    throw validation(
      'requiredApprovals',
      `requiredApprovals must be a whole number from 0 to the number of reviewers (${reviewers.length}).`,
    );
  return {
    scope,
    source,
    target,
    reviewers,
    requiredApprovals: required,
  };
}

/** `RestPullRequestCondition`. */
export function renderCondition(ctx: RestContext, c: ReviewerCondition) {
  const state = ctx.state;
  return {
    id: c.id,
    scope: {
      type: c.scope.type,
      resourceId:
        c.scope.type === 'REPOSITORY'
          ? c.scope.repoId
          : state.projects.get(c.scope.projectKey)?.id,
    },
    sourceRefMatcher: renderMatcher(c.source),
    targetRefMatcher: renderMatcher(c.target),
    reviewers: c.reviewers
      .map(s => state.user(s))
      .filter((u): u is User => !!u)
      .map(u => renderUser(u, ctx.links())),
    requiredApprovals: c.requiredApprovals,
  };
}

/**
 * `/rest/default-reviewers/1.0/projects/{key}[/repos/{slug}]`: `GET …/conditions` (an array, not
 * paged; a repository's list includes its project's conditions), `POST …/condition`,
 * `PUT|DELETE …/condition/{id}` (REPO_ADMIN / PROJECT_ADMIN), and
 * `GET …/repos/{slug}/reviewers?sourceRepoId=&targetRepoId=&sourceRefId=&targetRefId=` (REPO_READ):
 * the users a pull request between those refs should get as reviewers. Bitbucket does not add
 * them by itself when a pull request is created over REST: clients fetch and send them.
 */
export async function defaultReviewers(
  ctx: RestContext,
  call: RestCall,
  seg: string[],
): Promise<RestResult> {
  const { project, repo, rest } = projectOrRepoPath(ctx, call, seg);
  if (!call.principal) throw notPermitted();
  const M = call.method;
  const scope: Scope = repo
    ? { type: 'REPOSITORY', projectKey: project.key, repoId: repo.id }
    : { type: 'PROJECT', projectKey: project.key };
  const admin = () =>
    repo
      ? ctx.needRepo(call, repo, 3, 'manage default reviewers')
      : ctx.needProject(call, project, 3, 'manage default reviewers');
  const where = { projectKey: project.key, slug: repo?.slug };

  if (rest[0] === 'reviewers' && rest.length === 1 && repo) {
    if (M !== 'GET') return ctx.notAllowed(call);
    ctx.needRepo(call, repo, 1, 'view default reviewers');
    const q = call.query;
    const missing = [
      'sourceRepoId',
      'targetRepoId',
      'sourceRefId',
      'targetRefId',
    ].filter(p => !q.get(p));
    if (missing.length)
      throw validation(missing[0], `${missing.join(', ')} must be provided.`);
    const sourceRepo = ctx.state.repos.get(Number(q.get('sourceRepoId')));
    const targetRepo = ctx.state.repos.get(Number(q.get('targetRepoId')));
    if (!sourceRepo || !targetRepo)
      throw new RestError(
        404,
        `Repository ${
          !sourceRepo ? q.get('sourceRepoId') : q.get('targetRepoId')
        } does not exist.`,
        EX.noSuchRepository,
      );
    const full = (r: string) => (r.startsWith('refs/') ? r : `refs/heads/${r}`);
    const conds = conditionsMatching(
      ctx.state,
      targetRepo,
      sourceRepo,
      full(q.get('sourceRefId')!),
      full(q.get('targetRefId')!),
    );
    const slugs = [...new Set(conds.flatMap(x => x.reviewers))];
    const users = slugs
      .map(s => ctx.state.user(s))
      .filter((u): u is User => !!u && u.active)
      .map(u => renderUser(u, ctx.links()));
    return { status: 200, body: users };
  }
  if (rest[0] === 'conditions' && rest.length === 1) {
    if (M !== 'GET') return ctx.notAllowed(call);
    admin();
    const values = ctx.state.reviewerConditions
      .filter(x =>
        repo
          ? (x.scope.type === 'REPOSITORY' && x.scope.repoId === repo.id) ||
            (x.scope.type === 'PROJECT' && x.scope.projectKey === project.key)
          : x.scope.type === 'PROJECT' && x.scope.projectKey === project.key,
      )
      .sort((x, y) => x.id - y.id)
      .map(x => renderCondition(ctx, x));
    return { status: 200, body: values };
  }
  if (rest[0] === 'condition' && rest.length === 1) {
    if (M !== 'POST') return ctx.notAllowed(call);
    admin();
    const cond = addCondition(ctx.state, scope, conditionInput(call.body));
    ctx.state.record(call.principal, 'DEFAULT_REVIEWERS_CONDITION_CREATED', {
      ...where,
      details: { id: cond.id, reviewers: cond.reviewers },
    });
    return { status: 200, body: renderCondition(ctx, cond) };
  }
  if (rest[0] === 'condition' && rest.length === 2) {
    admin();
    const id = Number(rest[1]);
    const cond = ctx.state.reviewerConditions.find(
      x =>
        x.id === id &&
        x.scope.type === scope.type &&
        x.scope.projectKey === scope.projectKey &&
        x.scope.repoId === scope.repoId,
    );
    if (!cond)
      throw new RestError(
        404,
        `No default reviewer condition with ID ${rest[1]} exists here.`,
        EX.noSuchCondition,
      );
    if (M === 'DELETE') {
      ctx.state.reviewerConditions = ctx.state.reviewerConditions.filter(
        x => x !== cond,
      );
      ctx.state.record(call.principal, 'DEFAULT_REVIEWERS_CONDITION_DELETED', {
        ...where,
        details: { id },
      });
      return { status: 204 };
    }
    if (M === 'PUT') {
      const v = validateCondition(ctx.state, scope, conditionInput(call.body));
      Object.assign(cond, v);
      return { status: 200, body: renderCondition(ctx, cond) };
    }
    return ctx.notAllowed(call);
  }
  throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
}

function conditionInput(body: unknown): ConditionInput {
  const o = asObject(body);
  return {
    sourceMatcher: o.sourceMatcher ?? o.sourceRefMatcher,
    targetMatcher: o.targetMatcher ?? o.targetRefMatcher,
    reviewers: Array.isArray(o.reviewers) ? o.reviewers : [],
    requiredApprovals:
      o.requiredApprovals === undefined ? 0 : Number(o.requiredApprovals),
  };
}

/** Validates and stores a condition. */
export function addCondition(
  state: BitbucketState,
  scope: Scope,
  input: ConditionInput,
): ReviewerCondition {
  const v = validateCondition(state, scope, input);
  const cond: ReviewerCondition = { id: state.newConditionId(), ...v };
  state.reviewerConditions.push(cond);
  return cond;
}

/** Conditions of the target repository (and its project) matching a source and a target ref. */
export function conditionsMatching(
  state: BitbucketState,
  target: Repo,
  source: Repo,
  fromRef: string,
  toRef: string,
): ReviewerCondition[] {
  const toHead = state.headRef(target);
  const fromHead = state.headRef(source);
  return state.reviewerConditions.filter(
    c =>
      (c.scope.type === 'REPOSITORY'
        ? c.scope.repoId === target.id
        : c.scope.projectKey === target.projectKey) &&
      refMatches(c.source, fromRef, fromHead) &&
      refMatches(c.target, toRef, toHead),
  );
}
