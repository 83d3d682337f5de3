/**
 * Bad input: thrown before any side effect, always naming the offending field.
 * Adapters map it to Backstage's `InputError`.
 * @public
 */
export class InputValidationError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`Invalid input "${field}": ${message}`);
    this.name = 'InputValidationError';
    this.field = field;
  }
}

/**
 * An optional boolean input: `fallback` when unset, else it must be a boolean.
 * @public
 */
export function booleanInput(
  field: string,
  value: unknown,
  fallback: boolean,
): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean')
    throw new InputValidationError(field, 'must be true or false');
  return value;
}

/**
 * The operation was cancelled through its AbortSignal (task cancelled, or a timeout).
 * @public
 */
export class OperationAbortedError extends Error {
  constructor(message = 'The operation was cancelled') {
    super(message);
    this.name = 'OperationAbortedError';
  }
}

/** True for an AbortError from fetch/undici/node or our own. @public */
export function isAbortError(error: unknown): boolean {
  if (!error || typeof error !== 'object') return false;
  const e = error as { name?: string; code?: string };
  return (
    e.name === 'AbortError' ||
    e.name === 'OperationAbortedError' ||
    e.code === 'ABORT_ERR'
  );
}

/** Throws an OperationAbortedError when the signal is aborted. @public */
export function throwIfAborted(signal?: AbortSignal, what?: string): void {
  if (signal?.aborted) {
    throw new OperationAbortedError(
      what ? `Cancelled while ${what}` : undefined,
    );
  }
}

const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
]);

/**
 * A network error code worth retrying an idempotent call for (reset, refused, timed out, DNS
 * not answering, no route): the one list the Bitbucket, git and Kubernetes clients share.
 * @public
 */
export function isTransientNetworkCode(code: string | undefined): boolean {
  return !!code && TRANSIENT_NETWORK_CODES.has(code);
}
