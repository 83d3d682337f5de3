import { CustomErrorBase, InputError } from '@backstage/errors';

/** The names Backstage's error handler maps to HTTP statuses. @public */
export type BackstageErrorName =
  | 'InputError'
  | 'AuthenticationError'
  | 'NotAllowedError'
  | 'NotFoundError'
  | 'ConflictError'
  | 'ServiceUnavailableError';

const NAME_OF_KIND: Record<string, BackstageErrorName> = {
  'bad-request': 'InputError',
  invalid: 'InputError',
  unauthorized: 'AuthenticationError',
  forbidden: 'NotAllowedError',
  'missing-permissions': 'NotAllowedError',
  'not-found': 'NotFoundError',
  conflict: 'ConflictError',
  'managed-by-other': 'ConflictError',
  'path-conflict': 'ConflictError',
  suspended: 'ConflictError',
};

/** The Backstage name of an engine error kind; any unknown kind is a `ServiceUnavailableError`. @public */
export function errorNameForKind(kind: string): BackstageErrorName {
  return NAME_OF_KIND[kind] ?? 'ServiceUnavailableError';
}

/**
 * Base of the engine's errors, with the Backstage name that fits. `cause` is kept but, unlike
 * in `CustomErrorBase`, not appended to the message (it may carry what the message leaves out).
 * @public
 */
export class FluxBootstrapError extends CustomErrorBase {
  constructor(
    name: BackstageErrorName | 'OperationAbortedError',
    message: string,
    cause?: unknown,
  ) {
    super(message);
    this.name = name;
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/** Bad input, naming the field: thrown before any side effect. @public */
export class InputValidationError extends InputError {
  constructor(readonly field: string, message: string) {
    super(`Invalid input "${field}": ${message}`);
  }
}

/** The operation was cancelled through its AbortSignal (task cancelled, or a timeout). @public */
export class OperationAbortedError extends FluxBootstrapError {
  constructor(message = 'The operation was cancelled') {
    super('OperationAbortedError', message);
  }
}

/** True for an AbortError from fetch/undici/node or our own. @public */
export function isAbortError(error: unknown): boolean {
  const e = (error ?? {}) as { name?: string; code?: string };
  return (
    e.name === 'AbortError' ||
    e.name === 'OperationAbortedError' ||
    e.code === 'ABORT_ERR'
  );
}

/** Throws an OperationAbortedError when the signal is aborted. @public */
export function throwIfAborted(signal?: AbortSignal, what?: string): void {
  if (signal?.aborted)
    throw new OperationAbortedError(
      what ? `Cancelled while ${what}` : undefined,
    );
}

const TRANSIENT_NETWORK_CODES = new Set(
  'ECONNRESET ECONNREFUSED ECONNABORTED EPIPE ETIMEDOUT EAI_AGAIN EHOSTUNREACH ENETUNREACH UND_ERR_SOCKET'.split(
    ' ',
  ),
);

/** A network error code worth retrying an idempotent call for (one list for all clients). @public */
export function isTransientNetworkCode(code: string | undefined): boolean {
  return !!code && TRANSIENT_NETWORK_CODES.has(code);
}
