import type {
  CatalogService,
  CatalogServiceRequestOptions,
} from '@backstage/plugin-catalog-node';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseEntityRef, stringifyEntityRef } from '@backstage/catalog-model';
import {
  InputValidationError,
  Redactor,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import type { z as zod } from 'zod/v3';
import { examples } from './waitForEntity.examples';
import { toActionError } from './shared/context';
import { actionInput, ruled } from './shared/io';

/** Options of {@link createWaitForEntityAction}. @public */
export interface WaitForEntityActionOptions {
  catalog: Pick<CatalogService, 'getEntityByRef'>;
  /** Poll interval (default 1 s). */
  pollMs?: number;
}

/** The input of fleet:wait-for-entity: one schema, documented and parsed. */
const waitForEntityInput = actionInput((z: typeof zod) =>
  z.object({
    entityRef: ruled(z, v => stringifyEntityRef(parseEntityRef(v.trim())))
      .optional()
      .describe(
        'The entity to wait for, e.g. resource:default/prod-eu (the namespace defaults to default), usually ${{ steps.register.output.entityRef }}. Required, except in a dry run: catalog:register does not run in dry runs, so it reports no entity to wait for.',
      ),
    timeoutSeconds: z
      .number()
      .int('must be a whole number from 1 to 900')
      .min(1, 'must be a whole number from 1 to 900')
      .max(900, 'must be a whole number from 1 to 900')
      .default(120)
      .describe('How long to wait at most (default 120, 1–900).'),
  }),
);

/**
 * Polls the catalog (with the initiator's credentials) until it shows `ref`, logging every few
 * seconds what it waits for; fails after `timeoutSeconds` or when the task is cancelled.
 */
async function waitForCatalogEntity(
  catalog: WaitForEntityActionOptions['catalog'],
  ref: string,
  opts: {
    credentials: CatalogServiceRequestOptions['credentials'];
    timeoutSeconds: number;
    pollMs: number;
    logger: { info(message: string): void };
    signal?: AbortSignal;
  },
): Promise<void> {
  const started = Date.now();
  let lastLog = started;
  for (;;) {
    const entity = await catalog.getEntityByRef(ref, {
      credentials: opts.credentials,
    });
    if (entity) {
      opts.logger.info(`The catalog shows ${ref}`);
      return;
    }
    const waited = Date.now() - started;
    if (waited >= opts.timeoutSeconds * 1000) {
      throw new Error(
        `The catalog still does not show ${ref} after ${opts.timeoutSeconds} s: it has not processed the registered location yet, or the location holds an error (see the catalog's entity processing errors)`,
      );
    }
    if (Date.now() - lastLog >= 5000) {
      lastLog = Date.now();
      opts.logger.info(
        `Waiting for the catalog to process ${ref} (${Math.round(
          waited / 1000,
        )} s so far)`,
      );
    }
    try {
      await sleep(opts.pollMs, undefined, { signal: opts.signal });
    } catch {
      throw new Error(`Cancelled while waiting for ${ref}`);
    }
  }
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
      input: waitForEntityInput.schema,
      output: z =>
        z.object({
          entityRef: z
            .string()
            .optional()
            .describe(
              'The entity ref, normalised (kind:namespace/name); absent in a dry run without entityRef.',
            ),
        }),
    },
    async handler(ctx) {
      try {
        const { entityRef: ref, timeoutSeconds } = waitForEntityInput.parse(
          ctx.input,
        );
        if (!ref && ctx.isDryRun) {
          ctx.logger.info(
            'Dry run: no entityRef (catalog:register is skipped in dry runs, so it reports none); a real run requires it and waits until the catalog shows that entity',
          );
          return;
        }
        if (!ref) throw new InputValidationError('entityRef', 'is required');
        ctx.output('entityRef', ref);
        if (ctx.isDryRun) {
          ctx.logger.info(
            `Dry run: would wait up to ${timeoutSeconds} s until the catalog shows ${ref}`,
          );
          return;
        }
        await waitForCatalogEntity(options.catalog, ref, {
          credentials: await ctx.getInitiatorCredentials(),
          timeoutSeconds,
          pollMs,
          logger: ctx.logger,
          signal: ctx.signal,
        });
      } catch (error) {
        throw toActionError(error, new Redactor());
      }
    },
  });
}
