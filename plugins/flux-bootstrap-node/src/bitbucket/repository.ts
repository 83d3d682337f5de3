import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { EngineLogger, silentLogger } from '../util/logger';
import type { Redactor } from '../util/redact';
import { attempt, BitbucketAccess, resolveTokenOwner } from './access';
import { BitbucketServerClient, repoPath, restPath } from './client';
import { BitbucketError, isBitbucketError } from './errors';
import { pushInitialCommit } from './initialCommit';
import { BitbucketRepoRef, isProjectKey, repositorySlug } from './repoUrl';
import type {
  BitbucketBranch,
  BitbucketPage,
  BitbucketProject,
  BitbucketRepoPermission,
  BitbucketRepository,
} from './types';

/** A group and the repository permission it should hold. @public */
export interface BitbucketGroupGrant {
  name: string;
  permission: BitbucketRepoPermission;
}

/** What {@link ensureFleetRepository} makes true: a parsed `bitbucket:create-repo` input. @public */
export interface FleetRepositoryRequest {
  bitbucket: BitbucketAccess;
  description?: string;
  /** false: created public (sent explicitly, unlike the flux CLI). */
  private: boolean;
  /** The branch Flux will sync; created when missing. */
  defaultBranch: string;
  groups: BitbucketGroupGrant[];
  /** Flux will read the repository over HTTPS with these credentials: they must be a user's. */
  tokenAuth?: boolean;
}

/** Collaborators of {@link ensureFleetRepository}; `checkpoint` runs each side effect once per task. @public */
export interface FleetRepositoryDeps {
  logger?: EngineLogger;
  redactor?: Redactor;
  signal?: AbortSignal;
  checkpoint?: CheckpointFn;
  dryRun?: boolean;
}

/** The outputs of `bitbucket:create-repo`. @public */
export interface BitbucketRepositoryOutputs {
  /** HTTPS clone URL, without user info. */
  remoteUrl: string;
  /** SSH clone URL on the configured SSH host and port, e.g. `ssh://git@host:7999/flux/fleet.git`. */
  sshUrl: string;
  repoContentsUrl: string;
  projectKey: string;
  repoSlug: string;
  defaultBranch: string;
  created: boolean;
  /** The user the credentials act as (`X-AUSERNAME`); unknown in a dry run. */
  tokenOwner?: string;
}

const lower = (s: string) => s.toLowerCase();
const segment = encodeURIComponent;

/**
 * The outputs a run would produce, without any request (dry run); a project given by name is
 * reported as given, since its key needs Bitbucket.
 * @public
 */
export function planRepositoryOutputs(
  host: BitbucketServerHostConfig,
  req: { ref: BitbucketRepoRef; defaultBranch: string },
): BitbucketRepositoryOutputs {
  const { ref } = req;
  const slug = repositorySlug(ref.repo);
  let key = ref.project;
  if (ref.personal) key = `~${ref.owner!.toUpperCase()}`;
  else if (isProjectKey(ref.project)) key = ref.project.toUpperCase();
  const base = host.baseUrl.replace(/\/+$/, '');
  const scmPath = `${segment(lower(key))}/${segment(slug)}`;
  const browse = ref.personal
    ? `users/${segment(lower(ref.owner!))}`
    : `projects/${segment(key)}`;
  return {
    remoteUrl: `${base}/scm/${scmPath}.git`,
    sshUrl: `ssh://git@${host.sshHost}/${scmPath}.git`,
    repoContentsUrl: `${base}/${browse}/repos/${segment(slug)}/browse`,
    projectKey: key,
    repoSlug: slug,
    defaultBranch: req.defaultBranch,
    created: false,
  };
}

/** Picks a clone link by its name (`http`, `ssh`), never by position. */
export function cloneLink(
  repo: Pick<BitbucketRepository, 'links'>,
  name: 'http' | 'ssh',
): string | undefined {
  return repo.links?.clone?.find(l => lower(l.name ?? '') === name)?.href;
}

/** The clone link `name`, parsed, when it names this repository (any case of the key). */
function cloneUrl(repo: BitbucketRepository, name: 'http' | 'ssh') {
  const href = cloneLink(repo, name) ?? '';
  const url = URL.canParse(href) ? new URL(href) : undefined;
  const path = lower(url?.pathname ?? '').replace(/\.git$/, '');
  return path.endsWith(lower(`/${repo.project.key}/${repo.slug}`))
    ? url
    : undefined;
}

