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
export {
  DEFAULT_STATUS_CONCURRENCY,
  FluxStatusReader,
  readFluxStatusSettings,
} from './FluxStatusReader';
export type {
  FluxStatusReaderOptions,
  FluxStatusSettings,
  KubeClientFactory,
  StatusCache,
  StatusReadCoordinator,
} from './FluxStatusReader';
export { bitbucketBranchHeadLookup, createFluxStatusReader } from './defaults';
