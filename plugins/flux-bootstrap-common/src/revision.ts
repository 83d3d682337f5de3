/** A Flux revision string taken apart. @public */
export interface FluxRevision {
  /** Branch, tag or ref name before the digest, e.g. `main` or `refs/heads/main`. */
  ref?: string;
  /** Digest algorithm, `sha1` for Git commits (`sha256` for OCI artifacts and SHA-256 Git). */
  algorithm?: string;
  /** The commit SHA (or digest), lower-case hex. */
  sha?: string;
}

/**
 * Parses a Flux revision: `main@sha1:<sha>` (Flux v2 APIs), `sha1:<sha>`, the legacy
 * `main/<sha>` (v1beta2 and older) or a bare SHA. Returns `{}` for an empty value.
 * @public
 */
export function parseFluxRevision(
  revision: string | undefined | null,
): FluxRevision {
  const value = (revision ?? '').trim();
  if (!value) return {};
  const modern = /^(?:(.+)@)?(sha1|sha256):([0-9a-fA-F]+)$/.exec(value);
  if (modern) {
    return {
      ref: modern[1] || undefined,
      algorithm: modern[2],
      sha: modern[3].toLowerCase(),
    };
  }
  const legacy = /^(.+)\/([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/.exec(value);
  if (legacy) {
    return {
      ref: legacy[1],
      algorithm: legacy[2].length === 40 ? 'sha1' : 'sha256',
      sha: legacy[2].toLowerCase(),
    };
  }
  if (/^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/.test(value)) {
    return {
      algorithm: value.length === 40 ? 'sha1' : 'sha256',
      sha: value.toLowerCase(),
    };
  }
  return { ref: value };
}

/** The first 8 characters of a revision's SHA, or undefined. @public */
export function shortSha(
  revision: string | undefined | null,
): string | undefined {
  const { sha } = parseFluxRevision(revision);
  return sha ? sha.slice(0, 8) : undefined;
}