/**
 * The outputs for a repository as Bitbucket describes it: clone links chosen by name without
 * user info, the SSH URL on the configured SSH host and port (flux2#2207: without the port Flux
 * dials port 22).
 */
export function repositoryOutputs(
  host: BitbucketServerHostConfig,
  repo: BitbucketRepository,
  defaultBranch: string,
  created: boolean,
  logger: EngineLogger = silentLogger,
): BitbucketRepositoryOutputs {
  const key = repo.project.key;
  const owner = key.startsWith('~') ? key.slice(1) : undefined;
  const ref = { host: host.host, project: key, repo: repo.slug, owner };
  const planned = planRepositoryOutputs(host, {
    ref: { ...ref, personal: !!owner },
    defaultBranch,
  });
  const [http, ssh] = [cloneUrl(repo, 'http'), cloneUrl(repo, 'ssh')];
  const link = cloneLink(repo, 'http');
  const unusable = `Bitbucket's http clone link ${link} does not name ${key}/${repo.slug}; using ${planned.remoteUrl}`;
  if (http) http.username = http.password = '';
  else if (link) logger.warn(unusable);
  return {
    ...planned,
    remoteUrl: http?.toString() ?? planned.remoteUrl,
    sshUrl: ssh
      ? `ssh://${ssh.username || 'git'}@${host.sshHost}${ssh.pathname}`
      : planned.sshUrl,
    repoContentsUrl: repo.links?.self?.[0]?.href ?? planned.repoContentsUrl,
    projectKey: key,
    repoSlug: repo.slug,
    created,
  };
}

interface Session {
  client: BitbucketServerClient;
  credentials: string;
  logger: EngineLogger;
  signal?: AbortSignal;
}

/**
 * A project by key (any case) or, failing that, by exact name across all pages of
 * `GET /projects?name=` — never by substring (flux2#2411: `unity` must not match `Community`).
 */
function resolveProject(s: Session, keyOrName: string) {
  const { client, signal } = s;
  const action = `read project "${keyOrName}"`;
  const needs = `PROJECT_READ on project ${keyOrName}`;
  return attempt({ ...s, action, needs }, async () => {
    const keys = isProjectKey(keyOrName)
      ? [keyOrName, keyOrName.toUpperCase()]
      : [];
    for (const key of new Set(keys)) {
      const path = restPath('/rest/api/1.0/projects/{}', key);
      const res = await client.request<BitbucketProject>('GET', path, {
        signal,
        expectedStatus: [404],
      });
      if (res.status !== 404 && res.body?.key) return res.body;
    }
    const similar: string[] = [];
    const query = { name: keyOrName };
    for await (const p of client.paginate<BitbucketProject>(
      '/rest/api/1.0/projects',
      { query, signal },
    )) {
      if (p.name === keyOrName) return p;
      if (similar.length < 5) similar.push(`${p.name} (${p.key})`);
    }
    const names = similar.join(', ');
    const hint = names
      ? ` Projects whose name contains "${keyOrName}": ${names} — use the project key.`
      : '';
    throw new BitbucketError(
      `Project "${keyOrName}" was not found on Bitbucket ${client.host.host}: no project has that key or exactly that name, or ${s.credentials} cannot see it (PROJECT_READ is needed).${hint}`,
      { kind: 'not-found', status: 404 },
    );
  });
}

/**
 * Finds the repository a `repoUrl` names, creating nothing: the project by key, exact name or
 * `~owner`, then the repository by slug; fails clearly when it does not exist. `ref` is the
 * repository as Bitbucket names it (the project's key, the slug).
 * @public
 */
export async function locateBitbucketRepository(
  client: BitbucketServerClient,
  ref: BitbucketRepoRef,
  opts: { signal?: AbortSignal; credentials?: string } = {},
): Promise<{
  projectKey: string;
  repoSlug: string;
  name: string;
  ref: BitbucketRepoRef;
}> {
  const credentials = opts.credentials ?? 'the credentials';
  const s = { client, credentials, logger: silentLogger, signal: opts.signal };
  const projectKey = ref.personal
    ? `~${ref.owner}`
    : (await resolveProject(s, ref.project)).key;
  const repo = await client.getRepository(
    projectKey,
    repositorySlug(ref.repo),
    opts.signal,
  );
  if (!repo) {
    throw new BitbucketError(
      `Repository "${ref.repo}" does not exist in ${projectKey} on Bitbucket ${ref.host} (or ${credentials} cannot see it): create it first, e.g. with bitbucket:create-repo`,
      { kind: 'not-found', status: 404 },
    );
  }
  const { slug: repoSlug, name } = repo;
  const key = repo.project?.key ?? projectKey;
  const personal = key.startsWith('~');
  const owner = personal ? key.slice(1) : undefined;
  return {
    projectKey: key,
    repoSlug,
    name,
    ref: { host: ref.host, project: key, repo: repoSlug, personal, owner },
  };
}

