/** The engine's logger: Backstage's `LoggerService` and `ctx.logger` fit as they are. @public */
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
