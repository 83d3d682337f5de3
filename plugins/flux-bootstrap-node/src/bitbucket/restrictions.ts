import { BitbucketServerClient, restPath } from './client';
import { isBitbucketError } from './errors';
import type { BitbucketRepoRef } from './pullRequests';

/** The parts of Bitbucket's `RestRefRestriction` the engine reads. @public */
export interface BitbucketRestriction {
  id: number;
  type: string;
  matcher: { id: string; type: { id: string } };
  users?: { name: string; slug?: string }[];
  groups?: string[];
}

/**
 * Whether a direct push would update the branch: `direct` (no restriction refuses it),
 * `pull-request` (a `read-only` or `pull-request-only` restriction does, and does not exempt
 * the user), or `unknown` (the restrictions cannot be read — they need REPO_ADMIN — or only a
 * group exemption could allow it). `reason` says which, for the log.
 * @public
 */
export interface DirectPushVerdict {
  decision: 'direct' | 'pull-request' | 'unknown';
  reason: string;
}

/**
 * Bitbucket's ref pattern (Ant-like: `?`, `*` within a segment, `**` whole segments, a
 * trailing `/` means `/**`) matched against a suffix of whole segments of the ref.
 */
function patternMatches(pattern: string, ref: string): boolean {
  const source = (pattern.endsWith('/') ? `${pattern}**` : pattern)
    .split('/')
    .map(seg =>
      seg === '**'
        ? '(?:[^/]+/)*'
        : `${seg
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]')}/`,
    )
    .join('');
  return new RegExp(`(?:^|/)${source}$`).test(`${ref}/`);
}

const CATEGORY_PREFIX: Record<string, string> = {
  FEATURE: 'feature/',
  BUGFIX: 'bugfix/',
  HOTFIX: 'hotfix/',
  RELEASE: 'release/',
};

/** Whether a restriction's matcher applies to `refs/heads/<branch>`. @public */
export function restrictionMatches(
  restriction: Pick<BitbucketRestriction, 'matcher'>,
  branch: string,
  defaultBranch?: string,
): boolean {
  const { id, type } = restriction.matcher;
  const ref = `refs/heads/${branch}`;
  switch (type.id) {
    case 'ANY_REF':
      return true;
    case 'BRANCH':
      return id === ref || id === branch;
    case 'PATTERN':
      return patternMatches(id, ref);
    case 'MODEL_BRANCH':
      return id === 'development' && branch === defaultBranch;
    case 'MODEL_CATEGORY':
      return !!CATEGORY_PREFIX[id] && branch.startsWith(CATEGORY_PREFIX[id]);
    default:
      return false;
  }
}

/**
 * Reads the repository's and its project's branch restrictions and decides whether `user`
 * could push `branch` directly (see {@link DirectPushVerdict}). Never throws for a refusal to
 * read them (a REPO_WRITE token gets 401): that is `unknown`.
 * @public
 */
export async function directPushVerdict(
  client: BitbucketServerClient,
  repo: BitbucketRepoRef & { defaultBranch?: string },
  branch: string,
  user: string | undefined,
  signal?: AbortSignal,
): Promise<DirectPushVerdict> {
  const scopes = [
    restPath(
      '/rest/branch-permissions/2.0/projects/{}/repos/{}/restrictions',
      repo.projectKey,
      repo.slug,
    ),
    restPath(
      '/rest/branch-permissions/2.0/projects/{}/restrictions',
      repo.projectKey,
    ),
  ];
  const found: BitbucketRestriction[] = [];
  try {
    for (const path of scopes)
      found.push(
        ...(await client.listAll<BitbucketRestriction>(path, { signal })),
      );
  } catch (error) {
    if (!isBitbucketError(error, 'forbidden', 'unauthorized', 'not-found'))
      throw error;
    return {
      decision: 'unknown',
      reason: `the branch restrictions of ${repo.projectKey}/${repo.slug} cannot be read with these credentials (${error.status}; reading them needs REPO_ADMIN)`,
    };
  }
  const refusing = found.filter(
    r =>
      ['read-only', 'pull-request-only'].includes(r.type) &&
      restrictionMatches(r, branch, repo.defaultBranch) &&
      !(r.users ?? []).some(u => u.name === user || u.slug === user),
  );
  const names = refusing.map(r => `${r.type} ${r.matcher.id}`).join(', ');
  if (refusing.some(r => !r.groups?.length))
    return {
      decision: 'pull-request',
      reason: `branch ${branch} has the restriction ${names}, which does not exempt ${
        user ?? 'these credentials'
      }`,
    };
  if (refusing.length)
    return {
      decision: 'unknown',
      reason: `branch ${branch} has the restriction ${names}, which exempts groups ${
        user ?? 'the user'
      } may belong to`,
    };
  return {
    decision: 'direct',
    reason: `no read-only or pull-request-only restriction on branch ${branch} applies to ${
      user ?? 'these credentials'
    }`,
  };
}
