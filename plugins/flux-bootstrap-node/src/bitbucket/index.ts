export type { BitbucketAccess } from './access';
export {
  authSecrets,
  BitbucketServerClient,
  gitHttpAuthHeaders,
} from './client';
export { BitbucketError, isBitbucketError } from './errors';
export { parseBitbucketRepoUrl } from './repoUrl';
export type { BitbucketRepoRef } from './repoUrl';
export { ensureFleetRepository, planRepositoryOutputs } from './repository';
export type {
  BitbucketRepositoryOutputs,
  FleetRepositoryDeps,
  FleetRepositoryRequest,
} from './repository';
