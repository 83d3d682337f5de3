import { InputValidationError } from '../util/errors';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';

/** A parsed RepoUrlPicker value for Bitbucket Server. @public */
export interface BitbucketRepoRef {
  host: string;
  /** As given: a key such as `PLAT` (any case), the project's exact name, or `~alice`. */
  project: string;
  repo: string;
  personal: boolean;
  owner?: string;
}

const PROJECT_KEY = /^[A-Za-z][A-Za-z0-9_]{0,127}$/;
// A project name (when not given as a key): printable, no leading `~`, at most 128 characters.
const PROJECT_NAME =
  // eslint-disable-next-line no-control-regex
  /^[^~\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,126}[^\s\x00-\x1f\x7f])?$/;
// Bitbucket: at most 128 characters, a letter or digit, then letters, digits, " ", "-", "_", ".".
const REPO_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$/;

const NO_CREDENTIALS =
  'must not contain credentials; pass a token through a secret instead';

/** What makes a repoUrl unusable before it is even parsed, and what to say. */
const RAW_RULES: [(v: string) => boolean, string][] = [
  [v => v.length > 2048, 'is longer than 2048 characters'],
  [v => /[\r\n\t\0]/.test(v), 'must not contain control characters'],
  [v => v.split('?')[0].includes('@'), NO_CREDENTIALS],
  [
    v => /^[a-z][a-z0-9+.-]*:/i.test(v) && !/^[^:/?]+:\d+[/?]/.test(v),
    'must be host?project=KEY&repo=name without a scheme (no https://, ssh:// or other scheme)',
  ],
];

/**
 * Parses `host?project=KEY&repo=name` (the RepoUrlPicker format) against the configured hosts.
 * Throws {@link InputValidationError} naming the field, never echoing embedded credentials.
 * @public
 */
export function parseBitbucketRepoUrl(
  repoUrl: string,
  hosts: Pick<BitbucketServerHostConfig, 'host'>[],
  field = 'repoUrl',
): BitbucketRepoRef {
  const fail = (message: string) => new InputValidationError(field, message);
  if (typeof repoUrl !== 'string' || repoUrl.trim() === '') {
    throw fail('is required, in the form host?project=KEY&repo=name');
  }
  const broken = RAW_RULES.find(([bad]) => bad(repoUrl));
  if (broken) throw fail(broken[1]);
  if (!URL.canParse(`https://${repoUrl}`)) {
    throw fail('is not of the form host?project=KEY&repo=name');
  }
  const url = new URL(`https://${repoUrl}`);
  if (url.username || url.password) throw fail(NO_CREDENTIALS);
  if (url.pathname !== '/' && url.pathname !== '') {
    throw fail('must not contain a path; use host?project=KEY&repo=name');
  }
  const integration = hosts.find(
    h => h.host.toLowerCase() === url.host.toLowerCase(),
  );
  if (!integration) {
    throw fail(
      `host "${
        url.host
      }" is not one of the configured integrations.bitbucketServer hosts (${
        hosts.map(h => h.host).join(', ') || 'none configured'
      })`,
    );
  }
  const project = url.searchParams.get('project');
  const repo = url.searchParams.get('repo');
  if (!project) throw fail('is missing project (…?project=KEY&repo=name)');
  if (!repo) throw fail('is missing repo (…?project=KEY&repo=name)');
  const personal = project.startsWith('~');
  if (personal && !/^[A-Za-z0-9._@-]{1,255}$/.test(project.slice(1))) {
    throw fail(`has an invalid personal project "${project}"`);
  }
  if (!personal && !PROJECT_KEY.test(project) && !PROJECT_NAME.test(project)) {
    throw fail(
      'has an invalid project: give a project key (a letter, then letters, digits and underscores) or the exact project name',
    );
  }
  if (!REPO_NAME.test(repo) || repo.includes('..')) {
    throw fail(
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

/** The slug Bitbucket derives from a repository name; the server's own answer wins when known. @public */
export function repositorySlug(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^-+|-+$/g, '');
}
