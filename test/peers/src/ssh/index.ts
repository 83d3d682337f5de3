export {
  startSshd,
  sshFingerprint,
  defaultSshUser,
  ensureGitUser,
  SSHD_BINARY,
} from './sshd';
export type { SshdInstance, SshdOptions, SshHostKey } from './sshd';
