import { EX, notPermitted, RestError, validation } from './errors';
import {
  BitbucketState,
  Level,
  Project,
  Repo,
  RESTRICTION_TYPES,
  Restriction,
  RestrictionType,
  Scope,
  User,
} from './model';
import { parseMatcher, refMatches, renderMatcher } from './refmatch';
import { renderKey, renderUser } from './render';
import type { RestCall, RestContext, RestResult } from './rest';

/** Content type of Bitbucket's bulk requests (an array of restriction requests). */
export const BULK_CONTENT_TYPE = 'application/vnd.atl.bitbucket.bulk+json';

/** Who pushes: a user (also the service user of a project/repository token) or an SSH access key. */
export interface PushActor {
  user?: User;
  accessKeyId?: number;
}

/** One ref update of a push, as a pre-receive hook sees it. */
export interface RefUpdate {
  ref: string;
  oldSha: string;
  newSha: string;
  /** For updates: whether `newSha` descends from `oldSha` (computed inside the hook). */
  fastForward: boolean;
}

export interface Violation {
  ref: string;
  type: RestrictionType;
  message: string;
}

const ZERO = /^0+$/;

const kindOf = (ref: string) =>
  ref.startsWith('refs/tags/') ? 'Tag' : 'Branch';

/**
 * The line Bitbucket's hook prints for a violated restriction. Only the `pull-request-only`
 * sentence is confirmed from real output (reference §3.4); the others follow its form.
 */
export function rejectionMessage(type: RestrictionType, ref: string): string {
  const what = `${kindOf(ref)} ${ref}`;
  switch (type) {
    case 'pull-request-only':
      return `${what} can only be modified through pull requests.`;
    case 'read-only':
      return `${what} is read-only.`;
    case 'no-deletes':
      return `${what} cannot be deleted.`;
    case 'fast-forward-only':
    default:
      return `${what} cannot be rewritten: only fast-forward changes are allowed (history rewriting is prevented).`;
  }
}

/** The text of the hook's rejection: the violated restrictions inside Bitbucket's banner. */
export function rejectionText(violations: Violation[]): string {
  const line = '-'.repeat(52);
  return [
    line,
    ...violations.map(v => v.message),
    'Check your branch permissions configuration with the project administrator.',
    line,
  ].join('\n');
}

/** Restrictions that apply to a repository: its own and its project's. */
export function restrictionsFor(state: BitbucketState, repo: Repo) {
  return state.restrictions.filter(r =>
    r.scope.type === 'REPOSITORY'
      ? r.scope.repoId === repo.id
      : r.scope.projectKey === repo.projectKey,
  );
}

function exempt(state: BitbucketState, r: Restriction, actor: PushActor) {
  if (actor.accessKeyId !== undefined)
    return r.accessKeyIds.includes(actor.accessKeyId);
  if (!actor.user) return false;
  if (r.users.includes(actor.user.slug)) return true;
  return state.groupsOf(actor.user).some(g => r.groups.includes(g));
}

/** What a push may not do: each ref update checked against the restrictions that match it. */
export function checkPush(
  state: BitbucketState,
  repo: Repo,
  actor: PushActor,
  updates: RefUpdate[],
): Violation[] {
  const rules = restrictionsFor(state, repo);
  if (rules.length === 0) return [];
  const head = state.headRef(repo);
  const out: Violation[] = [];
  for (const u of updates) {
    const created = ZERO.test(u.oldSha);
    const deleted = ZERO.test(u.newSha);
    for (const r of rules) {
      if (!refMatches(r.matcher, u.ref, head) || exempt(state, r, actor))
        continue;
      const violated =
        r.type === 'read-only' ||
        (r.type === 'no-deletes' && deleted) ||
        (r.type === 'pull-request-only' && !created && !deleted) ||
        (r.type === 'fast-forward-only' &&
          !created &&
          !deleted &&
          !u.fastForward);
      if (violated && !out.some(v => v.ref === u.ref && v.type === r.type)) {
        out.push({
          ref: u.ref,
          type: r.type,
          message: rejectionMessage(r.type, u.ref),
        });
      }
    }
  }
  return out;
}

