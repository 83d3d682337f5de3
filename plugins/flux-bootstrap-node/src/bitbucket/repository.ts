import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { EngineLogger, silentLogger } from '../util/logger';
import { InputValidationError } from '../util/errors';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { BitbucketServerClient, restPath } from './client';
import { BitbucketError, isBitbucketError } from './errors';
import { pushInitialCommit } from './initialCommit';
import { BitbucketRepoRef, isProjectKey, repositorySlug } from './repoUrl';
import type {
  BitbucketBranch,
  BitbucketGroupPermission,
  BitbucketPage,
  BitbucketProject,
  BitbucketRepoPermission,
  BitbucketRepository,
} from './types';

/** Repository permissions a group can be granted. @public */
export const REPO_PERMISSIONS: readonly BitbucketRepoPermission[] = [
  'REPO_READ',
  'REPO_WRITE',
  'REPO_ADMIN',
];

/** A group and the repository permission it should hold. @public */
export interface BitbucketGroupGrant {
  name: string;
  permission: BitbucketRepoPermission;
}

/** What {@link ensureBitbucketRepository} makes true. @public */
export interface EnsureRepositoryRequest {
  ref: BitbucketRepoRef;
  description?: string;
  /** false → the repository is created public (sent explicitly, unlike the flux CLI). */
  private: boolean;
  /** The branch Flux will sync; created when missing. */
  defaultBranch: string;
  groups: BitbucketGroupGrant[];
}

/** Options of {@link ensureBitbucketRepository}. @public */
export interface EnsureRepositoryOptions {
  signal?: AbortSignal;
  logger?: EngineLogger;
  checkpoint?: CheckpointFn;
  /** How errors name the credentials, e.g. `the token input` (never their value). */
  credentials?: string;
  /** Message of the initial commit that creates the branch in an empty repository. */
  initialCommitMessage?: string;
}

/** The outputs of `bitbucket:create-repo`. @public */
export interface BitbucketRepositoryOutputs {
  /** HTTPS clone URL, without user info. */
  remoteUrl: string;
  /** SSH clone URL using the configured SSH host and port, e.g. `ssh://git@host:7999/flux/fleet.git`. */
  sshUrl: string;
  /** Browse URL of the repository. */
  repoContentsUrl: string;
  projectKey: string;
  repoSlug: string;
  defaultBranch: string;
  created: boolean;
}

/** What {@link ensureBitbucketRepository} did. @public */
export interface EnsuredRepository extends BitbucketRepositoryOutputs {
  repoName: string;
  public: boolean;
  /** Head of `defaultBranch` after the run. */
  branchHead?: string;
  /** How the branch came to exist in this run, if it did. */
  branchCreated?: 'initial-commit' | 'from-default-branch';
  groups: BitbucketGroupGrant[];
}

// git check-ref-format rules for a branch name.
function branchNameProblem(name: string): string | undefined {
  if (!name) return 'must not be empty';
  if (name.length > 200) return 'must be at most 200 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) {
    return 'must not contain spaces, control characters or any of ~ ^ : ? * [ \\';
  }
  if (
    name.startsWith('-') ||
    name.startsWith('/') ||
    name.endsWith('/') ||
    name.endsWith('.')
  ) {
    return 'must not start with "-" or "/" nor end with "/" or "."';
  }
  if (
    name.includes('..') ||
    name.includes('//') ||
    name.includes('@{') ||
    name === '@'
  ) {
    return 'must not contain "..", "//" or "@{"';
  }
  if (
    name.split('/').some(part => part.startsWith('.') || part.endsWith('.lock'))
  ) {
    return 'path components must not start with "." nor end with ".lock"';
  }
  if (name.startsWith('refs/'))
    return 'must be a branch name such as main, not a ref (refs/heads/…)';
  return undefined;
}

