export { startBitbucketDouble } from './double';
export type {
  BitbucketDouble,
  BitbucketDoubleOptions,
  BitbucketFault,
  BitbucketRequestLogEntry,
  BitbucketSshInfo,
} from './double';
export type {
  GlobalPermission,
  ProjectPermission,
  RepoPermission,
} from './model';
export { parsePublicKey } from './rest';
export { parseGitSshCommand } from './ssh';
