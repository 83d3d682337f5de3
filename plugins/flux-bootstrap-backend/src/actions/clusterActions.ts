import type { ActionsRegistryService } from '@backstage/backend-plugin-api/alpha';
import { parseEntityRef } from '@backstage/catalog-model';
import { InputError } from '@backstage/errors';
import type { ClusterStatusService } from '../clusterStatus';
import type { ClusterOperateService } from '../clusterOperate';
import type { FluxBootstrapSettingsSource } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { FLUX_RELEASE, withKubernetesSupport } from '../kubernetesSupport';
import { createOperateActions } from './operateActions';
import {
  clusterListItemSchema,
  clusterStatusSchema,
  entityClustersSchema,
  Zod,
} from './schemas';

/** What the action factories of this plugin need. */
export interface FluxBootstrapActionsOptions {
  actionsRegistry: ActionsRegistryService;
  status: ClusterStatusService;
  /** The day-2 actions (reconcile, suspend, resume) are registered when it is given. */
  operate?: ClusterOperateService;
  /**
   * The plugin's settings: with them, `list-clusters` with `includeStatus` judges each cluster's
   * Kubernetes version as `GET /clusters?state=true` does.
   */
  settings?: FluxBootstrapSettingsSource;
}

/** Reading status changes nothing, and asking twice gives the same answer. */
const READ_ONLY = {
  readOnly: true,
  idempotent: true,
  destructive: false,
} as const;

const refreshInput = (z: Zod) =>
  z
    .boolean()
    .optional()
    .describe(
      'Read the cluster now instead of answering from the status cache',
    );

/** `list-clusters`: the configured clusters, names and titles, optionally with their status. */
export function createListClustersAction({
  actionsRegistry,
  status,
  settings,
}: FluxBootstrapActionsOptions) {
  actionsRegistry.register({
    name: 'list-clusters',
    title: 'List Flux clusters',
    description:
      'Lists the Kubernetes clusters the Flux bootstrap plugin knows (name and title). With ' +
      'includeStatus, each comes with its Flux bootstrap status: state (ready, failing, ' +
      'suspended, installing, awaiting-merge, not-installed, unreachable, forbidden), the ' +
      'reason in words, whether the applied revision is the head of the Git branch (inSync), ' +
      'and the Flux controllers. Use it to find which clusters are behind Git or unhealthy.',
    attributes: READ_ONLY,
    schema: {
      input: z =>
        z.object({
          includeStatus: z
            .boolean()
            .optional()
            .describe("Add each cluster's status (reads every cluster)"),
          refresh: refreshInput(z),
          fluxVersion: z
            .string()
            .regex(FLUX_RELEASE, 'must be a Flux release such as v2.9.4')
            .optional()
            .describe(
              'With includeStatus: the Flux release (e.g. v2.9.4) each Kubernetes version is judged for; default the configured one',
            ),
        }),
      output: z =>
        z.object({
          items: z.array(clusterListItemSchema(z)),
        }),
    },
    examples: [
      {
        title: 'Which clusters are not ready, and why',
        input: { includeStatus: true },
      },
    ],
    action: async ({ input, credentials }) => {
      const list = await status.listClusters(credentials, input);
      return {
        output:
          input.includeStatus && settings
            ? withKubernetesSupport(
                list,
                input.fluxVersion,
                await settings.get(),
              )
            : list,
      };
    },
  });
}

/** `get-cluster-status`: one cluster's full status, with the reason text. */
export function createGetClusterStatusAction({
  actionsRegistry,
  status,
}: FluxBootstrapActionsOptions) {
  actionsRegistry.register({
    name: 'get-cluster-status',
    title: 'Get Flux cluster status',
    description:
      "Returns one cluster's Flux bootstrap status, the same answer as the status API " +
      '(GET /api/flux-bootstrap/clusters/:name): state and the reason in words, the Flux ' +
      'version and controllers, the GitRepository and Kustomization with their revisions and ' +
      'messages, whether the applied revision is the head of the branch on Bitbucket (inSync), ' +
      'the fleet repository and an open pull request the sync waits for.',
    attributes: READ_ONLY,
    schema: {
      input: z =>
        z.object({
          cluster: z
            .string()
            .min(1)
            .describe('Cluster name, as list-clusters returns it'),
          refresh: refreshInput(z),
        }),
      output: clusterStatusSchema,
    },
    examples: [
      { title: 'Status of the production cluster', input: { cluster: 'prod' } },
    ],
    action: async ({ input, credentials }) => ({
      output: await status.getClusterStatus(credentials, input.cluster, {
        refresh: input.refresh,
      }),
    }),
  });
}

/** `get-entity-clusters`: the statuses of the clusters a catalog entity names. */
export function createGetEntityClustersAction({
  actionsRegistry,
  status,
}: FluxBootstrapActionsOptions) {
  actionsRegistry.register({
    name: 'get-entity-clusters',
    title: "Get a catalog entity's Flux clusters",
    description:
      'Returns the Flux bootstrap status of every cluster a catalog entity refers to (its ' +
      'flux-bootstrap.io/clusters annotation, or a kubernetes-cluster Resource itself), as the ' +
      "entity page's card shows them, and the names that are not configured clusters.",
    attributes: READ_ONLY,
    schema: {
      input: z =>
        z.object({
          entityRef: z
            .string()
            .min(1)
            .describe(
              'Entity ref kind:namespace/name, e.g. component:default/fleet-infra (namespace defaults to "default")',
            ),
          refresh: refreshInput(z),
        }),
      output: entityClustersSchema,
    },
    examples: [
      {
        title: 'Clusters of the fleet repository',
        input: { entityRef: 'component:default/fleet-infra' },
      },
    ],
    action: async ({ input, credentials }) => {
      let ref;
      try {
        ref = parseEntityRef(input.entityRef);
      } catch (error) {
        throw new InputError(
          `entityRef: "${
            input.entityRef
          }" is not an entity ref like component:default/fleet-infra (${
            (error as Error).message
          })`,
        );
      }
      return {
        output: await status.getEntityClusters(credentials, ref, {
          refresh: input.refresh,
        }),
      };
    },
  });
}

/**
 * Registers the plugin's actions with the actions registry, where
 * `@backstage/plugin-mcp-actions-backend` offers them to AI agents as MCP tools: the three
 * read-only status actions, and with `operate` the day-2 actions (reconcile, suspend, resume,
 * not read-only, behind `flux.bootstrap.cluster.operate`).
 */
export function registerFluxBootstrapActions(
  options: FluxBootstrapActionsOptions,
): void {
  createListClustersAction(options);
  createGetClusterStatusAction(options);
  createGetEntityClustersAction(options);
  if (options.operate) {
    createOperateActions({
      actionsRegistry: options.actionsRegistry,
      operate: options.operate,
    });
  }
}
