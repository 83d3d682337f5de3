import type { ActionsRegistryService } from '@backstage/backend-plugin-api/alpha';
import type {
  OperateClusterAction,
  OperateClusterResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { ClusterOperateService } from '../clusterOperate';
import { clusterStatusSchema, Zod } from './schemas';

/** What the operate actions need. */
export interface OperateActionsOptions {
  actionsRegistry: ActionsRegistryService;
  operate: ClusterOperateService;
}

const ACTIONS = ['reconcile', 'suspend', 'resume'] as const;

/** The answer of an operate action: the same JSON as the operate routes. */
export const operateResponseSchema = (z: Zod) =>
  z.object({
    cluster: z.string(),
    action: z.enum(ACTIONS),
    status: clusterStatusSchema(z).describe(
      "The cluster's status, read after the action",
    ),
    message: z.string().describe('What was done, in words'),
  });

const clusterInput = (z: Zod) =>
  z.string().min(1).describe('Cluster name, as list-clusters returns it');

/**
 * The day-2 actions (`reconcile-cluster`, `suspend-cluster`, `resume-cluster`): the operate
 * routes for agents, behind the same permission `flux.bootstrap.cluster.operate` and audited the
 * same way. Not read-only; suspending is flagged destructive (it stops delivery to the cluster
 * until someone resumes it), so MCP clients ask before calling it.
 */
export function createOperateActions({
  actionsRegistry,
  operate,
}: OperateActionsOptions) {
  const run = async (
    credentials: Parameters<ClusterOperateService['operate']>[0],
    cluster: string,
    action: OperateClusterAction,
    reason?: string,
  ) => {
    const output: OperateClusterResponse = await operate.operate(
      credentials,
      cluster,
      action,
      { reason },
    );
    return { output };
  };

  actionsRegistry.register({
    name: 'reconcile-cluster',
    title: 'Reconcile a cluster now',
    description:
      "Makes Flux sync a cluster from Git now instead of at its next interval, like `flux reconcile kustomization flux-system --with-source`: requests a reconcile of the cluster's GitRepository, then of its sync Kustomization, waits until Flux has handled both, and returns the cluster's status (state, applied revision, the reason when it failed). Refused while the sync is suspended.",
    attributes: { readOnly: false, idempotent: false, destructive: false },
    schema: {
      input: z => z.object({ cluster: clusterInput(z) }),
      output: operateResponseSchema,
    },
    examples: [
      { title: 'Sync the production cluster now', input: { cluster: 'prod' } },
    ],
    action: async ({ input, credentials }) =>
      run(credentials, input.cluster, 'reconcile'),
  });

  actionsRegistry.register({
    name: 'suspend-cluster',
    title: "Suspend a cluster's Flux sync",
    description:
      "Stops Flux from applying anything from Git to a cluster (spec.suspend on its sync Kustomization, like `flux suspend kustomization flux-system`), e.g. during an incident. The reason is required; it is stored on the Kustomization with who suspended it, and audited. Returns the cluster's status (state suspended).",
    attributes: { readOnly: false, idempotent: true, destructive: true },
    schema: {
      input: z =>
        z.object({
          cluster: clusterInput(z),
          reason: z
            .string()
            .min(1)
            .describe(
              'Why, for the people who find the sync suspended (stored on the Kustomization and audited with your name)',
            ),
        }),
      output: operateResponseSchema,
    },
    examples: [
      {
        title: 'Hold deploys to prod during an incident',
        input: {
          cluster: 'prod',
          reason: 'INC-1234: database failover in progress',
        },
      },
    ],
    action: async ({ input, credentials }) =>
      run(credentials, input.cluster, 'suspend', input.reason),
  });

  actionsRegistry.register({
    name: 'resume-cluster',
    title: "Resume a cluster's Flux sync",
    description:
      "Lets Flux apply from Git to a suspended cluster again (like `flux resume kustomization flux-system`), waits until Flux has reconciled it and returns the cluster's status. An optional reason is stored on the Kustomization and audited.",
    attributes: { readOnly: false, idempotent: true, destructive: false },
    schema: {
      input: z =>
        z.object({
          cluster: clusterInput(z),
          reason: z
            .string()
            .optional()
            .describe('Why (stored on the Kustomization and audited)'),
        }),
      output: operateResponseSchema,
    },
    examples: [
      { title: 'Resume prod after the incident', input: { cluster: 'prod' } },
    ],
    action: async ({ input, credentials }) =>
      run(credentials, input.cluster, 'resume', input.reason),
  });
}

// compile-time check: the output schema and the common type describe the same JSON
type OperateOut = ReturnType<typeof operateResponseSchema>['_output'];
export const operateSchemaCheck: [
  OperateOut extends OperateClusterResponse ? true : false,
  OperateClusterResponse extends OperateOut ? true : false,
] = [true, true];
