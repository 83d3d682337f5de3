import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  headRefSync,
  initBareRepoSync,
  listBranchesSync,
  seedInitialCommitSync,
} from '../git/cli';

export type GlobalPermission =
  | 'LICENSED_USER'
  | 'PROJECT_CREATE'
  | 'ADMIN'
  | 'SYS_ADMIN';
/** Project permissions, lowest first (`REPO_CREATE`, 8.2+: write access and creating repositories). */
export type ProjectPermission =
  | 'PROJECT_READ'
  | 'PROJECT_WRITE'
  | 'REPO_CREATE'
  | 'PROJECT_ADMIN';
export type RepoPermission = 'REPO_READ' | 'REPO_WRITE' | 'REPO_ADMIN';

export const GLOBAL_PERMISSIONS: GlobalPermission[] = [
  'LICENSED_USER',
  'PROJECT_CREATE',
  'ADMIN',
  'SYS_ADMIN',
];
export const PROJECT_PERMISSIONS: ProjectPermission[] = [
  'PROJECT_READ',
  'PROJECT_WRITE',
  'REPO_CREATE',
  'PROJECT_ADMIN',
];
export const REPO_PERMISSIONS: RepoPermission[] = [
  'REPO_READ',
  'REPO_WRITE',
  'REPO_ADMIN',
];

/** 0 = none, 1 = read, 2 = write, 3 = admin. */
export type Level = 0 | 1 | 2 | 3;
export function levelOf(
  p: ProjectPermission | RepoPermission | undefined,
): Level {
  if (!p) return 0;
  if (p.endsWith('_ADMIN')) return 3;
  if (p.endsWith('_WRITE') || p === 'REPO_CREATE') return 2;
  return 1;
}
const projectRank = (p: ProjectPermission | undefined) =>
  p ? PROJECT_PERMISSIONS.indexOf(p) + 1 : 0;

/**
 * OAuth 2.0 scopes of Bitbucket Data Center's incoming application links, lowest first; each
 * implies the ones before it (ACCOUNT_WRITE stands apart: account settings only).
 */
export type OAuthScope =
  | 'PUBLIC_REPOS'
  | 'ACCOUNT_WRITE'
  | 'REPO_READ'
  | 'REPO_WRITE'
  | 'REPO_ADMIN'
  | 'PROJECT_ADMIN'
  | 'ADMIN_WRITE'
  | 'SYSTEM_ADMIN';
export const OAUTH_SCOPES: OAuthScope[] = [
  'PUBLIC_REPOS',
  'ACCOUNT_WRITE',
  'REPO_READ',
  'REPO_WRITE',
  'REPO_ADMIN',
  'PROJECT_ADMIN',
  'ADMIN_WRITE',
  'SYSTEM_ADMIN',
];
const OAUTH_RANK: Record<OAuthScope, number> = {
  PUBLIC_REPOS: 0,
  ACCOUNT_WRITE: 0,
  REPO_READ: 1,
  REPO_WRITE: 2,
  REPO_ADMIN: 3,
  PROJECT_ADMIN: 4,
  ADMIN_WRITE: 5,
  SYSTEM_ADMIN: 6,
};
/** The highest rank among OAuth scopes (0 public, 1 read, 2 write, 3 repo admin, 4 project admin, …). */
export const oauthRank = (scopes: OAuthScope[] | undefined) =>
  Math.max(0, ...(scopes ?? []).map(x => OAUTH_RANK[x] ?? 0));
const globalRank = (p: GlobalPermission | undefined) =>
  p ? GLOBAL_PERMISSIONS.indexOf(p) + 1 : 0;

export interface User {
  id: number;
  name: string;
  slug: string;
  displayName: string;
  /** Empty for the service users of project/repository access tokens (they cannot author commits). */
  emailAddress: string;
  active: boolean;
  password?: string;
  /** `SERVICE`: the user behind a project or repository HTTP access token. */
  type?: 'NORMAL' | 'SERVICE';
}

