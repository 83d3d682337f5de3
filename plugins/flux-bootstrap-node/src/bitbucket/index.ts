export * from './repoUrl';
export { BitbucketError, isBitbucketError, parseErrorDetails } from './errors';
export type { BitbucketErrorKind, BitbucketErrorDetail } from './errors';
export * from './types';
export {
  BitbucketServerClient,
  gitHttpAuthHeaders,
  authSecrets,
  restPath,
  parseRetryAfter,
} from './client';
export type {
  BitbucketClientOptions,
  BitbucketQuery,
  BitbucketRequestOptions,
  BitbucketResponse,
} from './client';
export * from './repository';
export { pushInitialCommit } from './initialCommit';
export type { InitialCommitOptions } from './initialCommit';