/** Throws {@link InputValidationError} for a bad request, before any network call. @public */
export function validateRepositoryRequest(req: EnsureRepositoryRequest): void {
  const problem = branchNameProblem(req.defaultBranch);
  if (problem) throw new InputValidationError('defaultBranch', problem);
  if (req.description !== undefined) {
    if (typeof req.description !== 'string')
      throw new InputValidationError('description', 'must be a string');
    if (req.description.length > 1000)
      throw new InputValidationError(
        'description',
        'must be at most 1000 characters',
      );
  }
  const seen = new Set<string>();
  req.groups.forEach((g, i) => {
    const field = `groups[${i}]`;
    if (!g || typeof g.name !== 'string' || !g.name.trim()) {
      throw new InputValidationError(`${field}.name`, 'is required');
    }
    // eslint-disable-next-line no-control-regex
    if (g.name.length > 255 || /[\x00-\x1f\x7f]/.test(g.name)) {
      throw new InputValidationError(
        `${field}.name`,
        'must be a group name (at most 255 characters, no control characters)',
      );
    }
    if (!REPO_PERMISSIONS.includes(g.permission)) {
      throw new InputValidationError(
        `${field}.permission`,
        `must be one of ${REPO_PERMISSIONS.join(', ')}`,
      );
    }
    if (seen.has(g.name)) {
      throw new InputValidationError(
        `${field}.name`,
        `group "${g.name}" is listed twice`,
      );
    }
    seen.add(g.name);
  });
}

function lower(s: string): string {
  return s.toLowerCase();
}

/**
 * The outputs a run would produce, computed without any request (dry-run). The project key of
 * a project given by name cannot be known without asking Bitbucket, so it is reported as given.
 * @public
 */
export function planRepositoryOutputs(
  host: BitbucketServerHostConfig,
  req: Pick<EnsureRepositoryRequest, 'ref' | 'defaultBranch'>,
): BitbucketRepositoryOutputs {
  const { ref } = req;
  const slug = repositorySlug(ref.repo);
  let key = ref.project;
  if (ref.personal) key = `~${ref.owner!.toUpperCase()}`;
  else if (isProjectKey(ref.project)) key = ref.project.toUpperCase();
  const base = host.baseUrl.replace(/\/+$/, '');
  const pathKey = encodeURIComponent(lower(key));
  return {
    remoteUrl: `${base}/scm/${pathKey}/${encodeURIComponent(slug)}.git`,
    sshUrl: `ssh://git@${host.sshHost}/${pathKey}/${encodeURIComponent(
      slug,
    )}.git`,
    repoContentsUrl: ref.personal
      ? `${base}/users/${encodeURIComponent(
          lower(ref.owner!),
        )}/repos/${encodeURIComponent(slug)}/browse`
      : `${base}/projects/${encodeURIComponent(key)}/repos/${encodeURIComponent(
          slug,
        )}/browse`,
    projectKey: key,
    repoSlug: slug,
    defaultBranch: req.defaultBranch,
    created: false,
  };
}

/** Picks a clone link by its name (`http`, `ssh`), never by position. @public */
export function cloneLink(
  repo: Pick<BitbucketRepository, 'links'>,
  name: 'http' | 'ssh',
): string | undefined {
  return repo.links?.clone?.find(
    l => typeof l.name === 'string' && l.name.toLowerCase() === name,
  )?.href;
}

function linkMatchesRepo(
  href: string,
  projectKey: string,
  slug: string,
): boolean {
  try {
    const p = decodeURIComponent(new URL(href).pathname).toLowerCase();
    return (
      p.endsWith(`/${projectKey.toLowerCase()}/${slug.toLowerCase()}.git`) ||
      p.endsWith(`/${projectKey.toLowerCase()}/${slug.toLowerCase()}`)
    );
  } catch {
    return false;
  }
}

