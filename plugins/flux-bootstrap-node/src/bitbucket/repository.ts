import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { EngineLogger, silentLogger } from '../util/logger';
import type { Redactor } from '../util/redact';
import { attempt, BitbucketAccess, resolveTokenOwner } from './access';
import { BitbucketServerClient, restPath } from './client';
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
  /** false → created public (sent explicitly, unlike the flux CLI). */
  private: boolean;
  /** The branch Flux will sync; created when missing. */
  defaultBranch: string;
  groups: BitbucketGroupGrant[];
  /** Flux will read the repository over HTTPS with these credentials: they must be a user's. */
  tokenAuth?: boolean;
}

/** Collaborators of {@link ensureFleetRepository}. @public */
export interface FleetRepositoryDeps {
  logger?: EngineLogger;
  /** Learns the credentials; every log line and error passes through it. */
  redactor?: Redactor;
  signal?: AbortSignal;
  /** Runs each side effect once per task (`ctx.checkpoint`); its values are public JSON. */
  checkpoint?: CheckpointFn;
  /** Log the plan and return what is known without a request; nothing is sent. */
  dryRun?: boolean;
  /** Message of the commit that creates the branch in an empty repository. */
  initialCommitMessage?: string;
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
 * The outputs a run would produce, computed without any request (dry-run). The project key of
 * a project given by name cannot be known without asking Bitbucket, so it is reported as given.
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
  const tail = lower(`/${repo.project.key}/${repo.slug}`);
  return path.endsWith(tail) ? url : undefined;
}

/**
 * The outputs for a repository as Bitbucket describes it: clone links chosen by name, the user
 * info Bitbucket puts in HTTP links removed, and the SSH URL moved to the configured SSH host
 * and port (flux2#2207: an SSH URL without the port makes Flux dial port 22).
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
  const http = cloneUrl(repo, 'http');
  if (http) http.username = http.password = '';
  else if (cloneLink(repo, 'http')) {
    logger.warn(
      `Bitbucket's http clone link ${cloneLink(
        repo,
        'http',
      )} does not name ${key}/${repo.slug}; using ${planned.remoteUrl}`,
    );
  }
  const ssh = cloneUrl(repo, 'ssh');
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

/**
 * A project by key (any case) or, failing that, by exact name across all pages of
 * `GET /projects?name=` — never by substring (flux2#2411: `unity` must not match `Community`).
 */
