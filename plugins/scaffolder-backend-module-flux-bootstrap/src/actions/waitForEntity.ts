import type { CatalogService } from '@backstage/plugin-catalog-node';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseEntityRef, stringifyEntityRef } from '@backstage/catalog-model';
import {
  InputValidationError,
  Redactor,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './waitForEntity.examples';
import { toActionError } from './shared/context';

/** Options of {@link createWaitForEntityAction}. @public */
export interface WaitForEntityActionOptions {
  catalog: Pick<CatalogService, 'getEntityByRef'>;
  /** Poll interval (default 1 s). */
  pollMs?: number;
}

/**
 * `fleet:wait-for-entity`: waits until the catalog shows an entity. `catalog:register` only adds
 * a location; the catalog reads and processes it moments later, so a template that links to the
 * registered entity would otherwise send the user to "Entity not found". Read-only (the catalog
 * is asked with the initiator's credentials); logs what it waits for every few seconds.
 *
 * Its id is neither `catalog:` (Backstage's own catalog actions live there, and a built-in of the
 * same id would make the registration fail) nor `flux:` (nothing about it is Flux-specific):
 * `fleet:` names what the templates register, the clusters of a fleet.
 * @public
 */
export function createWaitForEntityAction(options: WaitForEntityActionOptions) {
  const pollMs = options.pollMs ?? 1000;
  return createTemplateAction({
    id: 'fleet:wait-for-entity',
    description:
      'Waits until the catalog has processed an entity (e.g. the one catalog:register just registered), so an output link to it works.',
    supportsDryRun: true,
    examples,
    schema: {
      input: {
        entityRef: z =>
          z
            .string()
            .optional()
            .describe(
              'The entity to wait for, e.g. resource:default/prod-eu (the namespace defaults to default), usually ${{ steps.register.output.entityRef }}. Required, except in a dry run: catalog:register does not run in dry runs, so it reports no entity to wait for.',
            ),
        timeoutSeconds: z =>
          z
            .number()
            .int()
            .optional()
            .describe('How long to wait at most (default 120, 1–900).'),
      },
      output: {
        entityRef: z =>
          z
            .string()
            .optional()
            .describe(
              'The entity ref, normalised (kind:namespace/name); absent in a dry run without entityRef.',
            ),
      },
    },
    async handler(ctx) {
      const redactor = new Redactor();
      try {
        const timeoutSeconds = ctx.input.timeoutSeconds ?? 120;
        if (
          !Number.isInteger(timeoutSeconds) ||
          timeoutSeconds < 1 ||
          timeoutSeconds > 900
        ) {
          throw new InputValidationError(
            'timeoutSeconds',
            'must be a whole number from 1 to 900',
          );
        }
        const given = ctx.input.entityRef?.trim();
        if (!given && ctx.isDryRun) {
          ctx.logger.info(
            'Dry run: no entityRef (catalog:register is skipped in dry runs, so it reports none); a real run requires it and waits until the catalog shows that entity',
          );
          return;
        }
        let ref: string;
        try {
          ref = stringifyEntityRef(parseEntityRef(given ?? ''));
        } catch (e) {
          throw new InputValidationError('entityRef', (e as Error).message);
        }
        ctx.output('entityRef', ref);
        if (ctx.isDryRun) {
          ctx.logger.info(
            `Dry run: would wait up to ${timeoutSeconds} s until the catalog shows ${ref}`,
          );
          return;
        }
        const credentials = await ctx.getInitiatorCredentials();
        const started = Date.now();
        let lastLog = started;
        for (;;) {
          const entity = await options.catalog.getEntityByRef(ref, {
            credentials,
          });
          if (entity) {
            ctx.logger.info(`The catalog shows ${ref}`);
            return;
          }
          const waited = Date.now() - started;
          if (waited >= timeoutSeconds * 1000) {
            throw new Error(
              `The catalog still does not show ${ref} after ${timeoutSeconds} s: it has not processed the registered location yet, or the location holds an error (see the catalog's entity processing errors)`,
            );
          }
          if (Date.now() - lastLog >= 5000) {
            lastLog = Date.now();
            ctx.logger.info(
              `Waiting for the catalog to process ${ref} (${Math.round(
                waited / 1000,
              )} s so far)`,
            );
          }
          try {
            await sleep(pollMs, undefined, { signal: ctx.signal });
          } catch {
            throw new Error(`Cancelled while waiting for ${ref}`);
          }
        }
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
