import type { z as zod } from 'zod/v3';
import {
  BitbucketServerClient,
  FluxBootstrapSettings,
  fluxAccessKeyLabel,
  normalizeRepoPath,
  requireClusterConfirmation,
  validateBranch,
  validateDnsLabel,
  validateDnsSubdomain,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  describeCredentials,
  resolveBitbucket,
  type ResolvedBitbucket,
} from './context';

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
): {
  bitbucket: ResolvedBitbucket;
  branch: string;
  path: string;
  credentials: string;
} {
  requireClusterConfirmation(input.cluster, input.confirm);
  const bitbucket = resolveBitbucket(settings, input);
  return {
    bitbucket,
    branch: validateBranch(input.branch, 'branch'),
    // Derived from the cluster, so not a schema default: the bootstrap templates' folder.
    path: normalizeRepoPath(input.path ?? `clusters/${input.cluster}`),
    credentials: describeCredentials(bitbucket),
  };
}

/** The access key label of a cluster, as flux:generate-key wrote it. */
export function clusterKeyLabel(input: {
  namespace: string;
  secretName: string;
  branch: string;
  path: string;
}): string {
  return fluxAccessKeyLabel({
    namespace: validateDnsLabel(input.namespace, 'namespace'),
    branch: input.branch,
    secretName: validateDnsSubdomain(input.secretName, 'secretName'),
    path: input.path,
  });
}

/** A Bitbucket client for a resolved target, logging through `logger`. */
export function bitbucketClientFor(
  bitbucket: ResolvedBitbucket,
  deps: ConstructorParameters<typeof BitbucketServerClient>[2],
) {
  return new BitbucketServerClient(bitbucket.host, bitbucket.auth, deps);
}
