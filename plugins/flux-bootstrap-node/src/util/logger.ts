/**
 * The logger the engine writes progress to. Structurally compatible with Backstage's
 * `LoggerService` and the scaffolder's `ctx.logger`, so adapters pass those straight in.
 * @public
 */
export interface EngineLogger {
  error(message: string, meta?: Error | Record<string, unknown>): void;
  warn(message: string, meta?: Error | Record<string, unknown>): void;
  info(message: string, meta?: Error | Record<string, unknown>): void;
  debug(message: string, meta?: Error | Record<string, unknown>): void;
}

/** A logger that drops everything. @public */
export const silentLogger: EngineLogger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
};