export interface Project {
  id: number;
  key: string;
  name: string;
  description?: string;
  public: boolean;
  type: 'NORMAL' | 'PERSONAL';
  /** Owner's slug for a personal project. */
  owner?: string;
}

export interface Repo {
  id: number;
  slug: string;
  name: string;
  description?: string;
  projectKey: string;
  public: boolean;
  forkable: boolean;
  hierarchyId: string;
  path: string;
  /** Name of the user who created it over REST (absent for direct setup calls). */
  createdBy?: string;
}

export interface SshKey {
  id: number;
  /** `type base64 [comment]` as stored. */
  text: string;
  label: string;
  type: string;
  blob: string;
  createdDate: number;
}

export interface KeyGrant {
  keyId: number;
  /** Repository grant (repoId) or project grant (projectKey). */
  repoId?: number;
  projectKey?: string;
  permission: RepoPermission | ProjectPermission;
  /** Name of the user who added it over REST (absent for direct setup calls). */
  createdBy?: string;
}

export interface Token {
  id: string;
  name: string;
  token: string;
  /**
   * `http`: a personal HTTP access token; `oauth`: an OAuth 2.0 access token of an application
   * link; `project`/`repository`: an HTTP access token of a project or repository (its `user` is
   * a service user).
   */
  kind?: 'http' | 'oauth' | 'project' | 'repository';
  /** Slug of the owner (for project/repository tokens: of the service user). */
  user: string;
  /** Resources the token is limited to (project key, or project key + repo slug). */
  scopes?: { project?: string; repo?: string }[];
  /** Highest project permission the token carries (default PROJECT_ADMIN). */
  projectPermission?: ProjectPermission;
  /** Highest repository permission the token carries (default REPO_ADMIN). */
  repoPermission?: RepoPermission;
  expired?: boolean;
  /** OAuth: granted scopes, the client (application link) and when the token expires (ms). */
  oauthScopes?: OAuthScope[];
  clientId?: string;
  expiresAt?: number;
}

/** A ref matcher of branch restrictions and default-reviewer conditions. */
export type MatcherType =
  | 'ANY_REF'
  | 'BRANCH'
  | 'PATTERN'
  | 'MODEL_BRANCH'
  | 'MODEL_CATEGORY';
export interface RefMatcher {
  type: MatcherType;
  /** `refs/heads/x` (BRANCH), a pattern, `development`/`production`, `FEATURE`…, `ANY_REF_MATCHER_ID`. */
  id: string;
}

export type RestrictionType =
  | 'read-only'
  | 'no-deletes'
  | 'fast-forward-only'
  | 'pull-request-only';
export const RESTRICTION_TYPES: RestrictionType[] = [
  'read-only',
  'no-deletes',
  'fast-forward-only',
  'pull-request-only',
];

/** Where a restriction or default-reviewer condition is defined. */
export interface Scope {
  type: 'PROJECT' | 'REPOSITORY';
  projectKey: string;
  repoId?: number;
}

/** A branch permission (ref restriction). `users`, `groups` and `accessKeyIds` are exempt. */
export interface Restriction {
  id: number;
  type: RestrictionType;
  matcher: RefMatcher;
  scope: Scope;
  users: string[];
  groups: string[];
  accessKeyIds: number[];
}

export type ParticipantStatus = 'UNAPPROVED' | 'NEEDS_WORK' | 'APPROVED';
export interface Participant {
  /** User slug. */
  user: string;
  role: 'REVIEWER' | 'PARTICIPANT';
  status: ParticipantStatus;
  lastReviewedCommit?: string;
}

export interface PullRequest {
  /** Per target repository, from 1. */
  id: number;
  repoId: number;
  fromRepoId: number;
  /** Fully qualified refs, e.g. `refs/heads/flux/prod`. */
  fromRef: string;
  toRef: string;
  title: string;
  description?: string;
  state: 'OPEN' | 'DECLINED' | 'MERGED';
  version: number;
  draft: boolean;
  createdDate: number;
  updatedDate: number;
  closedDate?: number;
  /** Author's slug. */
  author: string;
  participants: Participant[];
  /** Head commits as last seen (frozen when the pull request closes). */
  fromCommit: string;
  toCommit: string;
  mergeCommit?: string;
  /** Slug of who merged or declined it. */
  closedBy?: string;
}

