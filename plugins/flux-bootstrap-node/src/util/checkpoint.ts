import type { Redactor } from './redact';

/**
 * Runs one side effect at most once per task (the scaffolder's `ctx.checkpoint`); its value is
 * stored in the task state, so it must be public JSON (never a token or a private key). @public
 */
export type CheckpointFn = <T>(key: string, fn: () => Promise<T>) => Promise<T>;

/** The default {@link CheckpointFn}: just runs `fn` (no task state to restore from). @public */
export const runCheckpointDirectly: CheckpointFn = (_key, fn) => fn();

/** Steps in `checkpoint` that fail redacted (a checkpoint stores its failure reason). @public */
export function redactedSteps(
  redactor: Redactor,
  checkpoint: CheckpointFn = runCheckpointDirectly,
): CheckpointFn {
  return (key, fn) =>
    checkpoint(key, async () => {
      try {
        return await fn();
      } catch (error) {
        throw redactor.redactError(error);
      }
    });
}
