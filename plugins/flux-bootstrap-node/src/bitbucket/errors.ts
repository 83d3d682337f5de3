import { errorNameForKind, FluxBootstrapError } from '../util/errors';

/**
 * What went wrong talking to Bitbucket, in terms a caller can act on.
 *
 * - `unauthorized`: the credentials are invalid, expired or revoked (401 that is not an authorisation failure).
 * - `forbidden`: the credentials are valid but lack a permission (Bitbucket answers 401 with an
 *   `…AuthorisationException`; some proxies answer 403).
 * - `not-found`, `conflict`, `bad-request`: 404, 409, other 4xx.
 * - `rate-limited`: 429 after the retries were used up.
 * - `server`: 5xx after the retries were used up.
 * - `network`: connection refused/reset, DNS, TLS (untrusted certificate…).
 * - `timeout`: no answer within the per-request timeout.
 * - `unexpected-response`: an answer that is not Bitbucket's REST API (an HTML page, a redirect):
 *   usually a wrong `apiBaseUrl` or a missing context path.
 * @public
 */
export type BitbucketErrorKind =
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'bad-request'
  | 'rate-limited'
  | 'server'
  | 'network'
  | 'timeout'
  | 'unexpected-response';

/** One entry of Bitbucket's error body `{"errors":[{context,message,exceptionName}]}`. @public */
export interface BitbucketErrorDetail {
  context?: string | null;
  message: string;
  exceptionName?: string | null;
}

/**
 * An error from Bitbucket Server, named as Backstage names its kind (`not-found` is a
 * `NotFoundError`, …). The message says which request failed and what Bitbucket answered; it
 * never contains credentials.
 * @public
 */
export class BitbucketError extends FluxBootstrapError {
  readonly kind: BitbucketErrorKind;
  readonly status?: number;
  /** Fully-qualified exception name of the first Bitbucket error, e.g. `com.atlassian.bitbucket.AuthorisationException`. */
  readonly exceptionName?: string;
  readonly details: BitbucketErrorDetail[];
  /** `METHOD path` of the failed request (path relative to the server root, with context path). */
  readonly request?: string;
  /** Node's error code for network failures (ECONNRESET, CERT_…). */
  readonly code?: string;

  constructor(
    message: string,
    opts: {
      kind: BitbucketErrorKind;
      status?: number;
      details?: BitbucketErrorDetail[];
      request?: string;
      code?: string;
      cause?: unknown;
    },
  ) {
    super(errorNameForKind(opts.kind), message);
    this.kind = opts.kind;
    this.status = opts.status;
    this.details = opts.details ?? [];
    this.exceptionName =
      this.details.find(d => d.exceptionName)?.exceptionName ?? undefined;
    this.request = opts.request;
    this.code = opts.code;
  }

  /** The Bitbucket messages joined, or undefined when Bitbucket sent none. */
  get bitbucketMessage(): string | undefined {
    const messages = this.details.map(d => d.message).filter(Boolean);
    return messages.length ? messages.join('; ') : undefined;
  }
}

/** True for a {@link BitbucketError} of one of the given kinds. @public */
export function isBitbucketError(
  error: unknown,
  ...kinds: BitbucketErrorKind[]
): error is BitbucketError {
  return (
    error instanceof BitbucketError &&
    (kinds.length === 0 || kinds.includes(error.kind))
  );
}

/** Parses Bitbucket's `{"errors":[…]}` body (or a bare `{message}`); empty when it is something else. */
export function parseErrorDetails(body: unknown): BitbucketErrorDetail[] {
  if (!body || typeof body !== 'object') return [];
  const b = body as { errors?: unknown; message?: unknown };
  if (Array.isArray(b.errors)) {
    return b.errors
      .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
      .map(e => ({
        context: typeof e.context === 'string' ? e.context : null,
        message: typeof e.message === 'string' ? e.message : '',
        exceptionName:
          typeof e.exceptionName === 'string' ? e.exceptionName : null,
      }))
      .filter(e => e.message || e.exceptionName);
  }
  if (typeof b.message === 'string') return [{ message: b.message }];
  return [];
}

const AUTHORISATION = /Authori[sz]ationException$/;

/** Maps an HTTP status and Bitbucket's error details to an error kind. */
export function kindForStatus(
  status: number,
  details: BitbucketErrorDetail[],
): BitbucketErrorKind {
  if (status === 401) {
    // Bitbucket answers a missing permission with 401 too; the exception name tells them apart.
    return details.some(
      d => d.exceptionName && AUTHORISATION.test(d.exceptionName),
    )
      ? 'forbidden'
      : 'unauthorized';
  }
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate-limited';
  if (status >= 500) return 'server';
  if (status >= 300 && status < 400) return 'unexpected-response';
  return 'bad-request';
}

/** Short name of a Java exception (`com.atlassian.bitbucket.AuthorisationException` → `AuthorisationException`). */
export function shortExceptionName(
  name: string | null | undefined,
): string | undefined {
  if (!name) return undefined;
  return name.split('.').pop();
}