/** Vetoes of a pull-request merge into `toRef` by `user`: `read-only` restrictions that do not exempt them. */
export function mergeVetoes(
  state: BitbucketState,
  repo: Repo,
  user: User,
  toRef: string,
) {
  const head = state.headRef(repo);
  return restrictionsFor(state, repo)
    .filter(
      r =>
        r.type === 'read-only' &&
        refMatches(r.matcher, toRef, head) &&
        !exempt(state, r, { user }),
    )
    .map(() => ({
      summaryMessage: 'Branch permissions prevent this merge',
      detailedMessage: `${rejectionMessage(
        'read-only',
        toRef,
      )} You are not permitted to merge pull requests into it.`,
    }));
}

/** A restriction as Bitbucket renders it (`RestRefRestriction`). */
export function renderRestriction(
  ctx: RestContext,
  r: Restriction,
): Record<string, unknown> {
  const state = ctx.state;
  const L = ctx.links();
  const resourceId =
    r.scope.type === 'REPOSITORY'
      ? r.scope.repoId!
      : state.projects.get(r.scope.projectKey)!.id;
  return {
    id: r.id,
    type: r.type,
    scope: { type: r.scope.type, resourceId },
    matcher: renderMatcher(r.matcher),
    users: r.users
      .map(u => state.user(u))
      .filter((u): u is User => !!u)
      .map(u => renderUser(u, L)),
    groups: [...r.groups],
    accessKeys: r.accessKeyIds
      .map(id => state.keys.get(id))
      .filter(k => !!k)
      .map(k => {
        const grant = state.keyGrants.find(
          g =>
            g.keyId === k!.id &&
            (r.scope.type === 'REPOSITORY'
              ? g.repoId === r.scope.repoId
              : g.projectKey === r.scope.projectKey ||
                state.repos.get(g.repoId ?? -1)?.projectKey ===
                  r.scope.projectKey),
        );
        return {
          key: renderKey(k!),
          ...(grant ? { permission: grant.permission } : {}),
        };
      }),
  };
}

/** Options of {@link addRestriction} (test helper and REST share it). */
export interface RestrictionInput {
  type: RestrictionType;
  matcher: { type: string; id: string } | Record<string, unknown>;
  users?: string[];
  groups?: string[];
  accessKeyIds?: number[];
}

type ValidRestriction = Omit<Restriction, 'id'>;

/** Validates a restriction request (400 naming the field). */
export function validateRestriction(
  state: BitbucketState,
  scope: Scope,
  input: RestrictionInput,
): ValidRestriction {
  if (!RESTRICTION_TYPES.includes(input.type))
    throw validation(
      'type',
      `The restriction type must be one of ${RESTRICTION_TYPES.join(', ')}.`,
    );
  const matcher = parseMatcher(input.matcher, 'matcher', true);
  const users = (input.users ?? []).map(name => {
    const u = state.user(name);
    if (!u) throw validation('users', `User "${name}" does not exist.`);
    return u.slug;
  });
  const groups = input.groups ?? [];
  for (const g of groups)
    if (!state.groups.has(g))
      throw validation('groups', `Group "${g}" does not exist.`);
  const accessKeyIds = input.accessKeyIds ?? [];
  for (const id of accessKeyIds) {
    const inScope = state.keyGrants.some(
      g =>
        g.keyId === id &&
        (scope.type === 'REPOSITORY'
          ? g.repoId === scope.repoId || g.projectKey === scope.projectKey
          : g.projectKey === scope.projectKey ||
            state.repos.get(g.repoId ?? -1)?.projectKey === scope.projectKey),
    );
    if (!inScope)
      throw validation(
        'accessKeys',
        `Access key ${id} is not an access key of this ${
          scope.type === 'REPOSITORY' ? 'repository' : 'project'
        }.`,
      );
  }
  const dedupe = <T>(xs: T[]) => [...new Set(xs)];
  return {
    type: input.type,
    matcher,
    scope,
    users: dedupe(users),
    groups: dedupe(groups),
    accessKeyIds: dedupe(accessKeyIds),
  };
}