async function resolveProject(
  client: BitbucketServerClient,
  keyOrName: string,
  opts: { signal?: AbortSignal; credentials?: string },
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
 * The project to create in: `~owner` once the credentials proved to be the owner's (Bitbucket
 * would create the repository under the credentials' own user, or refuse), else the project.
 */
async function owningProject(
  client: BitbucketServerClient,
  ref: BitbucketRepoRef,
  opts: { signal?: AbortSignal; credentials: string; logger: EngineLogger },
): Promise<string> {
  const { credentials, logger } = opts;
  if (!ref.personal) {
    const project = await resolveProject(client, ref.project, opts);
    logger.info(
      project.key === ref.project
        ? `Project ${project.key} found`
        : `Project "${ref.project}" is ${project.name} (${project.key})`,
    );
    return project.key;
  }
  const owner = ref.owner!;
  const me = await attempt(
    {
      client,
      credentials,
      action: 'identify its user',
      needs: `a licensed user on ${client.host.host}`,
    },
    () => client.currentUser(opts.signal),
  );
  if ([me.name, me.user?.slug ?? ''].some(n => lower(n) === lower(owner))) {
    logger.info(`Credentials belong to "${me.name}", the owner of ~${owner}`);
    return `~${owner}`;
  }
  throw new BitbucketError(
    `repoUrl asks for a personal repository of "${owner}" (project=~${owner}), but ${credentials} belong to "${
      me.name
    }". Only the owner's own credentials can create repositories in a personal project: use project=~${
      me.user?.slug ?? lower(me.name)
    } or ${owner}'s token.`,
    { kind: 'forbidden' },
  );
}

/** The public fields of a repository (what a checkpoint stores). */
function summarize(repo: BitbucketRepository): BitbucketRepository {
  const { slug, name, project, links } = repo;
  return {
    slug,
    name,
    public: repo.public,
    project: { key: project.key, name: project.name },
    links: {
      clone: links?.clone?.map(({ href, name: n }) => ({ href, name: n })),
      self: links?.self?.map(({ href }) => ({ href })),
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
  for await (const p of client.paginate<{
    group: { name: string };
    permission: string;
  }>(path, { query: { filter: group }, signal })) {
    if (p.group?.name === group) return p.permission;
  }
  return undefined;
}

/**
 * Grants a group exactly the requested repository permission and reads it back (a re-run
 * converges; another level set by hand is replaced).
 */
async function ensureGroupPermission(
  client: BitbucketServerClient,
  repo: { projectKey: string; slug: string },
  grant: BitbucketGroupGrant,
  opts: { signal?: AbortSignal; credentials: string; logger: EngineLogger },
): Promise<{ changed: boolean }> {
  const { logger, signal } = opts;
  const where = `${repo.projectKey}/${repo.slug}`;
  const path = restPath(
    '/rest/api/1.0/projects/{}/repos/{}/permissions/groups',
    repo.projectKey,
    repo.slug,
  );
  const { name, permission } = grant;
  const what = {
    client,
    credentials: opts.credentials,
    action: `grant group "${name}" ${permission} on ${where}`,
    needs: `REPO_ADMIN on repository ${where}`,
  };
  return attempt(what, async () => {
    const current = await readGroupPermission(client, path, name, signal);
    if (current === permission) {
      logger.info(`Group "${name}" already has ${permission} on ${where}`);
      return { changed: false };
    }
    await client
      .request('PUT', path, { query: { name, permission }, signal })
      .catch(error => {
        if (
          isBitbucketError(error, 'not-found') &&
          /group/i.test(`${error.exceptionName} ${error.bitbucketMessage}`)
        ) {
          throw new BitbucketError(
            `Group "${name}" does not exist on Bitbucket ${client.host.host}; create it or fix groups[].name.`,
            { kind: 'not-found', status: 404, details: error.details },
          );
        }
        throw error;
      });
    const after = await readGroupPermission(client, path, name, signal);
    if (after !== permission) {
      throw new BitbucketError(
        `Bitbucket accepted granting ${permission} to group "${name}" on ${where}, but reading it back gives ${
          after ?? 'no permission'
        }`,
        { kind: 'server' },
      );
    }
    logger.info(
      `Granted group "${name}" ${permission} on ${where}${
        current ? ` (was ${current})` : ''
      }`,
    );
    return { changed: true };
  });
}

/**
 * Makes `branch` the repository's default branch: `PUT …/default-branch` (Bitbucket 7.5+),
 * falling back to the older `PUT …/branches/default`.
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
    const me = await client.currentUser(signal);
    return {
      name: me.user?.displayName || me.name,
      email: me.user?.emailAddress ?? '',
    };
  } catch (error) {
    if (isBitbucketError(error, 'unauthorized')) throw error;
    return { name: 'Flux', email: '' };
  }
}

/**
 * Makes sure `branch` exists so that the next step can push to it. An empty Bitbucket
 * repository has no branch at all, whatever `defaultBranch` it was created with: it gets one
 * empty-tree commit on `branch` (pushed against `0000…`, so it only lands while the branch does
 * not exist), which is then made the default (Bitbucket before 7.5 ignores `defaultBranch` at
 * creation). Flux's CLI pushes `master` and then `main` instead (spec §4.3 A5, §4.6 #2). In a
 * repository with other branches, `branch` is created from the default branch's head and the
 * default is left alone; an existing branch is made the default only with `makeDefault`.
 */
async function ensureBranch(
  client: BitbucketServerClient,
  repository: { projectKey: string; slug: string },
  branch: string,
  opts: {
    signal?: AbortSignal;
    logger: EngineLogger;
    credentials: string;
    cloneUrl: string;
    makeDefault: boolean;
    initialCommitMessage?: string;
  },
): Promise<{ head?: string; created?: string; madeDefault: boolean }> {
  const { signal, logger } = opts;
  const { projectKey, slug } = repository;
  const repo = `${projectKey}/${slug}`;
  const needing = (action: string, permission: string) => ({
    client,
    credentials: opts.credentials,
    action,
    needs: `${permission} on repository ${repo}`,
  });
  const getBranch = () => client.getBranch(projectKey, slug, branch, signal);

  const ensureDefault = async (): Promise<boolean> => {
    if ((await getBranch())?.isDefault !== false) return false;
    await attempt(
      needing(`make "${branch}" the default branch of ${repo}`, 'REPO_ADMIN'),
      () => setDefaultBranch(client, projectKey, slug, branch, signal),
    );
    if ((await getBranch())?.isDefault === false) {
      throw new BitbucketError(
        `Bitbucket did not make "${branch}" the default branch of ${repo}`,
        { kind: 'server' },
      );
    }
    logger.info(`Made "${branch}" the default branch of ${repo}`);
    return true;
  };

  const existing = await getBranch();
  if (existing) {
    const head = existing.latestCommit ?? existing.latestChangeset;
    logger.info(
      `Branch "${branch}" exists in ${repo} at ${head ?? 'an unknown commit'}`,
    );
    return {
      head,
      madeDefault: opts.makeDefault && (await ensureDefault()),
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
 * `bitbucket:create-repo`: makes sure the fleet repository exists. With `tokenAuth` the
 * credentials are first checked to belong to a user (Flux will sign in as that user). Then the
 * owner is resolved (`~owner`: the credentials must be the owner's), the repository created when
 * missing (`public` sent explicitly, the requested default branch), each group granted exactly
 * its permission (read back), and the default branch made to exist. Every side effect runs
 * inside `checkpoint` with a stable key and is idempotent on its own: three runs in a row give
 * one repository, one permission per group and no error. A dry run sends nothing.
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
    const grants = req.groups.map(g => `${g.name}=${g.permission}`);
    logger.info(
      `Dry run: would ${
        req.tokenAuth ? 'check that the credentials belong to a user, ' : ''
      }ensure ${visibility} repository ${planned.projectKey}/${
        planned.repoSlug
      } on ${host.host} with default branch "${req.defaultBranch}"${
        grants.length ? ` and grant ${grants.join(', ')}` : ''
      }; no request sent`,
    );
    return planned;
  }

  logger.info(
    `Using ${credentials} for Bitbucket ${host.host} (${host.baseUrl})`,
  );
  const client = new BitbucketServerClient(host, auth, {
    logger,
    redactor: deps.redactor,
  });
  if (req.tokenAuth) {
    const owner = await resolveTokenOwner(client, { signal, credentials });
    logger.info(
      `Flux will sign in over HTTPS as "${owner.name}", the owner of ${credentials}`,
    );
  }
  const projectKey = await owningProject(client, ref, {
    signal,
    credentials,
    logger,
  });
  const wantedSlug = repositorySlug(ref.repo);
  const inProject = (action: string, needs: string) => ({
    client,
    credentials,
    action: `${action} ${projectKey}`,
    needs: `${needs} on project ${projectKey}`,
  });
  const { repo, created } = await checkpoint(
    `repository.${lower(projectKey)}.${wantedSlug}`,
    async () => {
      const existing = await attempt(
        inProject('read repositories of', 'PROJECT_READ'),
        () => client.getRepository(projectKey, wantedSlug, signal),
      );
      if (existing) return { created: false, repo: summarize(existing) };
      logger.info(
        `Creating ${visibility} repository "${ref.repo}" in ${projectKey} with default branch "${req.defaultBranch}"`,
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
  const target = { projectKey: repo.project.key, slug: repo.slug };
  const where = `${target.projectKey}/${target.slug}`;
  if (!created && repo.public === req.private) {
    logger.warn(
      `Repository ${where} is ${
        repo.public ? 'public' : 'private'
      } although private: ${
        req.private
      } was asked; an existing repository's visibility is left unchanged`,
    );
  }

  const keyOf = `${lower(target.projectKey)}.${target.slug}`;
  for (const grant of req.groups) {
    await checkpoint(`group-permission.${keyOf}.${grant.name}`, () =>
      ensureGroupPermission(client, target, grant, {
        signal,
        credentials,
        logger,
      }),
    );
  }

  const outputs = repositoryOutputs(
    host,
    repo,
    req.defaultBranch,
    created,
    logger,
  );
  await checkpoint(`default-branch.${keyOf}.${req.defaultBranch}`, async () => {
    const r = await ensureBranch(client, target, req.defaultBranch, {
      signal,
      logger,
      credentials,
      cloneUrl: outputs.remoteUrl,
      makeDefault: created,
      initialCommitMessage: deps.initialCommitMessage,
    });
    return {
      head: r.head ?? null,
      created: r.created ?? null,
      madeDefault: r.madeDefault,
    };
  });
  logger.info(
    `Repository ${where} ${created ? 'created' : 'reused'}: ${
      outputs.repoContentsUrl
    }`,
  );
  return { ...outputs, tokenOwner: client.authenticatedUser };
}
