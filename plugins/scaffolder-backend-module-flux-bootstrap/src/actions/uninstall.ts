import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  booleanInput,
  createKubeClient,
  InputValidationError,
  requireClusterConfirmation,
  resolveCluster,
  uninstallFlux,
  validateDnsLabel,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './uninstall.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
  withDefault,
} from './shared/context';
import { decommissionInput } from './shared/decommission';

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
      input: {
        ...decommissionInput,
        namespace: z =>
          z
            .string()
            .optional()
            .describe('Namespace Flux runs in (default flux-system).'),
        keepNamespace: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Keep the namespace (default false: delete it, as flux uninstall does).',
            ),
        prune: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Also delete the workloads the Kustomizations applied (the objects in their inventories). Default false: they keep running, no longer managed by Flux.',
            ),
        timeoutSeconds: z =>
          z
            .number()
            .int()
            .optional()
            .describe(
              'How long to wait for the CustomResourceDefinitions to be gone (default 120, 10–1800).',
            ),
      },
      output: {
        removed: z =>
          z
            .array(z.string())
            .describe(
              'The objects deleted, as "Kind namespace/name" (in a dry run: the objects that would be).',
            ),
        finalizersRemoved: z =>
          z
            .array(z.string())
            .describe(
              'The Flux custom resources whose finalizers were removed (would be, in a dry run).',
            ),
        namespaceDeleted: z =>
          z
            .boolean()
            .describe("True when the namespace's deletion was requested."),
        changed: z =>
          z
            .boolean()
            .describe('True when anything was changed on the cluster.'),
      },
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx);
      try {
        const input = ctx.input;
        requireClusterConfirmation(input.cluster, input.confirm);
        const timeoutSeconds = withDefault(input.timeoutSeconds, 120);
        if (!(timeoutSeconds >= 10 && timeoutSeconds <= 1800))
          throw new InputValidationError(
            'timeoutSeconds',
            'must be from 10 to 1800',
          );
        const uninstall = {
          namespace: validateDnsLabel(
            withDefault(input.namespace, 'flux-system'),
            'namespace',
          ),
          keepNamespace: booleanInput(
            'keepNamespace',
            input.keepNamespace,
            false,
          ),
          prune: booleanInput('prune', input.prune, false),
          timeoutMs: timeoutSeconds * 1000,
          dryRun: ctx.isDryRun,
        };
        const connection = resolveCluster(
          await settingsSource.get(),
          input.cluster,
          'cluster',
        );
        const kube = await createKubeClient(connection, { logger, redactor });
        try {
          const result = await uninstallFlux(kube, uninstall, {
            logger,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          });
          ctx.output('removed', result.removed);
          ctx.output('finalizersRemoved', result.finalizersRemoved);
          ctx.output('namespaceDeleted', result.namespaceDeleted);
          ctx.output('changed', result.changed);
        } finally {
          kube.close();
        }
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
