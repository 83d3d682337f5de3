import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { validateBranch } from '../manifests/validation';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import { EngineLogger, silentLogger } from '../util/logger';
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
  repoContentsUrl: string;
  projectKey: string;
  repoSlug: string;
  defaultBranch: string;
  created: boolean;
}

/** Throws {@link InputValidationError} for a bad request, before any network call. @public */
export function validateRepositoryRequest(req: EnsureRepositoryRequest): void {
  validateBranch(req.defaultBranch, 'defaultBranch');
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
    const fail = (key: string, message: string) =>
      new InputValidationError(`groups[${i}].${key}`, message);
    if (!g || typeof g.name !== 'string' || !g.name.trim())
      throw fail('name', 'is required');
    // eslint-disable-next-line no-control-regex
    if (g.name.length > 255 || /[\x00-\x1f\x7f]/.test(g.name)) {
      throw fail(
        'name',
        'must be a group name (at most 255 characters, no control characters)',
      );
    }
    if (!REPO_PERMISSIONS.includes(g.permission))
      throw fail('permission', `must be one of ${REPO_PERMISSIONS.join(', ')}`);
    if (seen.has(g.name))
      throw fail('name', `group "${g.name}" is listed twice`);
    seen.add(g.name);
  });
}

const lower = (s: string) => s.toLowerCase();
const segment = encodeURIComponent;

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
  const repoPath = `${segment(lower(key))}/${segment(slug)}`;
  return {
    remoteUrl: `${base}/scm/${repoPath}.git`,
    sshUrl: `ssh://git@${host.sshHost}/${repoPath}.git`,
    repoContentsUrl: ref.personal
      ? `${base}/users/${segment(lower(ref.owner!))}/repos/${segment(
          slug,
        )}/browse`
      : `${base}/projects/${segment(key)}/repos/${segment(slug)}/browse`,
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
    l => typeof l.name === 'string' && lower(l.name) === name,
  )?.href;
}