/**
 * The project to create in: `~owner` only once the credentials proved to be the owner's
 * (Bitbucket would create the repository under the credentials' own user, or refuse).
 */
async function owningProject(s: Session, ref: BitbucketRepoRef) {
  if (!ref.personal) {
    const project = await resolveProject(s, ref.project);
    s.logger.info(
      project.key === ref.project
        ? `Project ${project.key} found`
        : `Project "${ref.project}" is ${project.name} (${project.key})`,
    );
    return project.key;
  }
  const owner = ref.owner!;
  const action = 'identify its user';
  const needs = `a licensed user on ${s.client.host.host}`;
  const me = await attempt({ ...s, action, needs }, () =>
    s.client.currentUser(s.signal),
  );
  if ([me.name, me.user?.slug ?? ''].some(n => lower(n) === lower(owner))) {
    s.logger.info(`Credentials belong to "${me.name}", the owner of ~${owner}`);
    return `~${owner}`;
  }
  const mine = me.user?.slug ?? lower(me.name);
  throw new BitbucketError(
    `repoUrl asks for a personal repository of "${owner}" (project=~${owner}), but ${s.credentials} belong to "${me.name}". Only the owner's own credentials can create repositories in a personal project: use project=~${mine} or ${owner}'s token.`,
    { kind: 'forbidden' },
  );
}

/**
 * The repository, created when missing; a 409 (created concurrently, or by an attempt whose
 * answer was lost) is reused. The value is public JSON (a checkpoint stores it).
 */
async function ensureRepository(
  s: Session,
  projectKey: string,
  req: FleetRepositoryRequest,
) {
  const { client, signal } = s;
  const { ref } = req.bitbucket;
  const find = () =>
    attempt(
      {
        ...s,
        action: `read repositories of ${projectKey}`,
        needs: `PROJECT_READ on project ${projectKey}`,
      },
      () => client.getRepository(projectKey, repositorySlug(ref.repo), signal),
    );
  const existing = await find();
  if (existing) return { created: false, repo: existing };
  const visibility = req.private ? 'private' : 'public';
  s.logger.info(
    `Creating ${visibility} repository "${ref.repo}" in ${projectKey} with default branch "${req.defaultBranch}"`,
  );
  const needs = ref.personal
    ? 'to be the owner of the personal project'
    : 'the project permission "Create repository" (REPO_CREATE) or PROJECT_ADMIN';
  const action = `create repositories in ${projectKey}`;
  const body = {
    name: ref.repo,
    scmId: 'git',
    public: !req.private,
    defaultBranch: req.defaultBranch,
    ...(req.description ? { description: req.description } : {}),
  };
  const path = restPath('/rest/api/1.0/projects/{}/repos', projectKey);
  try {
    // A repeat answers 409, handled below.
    const res = await attempt(
      { ...s, action, needs: `${needs} on project ${projectKey}` },
      () =>
        client.request<BitbucketRepository>('POST', path, {
          body,
          signal,
          retry: true,
        }),
    );
    return { created: true, repo: res.body };
  } catch (error) {
    const found = isBitbucketError(error, 'conflict') && (await find());
    if (!found) throw error;
    return { created: false, repo: found };
  }
}

/** The permission a group holds on a repository (`filter` is a substring: names compared exactly). */
async function groupPermission(s: Session, path: string, group: string) {
  const query = { filter: group };
  for await (const p of s.client.paginate<{
    group: { name: string };
    permission: string;
  }>(path, { query, signal: s.signal }))
    if (p.group?.name === group) return p.permission;
  return undefined;
}

