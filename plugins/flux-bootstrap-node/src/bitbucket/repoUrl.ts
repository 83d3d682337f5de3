import { InputValidationError } from '../util/errors';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';

/** A parsed RepoUrlPicker value for Bitbucket Server. @public */
export interface BitbucketRepoRef {
  /** Integration host as configured (may include a port). */
  host: string;
  /**
   * Project as given: a key such as `PLAT` (any case), the project's exact name (looked up by the
   * engine), or `~alice` for a personal repository.
   */
  project: string;
  /** Repository name as given. */
  repo: string;
  /** True for a personal repository (`project=~USER`). */
  personal: boolean;
  /** The owner's user slug for a personal repository. */
  owner?: string;
}

const PROJECT_KEY = /^[A-Za-z][A-Za-z0-9_]{0,127}$/;
// A project name (when not given as a key): printable, no leading `~`, at most 128 characters.
const PROJECT_NAME =
  // eslint-disable-next-line no-control-regex
  /^[^~\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,126}[^\s\x00-\x1f\x7f])?$/;
const USER_SLUG = /^[A-Za-z0-9._@-]{1,255}$/;
// Bitbucket: at most 128 characters, starting with a letter or digit; then letters, digits,
// spaces, "-", "_" and ".".
const REPO_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$/;

/**
 * Parses `host?project=KEY&repo=name` (the RepoUrlPicker format for Bitbucket Server) and checks
 * the host against the configured integrations. Throws {@link InputValidationError} naming the
 * field; never echoes credentials that were embedded in the value.
 * @public
 */
export function parseBitbucketRepoUrl(
  repoUrl: string,
  hosts: Pick<BitbucketServerHostConfig, 'host'>[],
  field = 'repoUrl',
): BitbucketRepoRef {
  if (typeof repoUrl !== 'string' || repoUrl.trim() === '') {
    throw new InputValidationError(
      field,
      'is required, in the form host?project=KEY&repo=name',
    );
  }
  if (repoUrl.length > 2048) {
    throw new InputValidationError(field, 'is longer than 2048 characters');
  }
  if (/[\r\n\t\0]/.test(repoUrl)) {
    throw new InputValidationError(
      field,
      'must not contain control characters',
    );
  }
  const authority = repoUrl
    .split('?')[0]
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  if (authority.includes('@')) {
    throw new InputValidationError(
      field,
      'must not contain credentials; pass a token through a secret instead',
    );
  }
  if (
    /^[a-z][a-z0-9+.-]*:/i.test(repoUrl) &&
    !/^[^:/?]+:\d+[/?]/.test(repoUrl)
  ) {
    throw new InputValidationError(
      field,
      'must be host?project=KEY&repo=name without a scheme (no https://, ssh:// or other scheme)',
    );
  }
  let url: URL;
  try {
    url = new URL(`https://${repoUrl}`);
  } catch {
    throw new InputValidationError(
      field,
      'is not of the form host?project=KEY&repo=name',
    );
  }
  if (url.username || url.password || repoUrl.split('?')[0].includes('@')) {
    throw new InputValidationError(
      field,
      'must not contain credentials; pass a token through a secret instead',
    );
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    throw new InputValidationError(
      field,
      'must not contain a path; use host?project=KEY&repo=name',
    );
  }
  const host = url.host;
  const integration = hosts.find(
    h => h.host.toLowerCase() === host.toLowerCase(),
  );
  if (!integration) {
    throw new InputValidationError(
      field,
      `host "${host}" is not one of the configured integrations.bitbucketServer hosts (${
        hosts.map(h => h.host).join(', ') || 'none configured'
      })`,
    );
  }
  const project = url.searchParams.get('project');
  const repo = url.searchParams.get('repo');
  if (!project)
    throw new InputValidationError(
      field,
      'is missing project (…?project=KEY&repo=name)',
    );
  if (!repo)
    throw new InputValidationError(
      field,
      'is missing repo (…?project=KEY&repo=name)',
    );
  const personal = project.startsWith('~');
  if (personal) {
    if (!USER_SLUG.test(project.slice(1))) {
      throw new InputValidationError(
        field,
        `has an invalid personal project "${project}"`,
      );
    }
  } else if (!PROJECT_KEY.test(project) && !PROJECT_NAME.test(project)) {
    throw new InputValidationError(
      field,
      'has an invalid project: give a project key (a letter, then letters, digits and underscores) or the exact project name',
    );
  }
  if (!REPO_NAME.test(repo) || repo.includes('..')) {
    throw new InputValidationError(
      field,
      'has an invalid repo name: start with a letter or digit, then use letters, digits, spaces, "-", "_" and "." (no "/")',
    );
  }
  return {
    host: integration.host,
    project,
    repo,
    personal,
    owner: personal ? project.slice(1) : undefined,
  };
}

/** True when `value` has the shape of a Bitbucket project key (`PLAT`, `flux_1`). @public */
export function isProjectKey(value: string): boolean {
  return PROJECT_KEY.test(value);
}

/**
 * The slug Bitbucket derives from a repository name (lower-case, runs of characters other than
 * letters, digits, `_`, `.` and `-` become `-`). The server's own answer wins when known.
 * @public
 */
export function repositorySlug(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^-+|-+$/g, '');
}
