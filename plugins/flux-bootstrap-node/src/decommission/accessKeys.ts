import type { BitbucketServerClient } from '../bitbucket/client';
import { isBitbucketError } from '../bitbucket/errors';
import type { BitbucketRepoRef } from '../bitbucket/repoUrl';
import { locateBitbucketRepository } from '../bitbucket/repository';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { silentLogger, type EngineLogger } from '../util/logger';

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
  /**
   * The label `flux:generate-key` (and `flux bootstrap`) gives the cluster's key, see
   * `fluxAccessKeyLabel`: only keys with exactly this label are deleted.
   */
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

function info(k: {
  key: { id: number; label?: string; fingerprint?: string };
  permission: string;
}): FluxAccessKeyInfo {
  return {
    id: k.key.id,
    label: k.key.label ?? '',
    permission: String(k.permission),
    ...(k.key.fingerprint ? { fingerprint: k.key.fingerprint } : {}),
  };
}

/**
 * Deletes a decommissioned cluster's SSH access keys from the fleet repository: those whose
 * label is the cluster's (`<namespace>-<branch>-<secretName>-./<path>`, as `flux:generate-key`
 * and `flux bootstrap` name them), and no other — the keys of the other clusters syncing from
 * the same repository stay. Deleted by id, one checkpoint; a key already gone counts as deleted,
 * and a second run finds none and changes nothing. A dry run only lists them.
 * @public
 */
export async function deleteFluxAccessKeys(
  options: DeleteFluxAccessKeysOptions,
  deps: {
    logger?: EngineLogger;
    signal?: AbortSignal;
    checkpoint?: CheckpointFn;
  } = {},
): Promise<DeleteFluxAccessKeysResult> {
  const { client, label } = options;
  const { signal } = deps;
  const logger = deps.logger ?? silentLogger;
  const step = deps.checkpoint ?? runCheckpointDirectly;
  const located = await locateBitbucketRepository(client, options.ref, {
    signal,
    credentials: options.credentials,
  });
  const repository = `${located.projectKey}/${located.repoSlug}`;
  const explain = (error: unknown, what: string) => {
    if (isBitbucketError(error, 'forbidden', 'unauthorized')) {
      return Object.assign(error, {
        message: `${error.message} (${what} of ${repository} needs REPO_ADMIN on the repository)`,
      });
    }
    return error;
  };
  const all = await client
    .listAccessKeys(located.projectKey, located.repoSlug, signal)
    .catch(error => {
      throw explain(error, 'reading the access keys');
    });
  const ours = all.filter(k => k.key.label === label).map(info);
  const result: DeleteFluxAccessKeysResult = {
    repository,
    label,
    keys: ours,
    otherKeys: all.length - ours.length,
    changed: false,
  };
  if (ours.length === 0) {
    logger.info(
      `${repository} has no access key labelled "${label}" (${result.otherKeys} other key(s), left alone): nothing to delete`,
    );
    return result;
  }
  const described = ours
    .map(
      k =>
        `${k.id} (${k.permission}${k.fingerprint ? `, ${k.fingerprint}` : ''})`,
    )
    .join(', ');
  if (options.dryRun) {
    logger.info(
      `Dry run: would delete access key(s) ${described} labelled "${label}" from ${repository}; ${result.otherKeys} other key(s) stay`,
    );
    return result;
  }
  const deleted = await step('delete-access-keys', async () => {
    const ids: number[] = [];
    for (const k of ours) {
      const existed = await client
        .deleteAccessKey(located.projectKey, located.repoSlug, k.id, signal)
        .catch(error => {
          throw explain(error, 'deleting access keys');
        });
      logger.info(
        existed
          ? `Deleted access key ${k.id} "${label}" (${k.permission}) from ${repository}`
          : `Access key ${k.id} was already gone from ${repository}`,
      );
      if (existed) ids.push(k.id);
    }
    return ids;
  });
  result.changed = deleted.length > 0;
  logger.info(
    `Deleted ${ours.length} access key(s) labelled "${label}" from ${repository}; ${result.otherKeys} other key(s) stay`,
  );
  return result;
}
