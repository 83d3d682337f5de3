import type { ActionsRegistryActionOptions } from '@backstage/backend-plugin-api/alpha';
import {
  CLUSTER_BOOTSTRAP_STATES,
  ClusterBootstrapState,
  ClusterBootstrapStatus,
  ClusterListItem,
  EntityClustersResponse,
  FleetRepositoryInfo,
  FluxComponentStatus,
  FluxDistributionInfo,
  FluxInstanceStatus,
  FluxPullRequestInfo,
  FluxSourceStatus,
  FluxSyncStatus,
  PullRequestReviewer,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';

/**
 * The zod (v3 API) the actions registry injects into schema callbacks. Taken from the registry's
 * own types, so the schemas are built only with the injected `z`, never a zod of our own.
 */
export type Zod = Parameters<
  ActionsRegistryActionOptions<any, any>['schema']['input']
>[0];

/*
 * Output schemas of the status answers, mirroring the types of
 * @flux-bootstrap/plugin-flux-bootstrap-common field by field. The registry validates every
 * output against its schema and drops keys the schema does not name, so a field missing here
 * would silently vanish from what agents get: the type checks at the end of this file fail
 * `tsc` when a field is added to, removed from or retyped in one of those types without the
 * same change here.
 */

const STATES = CLUSTER_BOOTSTRAP_STATES as [
  ClusterBootstrapState,
  ...ClusterBootstrapState[],
];

const component = (z: Zod) =>
  z.object({
    name: z.string().describe('Deployment name, e.g. source-controller'),
    ready: z
      .boolean()
      .describe('True when the Deployment is available and fully rolled out'),
    image: z.string().optional(),
    tag: z.string().optional().describe('Image tag, e.g. v1.9.4'),
    message: z.string().optional().describe('Why it is not ready'),
  });

const instance = (z: Zod) =>
  z.object({
    name: z.string(),
    namespace: z.string(),
    requestedVersion: z
      .string()
      .optional()
      .describe('spec.distribution.version of the FluxInstance, e.g. 2.9.x'),
    installedVersion: z.string().optional(),
    ready: z.boolean().nullable(),
    lastAppliedRevision: z.string().optional(),
    lastAttemptedRevision: z.string().optional(),
    message: z.string().optional(),
  });

const distribution = (z: Zod) =>
  z.object({
    version: z.string().optional().describe('Installed Flux version'),
    distribution: z.string().optional(),
    managedBy: z.string().optional(),
    bootstrapped: z
      .boolean()
      .describe('True when Flux manages itself from Git (flux bootstrap)'),
    namespace: z.string().describe('Namespace the Flux controllers run in'),
    reportedBy: z.enum(['crd-labels', 'flux-report']),
    manager: z.enum(['flux-bootstrap', 'flux-operator']).optional(),
    instance: instance(z).optional(),
  });

const source = (z: Zod) =>
  z.object({
    kind: z.string(),
    name: z.string(),
    namespace: z.string(),
    url: z.string().optional().describe('Git URL Flux reads from'),
    branch: z.string().optional(),
    ready: z.boolean().nullable(),
    suspended: z.boolean().optional(),
    revision: z
      .string()
      .optional()
      .describe('Revision Flux fetched, e.g. main@sha1:0123…'),
    message: z.string().optional(),
  });

const sync = (z: Zod) =>
  z.object({
    name: z.string(),
    namespace: z.string(),
    path: z.string().optional(),
    ready: z.boolean().nullable(),
    suspended: z.boolean().optional(),
    lastAppliedRevision: z.string().optional(),
    lastAttemptedRevision: z.string().optional(),
    lastTransitionTime: z.string().optional(),
    message: z.string().optional(),
  });

const repository = (z: Zod) =>
  z.object({
    browseUrl: z.string().optional(),
    commitUrl: z.string().optional(),
    headCommit: z
      .string()
      .optional()
      .describe('Head commit of the synced branch on Bitbucket'),
    host: z.string().optional(),
    project: z.string().optional(),
    slug: z.string().optional(),
    message: z
      .string()
      .optional()
      .describe('Why the branch head could not be read'),
  });

const reviewer = (z: Zod) =>
  z.object({
    name: z.string(),
    displayName: z.string().optional(),
    status: z.enum(['APPROVED', 'UNAPPROVED', 'NEEDS_WORK']),
  });

const pullRequest = (z: Zod) =>
  z.object({
    id: z.number(),
    url: z.string(),
    title: z.string().optional(),
    state: z.enum(['OPEN', 'MERGED', 'DECLINED']),
    fromBranch: z.string(),
    toBranch: z.string(),
    reviewers: z.array(reviewer(z)),
  });

/** One cluster's bootstrap status: the answer of `GET /api/flux-bootstrap/clusters/:name`. */
export const clusterStatusSchema = (z: Zod) =>
  z.object({
    cluster: z.string().describe('Cluster name'),
    title: z.string().optional(),
    state: z
      .enum(STATES)
      .describe(
        'ready: in sync and healthy; failing, suspended, forbidden: someone must act; ' +
          'installing, awaiting-merge, not-installed, unreachable: expected to move on their own',
      ),
    reason: z
      .string()
      .optional()
      .describe('Why the cluster is in this state, in words'),
    checkedAt: z.string().describe('ISO time the cluster was read'),
    flux: distribution(z).optional(),
    components: z.array(component(z)).describe('The Flux controllers'),
    source: source(z).optional(),
    sync: sync(z).optional(),
    inSync: z
      .boolean()
      .nullable()
      .describe(
        'true: the applied revision is the head of the branch on Bitbucket; false: behind; null: unknown',
      ),
    repository: repository(z).optional(),
    pullRequest: pullRequest(z).optional(),
    kubernetesVersion: z.string().optional(),
  });

/** A configured cluster, with its status when asked for. */
export const clusterListItemSchema = (z: Zod) =>
  z.object({
    name: z.string().describe('Cluster name, the input of get-cluster-status'),
    title: z.string().optional(),
    status: clusterStatusSchema(z).optional(),
    kubernetesSupport: z
      .object({
        fluxVersion: z.string(),
        level: z.enum(['supported', 'untested', 'unsupported', 'unknown']),
        range: z.string().optional(),
        message: z.string(),
      })
      .optional()
      .describe(
        "Whether the cluster's Kubernetes suits a Flux version (the status API's ?fluxVersion=)",
      ),
  });

/** The statuses of an entity's clusters. */
export const entityClustersSchema = (z: Zod) =>
  z.object({
    entityRef: z.string(),
    clusters: z
      .array(z.string())
      .describe('Cluster names the entity refers to, in its order'),
    items: z
      .array(clusterStatusSchema(z))
      .describe('One status per configured cluster the entity refers to'),
    unknownClusters: z
      .array(z.string())
      .describe('Names the entity refers to that are not configured'),
  });

// ---- compile-time checks: the schemas and the common types describe the same JSON ----

type Out<S extends (z: Zod) => { _output: unknown }> = ReturnType<S>['_output'];
type NoExtraKeys<A, B> = Exclude<keyof A, keyof B> extends never
  ? true
  : { keysOnlyIn: Exclude<keyof A, keyof B> };
/** True when A and B have the same keys and each is assignable to the other. */
type Same<A, B> = [A] extends [B]
  ? [B] extends [A]
    ? NoExtraKeys<A, B> extends true
      ? NoExtraKeys<B, A>
      : NoExtraKeys<A, B>
    : 'type is not assignable to the schema'
  : 'schema is not assignable to the type';
type Item<T> = T extends Array<infer U> ? U : never;
type Status = Out<typeof clusterStatusSchema>;
type Defined<T> = Exclude<T, undefined>;

// Each line fails to compile (`not assignable to type 'true'`) when the two drift apart.
export const schemaChecks: [
  Same<Status, ClusterBootstrapStatus>,
  Same<Item<Status['components']>, FluxComponentStatus>,
  Same<Defined<Status['flux']>, FluxDistributionInfo>,
  Same<Defined<Defined<Status['flux']>['instance']>, FluxInstanceStatus>,
  Same<Defined<Status['source']>, FluxSourceStatus>,
  Same<Defined<Status['sync']>, FluxSyncStatus>,
  Same<Defined<Status['repository']>, FleetRepositoryInfo>,
  Same<Defined<Status['pullRequest']>, FluxPullRequestInfo>,
  Same<Item<Defined<Status['pullRequest']>['reviewers']>, PullRequestReviewer>,
  Same<Out<typeof clusterListItemSchema>, ClusterListItem>,
  Same<Out<typeof entityClustersSchema>, EntityClustersResponse>,
] = [true, true, true, true, true, true, true, true, true, true, true];
