import { repoPath, restPath } from './client';
import { isBitbucketError } from './errors';
import type { BitbucketPullRequests } from './pullRequests';

/** The parts of Bitbucket's `RestRefRestriction` the engine reads. */
interface BitbucketRestriction {
  type: string;
  matcher: { id: string; type: { id: string } };
  users?: { name: string }[];
  groups?: string[];
}

const CATEGORY: Record<string, string> = {
  FEATURE: 'feature/',
  BUGFIX: 'bugfix/',
  HOTFIX: 'hotfix/',
  RELEASE: 'release/',
};

/**
 * Whether a restriction's matcher applies to a branch. Patterns are Ant-like (`?`, `*` within a
 * segment, `**` whole segments, trailing `/` is `/**`) against trailing segments of the ref.
 * @public
 */
export function restrictionMatches(
  { matcher }: Pick<BitbucketRestriction, 'matcher'>,
  branch: string,
  defaultBranch?: string,
): boolean {
  const ref = `refs/heads/${branch}`;
  const segment = (s: string) =>
    s === '**'
      ? '(?:[^/]+/)*'
      : `${s
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')}/`;
  const pattern = matcher.id.replace(/\/$/, '/**').split('/').map(segment);
  return (
    (
      {
        ANY_REF: true,
        BRANCH: matcher.id === ref || matcher.id === branch,
        PATTERN: new RegExp(`(?:^|/)${pattern.join('')}$`).test(`${ref}/`),
        MODEL_BRANCH: matcher.id === 'development' && branch === defaultBranch,
        MODEL_CATEGORY:
          !!CATEGORY[matcher.id] && branch.startsWith(CATEGORY[matcher.id]),
      } as Record<string, boolean>
    )[matcher.type.id] ?? false
  );
}

/**
 * Whether `user` may push `branch` directly per the repository's and project's restrictions;
 * `unknown` when they cannot be read (needs REPO_ADMIN) or only a group exemption could allow it.
 * @public
 */
export async function directPushVerdict(
  repo: BitbucketPullRequests,
  branch: string,
  user: string,
  defaultBranch?: string,
): Promise<{
  decision: 'direct' | 'pull-request' | 'unknown';
  reason: string;
}> {
  const { client, projectKey, slug, signal } = repo;
  const found: BitbucketRestriction[] = [];
  const api = 'branch-permissions/2.0';
  const project = restPath(`/rest/${api}/projects/{}`, projectKey);
  try {
    for (const path of [repoPath(projectKey, slug, '', api), project]) {
      const list = `${path}/restrictions`;
      found.push(
        ...(await client.listAll<BitbucketRestriction>(list, { signal })),
      );
    }
  } catch (error) {
    if (!isBitbucketError(error, 'forbidden', 'unauthorized', 'not-found'))
      throw error;
    const why = `HTTP ${error.status}: reading them needs REPO_ADMIN`;
    return {
      decision: 'unknown',
      reason: `the branch restrictions of ${projectKey}/${slug} cannot be read with these credentials (${why})`,
    };
  }
  const refusing = found.filter(
    r =>
      ['read-only', 'pull-request-only'].includes(r.type) &&
      restrictionMatches(r, branch, defaultBranch) &&
      !r.users?.some(u => u.name === user),
  );
  const restrictions = refusing.map(r => `${r.type} ${r.matcher.id}`);
  const names = `branch ${branch} has the restriction ${restrictions.join(
    ', ',
  )}`;
  if (refusing.some(r => !r.groups?.length))
    return {
      decision: 'pull-request',
      reason: `${names}, which does not exempt ${user}`,
    };
  if (refusing.length)
    return {
      decision: 'unknown',
      reason: `${names}, which exempts groups ${user} may be in`,
    };
  return {
    decision: 'direct',
    reason: `no read-only or pull-request-only restriction on branch ${branch} applies to ${user}`,
  };
}
