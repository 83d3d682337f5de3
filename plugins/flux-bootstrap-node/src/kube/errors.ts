import { errorNameForKind, FluxBootstrapError } from '../util/errors';

/**
 * Why a Kubernetes API call failed: `unreachable` (network, TLS, timeout), `not-found` (404 or an
 * unserved kind), `invalid` (400/422), `server` (429/5xx after retries, anything else).
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
 * A failed Kubernetes API call, named as Backstage names its kind; the message says what was
 * attempted, on which cluster, and the answer, never a credential.
 * @public
 */
export class KubeApiError extends FluxBootstrapError {
  declare readonly kind: KubeApiErrorKind;
  declare readonly status?: number;
  /** The API's `Status.reason` (e.g. `Forbidden`, `Conflict`), or a network error code (`ECONNREFUSED`, a TLS code). */
  declare readonly reason?: string;
  /** Field-level causes of a 422 (`Status.details.causes`). */
  declare readonly causes?: {
    field?: string;
    message?: string;
    reason?: string;
  }[];

  constructor(
    message: string,
    opts: Pick<KubeApiError, 'kind' | 'status' | 'reason' | 'causes'>,
  ) {
    super(errorNameForKind(opts.kind), message);
    Object.assign(this, opts);
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

const KIND_OF_STATUS: Record<number, KubeApiErrorKind> = {
  400: 'invalid',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
  410: 'not-found',
  422: 'invalid',
};

export const kindForStatus = (status: number): KubeApiErrorKind =>
  KIND_OF_STATUS[status] ?? 'server';
