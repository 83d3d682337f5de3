import type { EngineLogger } from '../util/logger';

/** A logger whose lines start with `[prefix] `: each cluster's progress in the task log. */
export const prefixed = (
  logger: EngineLogger,
  prefix: string,
): EngineLogger => ({
  error: (m, meta) => logger.error(`[${prefix}] ${m}`, meta),
  warn: (m, meta) => logger.warn(`[${prefix}] ${m}`, meta),
  info: (m, meta) => logger.info(`[${prefix}] ${m}`, meta),
  debug: (m, meta) => logger.debug(`[${prefix}] ${m}`, meta),
});
