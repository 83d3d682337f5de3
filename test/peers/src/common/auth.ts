/** A parsed `Authorization` header. */
export type ParsedAuthorization =
  | { scheme: 'bearer'; token: string }
  | { scheme: 'basic'; user: string; password: string }
  | { scheme: 'invalid' }
  | undefined;

/** Parses `Authorization: Bearer <t>` and `Authorization: Basic base64(user:password)`. */
export function parseAuthorization(
  header: string | undefined,
): ParsedAuthorization {
  if (!header) return undefined;
  const m = /^(\w+)\s+(.*)$/.exec(header.trim());
  if (!m) return { scheme: 'invalid' };
  const scheme = m[1].toLowerCase();
  if (scheme === 'bearer') {
    return m[2]
      ? { scheme: 'bearer', token: m[2].trim() }
      : { scheme: 'invalid' };
  }
  if (scheme === 'basic') {
    const decoded = Buffer.from(m[2].trim(), 'base64').toString('utf8');
    const c = decoded.indexOf(':');
    if (c < 0) return { scheme: 'invalid' };
    return {
      scheme: 'basic',
      user: decoded.slice(0, c),
      password: decoded.slice(c + 1),
    };
  }
  return { scheme: 'invalid' };
}
