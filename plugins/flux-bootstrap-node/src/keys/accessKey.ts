import { normalizeRepoPath } from '../manifests/validation';
import { parseSshPublicKey } from './publicKey';

/** Bitbucket access key permissions. @public */
export type AccessKeyPermission = 'REPO_READ' | 'REPO_WRITE';

/**
 * The path as flux's `--path` (SafeRelativePath) renders it in the label: `./clusters/x`, or
 * `''` for no path or the repository root. Validated like every `path` input.
 * @public
 */
export function fluxLabelPath(
  path: string | undefined | null,
  field = 'path',
): string {
  if (typeof path !== 'string' || path.trim() === '') return '';
  const clean = normalizeRepoPath(path, field);
  return clean && `./${clean}`;
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
 * `[namespace, branch, secretName, path]` joined with `-`, path normalised, e.g.
 * `flux-system-main-flux-system-./clusters/my-cluster`. CLI- and portal-bootstrapped clusters
 * share one key.
 * @public
 */
export function fluxAccessKeyLabel(input: FluxAccessKeyLabelInput): string {
  const { namespace, branch, secretName, path } = input;
  return [namespace, branch, secretName, fluxLabelPath(path)]
    .filter(Boolean)
    .join('-');
}

/** An access key to register on a repository. @public */
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
  return {
    text: `${parseSshPublicKey(publicKey).text} ${label}`,
    label,
    permission: readWrite ? 'REPO_WRITE' : 'REPO_READ',
  };
}
