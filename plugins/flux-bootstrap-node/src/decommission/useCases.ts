import type { BitbucketAccess } from '../bitbucket/access';
import { authSecrets, BitbucketServerClient } from '../bitbucket/client';
import { planRepositoryOutputs } from '../bitbucket/repository';
import type { FluxBootstrapSettings } from '../config/settings';
import { bitbucketGitTransport } from '../git/transport';
import { fluxAccessKeyLabel } from '../keys/accessKey';
import { createKubeClient } from '../kube/client';
import { resolveCluster } from '../kube/cluster';
import {
  validateDnsLabel,
  validateDnsSubdomain,
} from '../manifests/validation';
import { Redactor } from '../util/redact';
import { deleteFluxAccessKeys } from './accessKeys';
import {
  removeClusterPath,
  type RemoveClusterPathOptions,
  type RemoveClusterPathResult,
} from './clusterPath';
import type { DecommissionDeps } from './shared';
import {
  uninstallFlux,
  type FluxUninstallOptions,
  type FluxUninstallResult,
} from './uninstall';

/** Collaborators of the decommission use cases that reach a host. @public */
export interface DecommissionUseCaseDeps extends DecommissionDeps {
  /** Gets the credentials of the host added; errors leave through it. */
  redactor?: Redactor;
}

/** Runs `fn` with a redactor that knows `secrets`, and a logger passing lines through it. */
async function redacted<T>(
  deps: DecommissionUseCaseDeps,
  secrets: string[],
  fn: (deps: DecommissionDeps & { redactor: Redactor }) => Promise<T>,
): Promise<T> {
  const redactor = deps.redactor ?? new Redactor();
  for (const secret of secrets) redactor.add(secret);
  const logger = deps.logger && redactor.wrapLogger(deps.logger);
  try {
    return await fn({ ...deps, logger, redactor });
  } catch (error) {
    throw redactor.redactError(error);
  }
}

/** `bitbucket:delete-access-keys` with the cluster key's label, checked before any request. @public */
export async function deleteClusterAccessKeys(
  req: {
    bitbucket: BitbucketAccess;
    namespace: string;
    secretName: string;
    branch: string;
    path: string;
    dryRun?: boolean;
  },
  deps: DecommissionUseCaseDeps = {},
) {
  const label = fluxAccessKeyLabel({
    namespace: validateDnsLabel(req.namespace, 'namespace'),
    branch: req.branch,
    secretName: validateDnsSubdomain(req.secretName, 'secretName'),
    path: req.path,
  });
  const { bitbucket } = req;
  return redacted(deps, authSecrets(bitbucket.auth), async d => {
    const client = new BitbucketServerClient(bitbucket.host, bitbucket.auth, d);
    try {
      const { ref, credentials } = bitbucket;
      const { dryRun } = req;
      return await deleteFluxAccessKeys(
        { client, ref, label, dryRun, credentials },
        d,
      );
    } finally {
      client.close();
    }
  });
}

/** `flux:remove-cluster-path`: {@link removeClusterPath} over HTTPS with `bitbucket`'s credentials. @public */
export async function removeClusterPathFromRepository(
  req: Omit<RemoveClusterPathOptions, 'transport'> & {
    bitbucket: BitbucketAccess;
  },
  deps: DecommissionUseCaseDeps = {},
): Promise<RemoveClusterPathResult> {
  const { bitbucket, ...options } = req;
  const { host, auth } = bitbucket;
  const { remoteUrl } = planRepositoryOutputs(host, {
    ref: bitbucket.ref,
    defaultBranch: req.branch,
  });
  const transport = bitbucketGitTransport(remoteUrl, host, auth);
  return redacted(deps, authSecrets(auth), d =>
    removeClusterPath({ ...options, transport }, d),
  );
}

/** `flux:uninstall`: {@link uninstallFlux} on a configured cluster, resolved before any request. @public */
export async function uninstallFluxFromCluster(
  req: FluxUninstallOptions & { cluster: string },
  deps: DecommissionUseCaseDeps & {
    settings: Pick<
      FluxBootstrapSettings,
      'clusters' | 'allowKubeconfigContexts'
    >;
  },
): Promise<FluxUninstallResult> {
  const { cluster, ...options } = req;
  const connection = resolveCluster(deps.settings, cluster, 'cluster');
  return redacted(deps, [], async d => {
    const kube = await createKubeClient(connection, d);
    try {
      const { plan: _plan, ...result } = await uninstallFlux(kube, options, d);
      return result;
    } finally {
      kube.close();
    }
  });
}