/** Stores a validated restriction (same type and matcher in the same scope: updated in place). */
export function storeRestriction(
  state: BitbucketState,
  v: ValidRestriction,
): Restriction {
  const { matcher, scope } = v;
  const same = state.restrictions.find(
    r =>
      r.type === v.type &&
      r.matcher.type === matcher.type &&
      r.matcher.id === matcher.id &&
      r.scope.type === scope.type &&
      r.scope.projectKey === scope.projectKey &&
      r.scope.repoId === scope.repoId,
  );
  if (same) {
    same.users = v.users;
    same.groups = v.groups;
    same.accessKeyIds = v.accessKeyIds;
    return same;
  }
  const r: Restriction = { id: state.newRestrictionId(), ...v };
  state.restrictions.push(r);
  return r;
}

/** Validates and stores a restriction. */
export function addRestriction(
  state: BitbucketState,
  scope: Scope,
  input: RestrictionInput,
): Restriction {
  return storeRestriction(state, validateRestriction(state, scope, input));
}

const names = (xs: unknown): string[] =>
  Array.isArray(xs)
    ? xs.map(x => {
        if (typeof x === 'string') return x;
        const o = (x ?? {}) as Record<string, unknown>;
        return String(o.name ?? o.slug ?? '');
      })
    : [];

const keyIds = (xs: unknown): number[] =>
  Array.isArray(xs)
    ? xs.map(x => {
        if (typeof x === 'number') return x;
        if (typeof x === 'string') return Number(x);
        const o = (x ?? {}) as Record<string, unknown>;
        const k = (o.key ?? o) as Record<string, unknown>;
        return Number(k.id);
      })
    : [];

/** Reads one restriction request (`RestRestrictionRequest`: short and 9.x long field names). */
function inputOf(raw: unknown): RestrictionInput {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw validation(null, 'A restriction is required.');
  const o = raw as Record<string, unknown>;
  return {
    type: String(o.type ?? '') as RestrictionType,
    matcher: (o.matcher ?? {}) as Record<string, unknown>,
    users: [...names(o.users), ...names(o.userSlugs)],
    groups: [...names(o.groups), ...names(o.groupNames)],
    accessKeyIds: [...keyIds(o.accessKeys), ...keyIds(o.accessKeyIds)],
  };
}

/**
 * Resolves the `projects/{key}[/repos/{slug}]` start of a project- or repository-level path (404
 * for an unknown project or repository); `rest` is what follows it.
 */
export function projectOrRepoPath(
  ctx: RestContext,
  call: RestCall,
  seg: string[],
): { project: Project; repo: Repo | undefined; rest: string[] } {
  const [a, key, c, slug] = seg;
  if (a !== 'projects' || !key)
    throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
  const project: Project = ctx.projectOr404(key);
  if (c === 'repos' && slug)
    return {
      project,
      repo: ctx.repoOr404(project.key, slug),
      rest: seg.slice(4),
    };
  return { project, repo: undefined, rest: seg.slice(2) };
}

/**
 * `/rest/branch-permissions/2.0/projects/{key}[/repos/{slug}]/restrictions[/{id}]`: create one
 * (JSON object) or many (`application/vnd.atl.bitbucket.bulk+json`, an array), list (paged;
 * `type`, `matcherType`, `matcherId`), get and delete. Repository level needs REPO_ADMIN,
 * project level PROJECT_ADMIN; anonymous callers get 401.
 */
