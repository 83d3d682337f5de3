import { normalizeRepoPath } from '../manifests/validation';
import { parseSshPublicKey } from './publicKey';

/** The path as flux's `--path` renders it in the label: `./clusters/x`, `''` for the root. */
export function fluxLabelPath(path: string | undefined, field = 'path') {
  const clean = path?.trim() ? normalizeRepoPath(path, field) : '';
  return clean && `./${clean}`;
}

/**
 * flux's access key label (`deployKeyName`), so CLI- and portal-bootstrapped clusters share one
 * key: `[namespace, branch, secretName, path]` joined with `-`, e.g. `flux-system-main-flux-system-./clusters/x`.
 * @public
 */
export function fluxAccessKeyLabel(input: {
  namespace: string;
  branch: string;
  secretName: string;
  path?: string;
}): string {
  const { namespace, branch, secretName, path } = input;
  return [namespace, branch, secretName, fluxLabelPath(path)]
    .filter(Boolean)
    .join('-');
}

/**
 * The access key to register: `<type> <base64> <label>` from the trimmed public key (flux sends
 * the untrimmed `identity.pub`, leaving `\n ` before the label; not copied).
 */
export function accessKeyRequest(
  publicKey: string,
  label: string,
  readWrite: boolean,
) {
  return {
    text: `${parseSshPublicKey(publicKey).text} ${label}`,
    label,
    permission: readWrite ? ('REPO_WRITE' as const) : ('REPO_READ' as const),
  };
}
