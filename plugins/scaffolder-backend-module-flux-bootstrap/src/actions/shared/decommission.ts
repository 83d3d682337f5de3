import type { z as zod } from 'zod/v3';
import {
  type BitbucketAccess,
  FluxBootstrapSettings,
  normalizeRepoPath,
  requireClusterConfirmation,
  validateBranch,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { bitbucketAccess } from './bitbucketAccess';

/**
 * Inputs every decommission action has: the cluster, and its name typed again. Nothing is
 * removed (nothing is even read) unless `confirm` equals `cluster`.
 */
export const decommissionInput = {
  cluster: (z: typeof zod) =>
    z
      .string()
      .describe(
        'The cluster Flux is removed from: a name from kubernetes.clusterLocatorMethods (the cluster the bootstrap templates took).',
      ),
  confirm: (z: typeof zod) =>
    z
      .string()
      .describe(
        'The cluster name typed again, to confirm. Anything else fails the step before any request, in dry runs too.',
      ),
};

/** The inputs naming where the cluster lives in the fleet repository. */
export const fleetRepositoryInput = {
  repoUrl: (z: typeof zod) =>
    z
      .string()
      .describe(
        'The fleet repository, host?project=KEY&repo=name (as for bitbucket:create-repo).',
      ),
  token: (z: typeof zod) =>
    z
      .string()
      .optional()
      .describe(
        "Bitbucket HTTP access token (a ui:field Secret passed as ${{ secrets.token }}). Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
      ),
  branch: (z: typeof zod) =>
    z.string().default('main').describe('Branch Flux synced (default main).'),
  path: (z: typeof zod) =>
    z
      .string()
      .optional()
      .describe("The cluster's folder (default clusters/<cluster>)."),
};

/** Validated common inputs of the Bitbucket decommission actions; throws naming the field. */
export function fleetTarget(
  settings: FluxBootstrapSettings,
  input: {
    cluster: string;
    confirm: string;
    repoUrl: string;
    token?: string;
    branch: string;
    path?: string;
  },
): { bitbucket: BitbucketAccess; branch: string; path: string } {
  requireClusterConfirmation(input.cluster, input.confirm);
  return {
    bitbucket: bitbucketAccess(settings, input),
    branch: validateBranch(input.branch, 'branch'),
    // Derived from the cluster, so not a schema default: the bootstrap templates' folder.
    path: normalizeRepoPath(input.path ?? `clusters/${input.cluster}`),
  };
}
