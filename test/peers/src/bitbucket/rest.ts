import crypto from 'node:crypto';
import {
  createBranch,
  deleteBranch,
  git,
  listBranches,
  logCommits,
  resolveCommit,
  setHeadRefSync,
} from '../git/cli';
import { defaultReviewers } from './defaultReviewers';
import { EX, notPermitted, RestError, validation } from './errors';
import {
  BitbucketState,
  KeyGrant,
  Level,
  levelOf,
  Principal,
  PROJECT_PERMISSIONS,
  Project,
  ProjectPermission,
  Repo,
  REPO_NAME_RE,
  REPO_PERMISSIONS,
  RepoPermission,
  slugify,
  SshKey,
} from './model';
import { PullRequests } from './pullRequests';
import {
  LinkContext,
  renderBranch,
  renderCommit,
  renderKey,
  renderProject,
  renderRepo,
  renderUser,
} from './render';
import { branchPermissions, checkPush } from './restrictions';

/** A parsed REST call. */
export interface RestCall {
  method: string;
  /** Path below the context path, e.g. `/rest/api/1.0/projects`. */
  path: string;
  query: URLSearchParams;
  body: unknown;
  principal?: Principal;
  /** The request's Content-Type (bulk requests are told apart by it). */
  contentType?: string;
}

export interface RestResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Behaviour switches of the double. */
export interface RestOptions {
  /** What `GET …/branches/default` answers for a repository whose default branch does not exist (empty repository). */
  emptyDefaultBranchStatus: 404 | 204;
  /** Largest page size honoured (Bitbucket's default maximum is 1000). */
  maxPageLimit: number;
  /** Bitbucket version reported by application-properties. */
  version: string;
  /** Refuse OAuth 2.0 tokens on `/rest/branch-permissions` (as some 8.x docs say Bitbucket does). */
  refuseOAuthOnBranchPermissions?: boolean;
}

/** What the REST areas (pull requests, branch permissions, default reviewers) share. */
export interface RestContext {
  readonly state: BitbucketState;
  readonly opts: RestOptions;
  links(): LinkContext;
  page<T>(all: T[], q: URLSearchParams): ReturnType<typeof page<T>>;
  notAllowed(call: RestCall): never;
  requireLicensed(call: RestCall): Principal;
  projectOr404(key: string): Project;
  repoOr404(key: string, slug: string): Repo;
  needRepo(call: RestCall, repo: Repo, level: Level, what: string): void;
  needProject(
    call: RestCall,
    project: Project,
    level: Level,
    what: string,
  ): void;
}

const DEFAULT_LIMIT = 25;

/** Bitbucket's paged response: `{size, limit, isLastPage, values, start, nextPageStart?}`. */
export function page<T>(all: T[], query: URLSearchParams, maxLimit: number) {
  const rawStart = Number(query.get('start') ?? 0);
  const rawLimit = Number(query.get('limit') ?? DEFAULT_LIMIT);
  const start =
    Number.isFinite(rawStart) && rawStart > 0 ? Math.floor(rawStart) : 0;
  const limit =
    Number.isFinite(rawLimit) && rawLimit > 0
      ? Math.min(Math.floor(rawLimit), maxLimit)
      : DEFAULT_LIMIT;
  const values = all.slice(start, start + limit);
  const isLastPage = start + values.length >= all.length;
  return {
    size: values.length,
    limit,
    isLastPage,
    values,
    start,
    ...(isLastPage ? {} : { nextPageStart: start + values.length }),
  };
}

function pageParams(query: URLSearchParams, maxLimit: number) {
  const rawStart = Number(query.get('start') ?? 0);
  const rawLimit = Number(query.get('limit') ?? DEFAULT_LIMIT);
  return {
    start: Number.isFinite(rawStart) && rawStart > 0 ? Math.floor(rawStart) : 0,
    limit:
      Number.isFinite(rawLimit) && rawLimit > 0
        ? Math.min(Math.floor(rawLimit), maxLimit)
        : DEFAULT_LIMIT,
  };
}

const asObject = (body: unknown): Record<string, unknown> =>
  body && typeof body === 'object' && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : {};

async function isValidBranchName(name: string): Promise<boolean> {
  if (!name || name.startsWith('-')) return false;
  const r = await git(['check-ref-format', '--branch', name], { check: false });
  return r.code === 0;
}

