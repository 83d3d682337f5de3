import { validation } from './errors';
import type { MatcherType, RefMatcher } from './model';

/**
 * Bitbucket's branch-permission pattern syntax (like Apache Ant): `?` one character, `*` any
 * characters within a path segment, `**` any number of segments; a trailing `/` means `/**`;
 * the pattern only has to match a suffix (whole segments) of the fully qualified ref, so
 * `PROJECT-*` matches `refs/heads/stable/PROJECT-1` and `refs/tags/PROJECT-1.1`.
 */
export function patternToRegExp(pattern: string): RegExp {
  let p = pattern.trim();
  if (p.endsWith('/')) p += '**';
  const segments = p.split('/');
  let re = '';
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '**') {
      // zero or more whole segments
      re += last ? '.*' : '(?:[^/]*/)*';
      return;
    }
    for (const ch of seg) {
      if (ch === '*') re += '[^/]*';
      else if (ch === '?') re += '[^/]';
      else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    if (!last) re += '/';
  });
  return new RegExp(`^(?:.*/)?${re}$`);
}

/** Bitbucket's default branching model: development = the default branch, no production branch. */
const CATEGORY_PREFIX: Record<string, string> = {
  FEATURE: 'feature/',
  BUGFIX: 'bugfix/',
  HOTFIX: 'hotfix/',
  RELEASE: 'release/',
};

const MATCHER_NAMES: Record<MatcherType, string> = {
  ANY_REF: 'Any branch',
  BRANCH: 'Branch',
  PATTERN: 'Pattern',
  MODEL_BRANCH: 'Branching model branch',
  MODEL_CATEGORY: 'Branching model category',
};

export const ANY_REF_MATCHER_ID = 'ANY_REF_MATCHER_ID';

/** Whether a fully qualified ref (`refs/heads/x`, `refs/tags/y`) matches. `defaultRef` = the repository's HEAD. */
export function refMatches(
  m: RefMatcher,
  ref: string,
  defaultRef: string,
): boolean {
  switch (m.type) {
    case 'ANY_REF':
      return true;
    case 'BRANCH':
      return ref === m.id;
    case 'PATTERN':
      return patternToRegExp(m.id).test(ref);
    case 'MODEL_BRANCH':
      return m.id === 'development' && ref === defaultRef;
    case 'MODEL_CATEGORY': {
      const prefix = CATEGORY_PREFIX[m.id];
      return !!prefix && ref.startsWith(`refs/heads/${prefix}`);
    }
    default:
      return false;
  }
}

/** The matcher as Bitbucket renders it: `{id, displayId, type: {id, name}, active}`. */
export function renderMatcher(m: RefMatcher) {
  let displayId = m.id;
  if (m.type === 'BRANCH') displayId = m.id.replace(/^refs\/heads\//, '');
  if (m.type === 'ANY_REF') displayId = 'ANY_REF_MATCHER_ID';
  if (m.type === 'MODEL_BRANCH')
    displayId = m.id === 'development' ? 'Development' : 'Production';
  if (m.type === 'MODEL_CATEGORY')
    displayId = m.id.charAt(0) + m.id.slice(1).toLowerCase();
  return {
    id: m.id,
    displayId,
    type: { id: m.type, name: MATCHER_NAMES[m.type] },
    active: true,
  };
}

/**
 * Parses a matcher of a request body (`{id, type: {id}}`, or `type` as a plain string); `field`
 * names it in validation errors. Branch ids without `refs/` are taken as branch names.
 */
export function parseMatcher(
  raw: unknown,
  field: string,
  allowAnyRef: boolean,
): RefMatcher {
  const o =
    raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
  const typeRaw =
    o.type && typeof o.type === 'object'
      ? (o.type as Record<string, unknown>).id
      : o.type;
  const type = typeof typeRaw === 'string' ? typeRaw.toUpperCase() : '';
  const allowed: MatcherType[] = [
    'BRANCH',
    'PATTERN',
    'MODEL_BRANCH',
    'MODEL_CATEGORY',
    ...(allowAnyRef ? (['ANY_REF'] as const) : []),
  ];
  if (!(allowed as string[]).includes(type))
    throw validation(
      `${field}.type`,
      `The matcher type must be one of ${allowed.join(', ')}.`,
    );
  let id = typeof o.id === 'string' ? o.id.trim() : '';
  if (type === 'ANY_REF') id = ANY_REF_MATCHER_ID;
  if (!id) throw validation(`${field}.id`, 'A matcher id is required.');
  if (type === 'BRANCH') {
    if (!id.startsWith('refs/')) id = `refs/heads/${id}`;
    if (!/^refs\/heads\/[^\s~^:?*[\\]+$/.test(id) || id.endsWith('/'))
      throw validation(`${field}.id`, `"${id}" is not a valid branch.`);
  }
  if (type === 'MODEL_BRANCH' && !['development', 'production'].includes(id))
    throw validation(
      `${field}.id`,
      'A branching model branch is "development" or "production".',
    );
  if (type === 'MODEL_CATEGORY') {
    id = id.toUpperCase();
    if (!CATEGORY_PREFIX[id])
      throw validation(
        `${field}.id`,
        `A branching model category is one of ${Object.keys(
          CATEGORY_PREFIX,
        ).join(', ')}.`,
      );
  }
  return { type: type as MatcherType, id };
}

/** Short form for test helpers: `refs/heads/x` or a plain name → BRANCH, anything with `*`/`?` → PATTERN. */
export function matcherOf(
  m: string | { type: MatcherType; id: string },
): RefMatcher {
  if (typeof m !== 'string') return parseMatcher(m, 'matcher', true);
  if (/[*?]/.test(m) || m.endsWith('/')) return { type: 'PATTERN', id: m };
  return { type: 'BRANCH', id: m.startsWith('refs/') ? m : `refs/heads/${m}` };
}
