export { findRedisServer, startTestRedis } from './redis';
export type { TestRedis } from './redis';
