import {
  ClusterBootstrapStatus,
  parseFluxRevision,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { isAbortError } from '../util/errors';
import { EngineLogger, silentLogger } from '../util/logger';
import { Redactor } from '../util/redact';

/** A repository on a configured Bitbucket Server host, found from a clone URL. @public */
export interface BitbucketRepositoryLocation {
  host: BitbucketServerHostConfig;
  /** Project key as it appears in the URL; `~user` for a personal repository. */
  project: string;
  slug: string;
}

/** Reads the head commit of a branch; undefined when the branch does not exist. @public */
export type BranchHeadLookup = (
  location: BitbucketRepositoryLocation,
  branch: string,
  signal?: AbortSignal,
) => Promise<string | undefined>;

const KEY_AND_SLUG =
  /^\/(~?[A-Za-z0-9_.@-]+)\/([A-Za-z0-9_.-]+?)(?:\.git)?\/?$/;

/**
 * The repository of a clone URL on a configured host: `<baseUrl>/scm/<KEY>/<slug>.git` or
 * `ssh://git@<sshHost>/<KEY>/<slug>[.git]` (or the host name on any port); `~user` included.
 * @public
 */
export function matchBitbucketCloneUrl(
  url: string | undefined,
  hosts: BitbucketServerHostConfig[],
): BitbucketRepositoryLocation | undefined {
  if (!url || !URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  // Clone URLs carry the project key in lower case; Bitbucket keys are upper case.
  const located = (host: BitbucketServerHostConfig, path: string) => {
    const m = KEY_AND_SLUG.exec(path);
    return m
      ? {
          host,
          project: m[1].startsWith('~') ? m[1] : m[1].toUpperCase(),
          slug: m[2].toLowerCase(),
        }
      : undefined;
  };
  if (/^https?:$/i.test(parsed.protocol)) {
    for (const host of hosts) {
      if (!URL.canParse(host.baseUrl)) continue;
      const base = new URL(host.baseUrl);
      const prefix = `${base.pathname.replace(/\/+$/, '')}/scm`;
      const found =
        base.host.toLowerCase() === parsed.host.toLowerCase() &&
        parsed.pathname.startsWith(`${prefix}/`) &&
        located(host, parsed.pathname.slice(prefix.length));
      if (found) return found;
    }
    return undefined;
  }
  if (parsed.protocol.toLowerCase() !== 'ssh:') return undefined;
  const endpoint = (value: string, defaultPort: string) => {
    const u = new URL(`ssh://${value}`);
    return { name: u.hostname.toLowerCase(), port: u.port || defaultPort };
  };
  const target = endpoint(parsed.host, '22');
  const ssh = (h: BitbucketServerHostConfig) => endpoint(h.sshHost, '22');
  const chosen =
    hosts.find(
      h => ssh(h).name === target.name && ssh(h).port === target.port,
    ) ??
    hosts.find(
      h =>
        ssh(h).name === target.name ||
        endpoint(h.host, '443').name === target.name,
    );
  return chosen && located(chosen, parsed.pathname);
}

/** Web links of a repository: browse page and a commit page. @public */
export function bitbucketRepositoryLinks(
  location: BitbucketRepositoryLocation,
): {
  browseUrl: string;
  commitUrl(sha: string): string;
} {
  const { project, slug } = location;
  const repoPath = `${location.host.baseUrl.replace(/\/+$/, '')}/${
    project.startsWith('~')
      ? `users/${encodeURIComponent(project.slice(1))}`
      : `projects/${encodeURIComponent(project)}`
  }/repos/${encodeURIComponent(slug)}`;
  return {
    browseUrl: `${repoPath}/browse`,
    commitUrl: sha => `${repoPath}/commits/${encodeURIComponent(sha)}`,
  };
}

/** Options of {@link addBranchHeadState}. @public */
export interface AddBranchHeadStateOptions {
  hosts: BitbucketServerHostConfig[];
  lookup: BranchHeadLookup;
  signal?: AbortSignal;
  logger?: EngineLogger;
  redactor?: Redactor;
}

/**
 * Fills in `repository` (links) and `inSync`: is the applied revision the synced branch's head on
 * Bitbucket? Null when unknown (`repository.message` says why). Never throws.
 * @public
 */
export async function addBranchHeadState(
  status: ClusterBootstrapStatus,
  options: AddBranchHeadStateOptions,
): Promise<ClusterBootstrapStatus> {
  const location = matchBitbucketCloneUrl(status.source?.url, options.hosts);
  if (!location) return status;
  const { project, slug } = location;
  const links = bitbucketRepositoryLinks(location);
  const applied = parseFluxRevision(status.sync?.lastAppliedRevision).sha;
  const repository: NonNullable<ClusterBootstrapStatus['repository']> = {
    host: location.host.host,
    project,
    slug,
    browseUrl: links.browseUrl,
    ...(applied ? { commitUrl: links.commitUrl(applied) } : {}),
  };
  const result = { ...status, inSync: null, repository };
  const { ref } = parseFluxRevision(status.source?.revision);
  const branch = status.source?.branch ?? ref?.replace(/^refs\/heads\//, '');
  if (!branch) {
    repository.message =
      'The source follows no branch, so there is no branch head to compare with.';
    return result;
  }
  try {
    const head = (
      await options.lookup(location, branch, options.signal)
    )?.toLowerCase();
    if (!head) {
      repository.message = `Branch ${branch} does not exist in ${project}/${slug}.`;
      return applied ? { ...result, inSync: false } : result;
    }
    repository.headCommit = head;
    return applied ? { ...result, inSync: applied === head } : result;
  } catch (error) {
    const why =
      isAbortError(error) || options.signal?.aborted
        ? 'Bitbucket did not answer in time'
        : (options.redactor ?? new Redactor()).redactError(error).message;
    (options.logger ?? silentLogger).warn(
      `Could not read the head of ${project}/${slug}@${branch} on ${location.host.host}: ${why}`,
    );
    repository.message = `Could not read the branch head from Bitbucket: ${why}`;
    return result;
  }
}
