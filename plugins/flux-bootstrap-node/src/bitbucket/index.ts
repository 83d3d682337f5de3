export { resolveTokenOwner } from './access';
export type { BitbucketAccess, TokenOwner } from './access';
export {
  authSecrets,
  BitbucketServerClient,
  gitHttpAuthHeaders,
} from './client';
export type {
  BitbucketClientOptions,
  BitbucketQuery,
  BitbucketRequestOptions,
  BitbucketResponse,
} from './client';
export { BitbucketError, isBitbucketError } from './errors';
export type { BitbucketErrorDetail, BitbucketErrorKind } from './errors';
export { parseBitbucketRepoUrl } from './repoUrl';
export type { BitbucketRepoRef } from './repoUrl';
export {
  ensureFleetRepository,
  locateBitbucketRepository,
  planRepositoryOutputs,
} from './repository';
export type {
  BitbucketGroupGrant,
  BitbucketRepositoryOutputs,
  FleetRepositoryDeps,
  FleetRepositoryRequest,
} from './repository';
export type {
  BitbucketAccessKey,
  BitbucketBranch,
  BitbucketRepoPermission,
  BitbucketRepository,
  BitbucketUser,
} from './types';