/** A default-reviewer condition: pull requests from `source` to `target` get `reviewers`. */
export interface ReviewerCondition {
  id: number;
  scope: Scope;
  source: RefMatcher;
  target: RefMatcher;
  reviewers: string[];
  requiredApprovals: number;
}

/** Merge checks of a repository (Bitbucket's "Merge checks" settings). */
export interface MergeChecks {
  /** Minimum number of approvals. */
  requiredApprovals?: number;
  /** No reviewer may have the "needs work" (requested changes) status. */
  noNeedsWork?: boolean;
}

/** An incoming application link offering OAuth 2.0. */
export interface OAuthClient {
  clientId: string;
  clientSecret: string;
  name: string;
  redirectUris: string[];
  /** The scopes the link may request (the admin's selection). */
  scopes: OAuthScope[];
}

/** One entry of "who did what" (`state().audit`). */
export interface AuditEntry {
  seq: number;
  at: number;
  action: string;
  /** User name of the actor (for access-key pushes: absent, see `accessKeyId`). */
  actor?: string;
  /** How the actor authenticated: `oauth:<clientId>`, `http-access-token`, `project-access-token`, `repository-access-token`, `password`, `access-key`. */
  via?: string;
  accessKeyId?: number;
  projectKey?: string;
  slug?: string;
  details?: Record<string, unknown>;
}

/** The authenticated caller of a request. */
export interface Principal {
  user: User;
  token?: Token;
  /** Authenticated by a browser session (the double's login page). */
  session?: boolean;
}

/** How a principal authenticated, as written in the audit log. */
export function viaOf(p: Principal | undefined): string | undefined {
  if (!p) return undefined;
  if (p.session) return 'session';
  if (!p.token) return 'password';
  switch (p.token.kind ?? 'http') {
    case 'oauth':
      return `oauth:${p.token.clientId}`;
    case 'project':
      return 'project-access-token';
    case 'repository':
      return 'repository-access-token';
    default:
      return 'http-access-token';
  }
}

/** In-memory state of the Bitbucket double; branches and commits live in the bare repos on disk. */
export class BitbucketState {
  users = new Map<string, User>(); // by slug (lower-case)
  groups = new Map<string, Set<string>>(); // group name → member slugs
  projects = new Map<string, Project>(); // by upper-case key
  repos = new Map<number, Repo>();
  keys = new Map<number, SshKey>();
  keyGrants: KeyGrant[] = [];
  tokens: Token[] = [];
  globalPerms = new Map<string, GlobalPermission>();
  projectUserPerms = new Map<string, Map<string, ProjectPermission>>();
  projectGroupPerms = new Map<string, Map<string, ProjectPermission>>();
  repoUserPerms = new Map<number, Map<string, RepoPermission>>();
  repoGroupPerms = new Map<number, Map<string, RepoPermission>>();
  /** Users behind project/repository access tokens, by slug (not listed by `/users`). */
  serviceUsers = new Map<string, User>();
  restrictions: Restriction[] = [];
  pullRequests: PullRequest[] = [];
  reviewerConditions: ReviewerCondition[] = [];
  mergeChecks = new Map<number, MergeChecks>();
  oauthClients: OAuthClient[] = [];
  audit: AuditEntry[] = [];
  private nextId = {
    user: 101,
    project: 1,
    repo: 1,
    key: 1,
    token: 1,
    restriction: 1,
    condition: 1,
    audit: 1,
  };

  /** Called with the path of every new bare repository (the double installs its hooks). */
  onRepoInit?: (repoPath: string) => void;

  constructor(readonly reposRoot: string, readonly defaultBranchName: string) {}