/**
 * The outputs for a repository as Bitbucket describes it: clone links chosen by name (any case of
 * the project key accepted), the user info Bitbucket puts in HTTP links removed, and the SSH URL
 * moved to the configured SSH host and port (flux2#2207: an SSH URL without the port makes
 * Flux dial port 22).
 * @public
 */
export function repositoryOutputs(
  host: BitbucketServerHostConfig,
  repo: BitbucketRepository,
  defaultBranch: string,
  created: boolean,
  logger: EngineLogger = silentLogger,
): BitbucketRepositoryOutputs {
  const key = repo.project.key;
  const planned = planRepositoryOutputs(host, {
    ref: {
      host: host.host,
      project: key,
      repo: repo.slug,
      personal: key.startsWith('~'),
      owner: key.startsWith('~') ? key.slice(1) : undefined,
    },
    defaultBranch,
  });
  let remoteUrl = planned.remoteUrl;
  const http = cloneLink(repo, 'http');
  if (http && linkMatchesRepo(http, key, repo.slug)) {
    const u = new URL(http);
    u.username = '';
    u.password = '';
    remoteUrl = u.toString();
  } else if (http) {
    logger.warn(
      `Bitbucket's http clone link ${http} does not name ${key}/${repo.slug}; using ${remoteUrl}`,
    );
  }
  let sshUrl = planned.sshUrl;
  const ssh = cloneLink(repo, 'ssh');
  if (ssh && linkMatchesRepo(ssh, key, repo.slug)) {
    const u = new URL(ssh);
    sshUrl = `ssh://${u.username || 'git'}@${host.sshHost}${u.pathname}`;
  }
  const self = repo.links?.self?.[0]?.href;
  return {
    remoteUrl,
    sshUrl,
    repoContentsUrl: self ?? planned.repoContentsUrl,
    projectKey: key,
    repoSlug: repo.slug,
    defaultBranch,
    created,
  };
}

/** Rewords a Bitbucket error so it names the permission, the resource and the credentials. */
function explain(
  error: unknown,
  ctx: {
    action: string;
    permission: string;
    resource: string;
    credentials: string;
    host: string;
  },
): unknown {
  if (!isBitbucketError(error)) return error;
  const said = error.bitbucketMessage
    ? ` Bitbucket said: ${error.bitbucketMessage}`
    : '';
  if (error.kind === 'unauthorized') {
    return new BitbucketError(
      `Bitbucket ${ctx.host} rejected ${ctx.credentials} while trying to ${ctx.action}: the token or password is invalid, expired or revoked (HTTP ${error.status}).${said}`,
      {
        kind: 'unauthorized',
        status: error.status,
        details: error.details,
        request: error.request,
      },
    );
  }
  if (error.kind === 'forbidden') {
    return new BitbucketError(
      `${ctx.credentials[0].toUpperCase()}${ctx.credentials.slice(1)} may not ${
        ctx.action
      }: it needs ${ctx.permission} on ${ctx.resource} (HTTP ${
        error.status
      }).${said}`,
      {
        kind: 'forbidden',
        status: error.status,
        details: error.details,
        request: error.request,
      },
    );
  }
  return error;
}

/** Runs `fn`, rewording permission and credential failures. */
async function step<T>(
  ctx: {
    action: string;
    permission: string;
    resource: string;
    credentials: string;
    host: string;
  },
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw explain(error, ctx);
  }
}

/**
 * Finds a project by key (any case) or, failing that, by exact name across all pages of
 * `GET /projects?name=` — never by substring (flux2#2411: `unity` must not match `Community`).
 * @public
 */