/** Grants a group exactly the requested permission (another level is replaced) and reads it back. */
function ensureGroupPermission(
  s: Session,
  repo: { projectKey: string; slug: string },
  { name, permission }: BitbucketGroupGrant,
) {
  const where = `${repo.projectKey}/${repo.slug}`;
  const path = repoPath(repo.projectKey, repo.slug, '/permissions/groups');
  const action = `grant group "${name}" ${permission} on ${where}`;
  const needs = `REPO_ADMIN on repository ${where}`;
  return attempt({ ...s, action, needs }, async () => {
    const current = await groupPermission(s, path, name);
    if (current === permission) {
      s.logger.info(`Group "${name}" already has ${permission} on ${where}`);
      return { changed: false };
    }
    const query = { name, permission };
    const put = s.client.request('PUT', path, { query, signal: s.signal });
    await put.catch(error => {
      const text = `${error.exceptionName} ${error.bitbucketMessage}`;
      if (!isBitbucketError(error, 'not-found') || !/group/i.test(text))
        throw error;
      throw new BitbucketError(
        `Group "${name}" does not exist on Bitbucket ${s.client.host.host}; create it or fix groups[].name.`,
        { kind: 'not-found', status: 404, details: error.details },
      );
    });
    const after = (await groupPermission(s, path, name)) ?? 'no permission';
    if (after !== permission) {
      throw new BitbucketError(
        `Bitbucket accepted granting ${permission} to group "${name}" on ${where}, but reading it back gives ${after}`,
        { kind: 'server' },
      );
    }
    const was = current ? ` (was ${current})` : '';
    s.logger.info(`Granted group "${name}" ${permission} on ${where}${was}`);
    return { changed: true };
  });
}

