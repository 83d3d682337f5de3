import type { Config } from '@backstage/config';
import {
  EngineLogger,
  FluxBootstrapSettingsSource,
  fluxBootstrapSettings,
  Redactor,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';

/**
 * What every action factory receives: the settings the module read once at start, or the root
 * config (then the factory reads it, once).
 */
export type FluxBootstrapActionOptions =
  | { settings: FluxBootstrapSettingsSource }
  | { config: Config };

/** The settings an action uses: read once, never per run. */
export function actionSettings(
  options: FluxBootstrapActionOptions,
): FluxBootstrapSettingsSource {
  return 'settings' in options
    ? options.settings
    : fluxBootstrapSettings(options.config);
}

/** The scaffolder context fields the shared helpers use (kept structural for tests). */
export interface ActionContextLike {
  logger: EngineLogger;
  secrets?: Record<string, string | undefined>;
  signal?: AbortSignal;
  isDryRun?: boolean;
}

/**
 * A redactor seeded with every task secret and the given extra secrets, and a logger that passes
 * every line through it. The scaffolder already redacts task secrets; this also covers
 * integration credentials and values the action derives (generated keys).
 */
export function createActionRedaction(
  ctx: ActionContextLike,
  extraSecrets: Array<string | undefined> = [],
): { redactor: Redactor; logger: EngineLogger } {
  const redactor = new Redactor([
    ...Object.values(ctx.secrets ?? {}),
    ...extraSecrets,
  ]);
  return { redactor, logger: redactor.wrapLogger(ctx.logger) };
}

/**
 * Strips secrets from an error before it reaches the task log. The engine's errors already carry
 * Backstage's names (`InputError`, `NotFoundError`, …) and their detail (`field`, `kind`,
 * `status`), which the redacted copy keeps.
 */
export function toActionError(error: unknown, redactor: Redactor): Error {
  return redactor.redactError(error);
}

/**
 * Adapts the scaffolder's `ctx.checkpoint({ key, fn })` to the engine's `(key, fn)` form.
 * Values returned by `fn` must be JSON.
 */
export function checkpointFor(ctx: {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  checkpoint(opts: { key: string; fn: () => Promise<any> }): Promise<any>;
}): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  return <T>(key: string, fn: () => Promise<T>) =>
    ctx.checkpoint({ key, fn }) as Promise<T>;
}