export async function resolveProject(
  client: BitbucketServerClient,
  keyOrName: string,
  opts: { signal?: AbortSignal; credentials?: string } = {},
): Promise<BitbucketProject> {
  const credentials = opts.credentials ?? 'the credentials';
  const ctx = {
    action: `read project "${keyOrName}"`,
    permission: 'PROJECT_READ',
    resource: `project ${keyOrName}`,
    credentials,
    host: client.host.host,
  };
  return step(ctx, async () => {
    if (isProjectKey(keyOrName)) {
      const candidates = [...new Set([keyOrName, keyOrName.toUpperCase()])];
      for (const key of candidates) {
        const res = await client.request<BitbucketProject>(
          'GET',
          restPath('/rest/api/1.0/projects/{}', key),
          {
            signal: opts.signal,
            expectedStatus: [404],
          },
        );
        if (res.status !== 404 && res.body?.key) return res.body;
      }
    }
    const similar: BitbucketProject[] = [];
    for await (const p of client.paginate<BitbucketProject>(
      '/rest/api/1.0/projects',
      {
        query: { name: keyOrName },
        signal: opts.signal,
      },
    )) {
      if (p.name === keyOrName) return p;
      if (similar.length < 5) similar.push(p);
    }
    const hint = similar.length
      ? ` Projects whose name contains "${keyOrName}": ${similar
          .map(p => `${p.name} (${p.key})`)
          .join(', ')} — use the project key.`
      : '';
    throw new BitbucketError(
      `Project "${keyOrName}" was not found on Bitbucket ${client.host.host}: no project has that key or exactly that name, or ${credentials} cannot see it (PROJECT_READ is needed).${hint}`,
      { kind: 'not-found', status: 404 },
    );
  });
}

/**
 * Fails early unless the credentials belong to the owner of a personal project (`~owner`):
 * Bitbucket would create the repository under the token's own user, or refuse.
 * @public
 */
export async function checkPersonalOwner(
  client: BitbucketServerClient,
  owner: string,
  opts: { signal?: AbortSignal; credentials?: string } = {},
): Promise<string> {
  const credentials = opts.credentials ?? 'the credentials';
  const me = await step(
    {
      action: 'identify its user',
      permission: 'a licensed user',
      resource: client.host.host,
      credentials,
      host: client.host.host,
    },
    () => client.whoami(opts.signal),
  );
  if (lower(me.name) === lower(owner)) return me.name;
  const user = await client
    .getUser(me.name, opts.signal)
    .catch(() => undefined);
  if (user?.slug && lower(user.slug) === lower(owner)) return me.name;
  throw new BitbucketError(
    `repoUrl asks for a personal repository of "${owner}" (project=~${owner}), but ${credentials} belong to "${
      me.name
    }". Only the owner's own credentials can create repositories in a personal project: use project=~${
      user?.slug ?? lower(me.name)
    } or ${owner}'s token.`,
    { kind: 'forbidden' },
  );
}

function summarize(repo: BitbucketRepository): BitbucketRepository {
  return {
    slug: repo.slug,
    id: repo.id,
    name: repo.name,
    description: repo.description,
    public: repo.public,
    scmId: repo.scmId,
    project: {
      key: repo.project.key,
      name: repo.project.name,
      type: repo.project.type,
    },
    links: {
      clone: (repo.links?.clone ?? []).map(l => ({
        href: l.href,
        name: l.name,
      })),
      self: (repo.links?.self ?? []).map(l => ({ href: l.href })),
    },
  };
}

async function findRepositoryByName(
  client: BitbucketServerClient,
  projectKey: string,
  name: string,
  signal?: AbortSignal,
): Promise<BitbucketRepository | undefined> {
  for await (const r of client.paginate<BitbucketRepository>(
    restPath('/rest/api/1.0/projects/{}/repos', projectKey),
    { signal },
  )) {
    if (lower(r.name) === lower(name) || r.slug === repositorySlug(name))
      return r;
  }
  return undefined;
}

async function readGroupPermission(
  client: BitbucketServerClient,
  projectKey: string,
  slug: string,
  group: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  // `filter` is a substring match: compare names exactly, over all pages.
  for await (const p of client.paginate<BitbucketGroupPermission>(
    restPath(
      '/rest/api/1.0/projects/{}/repos/{}/permissions/groups',
      projectKey,
      slug,
    ),
    { query: { filter: group }, signal },
  )) {
    if (p.group?.name === group) return p.permission;
  }
  return undefined;
}

