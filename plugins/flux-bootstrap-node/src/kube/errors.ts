import { errorNameForKind, FluxBootstrapError } from '../util/errors';

/**
 * Why a Kubernetes API call failed, coarse enough for callers to act on:
 * `unreachable` (DNS, connection refused/reset, TLS, no answer in time), `unauthorized` (401),
 * `forbidden` (403), `not-found` (404, or a kind the server does not serve), `conflict` (409),
 * `invalid` (400/422), `server` (429 and 5xx after retries, or anything else).
 * @public
 */
export type KubeApiErrorKind =
  | 'unreachable'
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'invalid'
  | 'server';

/**
 * A failed Kubernetes API call, named as Backstage names its kind. The message says what was attempted, on which cluster, and what
 * the API server (or the network) answered; it never contains a credential.
 * @public
 */
export class KubeApiError extends FluxBootstrapError {
  readonly kind: KubeApiErrorKind;
  readonly status?: number;
  /** The API's `Status.reason` (e.g. `Forbidden`, `Conflict`), or a network error code (`ECONNREFUSED`, a TLS code). */
  readonly reason?: string;
  /** Field-level causes of a 422 (`Status.details.causes`). */
  readonly causes?: { field?: string; message?: string; reason?: string }[];

  constructor(
    message: string,
    opts: {
      kind: KubeApiErrorKind;
      status?: number;
      reason?: string;
      causes?: { field?: string; message?: string; reason?: string }[];
    },
  ) {
    super(errorNameForKind(opts.kind), message);
    this.kind = opts.kind;
    this.status = opts.status;
    this.reason = opts.reason;
    this.causes = opts.causes;
  }
}

/** True when `error` is a KubeApiError of one of the kinds. @public */
export function isKubeApiError(
  error: unknown,
  ...kinds: KubeApiErrorKind[]
): error is KubeApiError {
  return (
    error instanceof KubeApiError &&
    (kinds.length === 0 || kinds.includes(error.kind))
  );
}

/** Maps an HTTP status to a kind. @internal */
export function kindForStatus(status: number): KubeApiErrorKind {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404 || status === 410) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 400 || status === 422) return 'invalid';
  return 'server';
}