export async function branchPermissions(
  ctx: RestContext,
  call: RestCall,
  seg: string[],
): Promise<RestResult> {
  const { project, repo, rest } = projectOrRepoPath(ctx, call, seg);
  if (rest[0] !== 'restrictions' || rest.length > 2)
    throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
  if (!call.principal)
    throw notPermitted(
      'Authentication is required to manage branch permissions',
    );
  if (
    ctx.opts.refuseOAuthOnBranchPermissions &&
    call.principal.token?.kind === 'oauth'
  )
    throw notPermitted('OAuth 2.0 applications cannot access this resource');
  const need: Level = 3;
  if (repo) ctx.needRepo(call, repo, need, 'manage branch permissions');
  else ctx.needProject(call, project, need, 'manage branch permissions');
  const scope: Scope = repo
    ? { type: 'REPOSITORY', projectKey: project.key, repoId: repo.id }
    : { type: 'PROJECT', projectKey: project.key };
  const inScope = (r: Restriction) =>
    r.scope.type === scope.type &&
    r.scope.projectKey === scope.projectKey &&
    r.scope.repoId === scope.repoId;
  const where = { projectKey: project.key, slug: repo?.slug };
  if (rest.length === 1) {
    if (call.method === 'GET') {
      const types = call.query.getAll('type');
      const matcherType = call.query.get('matcherType');
      const matcherId = call.query.get('matcherId');
      if (matcherId && !matcherType)
        throw validation(
          'matcherId',
          'matcherId requires the matcherType parameter.',
        );
      const values = ctx.state.restrictions
        .filter(inScope)
        .filter(r => types.length === 0 || types.includes(r.type))
        .filter(
          r => !matcherType || r.matcher.type === matcherType.toUpperCase(),
        )
        .filter(r => {
          if (!matcherId) return true;
          if (r.matcher.id === matcherId) return true;
          return (
            r.matcher.type === 'BRANCH' &&
            r.matcher.id === `refs/heads/${matcherId}`
          );
        })
        .sort((x, y) => x.id - y.id)
        .map(r => renderRestriction(ctx, r));
      return { status: 200, body: ctx.page(values, call.query) };
    }
    if (call.method === 'POST') {
      const bulk = (call.contentType ?? '')
        .toLowerCase()
        .startsWith(BULK_CONTENT_TYPE);
      if (bulk !== Array.isArray(call.body))
        throw validation(
          null,
          bulk
            ? `A ${BULK_CONTENT_TYPE} request carries a JSON array of restrictions.`
            : `Send one restriction as application/json, or an array as ${BULK_CONTENT_TYPE}.`,
        );
      // validate all before storing any
      const valid = (bulk ? (call.body as unknown[]) : [call.body])
        .map(inputOf)
        .map(i => validateRestriction(ctx.state, scope, i));
      const created = valid.map(v => storeRestriction(ctx.state, v));
      for (const r of created)
        ctx.state.record(call.principal, 'RESTRICTION_CREATED', {
          ...where,
          details: { id: r.id, type: r.type, matcher: r.matcher.id },
        });
      const rendered = created.map(r => renderRestriction(ctx, r));
      return { status: 200, body: bulk ? rendered : rendered[0] };
    }
    return ctx.notAllowed(call);
  }
  const id = Number(rest[1]);
  const r = ctx.state.restrictions.find(x => x.id === id && inScope(x));
  if (!r)
    throw new RestError(
      404,
      `No restriction with ID ${rest[1]} exists for this ${
        repo ? 'repository' : 'project'
      }.`,
      EX.noSuchRestriction,
    );
  if (call.method === 'GET')
    return { status: 200, body: renderRestriction(ctx, r) };
  if (call.method === 'DELETE') {
    ctx.state.restrictions = ctx.state.restrictions.filter(x => x !== r);
    ctx.state.record(call.principal, 'RESTRICTION_DELETED', {
      ...where,
      details: { id: r.id, type: r.type, matcher: r.matcher.id },
    });
    return { status: 204 };
  }
  return ctx.notAllowed(call);
}