/**
 * Grants a group a repository permission and reads it back. Sets exactly the requested level
 * (a re-run converges; another level set by hand is replaced).
 * @public
 */
export async function ensureGroupPermission(
  client: BitbucketServerClient,
  projectKey: string,
  slug: string,
  grant: BitbucketGroupGrant,
  opts: {
    signal?: AbortSignal;
    credentials?: string;
    logger?: EngineLogger;
  } = {},
): Promise<{ changed: boolean; permission: BitbucketRepoPermission }> {
  const logger = opts.logger ?? silentLogger;
  const ctx = {
    action: `grant group "${grant.name}" ${grant.permission} on ${projectKey}/${slug}`,
    permission: 'REPO_ADMIN',
    resource: `repository ${projectKey}/${slug}`,
    credentials: opts.credentials ?? 'the credentials',
    host: client.host.host,
  };
  return step(ctx, async () => {
    const current = await readGroupPermission(
      client,
      projectKey,
      slug,
      grant.name,
      opts.signal,
    );
    if (current === grant.permission) {
      logger.info(
        `Group "${grant.name}" already has ${grant.permission} on ${projectKey}/${slug}`,
      );
      return { changed: false, permission: grant.permission };
    }
    try {
      await client.request(
        'PUT',
        restPath(
          '/rest/api/1.0/projects/{}/repos/{}/permissions/groups',
          projectKey,
          slug,
        ),
        {
          query: { name: grant.name, permission: grant.permission },
          signal: opts.signal,
        },
      );
    } catch (error) {
      if (
        isBitbucketError(error, 'not-found') &&
        /group/i.test(`${error.exceptionName} ${error.bitbucketMessage}`)
      ) {
        throw new BitbucketError(
          `Group "${grant.name}" does not exist on Bitbucket ${client.host.host}; create it or fix groups[].name.`,
          {
            kind: 'not-found',
            status: 404,
            details: error.details,
            request: error.request,
          },
        );
      }
      throw error;
    }
    const after = await readGroupPermission(
      client,
      projectKey,
      slug,
      grant.name,
      opts.signal,
    );
    if (after !== grant.permission) {
      throw new BitbucketError(
        `Bitbucket accepted granting ${grant.permission} to group "${
          grant.name
        }" on ${projectKey}/${slug}, but reading it back gives ${
          after ?? 'no permission'
        }`,
        { kind: 'server' },
      );
    }
    logger.info(
      `Granted group "${grant.name}" ${
        grant.permission
      } on ${projectKey}/${slug}${current ? ` (was ${current})` : ''}`,
    );
    return { changed: true, permission: grant.permission };
  });
}

async function firstBranches(
  client: BitbucketServerClient,
  projectKey: string,
  slug: string,
  signal?: AbortSignal,
): Promise<BitbucketBranch[]> {
  const res = await client.request<BitbucketPage<BitbucketBranch> | undefined>(
    'GET',
    restPath('/rest/api/1.0/projects/{}/repos/{}/branches', projectKey, slug),
    { query: { limit: 25, details: false }, signal },
  );
  return res.body?.values ?? [];
}

/**
 * Makes `branch` the repository's default branch: `PUT …/default-branch` (Bitbucket 7.5+),
 * falling back to the older `PUT …/branches/default`.
 * @public
 */
export async function setDefaultBranch(
  client: BitbucketServerClient,
  projectKey: string,
  slug: string,
  branch: string,
  signal?: AbortSignal,
): Promise<void> {
  const body = { id: `refs/heads/${branch}` };
  const res = await client.request(
    'PUT',
    restPath(
      '/rest/api/1.0/projects/{}/repos/{}/default-branch',
      projectKey,
      slug,
    ),
    { body, signal, expectedStatus: [404, 405] },
  );
  if (res.status === 404 || res.status === 405) {
    await client.request(
      'PUT',
      restPath(
        '/rest/api/1.0/projects/{}/repos/{}/branches/default',
        projectKey,
        slug,
      ),
      {
        body,
        signal,
      },
    );
  }
}

