export { run, spawnManaged, waitFor } from './process';
export type { RunResult, RunOptions, ManagedProcess } from './process';
export { makeTempDir, removeDir, isRoot, writeFileMode } from './fs';
export {
  freePort,
  listenLoopback,
  closeServer,
  trackSockets,
  canConnect,
} from './net';
export { createTestPki } from './tls';
export type { TestPki } from './tls';
