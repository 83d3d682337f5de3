export { startBitbucketDouble } from './double';
export type {
  BitbucketDouble,
  BitbucketDoubleOptions,
  BitbucketFault,
  BitbucketOAuthClient,
  BitbucketRequestLogEntry,
  BitbucketSshInfo,
} from './double';
export type {
  AuditEntry,
  GlobalPermission,
  MatcherType,
  MergeChecks,
  OAuthScope,
  ParticipantStatus,
  ProjectPermission,
  RepoPermission,
  RestrictionType,
} from './model';
export { OAUTH_SCOPES, RESTRICTION_TYPES } from './model';
export { parsePublicKey } from './rest';
export { parseGitSshCommand } from './ssh';
export { patternToRegExp } from './refmatch';
export { rejectionMessage, rejectionText } from './restrictions';