  // ---- users and groups ----
  addUser(u: {
    name: string;
    displayName?: string;
    email?: string;
    password?: string;
    active?: boolean;
  }): User {
    const slug = u.name.toLowerCase();
    const existing = this.users.get(slug);
    const user: User = {
      id: existing?.id ?? this.nextId.user++,
      name: u.name,
      slug,
      displayName: u.displayName ?? existing?.displayName ?? u.name,
      emailAddress: u.email ?? existing?.emailAddress ?? `${slug}@example.com`,
      active: u.active ?? true,
      password: u.password ?? existing?.password,
    };
    this.users.set(slug, user);
    if (!this.globalPerms.has(slug))
      this.globalPerms.set(slug, 'LICENSED_USER');
    return user;
  }

  user(nameOrSlug: string): User | undefined {
    return this.users.get(nameOrSlug.toLowerCase());
  }

  requireUser(name: string): User {
    const u = this.user(name);
    if (!u)
      throw new Error(
        `Bitbucket double: unknown user ${name} (call addUser first)`,
      );
    return u;
  }

  addGroup(name: string, members: string[] = []): void {
    const set = this.groups.get(name) ?? new Set<string>();
    for (const m of members) set.add(this.requireUser(m).slug);
    this.groups.set(name, set);
  }

  groupsOf(user: User): string[] {
    return [...this.groups.entries()]
      .filter(([, m]) => m.has(user.slug))
      .map(([g]) => g);
  }

