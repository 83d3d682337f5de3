import { startBitbucketDouble } from '../bitbucket';
import type { BitbucketDouble } from '../bitbucket';
import { mintToken, startKubeApiserver, uniqueName } from '../kube';
import type {
  KubeApiserver,
  PolicyRule,
  StartKubeApiserverOptions,
} from '../kube';
import { applyFluxBundle, applyFluxSync } from './applyBundle';
import { buildFluxBundle } from './bundle';
import { startFluxSimulator } from './simulator';
import type { FluxSimulator, FluxSimulatorOptions } from './simulator';

/** Read everything, cluster-wide: what the status reader could do (it must still not pass Secrets on). */
export const READ_ALL_RULES: PolicyRule[] = [
  { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list', 'watch'] },
];

/** Read everything and patch Flux's GitRepositories and Kustomizations: what operating a cluster needs. */
export const OPERATE_FLUX_RULES: PolicyRule[] = [
  ...READ_ALL_RULES,
  {
    apiGroups: ['source.toolkit.fluxcd.io', 'kustomize.toolkit.fluxcd.io'],
    resources: ['gitrepositories', 'kustomizations'],
    verbs: ['patch'],
  },
];

/** The Bitbucket side of a bootstrapped cluster: user `flux`, project FLUX, repository `fleet`. */
export interface FleetRepo {
  project: 'FLUX';
  slug: 'fleet';
  /** The repository's smart-HTTP clone URL (what the GitRepository points at). */
  cloneUrl: string;
}

/**
 * Adds what `flux bootstrap bitbucket-server` finds on the Bitbucket double: user `flux`, project
 * FLUX, repository `fleet` (default branch `main`, one initial commit), `flux`'s REPO_READ grant
 * and `token` as `flux`'s HTTP access token.
 */
export function addFleetRepo(
  bb: BitbucketDouble,
  opts: { token: string },
): FleetRepo {
  bb.addUser({ name: 'flux' });
  bb.addProject({ key: 'FLUX', name: 'Fleet' });
  bb.createRepo('FLUX', 'fleet', {
    defaultBranch: 'main',
    initialCommit: true,
  });
  bb.grantRepo('FLUX', 'fleet', { user: 'flux' }, 'REPO_READ');
  bb.addToken({ token: opts.token, user: 'flux' });
  return {
    project: 'FLUX',
    slug: 'fleet',
    cloneUrl: bb.cloneUrls('FLUX', 'fleet').http,
  };
}

export interface StartBootstrappedClusterOptions {
  /** `flux`'s Bitbucket token: the read grant's token and the Git Secret's password. */
  token: string;
  /** Planted in the Git Secret as key `canary`: a value no answer may ever contain. */
  canary?: string;
  /** Flux's namespace (default `flux-system`). */
  namespace?: string;
  /** Field manager of the sync objects (default `bootstrapped-cluster`). */
  fieldManager?: string;
  /** Flags for the private kube-apiserver, e.g. an audit log. */
  apiserver?: StartKubeApiserverOptions;
  /**
   * `components` (default): source- and kustomize-controller of the v2.9.4 bundle fixture
   * (`applyFluxBundle`) plus the sync objects (`applyFluxSync`, GitRepository → the fleet
   * repository). `none`: the apiserver and the repository only (the test installs Flux itself,
   * e.g. through the Flux Operator).
   */
  flux?: 'components' | 'none';
  /**
   * The controller simulator's options beyond kube and namespace (default `{ intervalMs: 200 }`);
   * `false` starts none.
   */
  simulator?: false | Omit<FluxSimulatorOptions, 'kube' | 'namespace'>;
  /** Mints a ServiceAccount token with these cluster rules (see READ_ALL_RULES, OPERATE_FLUX_RULES). */
  tokenRules?: PolicyRule[];
  /** Prefix of the minted ServiceAccount's name (default `cluster-reader`). */
  tokenName?: string;
}

export interface BootstrappedCluster {
  /** A private kube-apiserver + etcd (Flux's CRDs are cluster-wide). */
  kube: KubeApiserver;
  bb: BitbucketDouble;
  repo: FleetRepo;
  namespace: string;
  /** The simulator, unless `simulator: false`. */
  sim?: FluxSimulator;
  /** The token minted with `tokenRules`, and its ServiceAccount's user name. */
  serviceAccountToken?: string;
  serviceAccountUser?: string;
  /**
   * Re-applies the sync objects (same field manager) with the Kustomization's `spec.suspend`
   * set: what `flux suspend/resume kustomization` changes. Only with `flux: 'components'`.
   */
  setSyncSuspended(suspend: boolean): Promise<void>;
  /** Stops the simulator, the apiserver and the double. */
  stop(): Promise<void>;
}

/**
 * A cluster as `flux bootstrap` leaves it, on real peers: the Bitbucket double with the fleet
 * repository, a private kube-apiserver with Flux's components and sync objects, the controller
 * simulator reconciling them from the double's git, optionally a minted ServiceAccount token for
 * the code under test. It never installs anything through the product's engine.
 */
export async function startBootstrappedCluster(
  opts: StartBootstrappedClusterOptions,
): Promise<BootstrappedCluster> {
  const namespace = opts.namespace ?? 'flux-system';
  const [kubeStarted, bbStarted] = await Promise.allSettled([
    startKubeApiserver(opts.apiserver),
    startBitbucketDouble(),
  ]);
  const kube =
    kubeStarted.status === 'fulfilled' ? kubeStarted.value : undefined;
  const bb = bbStarted.status === 'fulfilled' ? bbStarted.value : undefined;
  let sim: FluxSimulator | undefined;
  const stop = async () => {
    await sim?.stop();
    await Promise.all([kube?.stop(), bb?.stop()]);
  };
  try {
    if (!kube || !bb) {
      throw kubeStarted.status === 'rejected'
        ? kubeStarted.reason
        : (bbStarted as PromiseRejectedResult).reason;
    }
    const repo = addFleetRepo(bb, { token: opts.token });
    const withFlux = (opts.flux ?? 'components') === 'components';
    const sync = (suspend?: boolean) =>
      applyFluxSync(kube.info(), {
        namespace,
        url: repo.cloneUrl,
        secret: {
          username: 'flux',
          password: opts.token,
          ...(opts.canary ? { canary: opts.canary } : {}),
        },
        fieldManager: opts.fieldManager ?? 'bootstrapped-cluster',
        suspend,
      });
    if (withFlux) {
      await applyFluxBundle(
        kube.info(),
        await buildFluxBundle({ version: 'v2.9.4' }),
        {
          namespace,
          components: ['source-controller', 'kustomize-controller'],
        },
      );
      await sync();
    }
    if (opts.simulator !== false) {
      sim = await startFluxSimulator({
        intervalMs: 200,
        ...opts.simulator,
        kube: kube.info(),
        namespace,
      });
    }
    let serviceAccountToken: string | undefined;
    let serviceAccountUser: string | undefined;
    if (opts.tokenRules) {
      const name = uniqueName(opts.tokenName ?? 'cluster-reader');
      serviceAccountToken = await mintToken(kube.info(), {
        name,
        clusterRules: opts.tokenRules,
      });
      serviceAccountUser = `system:serviceaccount:flux-test-tokens:${name}`;
    }
    return {
      kube,
      bb,
      repo,
      namespace,
      sim,
      serviceAccountToken,
      serviceAccountUser,
      async setSyncSuspended(suspend: boolean) {
        if (!withFlux) {
          throw new Error("setSyncSuspended needs flux: 'components'");
        }
        await sync(suspend);
      },
      stop,
    };
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}
