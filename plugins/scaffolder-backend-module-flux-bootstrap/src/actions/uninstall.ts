import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  requireClusterConfirmation,
  uninstallFluxFromCluster,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './uninstall.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
} from './shared/context';
import { decommissionInput } from './shared/decommission';
import { kubeNamespace } from './shared/domainInputs';
import { actionInput, writeOutputs } from './shared/io';

const TIMEOUT_RANGE = 'must be from 10 to 1800';

/** The input of `flux:uninstall`. */
const uninstallInput = actionInput(z =>
  z.object({
    cluster: decommissionInput.cluster(z),
    confirm: decommissionInput.confirm(z),
    namespace: kubeNamespace(z)
      .default('flux-system')
      .describe('Namespace Flux runs in (default flux-system).'),
    keepNamespace: z
      .boolean()
      .default(false)
      .describe(
        'Keep the namespace (default false: delete it, as flux uninstall does).',
      ),
    prune: z
      .boolean()
      .default(false)
      .describe(
        'Also delete the workloads the Kustomizations applied (the objects in their inventories). Default false: they keep running, no longer managed by Flux.',
      ),
    timeoutSeconds: z
      .number()
      .int()
      .min(10, TIMEOUT_RANGE)
      .max(1800, TIMEOUT_RANGE)
      .default(120)
      .describe(
        'How long to wait for the CustomResourceDefinitions to be gone (default 120, 10–1800).',
      ),
  }),
);

/**
 * `flux:uninstall` — `flux uninstall` from a template: removes Flux's controllers, objects,
 * finalizers, CRDs and (unless `keepNamespace`) namespace from a cluster; the workloads Flux
 * applied keep running unless `prune`. A thin adapter over the engine's `uninstallFlux`.
 * @public
 */
export function createFluxUninstallAction(options: FluxBootstrapActionOptions) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'flux:uninstall',
    description:
      "Uninstalls Flux from a cluster like flux uninstall: deletes the controllers and Flux's other objects in its namespace (with the sync Secret) and its cluster-wide RBAC, removes the finalizers of every Flux custom resource so nothing hangs, deletes Flux's CustomResourceDefinitions (and with them every Flux object) and the namespace unless keepNamespace. The workloads Flux applied keep running unless prune. Needs confirm equal to the cluster name; a dry run lists exactly what would be removed.",
    examples,
    supportsDryRun: true,
    schema: {
      input: uninstallInput.schema,
      output: z =>
        z.object({
          removed: z
            .array(z.string())
            .describe(
              'The objects deleted, as "Kind namespace/name" (in a dry run: the objects that would be).',
            ),
          finalizersRemoved: z
            .array(z.string())
            .describe(
              'The Flux custom resources whose finalizers were removed (would be, in a dry run).',
            ),
          namespaceDeleted: z
            .boolean()
            .describe("True when the namespace's deletion was requested."),
          changed: z
            .boolean()
            .describe('True when anything was changed on the cluster.'),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx);
      try {
        const input = uninstallInput.parse(ctx.input);
        requireClusterConfirmation(input.cluster, input.confirm);
        const result = await uninstallFluxFromCluster(
          {
            ...input,
            timeoutMs: input.timeoutSeconds * 1000,
            dryRun: ctx.isDryRun,
          },
          {
            settings: await settingsSource.get(),
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          },
        );
        writeOutputs(ctx, {
          removed: result.removed,
          finalizersRemoved: result.finalizersRemoved,
          namespaceDeleted: result.namespaceDeleted,
          changed: result.changed,
        });
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