async function commitAuthor(
  client: BitbucketServerClient,
  signal?: AbortSignal,
): Promise<{ name: string; email: string }> {
  try {
    const me = await client.whoami(signal);
    const user = await client.getUser(me.name, signal);
    return {
      name: user?.displayName || me.name,
      email: user?.emailAddress ?? '',
    };
  } catch (error) {
    if (isBitbucketError(error, 'unauthorized')) throw error;
    return { name: 'Flux', email: '' };
  }
}

/**
 * Makes sure `branch` exists so that the next step can push to it.
 *
 * Why an initial commit rather than leaving the repository empty: an empty Bitbucket repository
 * has no branches at all, whatever `defaultBranch` it was created with. Creating the branch here
 * (1) gives every later reader a real head — Flux's GitRepository, the status card's
 * `getBranchHead`, Bitbucket's UI and branch permissions; (2) works on servers that ignore
 * `defaultBranch` at creation (Bitbucket before 7.5 always starts with `master`), because the
 * default branch can only be verified and set reliably once the branch exists; (3) is safe to
 * race: the push announces `0000…` as the branch's old value, so receive-pack only accepts it
 * while the branch does not exist and no one's work can be overwritten. It mirrors what the
 * flux CLI does for a new repository (spec §4.3 A5), but pushes directly to the requested branch
 * instead of `master` + `main` (spec §4.6 #2).
 *
 * - branch exists → nothing (for a repository created or emptied by this run, the default-branch
 *   setting is checked and fixed);
 * - repository empty → one empty-tree commit pushed to `branch`, then `branch` made the default;
 * - repository has other branches → `branch` created from the default branch's head over REST;
 *   the repository's default branch setting is left alone.
 * @public
 */
