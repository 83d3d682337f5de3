import type { Redactor } from './redact';

/**
 * Runs one external side effect at most once per task, whatever the retries: the scaffolder's
 * `ctx.checkpoint({ key, fn })` in an action. The returned value is stored in the task state when
 * task recovery is on, so it must be public JSON (never a token or a private key). Engine
 * functions take it as an option and default to {@link runCheckpointDirectly}.
 * @public
 */
export type CheckpointFn = <T>(key: string, fn: () => Promise<T>) => Promise<T>;

/** The default {@link CheckpointFn}: just runs `fn` (no task state to restore from). @public */
export const runCheckpointDirectly: CheckpointFn = (_key, fn) => fn();

/**
 * Steps that run inside `checkpoint` (default {@link runCheckpointDirectly}) and fail redacted:
 * a checkpoint persists its failure reason in the task state, so an error must not carry a
 * secret out of a step.
 * @public
 */
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
