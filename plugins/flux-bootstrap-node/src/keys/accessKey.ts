import { normalizeRepoPath } from '../manifests/validation';
import { parseSshPublicKey } from './publicKey';

/** Bitbucket access key permissions. @public */
export type AccessKeyPermission = 'REPO_READ' | 'REPO_WRITE';

/**
 * The path as flux's `--path` (SafeRelativePath) renders it in the label: `./clusters/x`, or
 * `''` when no path (or the repository root) is given. Validated like every other `path` input
 * ({@link normalizeRepoPath}); throws {@link InputValidationError} naming `field`.
 * @public
 */
export function fluxLabelPath(
  path: string | undefined | null,
  field = 'path',
): string {
  if (
    path === undefined ||
    path === null ||
    (typeof path === 'string' && path.trim() === '')
  ) {
    return '';
  }
  const clean = normalizeRepoPath(path, field);
  return clean ? `./${clean}` : '';
}

/** Inputs of {@link fluxAccessKeyLabel}. @public */
export interface FluxAccessKeyLabelInput {
  namespace: string;
  branch: string;
  secretName: string;
  /** Raw or normalised path; normalised here. */
  path?: string;
}

/**
 * The access key label flux uses (`deployKeyName`): the non-empty values of
 * `[namespace, branch, secretName, path]` joined with `-`, path normalised (`./clusters/x`),
 * e.g. `flux-system-main-flux-system-./clusters/my-cluster`. Keeps CLI- and portal-bootstrapped
 * clusters on the same key.
 * @public
 */
export function fluxAccessKeyLabel(input: FluxAccessKeyLabelInput): string {
  return [
    input.namespace,
    input.branch,
    input.secretName,
    fluxLabelPath(input.path),
  ]
    .filter(v => v !== undefined && v !== '')
    .join('-');
}

/** Body of `POST /rest/keys/1.0/projects/{KEY}/repos/{slug}/ssh`. @public */
export interface AccessKeyRequest {
  text: string;
  label: string;
  permission: AccessKeyPermission;
}

/**
 * The access key to register: `text` is `<type> <base64> <label>` built from the trimmed public
 * key (flux sends the untrimmed `identity.pub`, leaving `\n ` before the label; not copied).
 * @public
 */
export function accessKeyRequest(
  publicKey: string,
  label: string,
  readWrite: boolean,
): AccessKeyRequest {
  const key = parseSshPublicKey(publicKey);
  return {
    text: `${key.text} ${label}`,
    label,
    permission: readWrite ? 'REPO_WRITE' : 'REPO_READ',
  };
}

/** The JSON body Bitbucket expects for a new access key. @public */
export function accessKeyRequestBody(request: AccessKeyRequest): {
  key: { text: string; label: string };
  permission: AccessKeyPermission;
} {
  return {
    key: { text: request.text, label: request.label },
    permission: request.permission,
  };
}
