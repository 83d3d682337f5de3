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

const TLS_CODE =
  /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT(_LOCALLY)?)|CERT_(HAS_EXPIRED|NOT_YET_VALID|UNTRUSTED|REJECTED)|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_WRONG_VERSION_NUMBER|EPROTO)$/;

const NETWORK_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name not found',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'host unreachable',
  ETIMEDOUT: 'connection timed out',
};

/** Human text for a network-level failure (no server answer). @internal */
export function describeNetworkError(error: unknown): {
  code?: string;
  text: string;
  tls: boolean;
} {
  const e = (error ?? {}) as { code?: string; message?: string };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(error);
  const tls =
    TLS_CODE.test(code ?? '') ||
    /certificate|self[- ]signed|ssl|tls/i.test(message);
  const text = (code && NETWORK_TEXT[code]) || message;
  if (tls) {
    return {
      code,
      tls,
      text: `TLS error: ${message}${
        code && !message.includes(code) ? ` (${code})` : ''
      } — check the cluster's caData/caFile`,
    };
  }
  return {
    code,
    tls,
    text: code && !text.includes(code) ? `${text} (${code})` : text,
  };
}