/** The clone link `name` when it names this repository (any case of the key), parsed. */
function linkOf(repo: BitbucketRepository, name: 'http' | 'ssh') {
  const href = cloneLink(repo, name);
  const tail = lower(`/${repo.project.key}/${repo.slug}`);
  try {
    const url = new URL(href ?? '');
    const p = lower(decodeURIComponent(url.pathname));
    return {
      href,
      url: p.endsWith(tail) || p.endsWith(`${tail}.git`) ? url : undefined,
    };
  } catch {
    return { href, url: undefined };
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
  const personal = key.startsWith('~');
  const planned = planRepositoryOutputs(host, {
    ref: {
      host: host.host,
      project: key,
      repo: repo.slug,
      personal,
      owner: personal ? key.slice(1) : undefined,
    },
    defaultBranch,
  });
  let remoteUrl = planned.remoteUrl;
  const http = linkOf(repo, 'http');
  if (http.url) {
    http.url.username = '';
    http.url.password = '';
    remoteUrl = http.url.toString();
  } else if (http.href) {
    logger.warn(
      `Bitbucket's http clone link ${http.href} does not name ${key}/${repo.slug}; using ${remoteUrl}`,
    );
  }
  const ssh = linkOf(repo, 'ssh').url;
  return {
    ...planned,
    remoteUrl,
    sshUrl: ssh
      ? `ssh://${ssh.username || 'git'}@${host.sshHost}${ssh.pathname}`
      : planned.sshUrl,
    repoContentsUrl: repo.links?.self?.[0]?.href ?? planned.repoContentsUrl,
    projectKey: key,
    repoSlug: repo.slug,
    created,
  };
}

/** What a Bitbucket call tries, for errors that say which permission it needs. @public */
export interface BitbucketAttempt {
  client: Pick<BitbucketServerClient, 'host'>;
  /** How the credentials are named, e.g. `the token input`. */
  credentials: string;
  action: string;
  /** e.g. `PROJECT_READ on project FLUX`. */
  needs: string;
}

/**
 * Runs `fn`, rewording a credential or permission failure (401/403) so that it names the
 * credentials, what was tried and the permission that needs.
 * @public
 */
export async function attempt<T>(
  a: BitbucketAttempt,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (!isBitbucketError(error, 'unauthorized', 'forbidden')) throw error;
    const said = error.bitbucketMessage
      ? ` Bitbucket said: ${error.bitbucketMessage}`
      : '';
    const who = a.credentials;
    throw new BitbucketError(
      error.kind === 'unauthorized'
        ? `Bitbucket ${a.client.host.host} rejected ${who} while trying to ${a.action}: the token or password is invalid, expired or revoked (HTTP ${error.status}).${said}`
        : `${who[0].toUpperCase()}${who.slice(1)} may not ${
            a.action
          }: it needs ${a.needs} (HTTP ${error.status}).${said}`,
      {
        kind: error.kind,
        status: error.status,
        details: error.details,
        request: error.request,
      },
    );
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
  const what = {
    client,
    credentials,
    action: `read project "${keyOrName}"`,
    needs: `PROJECT_READ on project ${keyOrName}`,
  };
  return attempt(what, async () => {
    if (isProjectKey(keyOrName)) {
      for (const key of new Set([keyOrName, keyOrName.toUpperCase()])) {
        const res = await client.request<BitbucketProject>(
          'GET',
          restPath('/rest/api/1.0/projects/{}', key),
          { signal: opts.signal, expectedStatus: [404] },
        );
        if (res.status !== 404 && res.body?.key) return res.body;
      }
    }
    const similar: BitbucketProject[] = [];
    for await (const p of client.paginate<BitbucketProject>(
      '/rest/api/1.0/projects',
      { query: { name: keyOrName }, signal: opts.signal },
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
 * Finds the repository a `repoUrl` names, without creating anything: the project by key (or
 * exact name) or `~owner`, then the repository by its slug. Fails clearly when it does not
 * exist (create it with `bitbucket:create-repo` first).
 * @public
 */
export async function locateBitbucketRepository(
  client: BitbucketServerClient,
  ref: BitbucketRepoRef,
  opts: { signal?: AbortSignal; credentials?: string } = {},
): Promise<{ projectKey: string; repoSlug: string; name: string }> {
  const projectKey = ref.personal
    ? `~${ref.owner}`
    : (await resolveProject(client, ref.project, opts)).key;
  const repo = await client.getRepository(
    projectKey,
    repositorySlug(ref.repo),
    opts.signal,
  );
  if (!repo) {
    throw new BitbucketError(
      `Repository "${ref.repo}" does not exist in ${projectKey} on Bitbucket ${
        ref.host
      } (or ${
        opts.credentials ?? 'the credentials'
      } cannot see it): create it first, e.g. with bitbucket:create-repo`,
      { kind: 'not-found', status: 404 },
    );
  }
  return {
    projectKey: repo.project?.key ?? projectKey,
    repoSlug: repo.slug,
    name: repo.name,
  };
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
  const me = await attempt(
    {
      client,
      credentials,
      action: 'identify its user',
      needs: `a licensed user on ${client.host.host}`,
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

/** The public fields of a repository (what a checkpoint stores). */
function summarize(repo: BitbucketRepository): BitbucketRepository {
  const { slug, id, name, description, public: isPublic, scmId } = repo;
  return {
    slug,
    id,
    name,
    description,
    public: isPublic,
    scmId,
    project: {
      key: repo.project.key,
      name: repo.project.name,
      type: repo.project.type,
    },
    links: {
      clone: (repo.links?.clone ?? []).map(({ href, name: n }) => ({
        href,
        name: n,
      })),
      self: (repo.links?.self ?? []).map(({ href }) => ({ href })),
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
  path: string,
  group: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  // `filter` is a substring match: compare names exactly, over all pages.
  for await (const p of client.paginate<BitbucketGroupPermission>(path, {
    query: { filter: group },
    signal,
  })) {
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
  const { signal } = opts;
  const repo = `${projectKey}/${slug}`;
  const path = restPath(
    '/rest/api/1.0/projects/{}/repos/{}/permissions/groups',
    projectKey,
    slug,
  );
  const what = {
    client,
    credentials: opts.credentials ?? 'the credentials',
    action: `grant group "${grant.name}" ${grant.permission} on ${repo}`,
    needs: `REPO_ADMIN on repository ${repo}`,
  };
  return attempt(what, async () => {
    const current = await readGroupPermission(client, path, grant.name, signal);
    if (current === grant.permission) {
      logger.info(
        `Group "${grant.name}" already has ${grant.permission} on ${repo}`,
      );
      return { changed: false, permission: grant.permission };
    }
    await client
      .request('PUT', path, {
        query: { name: grant.name, permission: grant.permission },
        signal,
      })
      .catch(error => {
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
      });
    const after = await readGroupPermission(client, path, grant.name, signal);
    if (after !== grant.permission) {
      throw new BitbucketError(
        `Bitbucket accepted granting ${grant.permission} to group "${
          grant.name
        }" on ${repo}, but reading it back gives ${after ?? 'no permission'}`,
        { kind: 'server' },
      );
    }
    logger.info(
      `Granted group "${grant.name}" ${grant.permission} on ${repo}${
        current ? ` (was ${current})` : ''
      }`,
    );
    return { changed: true, permission: grant.permission };
  });
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
  const repo = restPath('/rest/api/1.0/projects/{}/repos/{}', projectKey, slug);
  const body = { id: `refs/heads/${branch}` };
  const res = await client.request('PUT', `${repo}/default-branch`, {
    body,
    signal,
    expectedStatus: [404, 405],
  });
  if (res.status === 404 || res.status === 405) {
    await client.request('PUT', `${repo}/branches/default`, { body, signal });
  }
}

/** The author of an initial commit: the credentials' user, else `Flux`. */
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
 * An empty Bitbucket repository has no branches at all, whatever `defaultBranch` it was created
 * with: the branch is created here with one empty-tree commit, which gives Flux, the status card
 * and Bitbucket's UI a real head, lets the default branch be verified and set (Bitbucket before
 * 7.5 ignores `defaultBranch` at creation), and is safe to race (the push announces `0000…` as
 * the old value, so it only lands while the branch does not exist). Flux's CLI pushes `master`
 * and then `main` instead (spec §4.3 A5, §4.6 #2).
 *
 * - branch exists → nothing (with `makeDefault`, it is made the default branch);
 * - repository empty → the initial commit, then `branch` made the default;
 * - other branches exist → `branch` created from the default branch's head over REST; the
 *   default branch setting is left alone.
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
  const { signal } = opts;
  const logger = opts.logger ?? silentLogger;
  const repo = `${projectKey}/${slug}`;
  const needing = (action: string, permission: string) => ({
    client,
    credentials: opts.credentials ?? 'the credentials',
    action,
    needs: `${permission} on repository ${repo}`,
  });

  const ensureDefault = async (): Promise<boolean> => {
    const b = await client.getBranch(projectKey, slug, branch, signal);
    if (!b || b.isDefault !== false) return false;
    await attempt(
      needing(`make "${branch}" the default branch of ${repo}`, 'REPO_ADMIN'),
      () => setDefaultBranch(client, projectKey, slug, branch, signal),
    );
    const check = await client.getBranch(projectKey, slug, branch, signal);
    if (check?.isDefault === false) {
      throw new BitbucketError(
        `Bitbucket did not make "${branch}" the default branch of ${repo}`,
        { kind: 'server' },
      );
    }
    logger.info(`Made "${branch}" the default branch of ${repo}`);
    return true;
  };

  const existing = await client.getBranch(projectKey, slug, branch, signal);
  if (existing) {
    logger.info(
      `Branch "${branch}" exists in ${repo} at ${
        existing.latestCommit ?? 'an unknown commit'
      }`,
    );
    return {
      head: existing.latestCommit ?? existing.latestChangeset,
      madeDefault: opts.makeDefault ? await ensureDefault() : false,
    };
  }

  const branches = restPath(
    '/rest/api/1.0/projects/{}/repos/{}/branches',
    projectKey,
    slug,
  );
  const others =
    (
      await client.request<BitbucketPage<BitbucketBranch> | undefined>(
        'GET',
        branches,
        { query: { limit: 25, details: false }, signal },
      )
    ).body?.values ?? [];
  if (others.length === 0) {
    logger.info(
      `${repo} is empty; pushing an initial commit to create branch "${branch}"`,
    );
    const author = await commitAuthor(client, signal);
    let head: string | undefined;
    try {
      head = await attempt(
        needing(`push branch "${branch}" to ${repo}`, 'REPO_WRITE'),
        () =>
          pushInitialCommit(client, {
            cloneUrl: opts.cloneUrl,
            branch,
            author,
            message: opts.initialCommitMessage,
            signal,
          }),
      );
    } catch (error) {
      if (!isBitbucketError(error, 'conflict')) throw error;
      // Somebody created the branch meanwhile: fine, as long as it exists now.
      head = await client.getBranchHead(projectKey, slug, branch, signal);
      if (!head) throw error;
    }
    return {
      head,
      created: 'initial-commit',
      madeDefault: await ensureDefault(),
    };
  }

  const base = others.find(b => b.isDefault) ?? others[0];
  logger.info(
    `Branch "${branch}" is missing in ${repo}; creating it from "${base.displayId}"`,
  );
  const created = await attempt(
    needing(`create branch "${branch}" in ${repo}`, 'REPO_WRITE'),
    async () => {
      const res = await client.request<BitbucketBranch>('POST', branches, {
        body: { name: branch, startPoint: base.id },
        signal,
        expectedStatus: [409],
        retry: true, // a repeat answers 409, handled below
      });
      return res.status === 409 ? undefined : res.body;
    },
  );
  const head =
    created?.latestCommit ??
    (await client.getBranchHead(projectKey, slug, branch, signal));
  if (!head) {
    throw new BitbucketError(
      `Bitbucket did not create branch "${branch}" in ${repo}`,
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
): Promise<BitbucketRepositoryOutputs> {
  validateRepositoryRequest(req);
  const logger = opts.logger ?? silentLogger;
  const checkpoint = opts.checkpoint ?? runCheckpointDirectly;
  const credentials = opts.credentials ?? 'the credentials';
  const { signal } = opts;
  const { ref } = req;

  logger.info(
    `Connecting to Bitbucket ${client.host.host} (${client.baseUrl})`,
  );
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
  const inProject = (action: string, needs: string) => ({
    client,
    credentials,
    action: `${action} ${projectKey}`,
    needs: `${needs} on project ${projectKey}`,
  });
  const repoState = await checkpoint(
    `repository.${lower(projectKey)}.${wantedSlug}`,
    async () => {
      const existing = await attempt(
        inProject('read repositories of', 'PROJECT_READ'),
        () => client.getRepository(projectKey, wantedSlug, signal),
      );
      if (existing) return { created: false, repo: summarize(existing) };
      logger.info(
        `Creating ${req.private ? 'private' : 'public'} repository "${
          ref.repo
        }" in ${projectKey} with default branch "${req.defaultBranch}"`,
      );
      try {
        const res = await attempt(
          inProject(
            'create repositories in',
            ref.personal
              ? 'to be the owner of the personal project'
              : 'the project permission "Create repository" (REPO_CREATE) or PROJECT_ADMIN',
          ),
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
  const { repo, created } = repoState;
  const key = repo.project.key;
  const slug = repo.slug;
  if (created) logger.info(`Created repository ${key}/${slug}`);
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
    created,
    logger,
  );
  await checkpoint(
    `default-branch.${lower(key)}.${slug}.${req.defaultBranch}`,
    async () => {
      const r = await ensureBranch(client, key, slug, req.defaultBranch, {
        signal,
        logger,
        credentials,
        cloneUrl: outputs.remoteUrl,
        makeDefault: created,
        initialCommitMessage: opts.initialCommitMessage,
      });
      return {
        head: r.head ?? null,
        created: r.created ?? null,
        madeDefault: r.madeDefault,
      };
    },
  );
  return outputs;
}
