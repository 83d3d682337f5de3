/**
 * The bootstrap state of one cluster, as the status backend reports it and the card shows it.
 *
 * - `unreachable`: the API server could not be reached (network, DNS, TLS); `reason` says why.
 * - `forbidden`: the API server answered 401/403 to the configured credentials.
 * - `not-installed`: no Flux CRDs on the cluster.
 * - `installing`: Flux is installed but the sync objects have not reconciled yet (no Ready condition
 *   yet, or Ready=Unknown / progressing).
 * - `ready`: source and sync are Ready=True and every Flux controller is available.
 * - `failing`: a Ready=False condition or an unavailable controller; `reason` holds the message.
 * - `suspended`: the sync Kustomization or its source is suspended.
 * - `awaiting-merge`: Flux is installed and its sync waits for an open pull request (opened by
 *   `flux:push-manifests` in pull-request mode) to be merged; `pullRequest` has its link.
 *
 * @public
 */
export type ClusterBootstrapState =
  | 'unreachable'
  | 'forbidden'
  | 'not-installed'
  | 'installing'
  | 'awaiting-merge'
  | 'ready'
  | 'failing'
  | 'suspended';

/** @public */
export const CLUSTER_BOOTSTRAP_STATES: ClusterBootstrapState[] = [
  'unreachable',
  'forbidden',
  'not-installed',
  'installing',
  'awaiting-merge',
  'ready',
  'failing',
  'suspended',
];

/**
 * States that stay as they are until someone acts (fix, resume, grant): `ready`, `failing`,
 * `suspended`, `forbidden`. The others (`not-installed`, `installing`, `awaiting-merge`,
 * `unreachable`) are expected
 * to move on their own while a bootstrap runs or a cluster comes back, so the card keeps polling
 * while any cluster is in one of them.
 * @public
 */
export const STEADY_CLUSTER_STATES: readonly ClusterBootstrapState[] = [
  'ready',
  'failing',
  'suspended',
  'forbidden',
];

/** True for a state in {@link STEADY_CLUSTER_STATES}. @public */
export function isSteadyClusterState(state: ClusterBootstrapState): boolean {
  return STEADY_CLUSTER_STATES.includes(state);
}

/** One Flux controller Deployment. @public */
export interface FluxComponentStatus {
  /** Deployment name, e.g. `source-controller`. */
  name: string;
  /** True when the Deployment is available with all replicas updated and ready. */
  ready: boolean;
  /** Image of the first container, e.g. `ghcr.io/fluxcd/source-controller:v1.9.4`. */
  image?: string;
  /** Tag of that image, e.g. `v1.9.4`. */
  tag?: string;
  /** Why it is not ready, when it is not. */
  message?: string;
}

/** Who installed Flux and which version, read from the CRD labels as `flux check` does. @public */
export interface FluxDistributionInfo {
  /** `app.kubernetes.io/version` of the `gitrepositories.source.toolkit.fluxcd.io` CRD. */
  version?: string;
  /** `app.kubernetes.io/part-of`, usually `flux`. */
  distribution?: string;
  /** `app.kubernetes.io/managed-by`, else `flux bootstrap` when the CRD carries kustomize labels. */
  managedBy?: string;
  /** True when the CRD is labelled `kustomize.toolkit.fluxcd.io/namespace` (Flux manages itself from Git). */
  bootstrapped: boolean;
  /** Namespace the controllers run in. */
  namespace: string;
  /** Where these facts came from. */
  reportedBy: 'crd-labels' | 'flux-report';
  /**
   * Who manages the Flux installation: `flux-bootstrap` (manifests in Git, Flux manages itself)
   * or `flux-operator` (a `FluxInstance` reconciled by the Flux Operator).
   */
  manager?: 'flux-bootstrap' | 'flux-operator';
  /** The `FluxInstance`, when the Flux Operator manages Flux. */
  instance?: FluxInstanceStatus;
}

/** The Flux Operator's `FluxInstance` (`fluxcd.controlplane.io/v1`) of a cluster. @public */
export interface FluxInstanceStatus {
  name: string;
  namespace: string;
  /** `spec.distribution.version`: an exact version or a semver range such as `2.9.x`. */
  requestedVersion?: string;
  /** The Flux version the operator installed (`status.lastAppliedRevision`'s version part). */
  installedVersion?: string;
  /** Ready condition: true, false, or null when there is none yet. */
  ready: boolean | null;
  /** `status.lastHandledReconcileAt` or the last applied revision the operator handled. */
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  message?: string;
}

/** A reviewer of a pull request, as Bitbucket reports it. @public */
export interface PullRequestReviewer {
  /** Bitbucket user slug/name. */
  name: string;
  displayName?: string;
  /** Bitbucket's participant status. */
  status: 'APPROVED' | 'UNAPPROVED' | 'NEEDS_WORK';
}

/** An open (or just merged/declined) pull request that carries a cluster's Flux changes. @public */
export interface FluxPullRequestInfo {
  id: number;
  /** Browse URL of the pull request on Bitbucket. */
  url: string;
  title?: string;
  state: 'OPEN' | 'MERGED' | 'DECLINED';
  /** Source branch, e.g. `flux/my-cluster`. */
  fromBranch: string;
  /** Target branch, e.g. `main`. */
  toBranch: string;
  reviewers: PullRequestReviewer[];
}

