import { errorNameForKind, FluxBootstrapError } from '../util/errors';

/**
 * What went wrong talking to Bitbucket. `forbidden` is a missing permission (Bitbucket answers
 * 401 with an `…AuthorisationException`), `unauthorized` bad credentials; `rate-limited` and
 * `server` come once retries are used up; `unexpected-response` is not Bitbucket's REST API.
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
 * `NotFoundError`, …); the message never contains credentials.
 * @public
 */
export class BitbucketError extends FluxBootstrapError {
  readonly kind: BitbucketErrorKind;
  readonly status?: number;
  /** Fully-qualified exception name of the first Bitbucket error. */
  readonly exceptionName?: string;
  readonly details: BitbucketErrorDetail[];
  /** `METHOD path` of the failed request. */
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
  const b = (body ?? {}) as { errors?: unknown; message?: unknown };
  if (!Array.isArray(b.errors))
    return typeof b.message === 'string' ? [{ message: b.message }] : [];
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  return b.errors
    .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
    .map(e => ({
      context: text(e.context),
      message: text(e.message) ?? '',
      exceptionName: text(e.exceptionName),
    }))
    .filter(e => e.message || e.exceptionName);
}

const KIND_OF_STATUS: Record<number, BitbucketErrorKind> = {
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
  429: 'rate-limited',
};

/** The kind of an HTTP status; a 401 with an `…AuthorisationException` is a missing permission. */
export function kindForStatus(
  status: number,
  details: BitbucketErrorDetail[],
): BitbucketErrorKind {
  if (status === 401)
    return details.some(d =>
      /Authori[sz]ationException$/.test(d.exceptionName ?? ''),
    )
      ? 'forbidden'
      : 'unauthorized';
  if (status >= 500) return 'server';
  if (status < 400) return 'unexpected-response';
  return KIND_OF_STATUS[status] ?? 'bad-request';
}
