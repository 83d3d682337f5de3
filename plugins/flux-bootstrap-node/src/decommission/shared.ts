import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';

/** Collaborators of the decommission use cases. @public */
export interface DecommissionDeps {
  logger?: EngineLogger;
  signal?: AbortSignal;
  /** Wraps each side effect (`ctx.checkpoint` in an action); default: run it. */
  checkpoint?: CheckpointFn;
}

/** The deps with their defaults: a silent logger, side effects run directly. */
export const withDefaults = ({
  logger,
  checkpoint,
  signal,
}: DecommissionDeps) => ({
  signal,
  logger: logger ?? silentLogger,
  step: checkpoint ?? runCheckpointDirectly,
});

/** Fails unless `confirm` repeats the cluster name exactly; checked before any request, dry runs too. @public */
export function requireClusterConfirmation(
  cluster: string,
  confirm: unknown,
  field = 'confirm',
): void {
  const typed = typeof confirm === 'string' ? confirm.trim() : '';
  if (!typed)
    throw new InputValidationError(
      field,
      `is required: type the cluster name "${cluster}" to confirm that it is to be removed`,
    );
  if (typed !== cluster)
    throw new InputValidationError(
      field,
      `"${typed}" is not the cluster name "${cluster}"; nothing was removed`,
    );
}