/** The GitRepository (or other source) the sync Kustomization reads from. @public */
export interface FluxSourceStatus {
  kind: string;
  name: string;
  namespace: string;
  url?: string;
  branch?: string;
  ready: boolean | null;
  suspended?: boolean;
  /** `status.artifact.revision`, e.g. `main@sha1:0123…`. */
  revision?: string;
  message?: string;
}

/** The `flux-system` Kustomization. @public */
export interface FluxSyncStatus {
  name: string;
  namespace: string;
  path?: string;
  ready: boolean | null;
  suspended?: boolean;
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  /** ISO time of the Ready condition's last transition. */
  lastTransitionTime?: string;
  message?: string;
}

/** Where the fleet repository lives on Bitbucket, for links from the card. @public */
export interface FleetRepositoryInfo {
  /** Browse URL of the repository. */
  browseUrl?: string;
  /** URL of the applied commit on Bitbucket, when it is known. */
  commitUrl?: string;
  /** Head commit of the synced branch on Bitbucket, when it could be read. */
  headCommit?: string;
  /** `integrations.bitbucketServer[].host` the source URL belongs to. */
  host?: string;
  /** Project key (`~user` for a personal repository). */
  project?: string;
  /** Repository slug. */
  slug?: string;
  /** Why the branch head could not be read (then `inSync` is null). */
  message?: string;
}

/** The status of one cluster. Never carries credentials or Secret data. @public */
export interface ClusterBootstrapStatus {
  /** Cluster name from `kubernetes.clusterLocatorMethods`. */
  cluster: string;
  title?: string;
  state: ClusterBootstrapState;
  /** Human readable reason for unreachable / forbidden / failing / installing states. */
  reason?: string;
  /** ISO time this status was read from the cluster. */
  checkedAt: string;
  flux?: FluxDistributionInfo;
  components: FluxComponentStatus[];
  source?: FluxSourceStatus;
  sync?: FluxSyncStatus;
  /**
   * Whether the applied revision is the head of the branch on Bitbucket: `true` in sync,
   * `false` behind, `null` unknown (no Bitbucket integration for the URL, or no applied revision).
   */
  inSync: boolean | null;
  repository?: FleetRepositoryInfo;
  /** The pull request the sync waits for (state `awaiting-merge`), when there is one. */
  pullRequest?: FluxPullRequestInfo;
  /** The API server's version (`GET /version` gitVersion, e.g. `v1.34.2`), when it could be read. */
  kubernetesVersion?: string;
}

/** Response of `GET /api/flux-bootstrap/entity/:kind/:namespace/:name/clusters`. @public */
export interface EntityClustersResponse {
  entityRef: string;
  /** Cluster names the entity refers to, in the order of its annotation. */
  clusters: string[];
  /** One status per configured cluster the entity refers to, in the same order. */
  items: ClusterBootstrapStatus[];
  /**
   * Names the entity refers to that are not configured in `kubernetes.clusterLocatorMethods`
   * (typos, or clusters located some other way); they have no status.
   */
  unknownClusters: string[];
}

/** One configured cluster in {@link ClusterListResponse}. @public */
export interface ClusterListItem {
  name: string;
  title?: string;
  /** Present when the list was asked for with `?state=true`. */
  status?: ClusterBootstrapStatus;
  /**
   * Whether the cluster's Kubernetes version suits the Flux version asked for (`?fluxVersion=`,
   * default the configured one); present with `?state=true`.
   */
  kubernetesSupport?: ClusterKubernetesSupport;
}

/**
 * A cluster's Kubernetes version judged for a Flux version, as `flux:install` judges it before it
 * writes anything: `unsupported` is refused (below `flux check --pre`'s minimum), `untested` is
 * accepted with a warning (outside the release's support matrix), `unknown` when the version
 * could not be read.
 * @public
 */
export interface ClusterKubernetesSupport {
  fluxVersion: string;
  level: 'supported' | 'untested' | 'unsupported' | 'unknown';
  /** The supported range in words, e.g. `>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)`. */
  range?: string;
  message: string;
}

/** Response of `GET /api/flux-bootstrap/clusters`. @public */
export interface ClusterListResponse {
  items: ClusterListItem[];
}

/** What an operate route does to a cluster's Flux sync. @public */
export type OperateClusterAction = 'reconcile' | 'suspend' | 'resume';

/**
 * Body of `POST /api/flux-bootstrap/clusters/:cluster/{reconcile,suspend,resume}`: `reason` is
 * required to suspend (it is logged and audited with the user's entity ref), optional to resume,
 * ignored by reconcile.
 * @public
 */
export interface OperateClusterRequest {
  reason?: string;
}

/** Answer of an operate route (200): the cluster's status read after the action. @public */
export interface OperateClusterResponse {
  cluster: string;
  action: OperateClusterAction;
  status: ClusterBootstrapStatus;
  /** What was done, for people, e.g. "Reconcile requested; source and sync handled it". */
  message: string;
}

/**
 * One line of `GET /api/flux-bootstrap/clusters/stream` (NDJSON, one JSON object per line):
 * first `clusters` (every configured cluster, names and titles), then one `status` per cluster as
 * its read finishes (in the order they finish), then `done`. An `error` line ends a stream that
 * failed after it started (the HTTP status was already sent).
 * @public
 */
export type ClusterStreamLine =
  | { type: 'clusters'; items: { name: string; title?: string }[] }
  | { type: 'status'; status: ClusterBootstrapStatus }
  | { type: 'done'; count: number }
  | { type: 'error'; error: { name: string; message: string } };
