export { startGitHttpServer } from './httpServer';
export type {
  GitHttpServer,
  GitHttpCredential,
  GitHttpRequestLogEntry,
} from './httpServer';
export { runGitHttpBackend, gitServiceOf } from './httpBackend';
export type { GitCgiRequest } from './httpBackend';
export {
  peerGitEnv,
  PEER_GIT_CONFIG,
  initBareRepoSync,
  listBranches,
  listBranchesSync,
  headRefSync,
  setHeadRefSync,
  resolveCommit,
  logCommits,
  seedInitialCommitSync,
} from './cli';
export type { GitBranch, GitCommit } from './cli';
