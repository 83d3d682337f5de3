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
export type ProjectPermission =
  | 'PROJECT_READ'
  | 'PROJECT_WRITE'
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
  if (p.endsWith('_WRITE')) return 2;
  return 1;
}
const globalRank = (p: GlobalPermission | undefined) =>
  p ? GLOBAL_PERMISSIONS.indexOf(p) + 1 : 0;

export interface User {
  id: number;
  name: string;
  slug: string;
  displayName: string;
  emailAddress: string;
  active: boolean;
  password?: string;
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
}

export interface Token {
  id: string;
  name: string;
  token: string;
  user: string;
  /** Resources the token is limited to (project key, or project key + repo slug). */
  scopes?: { project?: string; repo?: string }[];
  /** Highest project permission the token carries (default PROJECT_ADMIN). */
  projectPermission?: ProjectPermission;
  /** Highest repository permission the token carries (default REPO_ADMIN). */
  repoPermission?: RepoPermission;
  expired?: boolean;
}

/** The authenticated caller of a request. */
export interface Principal {
  user: User;
  token?: Token;
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
  private nextId = { user: 101, project: 1, repo: 1, key: 1, token: 1 };

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

  /** Effective project permission level of a caller (anonymous: only public projects). */
  projectLevel(principal: Principal | undefined, project: Project): Level {
    const publicLevel: Level = project.public ? 1 : 0;
    if (!principal) return publicLevel;
    let lvl = this.userProjectLevel(principal.user, project);
    if (principal.token) {
      if (!this.tokenAllows(principal.token, project.key)) lvl = 0;
      lvl = Math.min(
        lvl,
        levelOf(principal.token.projectPermission ?? 'PROJECT_ADMIN'),
      ) as Level;
    }
    return Math.max(lvl, publicLevel) as Level;
  }

  /** Effective repository permission level of a caller (anonymous: only public repos). */
  repoLevel(principal: Principal | undefined, repo: Repo): Level {
    const project = this.projects.get(repo.projectKey)!;
    const publicLevel: Level = repo.public || project.public ? 1 : 0;
    if (!principal) return publicLevel;
    let lvl = this.userRepoLevel(principal.user, repo);
    if (principal.token) {
      if (!this.tokenAllows(principal.token, project.key, repo.slug)) lvl = 0;
      const cap = Math.max(
        levelOf(principal.token.repoPermission ?? 'REPO_ADMIN'),
        // a project permission of the token covers the project's repositories
        principal.token.projectPermission
          ? levelOf(principal.token.projectPermission)
          : 0,
      );
      lvl = Math.min(lvl, cap) as Level;
    }
    return Math.max(lvl, publicLevel) as Level;
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
        user: t.user,
        scopes: t.scopes,
        projectPermission: t.projectPermission,
        repoPermission: t.repoPermission,
        expired: !!t.expired,
      })),
    };
  }
}

/** Bitbucket's slug for a repository name: lower case, spaces become hyphens. */
export function slugify(name: string): string {
  return name.trim().toLowerCase().replace(/\s+/g, '-');
}

/** Repository names: ≤128 characters, start with a letter or digit; letters, digits, space, `_`, `-`, `.`. */
export const REPO_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$/;
