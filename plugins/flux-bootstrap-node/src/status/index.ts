export { readClusterStatus } from './readClusterStatus';
export type { ReadClusterStatusOptions } from './readClusterStatus';
export {
  addBranchHeadState,
  bitbucketRepositoryLinks,
  matchBitbucketCloneUrl,
} from './bitbucketRepository';
export type {
  AddBranchHeadStateOptions,
  BitbucketRepositoryLocation,
  BranchHeadLookup,
} from './bitbucketRepository';
export { FluxStatusReader } from './FluxStatusReader';
export type {
  FluxStatusReaderConfig,
  FluxStatusReaderOptions,
  FluxStatusSettings,
  KubeClientFactory,
  StatusCache,
  StatusReadCoordinator,
} from './FluxStatusReader';
export {
  bitbucketBranchHeadLookup,
  createFluxStatusReader,
} from './FluxStatusReader';
export { bitbucketPullRequestLookup } from './pullRequestState';
export type { PullRequestLookup } from './pullRequestState';
