import type { CatalogService } from '@backstage/plugin-catalog-node';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { InputError } from '@backstage/errors';
import { parseEntityRef, stringifyEntityRef } from '@backstage/catalog-model';

/**
 * `fleet:wait-for-entity`: waits until the catalog shows an entity. `catalog:register` only adds
 * a location; the catalog reads and processes it moments later, so a template that links to the
 * registered entity would otherwise send the user to "Entity not found". Read-only; logs what it
 * waits for every few seconds.
 */
export function createWaitForEntityAction(options: {
  catalog: Pick<CatalogService, 'getEntityByRef'>;
  pollMs?: number;
}) {
  const pollMs = options.pollMs ?? 1000;
  return createTemplateAction({
    id: 'fleet:wait-for-entity',
    description:
      'Waits until the catalog has processed an entity (e.g. the one catalog:register just registered), so the output link to it works.',
    supportsDryRun: true,
    examples: [
      {
        description:
          'Register the cluster, then wait until its entity page exists.',
        example: [
          'steps:',
          '  - id: register',
          '    action: catalog:register',
          '    input: { catalogInfoUrl: https://example.com/catalog-info.yaml, optional: true }',
          '  - id: waitForCluster',
          '    action: fleet:wait-for-entity',
          '    input: { entityRef: "${{ steps.register.output.entityRef }}" }',
        ].join('\n'),
      },
    ],
    schema: {
      input: {
        entityRef: z =>
          z
            .string()
            .describe('The entity to wait for, e.g. resource:default/prod-eu.'),
        timeoutSeconds: z =>
          z
            .number()
            .int()
            .optional()
            .describe('How long to wait at most (default 120, 1–900).'),
      },
      output: {
        entityRef: z => z.string().describe('The entity ref, normalised.'),
      },
    },
    async handler(ctx) {
      let ref: string;
      try {
        ref = stringifyEntityRef(parseEntityRef(ctx.input.entityRef ?? ''));
      } catch (e) {
        throw new InputError(
          `Invalid input "entityRef": ${(e as Error).message}`,
        );
      }
      const timeoutSeconds = ctx.input.timeoutSeconds ?? 120;
      if (
        !Number.isInteger(timeoutSeconds) ||
        timeoutSeconds < 1 ||
        timeoutSeconds > 900
      ) {
        throw new InputError(
          'Invalid input "timeoutSeconds": must be a whole number from 1 to 900',
        );
      }
      ctx.output('entityRef', ref);
      if (ctx.isDryRun) {
        ctx.logger.info(`Dry run: would wait until the catalog shows ${ref}`);
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
        if (ctx.signal?.aborted)
          throw new Error(`Cancelled while waiting for ${ref}`);
        await new Promise(r => setTimeout(r, pollMs));
      }
    },
  });
}
