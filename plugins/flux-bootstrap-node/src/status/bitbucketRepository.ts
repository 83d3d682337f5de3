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

/** Clone URLs carry the project key in lower case; Bitbucket keys are upper case. */
function projectKey(fromUrl: string): string {
  return fromUrl.startsWith('~') ? fromUrl : fromUrl.toUpperCase();
}

function hostPort(
  value: string,
  defaultPort: string,
): { hostname: string; port: string } {
  const url = new URL(`ssh://${value}`);
  return {
    hostname: url.hostname.toLowerCase(),
    port: url.port || defaultPort,
  };
}

/**
 * Maps a Git clone URL back to a repository on one of the configured Bitbucket Server hosts:
 * HTTP(S) `<baseUrl>/scm/<KEY>/<slug>.git` (context path honoured) and SSH
 * `ssh://git@<sshHost>/<KEY>/<slug>[.git]` (the host's `sshHost`, or its host name on any port).
 * Personal repositories (`~user`) are recognised in both. Undefined for anything else.
 * @public
 */
export function matchBitbucketCloneUrl(
  url: string | undefined,
  hosts: BitbucketServerHostConfig[],
): BitbucketRepositoryLocation | undefined {
  if (!url) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const protocol = parsed.protocol.toLowerCase();
  if (protocol === 'http:' || protocol === 'https:') {
    for (const host of hosts) {
      let base: URL;
      try {
        base = new URL(host.baseUrl);
      } catch {
        continue;
      }
      if (base.host.toLowerCase() !== parsed.host.toLowerCase()) continue;
      const prefix = `${base.pathname.replace(/\/+$/, '')}/scm`;
      if (!parsed.pathname.startsWith(`${prefix}/`)) continue;
      const m = KEY_AND_SLUG.exec(parsed.pathname.slice(prefix.length));
      if (m)
        return { host, project: projectKey(m[1]), slug: m[2].toLowerCase() };
    }
    return undefined;
  }
  if (protocol === 'ssh:') {
    const m = KEY_AND_SLUG.exec(parsed.pathname);
    if (!m) return undefined;
    const target = {
      hostname: parsed.hostname.toLowerCase(),
      port: parsed.port || '22',
    };
    const candidates = hosts.map(host => {
      const ssh = hostPort(host.sshHost, '22');
      const web = hostPort(host.host, '443');
      const exact =
        ssh.hostname === target.hostname && ssh.port === target.port;
      const sameName =
        ssh.hostname === target.hostname || web.hostname === target.hostname;
      return { host, exact, sameName };
    });
    const chosen =
      candidates.find(c => c.exact) ?? candidates.find(c => c.sameName);
    return chosen
      ? {
          host: chosen.host,
          project: projectKey(m[1]),
          slug: m[2].toLowerCase(),
        }
      : undefined;
  }
  return undefined;
}

/** Web links of a repository: browse page and a commit page. @public */
export function bitbucketRepositoryLinks(
  location: BitbucketRepositoryLocation,
): {
  browseUrl: string;
  commitUrl(sha: string): string;
} {
  const base = location.host.baseUrl.replace(/\/+$/, '');
  const repoPath = location.project.startsWith('~')
    ? `/users/${encodeURIComponent(
        location.project.slice(1),
      )}/repos/${encodeURIComponent(location.slug)}`
    : `/projects/${encodeURIComponent(
        location.project,
      )}/repos/${encodeURIComponent(location.slug)}`;
  return {
    browseUrl: `${base}${repoPath}/browse`,
    commitUrl: sha => `${base}${repoPath}/commits/${encodeURIComponent(sha)}`,
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
 * Fills in `repository` (links to Bitbucket) and `inSync` of a status: whether the applied
 * revision is the head of the synced branch on Bitbucket. `inSync` stays null when the source URL
 * is not on a configured `integrations.bitbucketServer` host, nothing was applied yet, or the head
 * could not be read (then `repository.message` says why). Never throws.
 * @public
 */
export async function addBranchHeadState(
  status: ClusterBootstrapStatus,
  options: AddBranchHeadStateOptions,
): Promise<ClusterBootstrapStatus> {
  const location = matchBitbucketCloneUrl(status.source?.url, options.hosts);
  if (!location) return status;
  const links = bitbucketRepositoryLinks(location);
  const applied = parseFluxRevision(status.sync?.lastAppliedRevision).sha;
  const result: ClusterBootstrapStatus = {
    ...status,
    inSync: null,
    repository: {
      host: location.host.host,
      project: location.project,
      slug: location.slug,
      browseUrl: links.browseUrl,
      ...(applied ? { commitUrl: links.commitUrl(applied) } : {}),
    },
  };
  const branch =
    status.source?.branch ??
    parseFluxRevision(status.source?.revision).ref?.replace(
      /^refs\/heads\//,
      '',
    );
  if (!branch) {
    result.repository!.message =
      'The source follows no branch, so there is no branch head to compare with.';
    return result;
  }
  const logger = options.logger ?? silentLogger;
  try {
    const head = await options.lookup(location, branch, options.signal);
    if (!head) {
      result.repository!.message = `Branch ${branch} does not exist in ${location.project}/${location.slug}.`;
      if (applied) result.inSync = false;
      return result;
    }
    result.repository!.headCommit = head.toLowerCase();
    if (applied) result.inSync = applied === head.toLowerCase();
    return result;
  } catch (error) {
    const redactor = options.redactor ?? new Redactor();
    const safe = redactor.redactError(error);
    const why =
      isAbortError(error) || options.signal?.aborted
        ? 'Bitbucket did not answer in time'
        : safe.message;
    logger.warn(
      `Could not read the head of ${location.project}/${location.slug}@${branch} on ${location.host.host}: ${why}`,
    );
    result.repository!.message = `Could not read the branch head from Bitbucket: ${why}`;
    return result;
  }
}
