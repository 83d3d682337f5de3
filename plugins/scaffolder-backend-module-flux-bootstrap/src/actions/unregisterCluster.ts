import { parseEntityRef, stringifyEntityRef } from '@backstage/catalog-model';
import type { Config } from '@backstage/config';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  InputValidationError,
  requireClusterConfirmation,
  unregisterClusterEntity,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './unregisterCluster.examples';
import {
  checkpointFor,
  createActionRedaction,
  toActionError,
} from './shared/context';
import { decommissionInput } from './shared/decommission';

/** Options of {@link createFleetUnregisterClusterAction}. @public */
export interface UnregisterClusterActionOptions {
  /** Root config: `backend.baseUrl`, where the cluster entity locations point. */
  config: Pick<Config, 'getString'>;
  catalog: Pick<
    CatalogService,
    | 'getEntityByRef'
    | 'getLocationByRef'
    | 'removeLocationById'
    | 'removeEntityByUid'
  >;
}

/**
 * `fleet:unregister-cluster` — removes a decommissioned cluster's entity from the catalog: the
 * location `catalog:register` added from `clusterEntityUrl(...)`. Scaffolder has no built-in
 * "unregister" action. A thin adapter over the engine's `unregisterClusterEntity`.
 * @public
 */
export function createFleetUnregisterClusterAction(
  options: UnregisterClusterActionOptions,
) {
  const { config, catalog } = options;
  return createTemplateAction({
    id: 'fleet:unregister-cluster',
    description:
      "Removes a cluster's Resource entity from the catalog: unregisters the location the bootstrap templates registered with clusterEntityUrl(...) and waits until the catalog no longer shows the entity. Refuses an entity that is not that cluster's or that another location provides. Needs confirm equal to the cluster name; the catalog is asked with the initiator's credentials.",
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        ...decommissionInput,
        entityRef: z =>
          z
            .string()
            .optional()
            .describe(
              'The cluster entity (default resource:default/<cluster>).',
            ),
      },
      output: {
        entityRef: z => z.string().describe('The entity ref, normalised.'),
        changed: z =>
          z.boolean().describe('True when the entity was unregistered.'),
      },
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx);
      try {
        requireClusterConfirmation(ctx.input.cluster, ctx.input.confirm);
        let entityRef: string | undefined;
        try {
          entityRef = ctx.input.entityRef
            ? stringifyEntityRef(parseEntityRef(ctx.input.entityRef))
            : undefined;
        } catch (e) {
          throw new InputValidationError('entityRef', (e as Error).message);
        }
        const credentials = await ctx.getInitiatorCredentials();
        const result = await unregisterClusterEntity(
          {
            getEntityByRef: ref => catalog.getEntityByRef(ref, { credentials }),
            getLocationByRef: ref =>
              catalog.getLocationByRef(ref, { credentials }),
            removeLocationById: id =>
              catalog.removeLocationById(id, { credentials }),
            removeEntityByUid: uid =>
              catalog.removeEntityByUid(uid, { credentials }),
          },
          {
            cluster: ctx.input.cluster,
            entityRef,
            backendBaseUrl: config.getString('backend.baseUrl'),
            dryRun: ctx.isDryRun,
          },
          { logger, signal: ctx.signal, checkpoint: checkpointFor(ctx) },
        );
        ctx.output('entityRef', result.entityRef);
        ctx.output('changed', result.changed);
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