/** Makes `branch` the default: `PUT …/default-branch` (Bitbucket 7.5+), else `PUT …/branches/default`. */
export async function setDefaultBranch(
  client: BitbucketServerClient,
  projectKey: string,
  slug: string,
  branch: string,
  signal?: AbortSignal,
): Promise<void> {
  const repo = repoPath(projectKey, slug);
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

async function commitAuthor(s: Session) {
  try {
    const { name, user } = await s.client.currentUser(s.signal);
    return { name: user?.displayName || name, email: user?.emailAddress ?? '' };
  } catch (error) {
    if (isBitbucketError(error, 'unauthorized')) throw error;
    return { name: 'Flux', email: '' };
  }
}

/**
 * Makes sure `branch` exists. An empty repository has no branch whatever its `defaultBranch`: it
 * gets an initial commit on `branch`, made the default (Bitbucket before 7.5 ignores
 * `defaultBranch`; Flux's CLI pushes `master` then `main`, spec §4.3 A5, §4.6 #2). Otherwise the
 * branch is created from the default branch's head. The value is public JSON (a checkpoint).
 */
async function ensureBranch(
  s: Session,
  repository: { projectKey: string; slug: string; cloneUrl: string },
  branch: string,
  makeDefault: boolean,
): Promise<{ head: string | null; created: string | null }> {
  const { client, signal, logger } = s;
  const { projectKey, slug } = repository;
  const repo = `${projectKey}/${slug}`;
  const tryTo = <T>(action: string, needs: string, fn: () => Promise<T>) =>
    attempt({ ...s, action, needs: `${needs} on repository ${repo}` }, fn);
  const getBranch = () => client.getBranch(projectKey, slug, branch, signal);
  const failed = (action: string) =>
    new BitbucketError(`Bitbucket did not ${action}`, { kind: 'server' });

  const ensureDefault = async () => {
    if ((await getBranch())?.isDefault !== false) return;
    const action = `make "${branch}" the default branch of ${repo}`;
    await tryTo(action, 'REPO_ADMIN', () =>
      setDefaultBranch(client, projectKey, slug, branch, signal),
    );
    if ((await getBranch())?.isDefault === false) throw failed(action);
    logger.info(`Made "${branch}" the default branch of ${repo}`);
  };

  const existing = await getBranch();
  if (existing) {
    const head = existing.latestCommit ?? existing.latestChangeset ?? null;
    logger.info(
      `Branch "${branch}" exists in ${repo} at ${head ?? 'an unknown commit'}`,
    );
    if (makeDefault) await ensureDefault();
    return { head, created: null };
  }

  const branches = repoPath(projectKey, slug, '/branches');
  const list = await client.request<BitbucketPage<BitbucketBranch> | undefined>(
    'GET',
    branches,
    { query: { limit: 25, details: false }, signal },
  );
  const others = list.body?.values ?? [];
  if (others.length === 0) {
    logger.info(
      `${repo} is empty; pushing an initial commit to create branch "${branch}"`,
    );
    const author = await commitAuthor(s);
    let head: string | undefined;
    const push = `push branch "${branch}" to ${repo}`;
    try {
      head = await tryTo(push, 'REPO_WRITE', () =>
        pushInitialCommit(client, { ...repository, branch, author, signal }),
      );
    } catch (error) {
      if (!isBitbucketError(error, 'conflict')) throw error;
      // Somebody created the branch meanwhile: fine, as long as it exists now.
      head = await client.getBranchHead(projectKey, slug, branch, signal);
      if (!head) throw error;
    }
    await ensureDefault();
    return { head, created: 'initial-commit' };
  }

  const base = others.find(b => b.isDefault) ?? others[0];
  logger.info(
    `Branch "${branch}" is missing in ${repo}; creating it from "${base.displayId}"`,
  );
  const body = { name: branch, startPoint: base.id };
  const action = `create branch "${branch}" in ${repo}`;
  const created = await tryTo(action, 'REPO_WRITE', async () => {
    // A repeat answers 409: the branch is read below.
    const res = await client.request<BitbucketBranch>('POST', branches, {
      body,
      signal,
      expectedStatus: [409],
      retry: true,
    });
    return res.status === 409 ? undefined : res.body;
  });
  const head =
    created?.latestCommit ??
    (await client.getBranchHead(projectKey, slug, branch, signal));
  if (!head) throw failed(action);
  return { head, created: 'from-default-branch' };
}

/**
 * `bitbucket:create-repo`: with `tokenAuth` checks that the credentials belong to a user, resolves
 * the owner (`~owner` needs the owner's credentials), creates the repository when missing, grants
 * each group exactly its permission and makes the default branch exist. Each side effect runs in
 * `checkpoint` with a stable key and is idempotent; a dry run sends nothing.
 * @public
 */
export async function ensureFleetRepository(
  req: FleetRepositoryRequest,
  deps: FleetRepositoryDeps = {},
): Promise<BitbucketRepositoryOutputs> {
  const logger = deps.logger ?? silentLogger;
  const checkpoint = deps.checkpoint ?? runCheckpointDirectly;
  const { signal } = deps;
  const { ref, host, auth, credentials } = req.bitbucket;
  const visibility = req.private ? 'private' : 'public';

  if (deps.dryRun) {
    const planned = planRepositoryOutputs(host, { ref, ...req });
    const check = req.tokenAuth
      ? 'check that the credentials belong to a user, '
      : '';
    const grants = req.groups.map(g => `${g.name}=${g.permission}`);
    const granting = grants.length ? ` and grant ${grants.join(', ')}` : '';
    logger.info(
      `Dry run: would ${check}ensure ${visibility} repository ${planned.projectKey}/${planned.repoSlug} on ${host.host} with default branch "${req.defaultBranch}"${granting}; no request sent`,
    );
    return planned;
  }

  logger.info(
    `Using ${credentials} for Bitbucket ${host.host} (${host.baseUrl})`,
  );
  const { redactor } = deps;
  const client = new BitbucketServerClient(host, auth, { logger, redactor });
  const s: Session = { client, credentials, logger, signal };
  if (req.tokenAuth) {
    const owner = await resolveTokenOwner(client, { signal, credentials });
    logger.info(
      `Flux will sign in over HTTPS as "${owner.name}", the owner of ${credentials}`,
    );
  }
  const projectKey = await owningProject(s, ref);
  const { created, outputs, isPublic } = await checkpoint(
    `repository.${lower(projectKey)}.${repositorySlug(ref.repo)}`,
    async () => {
      const { repo, ...r } = await ensureRepository(s, projectKey, req);
      const { defaultBranch } = req;
      return {
        created: r.created,
        outputs: repositoryOutputs(
          host,
          repo,
          defaultBranch,
          r.created,
          logger,
        ),
        isPublic: repo.public,
      };
    },
  );
  const target = { projectKey: outputs.projectKey, slug: outputs.repoSlug };
  const where = `${target.projectKey}/${target.slug}`;
  if (!created && isPublic === req.private) {
    const is = isPublic ? 'public' : 'private';
    logger.warn(
      `Repository ${where} is ${is} although private: ${req.private} was asked; an existing repository's visibility is left unchanged`,
    );
  }
  const keyOf = `${lower(target.projectKey)}.${target.slug}`;
  for (const grant of req.groups) {
    await checkpoint(`group-permission.${keyOf}.${grant.name}`, () =>
      ensureGroupPermission(s, target, grant),
    );
  }
  const branchRepo = { ...target, cloneUrl: outputs.remoteUrl };
  await checkpoint(`default-branch.${keyOf}.${req.defaultBranch}`, () =>
    ensureBranch(s, branchRepo, req.defaultBranch, created),
  );
  const done = created ? 'created' : 'reused';
  logger.info(`Repository ${where} ${done}: ${outputs.repoContentsUrl}`);
  return { ...outputs, tokenOwner: client.authenticatedUser };
}
