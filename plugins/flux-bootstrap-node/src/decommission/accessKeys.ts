import type { BitbucketServerClient } from '../bitbucket/client';
import { isBitbucketError } from '../bitbucket/errors';
import type { BitbucketRepoRef } from '../bitbucket/repoUrl';
import { locateBitbucketRepository } from '../bitbucket/repository';
import { withDefaults, type DecommissionDeps } from './shared';

/** One repository access key, public facts only. @public */
export interface FluxAccessKeyInfo {
  id: number;
  label: string;
  permission: string;
  /** Bitbucket's fingerprint of the key, when it reports one. */
  fingerprint?: string;
}

/** Options of {@link deleteFluxAccessKeys}. @public */
export interface DeleteFluxAccessKeysOptions {
  client: BitbucketServerClient;
  ref: BitbucketRepoRef;
  /** The cluster key's label (`fluxAccessKeyLabel`): only keys with exactly this label are deleted. */
  label: string;
  /** List what would be deleted; delete nothing. */
  dryRun?: boolean;
  /** How the credentials are named in errors (never their value). */
  credentials?: string;
}

/** Outcome of {@link deleteFluxAccessKeys}. @public */
export interface DeleteFluxAccessKeysResult {
  /** `KEY/slug` of the repository. */
  repository: string;
  label: string;
  /** The keys with the label: deleted (or, in a dry run, to be deleted). */
  keys: FluxAccessKeyInfo[];
  /** How many other access keys the repository has; they are left alone. */
  otherKeys: number;
  changed: boolean;
}

/** Deletes the access keys labelled exactly `label` (other clusters' keys stay); one checkpoint. @public */
export async function deleteFluxAccessKeys(
  options: DeleteFluxAccessKeysOptions,
  deps: DecommissionDeps = {},
): Promise<DeleteFluxAccessKeysResult> {
  const { client, label } = options;
  const { signal, logger, step } = withDefaults(deps);
  const { projectKey, repoSlug } = await locateBitbucketRepository(
    client,
    options.ref,
    { signal, credentials: options.credentials },
  );
  const repository = `${projectKey}/${repoSlug}`;
  /** Says which permission a refused call needs. */
  const explaining = (what: string) => (error: unknown) => {
    if (isBitbucketError(error, 'forbidden', 'unauthorized'))
      error.message += ` (${what} of ${repository} needs REPO_ADMIN on the repository)`;
    throw error;
  };
  const all = await client
    .listAccessKeys(projectKey, repoSlug, signal)
    .catch(explaining('reading the access keys'));
  const keys: FluxAccessKeyInfo[] = all
    .filter(k => k.key.label === label)
    .map(({ key, permission }) => ({
      id: key.id,
      label: key.label ?? '',
      permission: String(permission),
      ...(key.fingerprint ? { fingerprint: key.fingerprint } : {}),
    }));
  const otherKeys = all.length - keys.length;
  const result = { repository, label, keys, otherKeys, changed: false };
  const others = `${otherKeys} other key(s)`;
  if (keys.length === 0) {
    logger.info(
      `${repository} has no access key labelled "${label}" (${others}, left alone): nothing to delete`,
    );
    return result;
  }
  if (options.dryRun) {
    const fact = (k: FluxAccessKeyInfo) =>
      [k.permission, k.fingerprint].filter(Boolean).join(', ');
    const listed = keys.map(k => `${k.id} (${fact(k)})`).join(', ');
    logger.info(
      `Dry run: would delete access key(s) ${listed} labelled "${label}" from ${repository}; ${others} stay`,
    );
    return result;
  }
  const deleted = await step('delete-access-keys', async () => {
    const ids: number[] = [];
    for (const k of keys) {
      const existed = await client
        .deleteAccessKey(projectKey, repoSlug, k.id, signal)
        .catch(explaining('deleting access keys'));
      logger.info(
        existed
          ? `Deleted access key ${k.id} "${label}" (${k.permission}) from ${repository}`
          : `Access key ${k.id} was already gone from ${repository}`,
      );
      if (existed) ids.push(k.id);
    }
    return ids;
  });
  logger.info(
    `Deleted ${keys.length} access key(s) labelled "${label}" from ${repository}; ${others} stay`,
  );
  return { ...result, changed: deleted.length > 0 };
}