  // ---- projects and repositories ----
  addProject(p: {
    key: string;
    name: string;
    description?: string;
    public?: boolean;
  }): Project {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(p.key))
      throw new Error(`Bitbucket double: invalid project key ${p.key}`);
    const key = p.key.toUpperCase();
    const existing = this.projects.get(key);
    const project: Project = {
      id: existing?.id ?? this.nextId.project++,
      key,
      name: p.name,
      description: p.description,
      public: p.public ?? false,
      type: 'NORMAL',
    };
    this.projects.set(key, project);
    return project;
  }

  /** Finds a project by key, case-insensitively; `~user` finds (and creates on demand) a personal project. */
  project(key: string): Project | undefined {
    const upper = key.toUpperCase();
    const p = this.projects.get(upper);
    if (p) return p;
    if (upper.startsWith('~')) {
      const owner = this.user(key.slice(1));
      if (!owner) return undefined;
      const personal: Project = {
        id: this.nextId.project++,
        key: `~${owner.slug.toUpperCase()}`,
        name: owner.displayName,
        public: false,
        type: 'PERSONAL',
        owner: owner.slug,
      };
      this.projects.set(personal.key, personal);
      return personal;
    }
    return undefined;
  }

  reposOf(project: Project): Repo[] {
    return [...this.repos.values()]
      .filter(r => r.projectKey === project.key)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  repo(projectKey: string, slug: string): Repo | undefined {
    const p = this.project(projectKey);
    if (!p) return undefined;
    const s = slug.toLowerCase();
    return [...this.repos.values()].find(
      r => r.projectKey === p.key && r.slug === s,
    );
  }

  /** Lower-case folder name of a project below the repositories root. */
  static projectDir(key: string): string {
    return key.toLowerCase();
  }

  repoDiskPath(projectKey: string, slug: string): string {
    return path.join(
      this.reposRoot,
      BitbucketState.projectDir(projectKey),
      `${slug.toLowerCase()}.git`,
    );
  }

  createRepo(
    project: Project,
    r: {
      name: string;
      slug: string;
      description?: string;
      public?: boolean;
      forkable?: boolean;
      defaultBranch?: string;
      initialCommit?: boolean;
      author?: User;
    },
  ): Repo {
    const repo: Repo = {
      id: this.nextId.repo++,
      slug: r.slug,
      name: r.name,
      description: r.description,
      projectKey: project.key,
      public: r.public ?? false,
      forkable: r.forkable ?? true,
      hierarchyId: crypto.randomBytes(10).toString('hex'),
      path: this.repoDiskPath(project.key, r.slug),
    };
    fs.rmSync(repo.path, { recursive: true, force: true });
    const branch = r.defaultBranch || this.defaultBranchName;
    initBareRepoSync(repo.path, branch);
    this.onRepoInit?.(repo.path);
    if (r.initialCommit) {
      seedInitialCommitSync(repo.path, branch, {
        authorName: r.author?.displayName,
        authorEmail: r.author?.emailAddress,
      });
    }
    this.repos.set(repo.id, repo);
    return repo;
  }

  deleteRepo(repo: Repo): void {
    this.repos.delete(repo.id);
    this.repoUserPerms.delete(repo.id);
    this.repoGroupPerms.delete(repo.id);
    const orphanKeys = new Set<number>();
    this.keyGrants = this.keyGrants.filter(g => {
      if (g.repoId === repo.id) {
        orphanKeys.add(g.keyId);
        return false;
      }
      return true;
    });
    for (const id of orphanKeys) this.dropKeyIfUnused(id);
    this.pullRequests = this.pullRequests.filter(
      p => p.repoId !== repo.id && p.fromRepoId !== repo.id,
    );
    this.restrictions = this.restrictions.filter(
      r => r.scope.repoId !== repo.id,
    );
    this.reviewerConditions = this.reviewerConditions.filter(
      c => c.scope.repoId !== repo.id,
    );
    this.mergeChecks.delete(repo.id);
    fs.rmSync(repo.path, { recursive: true, force: true });
  }

  dropKeyIfUnused(keyId: number): void {
    if (!this.keyGrants.some(g => g.keyId === keyId)) this.keys.delete(keyId);
  }

  newKeyId(): number {
    return this.nextId.key++;
  }

  newTokenId(): string {
    return String(100000000000 + this.nextId.token++);
  }

  newRestrictionId(): number {
    return this.nextId.restriction++;
  }

  newConditionId(): number {
    return this.nextId.condition++;
  }

  /** Creates the service user of a project/repository access token. */
  addServiceUser(name: string, displayName: string): User {
    const user: User = {
      id: this.nextId.user++,
      name,
      slug: name.toLowerCase(),
      displayName,
      emailAddress: '',
      active: true,
      type: 'SERVICE',
    };
    this.serviceUsers.set(user.slug, user);
    return user;
  }

  /** A user or service user by slug (token owners). */
  tokenOwner(slug: string): User | undefined {
    return this.user(slug) ?? this.serviceUsers.get(slug.toLowerCase());
  }

  /** Records who did what (`state().audit`). */
  record(
    principal: Principal | undefined,
    action: string,
    e: Omit<AuditEntry, 'seq' | 'at' | 'action' | 'actor' | 'via'> & {
      actor?: string;
      via?: string;
    } = {},
  ): void {
    this.audit.push({
      seq: this.nextId.audit++,
      at: Date.now(),
      action,
      actor: principal?.user.name,
      via: viaOf(principal),
      ...e,
    });
  }

  // ---- permissions ----
  private isAdmin(user: User): boolean {
    return globalRank(this.globalPerms.get(user.slug)) >= globalRank('ADMIN');
  }

  isLicensed(user: User): boolean {
    return user.active && globalRank(this.globalPerms.get(user.slug)) >= 1;
  }

  hasGlobal(principal: Principal | undefined, perm: GlobalPermission): boolean {
    if (!principal || !this.isLicensed(principal.user)) return false;
    return (
      globalRank(this.globalPerms.get(principal.user.slug)) >= globalRank(perm)
    );
  }

  private userProjectLevel(user: User, project: Project): Level {
    if (!this.isLicensed(user)) return 0;
    if (this.isAdmin(user)) return 3;
    if (project.type === 'PERSONAL' && project.owner === user.slug) return 3;
    let lvl: Level = levelOf(
      this.projectUserPerms.get(project.key)?.get(user.slug),
    );
    const gp = this.projectGroupPerms.get(project.key);
    if (gp)
      for (const g of this.groupsOf(user))
        lvl = Math.max(lvl, levelOf(gp.get(g))) as Level;
    return lvl;
  }

  private userRepoLevel(user: User, repo: Repo): Level {
    const project = this.projects.get(repo.projectKey)!;
    let lvl = this.userProjectLevel(user, project);
    if (!this.isLicensed(user)) return 0;
    lvl = Math.max(
      lvl,
      levelOf(this.repoUserPerms.get(repo.id)?.get(user.slug)),
    ) as Level;
    const gp = this.repoGroupPerms.get(repo.id);
    if (gp)
      for (const g of this.groupsOf(user))
        lvl = Math.max(lvl, levelOf(gp.get(g))) as Level;
    return lvl;
  }

  private tokenAllows(
    token: Token | undefined,
    projectKey: string,
    repoSlug?: string,
  ): boolean {
    if (!token?.scopes || token.scopes.length === 0) return true;
    return token.scopes.some(s => {
      if (s.project && s.project.toUpperCase() !== projectKey.toUpperCase())
        return false;
      if (
        s.repo &&
        (!repoSlug || s.repo.toLowerCase() !== repoSlug.toLowerCase())
      )
        return false;
      return true;
    });
  }

  /** Highest project and repository levels a token carries (OAuth: what its scopes imply). */
  tokenCaps(t: Token): { project: Level; repo: Level } {
    if (t.kind === 'oauth') {
      const r = oauthRank(t.oauthScopes);
      return {
        project: (r >= 4 ? 3 : Math.min(r, 2)) as Level,
        repo: Math.min(r, 3) as Level,
      };
    }
    return {
      project: levelOf(t.projectPermission ?? 'PROJECT_ADMIN'),
      repo: Math.max(
        levelOf(t.repoPermission ?? 'REPO_ADMIN'),
        // a project permission of the token covers the project's repositories
        t.projectPermission ? levelOf(t.projectPermission) : 0,
      ) as Level,
    };
  }

  /** Project/repository access tokens act with their own permission, not a user's. */
  private static isResourceToken(t: Token | undefined): boolean {
    return t?.kind === 'project' || t?.kind === 'repository';
  }

  /** Effective project permission level of a caller (anonymous: only public projects). */
  projectLevel(principal: Principal | undefined, project: Project): Level {
    const publicLevel: Level = project.public ? 1 : 0;
    if (!principal) return publicLevel;
    const t = principal.token;
    let lvl: Level;
    if (t?.kind === 'project') lvl = 3;
    else if (t?.kind === 'repository') lvl = 0;
    else lvl = this.userProjectLevel(principal.user, project);
    if (t) {
      if (!this.tokenAllows(t, project.key)) lvl = 0;
      lvl = Math.min(lvl, this.tokenCaps(t).project) as Level;
    }
    return Math.max(lvl, publicLevel) as Level;
  }

  /** Effective repository permission level of a caller (anonymous: only public repos). */
  repoLevel(principal: Principal | undefined, repo: Repo): Level {
    const project = this.projects.get(repo.projectKey)!;
    const publicLevel: Level = repo.public || project.public ? 1 : 0;
    if (!principal) return publicLevel;
    const t = principal.token;
    let lvl: Level = BitbucketState.isResourceToken(t)
      ? 3
      : this.userRepoLevel(principal.user, repo);
    if (t) {
      if (!this.tokenAllows(t, project.key, repo.slug)) lvl = 0;
      lvl = Math.min(lvl, this.tokenCaps(t).repo) as Level;
    }
    return Math.max(lvl, publicLevel) as Level;
  }

  /**
   * Whether a caller may create repositories in a project: project `REPO_CREATE` or
   * `PROJECT_ADMIN` (or system admin, or the owner of a personal project), and a token that
   * carries it (HTTP tokens: project admin; OAuth: the `PROJECT_ADMIN` scope; repository
   * tokens never).
   */
  canCreateRepo(principal: Principal | undefined, project: Project): boolean {
    if (!principal) return false;
    const t = principal.token;
    if (t?.kind === 'repository') return false;
    if (t && !this.tokenAllows(t, project.key)) return false;
    if (t?.kind === 'oauth' && oauthRank(t.oauthScopes) < 4) return false;
    if (
      t &&
      t.kind !== 'oauth' &&
      (t.projectPermission ?? 'PROJECT_ADMIN') !== 'PROJECT_ADMIN'
    )
      return false;
    if (t?.kind === 'project') return true;
    const user = principal.user;
    if (!this.isLicensed(user)) return false;
    if (this.isAdmin(user)) return true;
    if (project.type === 'PERSONAL') return project.owner === user.slug;
    let rank = projectRank(
      this.projectUserPerms.get(project.key)?.get(user.slug),
    );
    const gp = this.projectGroupPerms.get(project.key);
    if (gp)
      for (const g of this.groupsOf(user))
        rank = Math.max(rank, projectRank(gp.get(g)));
    return rank >= projectRank('REPO_CREATE');
  }

  /** Whether a caller may create projects (global PROJECT_CREATE; OAuth needs `PROJECT_ADMIN`). */
  canCreateProject(principal: Principal | undefined): boolean {
    if (!this.hasGlobal(principal, 'PROJECT_CREATE')) return false;
    const t = principal!.token;
    if (BitbucketState.isResourceToken(t)) return false;
    if (t?.kind === 'oauth') return oauthRank(t.oauthScopes) >= 4;
    return true;
  }

  /** True if the caller can see the project at all (a permission on it or on one of its repos). */
  canSeeProject(principal: Principal | undefined, project: Project): boolean {
    if (this.projectLevel(principal, project) >= 1) return true;
    return this.reposOf(project).some(r => this.repoLevel(principal, r) >= 1);
  }

  // ---- access keys (SSH) ----
  /** Grants of a key blob, for the SSH side. */
  keyByBlob(blob: string): SshKey | undefined {
    return [...this.keys.values()].find(k => k.blob === blob);
  }

  /** The permission an access key has on a repository (repo grant or project grant), if any. */
  keyRepoLevel(keyId: number, repo: Repo): Level {
    let lvl: Level = 0;
    for (const g of this.keyGrants) {
      if (g.keyId !== keyId) continue;
      if (
        g.repoId === repo.id ||
        (g.projectKey && g.projectKey === repo.projectKey)
      ) {
        lvl = Math.max(lvl, levelOf(g.permission)) as Level;
      }
    }
    return lvl;
  }

  // ---- disk-backed facts ----
  headRef(repo: Repo): string {
    return headRefSync(repo.path);
  }

  snapshot() {
    const perms = {
      global: [...this.globalPerms.entries()].map(([user, permission]) => ({
        user,
        permission,
      })),
      project: [...this.projectUserPerms.entries()].flatMap(([projectKey, m]) =>
        [...m.entries()].map(([user, permission]) => ({
          projectKey,
          user,
          permission,
        })),
      ),
      repo: [...this.repoUserPerms.entries()].flatMap(([id, m]) => {
        const r = this.repos.get(id);
        return r
          ? [...m.entries()].map(([user, permission]) => ({
              projectKey: r.projectKey,
              slug: r.slug,
              user,
              permission,
            }))
          : [];
      }),
    };
    return {
      users: [...this.users.values()].map(({ password: _pw, ...u }) => ({
        ...u,
      })),
      groups: [...this.groups.entries()].map(([name, m]) => ({
        name,
        members: [...m].sort(),
      })),
      projects: [...this.projects.values()].map(p => ({ ...p })),
      repos: [...this.repos.values()].map(r => ({
        ...r,
        defaultBranch: this.headRef(r).replace(/^refs\/heads\//, ''),
        branches: listBranchesSync(r.path).map(b => ({
          name: b.name,
          latestCommit: b.sha,
        })),
      })),
      accessKeys: this.keyGrants.map(g => {
        const k = this.keys.get(g.keyId)!;
        const r = g.repoId !== undefined ? this.repos.get(g.repoId) : undefined;
        return {
          id: k.id,
          text: k.text,
          label: k.label,
          permission: g.permission,
          projectKey: r?.projectKey ?? g.projectKey,
          slug: r?.slug,
          createdBy: g.createdBy,
        };
      }),
      groupPermissions: {
        project: [...this.projectGroupPerms.entries()].flatMap(
          ([projectKey, m]) =>
            [...m.entries()].map(([group, permission]) => ({
              projectKey,
              group,
              permission,
            })),
        ),
        repo: [...this.repoGroupPerms.entries()].flatMap(([id, m]) => {
          const r = this.repos.get(id);
          return r
            ? [...m.entries()].map(([group, permission]) => ({
                projectKey: r.projectKey,
                slug: r.slug,
                group,
                permission,
              }))
            : [];
        }),
      },
      userPermissions: perms,
      tokens: this.tokens.map(t => ({
        id: t.id,
        name: t.name,
        kind: t.kind ?? 'http',
        user: t.user,
        scopes: t.scopes,
        projectPermission: t.projectPermission,
        repoPermission: t.repoPermission,
        oauthScopes: t.oauthScopes,
        clientId: t.clientId,
        expired:
          !!t.expired ||
          (t.expiresAt !== undefined && t.expiresAt <= Date.now()),
      })),
      serviceUsers: [...this.serviceUsers.values()].map(u => ({ ...u })),
      restrictions: this.restrictions.map(r => ({
        id: r.id,
        type: r.type,
        matcher: { ...r.matcher },
        scope: this.scopeOut(r.scope),
        users: [...r.users],
        groups: [...r.groups],
        accessKeyIds: [...r.accessKeyIds],
      })),
      pullRequests: this.pullRequests.map(pr => {
        const r = this.repos.get(pr.repoId);
        return {
          id: pr.id,
          projectKey: r?.projectKey,
          slug: r?.slug,
          title: pr.title,
          description: pr.description,
          state: pr.state,
          version: pr.version,
          draft: pr.draft,
          fromRef: pr.fromRef,
          toRef: pr.toRef,
          fromCommit: pr.fromCommit,
          toCommit: pr.toCommit,
          mergeCommit: pr.mergeCommit,
          author: pr.author,
          reviewers: pr.participants
            .filter(x => x.role === 'REVIEWER')
            .map(x => ({
              user: x.user,
              status: x.status,
              approved: x.status === 'APPROVED',
            })),
          participants: pr.participants.map(x => ({ ...x })),
          createdDate: pr.createdDate,
          updatedDate: pr.updatedDate,
          closedDate: pr.closedDate,
          closedBy: pr.closedBy,
        };
      }),
      defaultReviewerConditions: this.reviewerConditions.map(c => ({
        id: c.id,
        scope: this.scopeOut(c.scope),
        source: { ...c.source },
        target: { ...c.target },
        reviewers: [...c.reviewers],
        requiredApprovals: c.requiredApprovals,
      })),
      mergeChecks: [...this.mergeChecks.entries()].map(([id, m]) => ({
        projectKey: this.repos.get(id)?.projectKey,
        slug: this.repos.get(id)?.slug,
        ...m,
      })),
      oauthClients: this.oauthClients.map(c => ({
        clientId: c.clientId,
        name: c.name,
        redirectUris: [...c.redirectUris],
        scopes: [...c.scopes],
      })),
      audit: this.audit.map(a => ({
        ...a,
        details: a.details ? JSON.parse(JSON.stringify(a.details)) : undefined,
      })),
    };
  }

  private scopeOut(s: Scope) {
    const r = s.repoId !== undefined ? this.repos.get(s.repoId) : undefined;
    return {
      type: s.type,
      projectKey: s.projectKey,
      ...(r ? { slug: r.slug } : {}),
    };
  }
}

/** Bitbucket's slug for a repository name: lower case, spaces become hyphens. */
export function slugify(name: string): string {
  return name.trim().toLowerCase().replace(/\s+/g, '-');
}

/** Repository names: ≤128 characters, start with a letter or digit; letters, digits, space, `_`, `-`, `.`. */
export const REPO_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$/;