const branchName = (ref: string) => ref.replace(/^refs\/heads\//, '');

/** The REST API of the Bitbucket Server / Data Center double. */
export class BitbucketRest implements RestContext {
  readonly pullRequests: PullRequests;

  constructor(
    readonly state: BitbucketState,
    readonly links: () => LinkContext,
    readonly opts: RestOptions,
  ) {
    this.pullRequests = new PullRequests(this);
  }

  async handle(call: RestCall): Promise<RestResult> {
    const m =
      /^\/rest\/(api|keys|branch-utils|branch-permissions|default-reviewers)\/(1\.0|2\.0|latest)(\/.*)?$/.exec(
        call.path,
      );
    const versions: Record<string, string[]> = {
      api: ['1.0', 'latest'],
      keys: ['1.0', 'latest'],
      'branch-utils': ['1.0', 'latest'],
      'branch-permissions': ['2.0', 'latest'],
      'default-reviewers': ['1.0', 'latest'],
    };
    if (!m || !versions[m[1]].includes(m[2]))
      throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
    const api = m[1];
    const seg = (m[3] ?? '/')
      .split('/')
      .filter(Boolean)
      .map(decodeURIComponent);
    if (api === 'api') return this.api(call, seg);
    if (api === 'keys') return this.keys(call, seg);
    if (api === 'branch-permissions') return branchPermissions(this, call, seg);
    if (api === 'default-reviewers') return defaultReviewers(this, call, seg);
    return this.branchUtils(call, seg);
  }

  // ---------- helpers ----------
  notAllowed(call: RestCall): never {
    throw new RestError(
      405,
      `Method ${call.method} is not allowed for ${call.path}`,
      EX.methodNotAllowed,
    );
  }

  requireLicensed(call: RestCall): Principal {
    if (!call.principal || !this.state.isLicensed(call.principal.user))
      throw notPermitted();
    return call.principal;
  }

  projectOr404(key: string): Project {
    const p = this.state.project(key);
    if (!p)
      throw new RestError(
        404,
        `Project ${key} does not exist.`,
        EX.noSuchProject,
      );
    return p;
  }

  repoOr404(key: string, slug: string): Repo {
    const p = this.projectOr404(key);
    const r = this.state.repo(p.key, slug);
    if (!r)
      throw new RestError(
        404,
        `Repository ${p.key}/${slug} does not exist.`,
        EX.noSuchRepository,
      );
    return r;
  }

  needRepo(call: RestCall, repo: Repo, level: Level, what: string): void {
    if (this.state.repoLevel(call.principal, repo) < level) {
      throw notPermitted(
        `You are not permitted to ${what} in repository ${repo.projectKey}/${repo.slug}`,
      );
    }
  }

  needProject(
    call: RestCall,
    project: Project,
    level: Level,
    what: string,
  ): void {
    if (this.state.projectLevel(call.principal, project) < level) {
      throw notPermitted(
        `You are not permitted to ${what} in project ${project.key}`,
      );
    }
  }

  page<T>(all: T[], q: URLSearchParams) {
    return page(all, q, this.opts.maxPageLimit);
  }

  // ---------- /rest/api/1.0 ----------
  private async api(call: RestCall, seg: string[]): Promise<RestResult> {
    const [a, b, c, d, e, f, g] = seg;
    const M = call.method;
    const L = this.links();
    if (a === 'application-properties' && seg.length === 1) {
      if (M !== 'GET') this.notAllowed(call);
      return {
        status: 200,
        body: {
          version: this.opts.version,
          buildNumber: this.opts.version.replace(/\D/g, '').padEnd(7, '0'),
          buildDate: '1735689600000',
          displayName: 'Bitbucket',
        },
      };
    }
    if (a === 'users') {
      this.requireLicensed(call);
      if (seg.length === 1) {
        if (M !== 'GET') this.notAllowed(call);
        const filter = (call.query.get('filter') ?? '').toLowerCase();
        const users = [...this.state.users.values()]
          .filter(
            u =>
              !filter ||
              u.slug.includes(filter) ||
              u.displayName.toLowerCase().includes(filter) ||
              u.emailAddress.toLowerCase().includes(filter),
          )
          .sort((x, y) => x.slug.localeCompare(y.slug))
          .map(u => renderUser(u, L));
        return { status: 200, body: this.page(users, call.query) };
      }
      if (seg.length === 2) {
        if (M !== 'GET') this.notAllowed(call);
        const u = this.state.user(b);
        if (!u)
          throw new RestError(404, `User ${b} does not exist.`, EX.noSuchUser);
        const size = Number(call.query.get('avatarSize'));
        return {
          status: 200,
          body: {
            ...renderUser(u, L),
            // server-relative, as Bitbucket answers when asked for an avatar size
            ...(size > 0
              ? {
                  avatarUrl: `${new URL(L.baseUrl).pathname.replace(
                    /\/$/,
                    '',
                  )}/users/${u.slug}/avatar.png?s=${Math.floor(size)}`,
                }
              : {}),
          },
        };
      }
    }
    if (a === 'repos' && seg.length === 1) {
      if (M !== 'GET') this.notAllowed(call);
      return {
        status: 200,
        body: this.page(this.searchRepos(call), call.query),
      };
    }
    if (a !== 'projects')
      throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
    if (seg.length === 1) {
      if (M === 'GET')
        return {
          status: 200,
          body: this.page(this.listProjects(call), call.query),
        };
      if (M === 'POST') return this.createProject(call);
      this.notAllowed(call);
    }
    const project = this.projectOr404(b);
    if (seg.length === 2) {
      if (M !== 'GET') this.notAllowed(call);
      if (!this.state.canSeeProject(call.principal, project))
        throw notPermitted();
      return { status: 200, body: renderProject(project, this.state, L) };
    }
    if (
      c === 'permissions' &&
      seg.length === 4 &&
      (d === 'groups' || d === 'users')
    ) {
      return this.projectPermissions(call, project, d);
    }
    if (c !== 'repos')
      throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
    if (seg.length === 3) {
      if (M === 'GET') {
        if (!this.state.canSeeProject(call.principal, project))
          throw notPermitted();
        const repos = this.state
          .reposOf(project)
          .filter(r => this.state.repoLevel(call.principal, r) >= 1)
          .map(r => renderRepo(r, this.state, L));
        return { status: 200, body: this.page(repos, call.query) };
      }
      if (M === 'POST') return this.createRepo(call, project);
      this.notAllowed(call);
    }
    const repo = this.state.repo(project.key, d);
    if (!repo)
      throw new RestError(
        404,
        `Repository ${project.key}/${d} does not exist.`,
        EX.noSuchRepository,
      );
    if (seg.length === 4) {
      if (M === 'GET') {
        this.needRepo(call, repo, 1, 'view the repository');
        return { status: 200, body: renderRepo(repo, this.state, L) };
      }
      if (M === 'PUT') return this.updateRepo(call, repo);
      if (M === 'DELETE') {
        this.needRepo(call, repo, 3, 'delete the repository');
        this.state.deleteRepo(repo);
        this.state.record(call.principal, 'REPO_DELETED', {
          projectKey: repo.projectKey,
          slug: repo.slug,
        });
        return { status: 202 };
      }
      this.notAllowed(call);
    }
    if (e === 'default-branch' && seg.length === 5)
      return this.defaultBranch(call, repo, false);
    if (e === 'branches' && f === 'default' && seg.length === 6)
      return this.defaultBranch(call, repo, true);
    if (e === 'branches' && seg.length === 5) {
      if (M === 'GET') return this.listBranches(call, repo);
      if (M === 'POST') return this.createBranch(call, repo);
      this.notAllowed(call);
    }
    if (e === 'commits' && seg.length === 5) {
      if (M !== 'GET') this.notAllowed(call);
      return this.listCommits(call, repo);
    }
    if (e === 'commits' && seg.length === 6) {
      if (M !== 'GET') this.notAllowed(call);
      this.needRepo(call, repo, 1, 'view commits');
      const id = await resolveCommit(repo.path, f);
      if (!id)
        throw new RestError(
          404,
          `Commit '${f}' does not exist in repository '${repo.slug}'.`,
          EX.noSuchCommit,
        );
      const [c1] = await logCommits(repo.path, { until: id, max: 1 });
      return { status: 200, body: renderCommit(c1) };
    }
    if (
      e === 'permissions' &&
      (f === 'groups' || f === 'users') &&
      seg.length === 6
    ) {
      return this.repoPermissions(call, repo, f);
    }
    if (e === 'pull-requests')
      return this.pullRequests.handle(call, repo, seg.slice(5));
    void g;
    throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
  }

  private listProjects(call: RestCall) {
    const name = (call.query.get('name') ?? '').toLowerCase();
    const perm = call.query.get('permission') as ProjectPermission | null;
    return [...this.state.projects.values()]
      .filter(p => p.type === 'NORMAL')
      .filter(p => this.state.canSeeProject(call.principal, p))
      .filter(p => !name || p.name.toLowerCase().includes(name))
      .filter(
        p =>
          !perm || this.state.projectLevel(call.principal, p) >= levelOf(perm),
      )
      .sort(
        (x, y) => x.name.localeCompare(y.name) || x.key.localeCompare(y.key),
      )
      .map(p => renderProject(p, this.state, this.links()));
  }

  private searchRepos(call: RestCall) {
    const name = (call.query.get('name') ?? '').toLowerCase();
    const projectName = (call.query.get('projectname') ?? '').toLowerCase();
    const perm = call.query.get('permission') as RepoPermission | null;
    return [...this.state.repos.values()]
      .filter(
        r =>
          this.state.repoLevel(call.principal, r) >=
          Math.max(1, perm ? levelOf(perm) : 1),
      )
      .filter(r => !name || r.name.toLowerCase().includes(name))
      .filter(
        r =>
          !projectName ||
          this.state.projects
            .get(r.projectKey)!
            .name.toLowerCase()
            .includes(projectName),
      )
      .sort(
        (x, y) =>
          x.projectKey.localeCompare(y.projectKey) ||
          x.name.localeCompare(y.name),
      )
      .map(r => renderRepo(r, this.state, this.links()));
  }

  private createProject(call: RestCall): RestResult {
    if (!this.state.canCreateProject(call.principal))
      throw notPermitted('You are not permitted to create projects');
    const body = asObject(call.body);
    const key = typeof body.key === 'string' ? body.key : '';
    const name = typeof body.name === 'string' ? body.name.trim() : '';
    if (!/^[A-Za-z][A-Za-z0-9_]{0,127}$/.test(key)) {
      throw validation(
        'key',
        'Project keys must start with a letter and may only consist of ASCII letters, numbers and underscores (_).',
      );
    }
    if (!name) throw validation('name', 'The project name is required.');
    if (this.state.projects.has(key.toUpperCase()))
      throw new RestError(
        409,
        'This project key is already taken.',
        null,
        'key',
      );
    if (
      [...this.state.projects.values()].some(
        p => p.name.toLowerCase() === name.toLowerCase(),
      )
    ) {
      throw new RestError(
        409,
        'This project name is already taken.',
        null,
        'name',
      );
    }
    const p = this.state.addProject({
      key,
      name,
      description:
        typeof body.description === 'string' ? body.description : undefined,
      public: body.public === true,
    });
    this.state.projectUserPerms.set(
      p.key,
      new Map([[call.principal!.user.slug, 'PROJECT_ADMIN']]),
    );
    this.state.record(call.principal, 'PROJECT_CREATED', { projectKey: p.key });
    return { status: 201, body: renderProject(p, this.state, this.links()) };
  }

  private async createRepo(
    call: RestCall,
    project: Project,
  ): Promise<RestResult> {
    if (!this.state.canCreateRepo(call.principal, project)) {
      throw notPermitted(
        `You are not permitted to create repositories in project ${project.key}`,
      );
    }
    const body = asObject(call.body);
    const name = typeof body.name === 'string' ? body.name.trim() : '';
    if (!name) throw validation('name', 'The repository name is required.');
    if (!REPO_NAME_RE.test(name)) {
      throw validation(
        'name',
        'Repository names are limited to 128 characters. They must start with a letter or number and may contain spaces, hyphens, underscores, and periods.',
      );
    }
    if (body.scmId !== undefined && body.scmId !== 'git')
      throw validation(
        'scmId',
        `The SCM "${String(body.scmId)}" is not supported.`,
      );
    let defaultBranch: string | undefined;
    if (
      body.defaultBranch !== undefined &&
      body.defaultBranch !== null &&
      body.defaultBranch !== ''
    ) {
      defaultBranch =
        typeof body.defaultBranch === 'string'
          ? branchName(body.defaultBranch)
          : '';
      if (!(await isValidBranchName(defaultBranch)))
        throw validation(
          'defaultBranch',
          `"${String(body.defaultBranch)}" is not a valid branch name.`,
        );
    }
    if (body.public !== undefined && typeof body.public !== 'boolean')
      throw validation('public', 'public must be a boolean.');
    const slug = slugify(name);
    if (this.state.repo(project.key, slug)) {
      throw new RestError(
        409,
        'This repository URL is already taken.',
        null,
        'name',
      );
    }
    const repo = this.state.createRepo(project, {
      name,
      slug,
      description:
        typeof body.description === 'string' ? body.description : undefined,
      public: body.public === true,
      forkable: body.forkable !== false,
      defaultBranch,
    });
    const creator = call.principal!.user;
    if (creator.type !== 'SERVICE') {
      repo.createdBy = creator.name;
      // REPO_CREATE users become admins of the repositories they create
      if (this.state.repoLevel(call.principal, repo) < 3) {
        if (!this.state.repoUserPerms.has(repo.id))
          this.state.repoUserPerms.set(repo.id, new Map());
        this.state.repoUserPerms.get(repo.id)!.set(creator.slug, 'REPO_ADMIN');
      }
    }
    this.state.record(call.principal, 'REPO_CREATED', {
      projectKey: project.key,
      slug: repo.slug,
    });
    return { status: 201, body: renderRepo(repo, this.state, this.links()) };
  }

  private updateRepo(call: RestCall, repo: Repo): RestResult {
    this.needRepo(call, repo, 3, 'update the repository');
    const body = asObject(call.body);
    if (typeof body.name === 'string' && slugify(body.name) !== repo.slug) {
      throw validation(
        'name',
        'The Bitbucket double does not support renaming repositories (slug change).',
      );
    }
    if (typeof body.name === 'string') repo.name = body.name.trim();
    if (typeof body.description === 'string')
      repo.description = body.description;
    if (typeof body.public === 'boolean') repo.public = body.public;
    if (typeof body.forkable === 'boolean') repo.forkable = body.forkable;
    return { status: 200, body: renderRepo(repo, this.state, this.links()) };
  }

  private async defaultBranch(
    call: RestCall,
    repo: Repo,
    legacy: boolean,
  ): Promise<RestResult> {
    if (call.method === 'GET') {
      this.needRepo(call, repo, 1, 'view the default branch');
      const ref = this.state.headRef(repo);
      const name = branchName(ref);
      if (!legacy)
        return {
          status: 200,
          body: { id: ref, displayId: name, type: 'BRANCH' },
        };
      const sha = await resolveCommit(repo.path, ref);
      if (!sha) {
        if (this.opts.emptyDefaultBranchStatus === 204) return { status: 204 };
        throw new RestError(
          404,
          `${ref} is set as the default branch, but this branch does not exist`,
          EX.noDefaultBranch,
        );
      }
      return { status: 200, body: renderBranch(name, sha, true) };
    }
    if (call.method === 'PUT') {
      this.needRepo(call, repo, 3, 'change the default branch');
      const id = asObject(call.body).id;
      const name = typeof id === 'string' ? branchName(id) : '';
      if (!(await isValidBranchName(name)))
        throw validation('id', `"${String(id)}" is not a valid branch name.`);
      setHeadRefSync(repo.path, `refs/heads/${name}`);
      return { status: 204 };
    }
    return this.notAllowed(call);
  }

  private async listBranches(call: RestCall, repo: Repo): Promise<RestResult> {
    this.needRepo(call, repo, 1, 'view branches');
    const head = this.state.headRef(repo);
    const filter = (call.query.get('filterText') ?? '').toLowerCase();
    const orderBy = (call.query.get('orderBy') ?? 'MODIFICATION').toUpperCase();
    const { stdout } = await git([
      '-C',
      repo.path,
      'for-each-ref',
      '--sort=-committerdate',
      '--format=%(refname)%09%(objectname)%09%(committerdate:unix)',
      'refs/heads/',
    ]);
    let branches = stdout
      .split('\n')
      .filter(Boolean)
      .map(l => l.split('\t'))
      .map(([ref, sha]) => ({
        name: branchName(ref),
        sha,
        isDefault: ref === head,
      }))
      .filter(b => !filter || b.name.toLowerCase().includes(filter));
    if (orderBy === 'ALPHABETICAL')
      branches = branches.sort((x, y) => x.name.localeCompare(y.name));
    const boost = call.query.get('boostMatches') === 'true' && filter;
    if (boost)
      branches = [
        ...branches.filter(b => b.name.toLowerCase() === filter),
        ...branches.filter(b => b.name.toLowerCase() !== filter),
      ];
    return {
      status: 200,
      body: this.page(
        branches.map(b => renderBranch(b.name, b.sha, b.isDefault)),
        call.query,
      ),
    };
  }

  private async createBranch(call: RestCall, repo: Repo): Promise<RestResult> {
    this.needRepo(call, repo, 2, 'create branches');
    const body = asObject(call.body);
    const name = typeof body.name === 'string' ? branchName(body.name) : '';
    if (!(await isValidBranchName(name)))
      throw validation(
        'name',
        `"${String(body.name)}" is not a valid branch name.`,
      );
    const startPoint =
      typeof body.startPoint === 'string' ? body.startPoint : '';
    if (!startPoint)
      throw validation(
        'startPoint',
        'A start point is required to create a branch.',
      );
    const sha = await resolveCommit(repo.path, startPoint);
    if (!sha)
      throw new RestError(
        404,
        `Commit '${startPoint}' does not exist in repository '${repo.slug}'.`,
        EX.noSuchCommit,
      );
    if ((await listBranches(repo.path)).some(b => b.name === name)) {
      throw new RestError(
        409,
        `Branch '${name}' already exists in repository '${repo.slug}'.`,
        EX.duplicateRef,
      );
    }
    this.refPermitted(call, repo, `refs/heads/${name}`, '0'.repeat(40), sha);
    if (!(await createBranch(repo.path, name, sha))) {
      throw new RestError(
        409,
        `Branch '${name}' already exists in repository '${repo.slug}'.`,
        EX.duplicateRef,
      );
    }
    return {
      status: 200,
      body: renderBranch(
        name,
        sha,
        this.state.headRef(repo) === `refs/heads/${name}`,
      ),
    };
  }

  /** Branch permissions apply to REST branch changes too: 401 naming the restriction. */
  private refPermitted(
    call: RestCall,
    repo: Repo,
    ref: string,
    oldSha: string,
    newSha: string,
  ): void {
    const v = checkPush(this.state, repo, { user: call.principal?.user }, [
      { ref, oldSha, newSha, fastForward: true },
    ]);
    if (v.length) throw notPermitted(v.map(x => x.message).join(' '));
  }

  private async listCommits(call: RestCall, repo: Repo): Promise<RestResult> {
    this.needRepo(call, repo, 1, 'view commits');
    const untilParam = call.query.get('until');
    const until = untilParam || this.state.headRef(repo);
    const untilSha = await resolveCommit(repo.path, until);
    if (!untilSha) {
      if (!untilParam) return { status: 200, body: this.page([], call.query) };
      throw new RestError(
        404,
        `Commit '${untilParam}' does not exist in repository '${repo.slug}'.`,
        EX.noSuchCommit,
      );
    }
    const sinceParam = call.query.get('since');
    let sinceSha: string | undefined;
    if (sinceParam) {
      sinceSha = await resolveCommit(repo.path, sinceParam);
      if (!sinceSha)
        throw new RestError(
          404,
          `Commit '${sinceParam}' does not exist in repository '${repo.slug}'.`,
          EX.noSuchCommit,
        );
    }
    const { start, limit } = pageParams(call.query, this.opts.maxPageLimit);
    const commits = await logCommits(repo.path, {
      until: untilSha,
      since: sinceSha,
      skip: start,
      max: limit + 1,
      path: call.query.get('path') || undefined,
    });
    const values = commits.slice(0, limit).map(renderCommit);
    const isLastPage = commits.length <= limit;
    return {
      status: 200,
      body: {
        size: values.length,
        limit,
        isLastPage,
        values,
        start,
        ...(isLastPage ? {} : { nextPageStart: start + values.length }),
      },
    };
  }

  // ---------- permissions ----------
  private permissionsList<P extends string>(
    call: RestCall,
    kind: 'groups' | 'users',
    entries: Map<string, P> | undefined,
  ) {
    const filter = (call.query.get('filter') ?? '').toLowerCase();
    const L = this.links();
    const values = [...(entries ?? new Map<string, P>()).entries()]
      .filter(([who]) => !filter || who.toLowerCase().includes(filter))
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([who, permission]) =>
        kind === 'groups'
          ? { group: { name: who }, permission }
          : { user: renderUser(this.state.user(who)!, L), permission },
      );
    return { status: 200, body: this.page(values, call.query) };
  }

  private permissionsChange<P extends string>(
    call: RestCall,
    kind: 'groups' | 'users',
    allowed: readonly P[],
    get: () => Map<string, P>,
  ): RestResult {
    const names = call.query.getAll('name');
    if (call.method === 'PUT') {
      const permission = call.query.get('permission') as P | null;
      if (!permission || !allowed.includes(permission)) {
        throw validation(
          'permission',
          `The permission must be one of ${allowed.join(', ')}.`,
        );
      }
      if (names.length === 0)
        throw validation(
          'name',
          `At least one ${
            kind === 'groups' ? 'group' : 'user'
          } name is required.`,
        );
      const keys = names.map(n => {
        if (kind === 'groups') {
          if (!this.state.groups.has(n))
            throw new RestError(
              404,
              `Group ${n} does not exist.`,
              EX.noSuchGroup,
            );
          return n;
        }
        const u = this.state.user(n);
        if (!u)
          throw new RestError(404, `User ${n} does not exist.`, EX.noSuchUser);
        return u.slug;
      });
      const m = get();
      for (const k of keys) m.set(k, permission);
      return { status: 204 };
    }
    if (call.method === 'DELETE') {
      const name = call.query.get('name');
      if (!name)
        throw validation(
          'name',
          `A ${kind === 'groups' ? 'group' : 'user'} name is required.`,
        );
      get().delete(kind === 'groups' ? name : name.toLowerCase());
      return { status: 204 };
    }
    return this.notAllowed(call);
  }

  private projectPermissions(
    call: RestCall,
    project: Project,
    kind: 'groups' | 'users',
  ): RestResult {
    this.needProject(call, project, 3, 'administer permissions');
    return this.permissions(
      call,
      kind,
      PROJECT_PERMISSIONS,
      kind === 'groups'
        ? this.state.projectGroupPerms
        : this.state.projectUserPerms,
      project.key,
    );
  }

  private repoPermissions(
    call: RestCall,
    repo: Repo,
    kind: 'groups' | 'users',
  ): RestResult {
    this.needRepo(call, repo, 3, 'administer permissions');
    return this.permissions(
      call,
      kind,
      REPO_PERMISSIONS,
      kind === 'groups' ? this.state.repoGroupPerms : this.state.repoUserPerms,
      repo.id,
    );
  }

  /** GET lists, PUT/DELETE change the grants of `store` at `key` (created on first change). */
  private permissions<K, P extends string>(
    call: RestCall,
    kind: 'groups' | 'users',
    allowed: readonly P[],
    store: Map<K, Map<string, P>>,
    key: K,
  ): RestResult {
    if (call.method === 'GET')
      return this.permissionsList(call, kind, store.get(key));
    return this.permissionsChange<P>(call, kind, allowed, () => {
      if (!store.has(key)) store.set(key, new Map());
      return store.get(key)!;
    });
  }

  // ---------- /rest/keys/1.0 ----------
  private async keys(call: RestCall, seg: string[]): Promise<RestResult> {
    const [a, key, c, slug, e, id, g, perm] = seg;
    if (a !== 'projects' || !key)
      throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
    const project = this.projectOr404(key);
    if (c === 'ssh') {
      // project access keys
      return this.accessKeys(call, { project }, seg.slice(3));
    }
    if (c === 'repos' && slug && e === 'ssh') {
      const repo = this.repoOr404(project.key, slug);
      void g;
      void perm;
      void id;
      return this.accessKeys(call, { project, repo }, seg.slice(5));
    }
    throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
  }

  private renderGrant(g: KeyGrant) {
    const k = this.state.keys.get(g.keyId)!;
    const L = this.links();
    if (g.repoId !== undefined) {
      return {
        key: renderKey(k),
        repository: renderRepo(this.state.repos.get(g.repoId)!, this.state, L),
        permission: g.permission,
      };
    }
    return {
      key: renderKey(k),
      project: renderProject(
        this.state.projects.get(g.projectKey!)!,
        this.state,
        L,
      ),
      permission: g.permission,
    };
  }

  private async accessKeys(
    call: RestCall,
    target: { project: Project; repo?: Repo },
    rest: string[],
  ): Promise<RestResult> {
    const { project, repo } = target;
    const requireAdmin = () =>
      repo
        ? this.needRepo(call, repo, 3, 'manage access keys')
        : this.needProject(call, project, 3, 'manage access keys');
    const grants = () =>
      this.state.keyGrants.filter(g =>
        repo
          ? g.repoId === repo.id
          : g.projectKey === project.key && g.repoId === undefined,
      );
    const allowed = repo
      ? (['REPO_READ', 'REPO_WRITE'] as const)
      : (['PROJECT_READ', 'PROJECT_WRITE'] as const);
    const M = call.method;
    if (rest.length === 0) {
      requireAdmin();
      if (M === 'GET') {
        const filter = (call.query.get('filter') ?? '').toLowerCase();
        const values = grants()
          .filter(
            g =>
              !filter ||
              this.state.keys
                .get(g.keyId)!
                .label.toLowerCase()
                .includes(filter),
          )
          .sort((x, y) => x.keyId - y.keyId)
          .map(g => this.renderGrant(g));
        return { status: 200, body: this.page(values, call.query) };
      }
      if (M === 'POST') {
        const body = asObject(call.body);
        const k = asObject(body.key);
        const permission = body.permission as string;
        if (!(allowed as readonly string[]).includes(permission)) {
          throw validation(
            'permission',
            `The permission must be one of ${allowed.join(', ')}.`,
          );
        }
        const text = typeof k.text === 'string' ? k.text : '';
        const parsed = parsePublicKey(text);
        if (!parsed)
          throw new RestError(
            400,
            'The SSH key is invalid. Please check the key text and try again.',
            EX.invalidSshKey,
            'text',
          );
        const label =
          typeof k.label === 'string' && k.label.trim()
            ? k.label.trim()
            : parsed.comment;
        let sshKey = this.state.keyByBlob(parsed.blob);
        if (sshKey && grants().some(g => g.keyId === sshKey!.id)) {
          throw new RestError(
            409,
            `This SSH key is already an access key for ${
              repo
                ? `repository ${project.key}/${repo.slug}`
                : `project ${project.key}`
            }.`,
            EX.duplicateSshKey,
          );
        }
        if (!sshKey) {
          sshKey = {
            id: this.state.newKeyId(),
            text: [parsed.type, parsed.blob, label].filter(Boolean).join(' '),
            label,
            type: parsed.type,
            blob: parsed.blob,
            createdDate: Date.now(),
          } satisfies SshKey;
          this.state.keys.set(sshKey.id, sshKey);
        }
        const createdBy =
          call.principal!.user.type === 'SERVICE'
            ? undefined
            : call.principal!.user.name;
        const grant: KeyGrant = repo
          ? {
              keyId: sshKey.id,
              repoId: repo.id,
              permission: permission as RepoPermission,
              createdBy,
            }
          : {
              keyId: sshKey.id,
              projectKey: project.key,
              permission: permission as ProjectPermission,
              createdBy,
            };
        this.state.keyGrants.push(grant);
        this.state.record(call.principal, 'ACCESS_KEY_ADDED', {
          projectKey: project.key,
          slug: repo?.slug,
          details: {
            keyId: sshKey.id,
            label: sshKey.label,
            permission,
          },
        });
        return { status: 201, body: this.renderGrant(grant) };
      }
      this.notAllowed(call);
    }
    const keyId = Number(rest[0]);
    requireAdmin();
    const grant = grants().find(g => g.keyId === keyId);
    if (!grant)
      throw new RestError(
        404,
        `No SSH access key with ID ${rest[0]} exists for this ${
          repo ? 'repository' : 'project'
        }.`,
        EX.noSuchSshKey,
      );
    if (rest.length === 1) {
      if (M === 'GET') return { status: 200, body: this.renderGrant(grant) };
      if (M === 'DELETE') {
        this.state.keyGrants = this.state.keyGrants.filter(g => g !== grant);
        this.state.dropKeyIfUnused(keyId);
        this.state.record(call.principal, 'ACCESS_KEY_REMOVED', {
          projectKey: project.key,
          slug: repo?.slug,
          details: { keyId },
        });
        return { status: 204 };
      }
      this.notAllowed(call);
    }
    if (rest.length === 3 && rest[1] === 'permission') {
      if (M !== 'PUT') this.notAllowed(call);
      if (!(allowed as readonly string[]).includes(rest[2]))
        throw validation(
          'permission',
          `The permission must be one of ${allowed.join(', ')}.`,
        );
      grant.permission = rest[2] as RepoPermission | ProjectPermission;
      return { status: 200, body: this.renderGrant(grant) };
    }
    throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
  }

  // ---------- /rest/branch-utils/1.0 ----------
  private async branchUtils(
    call: RestCall,
    seg: string[],
  ): Promise<RestResult> {
    const [a, key, c, slug, e] = seg;
    if (
      a !== 'projects' ||
      c !== 'repos' ||
      e !== 'branches' ||
      seg.length !== 5
    ) {
      throw new RestError(404, `No REST resource at ${call.path}`, EX.notFound);
    }
    const repo = this.repoOr404(key, slug);
    if (call.method === 'POST') return this.createBranch(call, repo);
    if (call.method === 'DELETE') {
      this.needRepo(call, repo, 2, 'delete branches');
      const body = asObject(call.body);
      const name = typeof body.name === 'string' ? branchName(body.name) : '';
      if (!name) throw validation('name', 'A branch name is required.');
      const current = await resolveCommit(repo.path, `refs/heads/${name}`);
      if (current)
        this.refPermitted(
          call,
          repo,
          `refs/heads/${name}`,
          current,
          '0'.repeat(40),
        );
      if (body.dryRun === true) return { status: 204 };
      if (!(await deleteBranch(repo.path, name))) {
        throw new RestError(
          404,
          `Branch '${name}' does not exist in repository '${repo.slug}'.`,
          EX.noSuchCommit,
        );
      }
      return { status: 204 };
    }
    return this.notAllowed(call);
  }
}

/** Parses an OpenSSH public key line `type base64 [comment]` (whitespace and newlines tolerated). */
export function parsePublicKey(
  text: string,
): { type: string; blob: string; comment: string } | undefined {
  const parts = text.trim().split(/\s+/);
  if (parts.length < 2) return undefined;
  const [type, blob, ...comment] = parts;
  if (
    !/^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+)$/.test(
      type,
    )
  )
    return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return undefined;
  const buf = Buffer.from(blob, 'base64');
  if (buf.length < 8) return undefined;
  const len = buf.readUInt32BE(0);
  if (
    len + 4 > buf.length ||
    buf.subarray(4, 4 + len).toString('latin1') !== type
  )
    return undefined;
  return { type, blob, comment: comment.join(' ') };
}

/** OpenSSH fingerprint `SHA256:…` of a key blob. */
export function fingerprintOf(blob: string): string {
  return `SHA256:${crypto
    .createHash('sha256')
    .update(Buffer.from(blob, 'base64'))
    .digest('base64')
    .replace(/=+$/, '')}`;
}