export async function ensureBranch(
  client: BitbucketServerClient,
  projectKey: string,
  slug: string,
  branch: string,
  opts: {
    signal?: AbortSignal;
    logger?: EngineLogger;
    credentials?: string;
    cloneUrl: string;
    /** Also make it the default branch when it already exists (a repository created by this run). */
    makeDefault?: boolean;
    initialCommitMessage?: string;
  },
): Promise<{
  head?: string;
  created?: 'initial-commit' | 'from-default-branch';
  madeDefault: boolean;
}> {
  const logger = opts.logger ?? silentLogger;
  const credentials = opts.credentials ?? 'the credentials';
  const resource = `repository ${projectKey}/${slug}`;
  const ctx = (action: string, permission: string) => ({
    action,
    permission,
    resource,
    credentials,
    host: client.host.host,
  });

  const ensureDefault = async (): Promise<boolean> => {
    const b = await client.getBranch(projectKey, slug, branch, opts.signal);
    if (!b || b.isDefault !== false) return false;
    await step(
      ctx(
        `make "${branch}" the default branch of ${projectKey}/${slug}`,
        'REPO_ADMIN',
      ),
      () => setDefaultBranch(client, projectKey, slug, branch, opts.signal),
    );
    const check = await client.getBranch(projectKey, slug, branch, opts.signal);
    if (check?.isDefault === false) {
      throw new BitbucketError(
        `Bitbucket did not make "${branch}" the default branch of ${projectKey}/${slug}`,
        {
          kind: 'server',
        },
      );
    }
    logger.info(`Made "${branch}" the default branch of ${projectKey}/${slug}`);
    return true;
  };

  const existing = await client.getBranch(
    projectKey,
    slug,
    branch,
    opts.signal,
  );
  if (existing) {
    logger.info(
      `Branch "${branch}" exists in ${projectKey}/${slug} at ${
        existing.latestCommit ?? 'an unknown commit'
      }`,
    );
    const madeDefault = opts.makeDefault ? await ensureDefault() : false;
    return {
      head: existing.latestCommit ?? existing.latestChangeset,
      madeDefault,
    };
  }

  const others = await firstBranches(client, projectKey, slug, opts.signal);
  if (others.length === 0) {
    logger.info(
      `${projectKey}/${slug} is empty; pushing an initial commit to create branch "${branch}"`,
    );
    const author = await commitAuthor(client, opts.signal);
    let head: string | undefined;
    try {
      head = await step(
        ctx(`push branch "${branch}" to ${projectKey}/${slug}`, 'REPO_WRITE'),
        () =>
          pushInitialCommit(client, {
            cloneUrl: opts.cloneUrl,
            branch,
            author,
            message: opts.initialCommitMessage,
            signal: opts.signal,
          }),
      );
    } catch (error) {
      if (!isBitbucketError(error, 'conflict')) throw error;
      // Somebody created the branch meanwhile: fine, as long as it exists now.
      head = await client.getBranchHead(projectKey, slug, branch, opts.signal);
      if (!head) throw error;
    }
    const madeDefault = await ensureDefault();
    return { head, created: 'initial-commit', madeDefault };
  }

  const base = others.find(b => b.isDefault) ?? others[0];
  logger.info(
    `Branch "${branch}" is missing in ${projectKey}/${slug}; creating it from "${base.displayId}"`,
  );
  const created = await step(
    ctx(`create branch "${branch}" in ${projectKey}/${slug}`, 'REPO_WRITE'),
    async () => {
      const res = await client.request<BitbucketBranch>(
        'POST',
        restPath(
          '/rest/api/1.0/projects/{}/repos/{}/branches',
          projectKey,
          slug,
        ),
        {
          body: { name: branch, startPoint: base.id },
          signal: opts.signal,
          expectedStatus: [409],
          retry: true, // a repeat answers 409, handled below
        },
      );
      return res.status === 409 ? undefined : res.body;
    },
  );
  const head =
    created?.latestCommit ??
    (await client.getBranchHead(projectKey, slug, branch, opts.signal));
  if (!head) {
    throw new BitbucketError(
      `Bitbucket did not create branch "${branch}" in ${projectKey}/${slug}`,
      { kind: 'server' },
    );
  }
  return { head, created: 'from-default-branch', madeDefault: false };
}

/**
 * `bitbucket:create-repo` without the scaffolder: resolves the owner, creates the repository when
 * missing (`public` sent explicitly, the requested default branch), grants and verifies group
 * permissions, and makes the default branch exist. Every side effect runs inside
 * `opts.checkpoint` with a stable key and is idempotent on its own, so three runs in a row give
 * one repository, one permission per group and no error.
 * @public
 */
export async function ensureBitbucketRepository(
  client: BitbucketServerClient,
  req: EnsureRepositoryRequest,
  opts: EnsureRepositoryOptions = {},
): Promise<EnsuredRepository> {
  validateRepositoryRequest(req);
  const logger = opts.logger ?? silentLogger;
  const checkpoint: CheckpointFn = opts.checkpoint ?? runCheckpointDirectly;
  const credentials = opts.credentials ?? 'the credentials';
  const { signal } = opts;
  const hostName = client.host.host;
  const { ref } = req;

  logger.info(`Connecting to Bitbucket ${hostName} (${client.baseUrl})`);
  let projectKey: string;
  if (ref.personal) {
    const me = await checkPersonalOwner(client, ref.owner!, {
      signal,
      credentials,
    });
    logger.info(`Credentials belong to "${me}", the owner of ~${ref.owner}`);
    projectKey = `~${ref.owner}`;
  } else {
    const project = await resolveProject(client, ref.project, {
      signal,
      credentials,
    });
    projectKey = project.key;
    logger.info(
      project.key === ref.project
        ? `Project ${project.key} found`
        : `Project "${ref.project}" is ${project.name} (${project.key})`,
    );
  }

  const wantedSlug = repositorySlug(ref.repo);
  const repoState = await checkpoint(
    `repository.${lower(projectKey)}.${wantedSlug}`,
    async () => {
      const existing =
        (await step(
          {
            action: `read repositories of ${projectKey}`,
            permission: 'PROJECT_READ',
            resource: `project ${projectKey}`,
            credentials,
            host: hostName,
          },
          () => client.getRepository(projectKey, wantedSlug, signal),
        )) ?? undefined;
      if (existing) return { created: false, repo: summarize(existing) };
      logger.info(
        `Creating ${req.private ? 'private' : 'public'} repository "${
          ref.repo
        }" in ${projectKey} with default branch "${req.defaultBranch}"`,
      );
      try {
        const res = await step(
          {
            action: `create repositories in ${projectKey}`,
            permission: ref.personal
              ? 'to be the owner of the personal project'
              : 'the project permission "Create repository" (REPO_CREATE) or PROJECT_ADMIN',
            resource: `project ${projectKey}`,
            credentials,
            host: hostName,
          },
          () =>
            client.request<BitbucketRepository>(
              'POST',
              restPath('/rest/api/1.0/projects/{}/repos', projectKey),
              {
                body: {
                  name: ref.repo,
                  scmId: 'git',
                  public: !req.private,
                  defaultBranch: req.defaultBranch,
                  ...(req.description ? { description: req.description } : {}),
                },
                signal,
                retry: true, // a repeat answers 409, handled below
              },
            ),
        );
        return { created: true, repo: summarize(res.body) };
      } catch (error) {
        if (!isBitbucketError(error, 'conflict')) throw error;
        // Created concurrently (or by an earlier attempt whose answer was lost): reuse it.
        const found =
          (await client.getRepository(projectKey, wantedSlug, signal)) ??
          (await findRepositoryByName(client, projectKey, ref.repo, signal));
        if (!found) throw error;
        return { created: false, repo: summarize(found) };
      }
    },
  );
  const repo = repoState.repo;
  const key = repo.project.key;
  const slug = repo.slug;
  if (repoState.created) logger.info(`Created repository ${key}/${slug}`);
  else {
    logger.info(`Repository ${key}/${slug} exists; reusing it`);
    if (repo.public !== undefined && repo.public === req.private) {
      logger.warn(
        `Repository ${key}/${slug} is ${
          repo.public ? 'public' : 'private'
        } although private: ${
          req.private
        } was asked; an existing repository's visibility is left unchanged`,
      );
    }
  }

  for (const grant of req.groups) {
    await checkpoint(
      `group-permission.${lower(key)}.${slug}.${grant.name}`,
      () =>
        ensureGroupPermission(client, key, slug, grant, {
          signal,
          credentials,
          logger,
        }),
    );
  }

  const outputs = repositoryOutputs(
    client.host,
    repo,
    req.defaultBranch,
    repoState.created,
    logger,
  );
  const branchState = await checkpoint(
    `default-branch.${lower(key)}.${slug}.${req.defaultBranch}`,
    async () => {
      const r = await ensureBranch(client, key, slug, req.defaultBranch, {
        signal,
        logger,
        credentials,
        cloneUrl: outputs.remoteUrl,
        makeDefault: repoState.created,
        initialCommitMessage: opts.initialCommitMessage,
      });
      return {
        head: r.head ?? null,
        created: r.created ?? null,
        madeDefault: r.madeDefault,
      };
    },
  );

  return {
    ...outputs,
    repoName: repo.name,
    public: repo.public ?? !req.private,
    branchHead: branchState.head ?? undefined,
    branchCreated: branchState.created ?? undefined,
    groups: req.groups,
  };
}
