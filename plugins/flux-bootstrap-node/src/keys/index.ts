export { fluxAccessKeyLabel } from './accessKey';
export { provisionDeployKey } from './deployKey';
export type { DeployKeyRequest } from './deployKey';
export { storeSuppliedKey } from './gitSecret';
export type { SuppliedKeyRequest } from './gitSecret';
export {
  HostKeyMismatchError,
  HostKeyScanError,
  parseKnownHosts,
  parseSshHost,
} from './hostKey';
export type { KnownHostsEntry, SshEndpoint } from './hostKey';
export {
  ECDSA_CURVES,
  generateSshKeyPair,
  SSH_KEY_ALGORITHMS,
  SSH_KEY_DEFAULTS,
} from './keyPair';
export type { SshKeyOptions, SshKeyOptionsInput } from './keyPair';
export { HostKeyChangedError } from './sourceSecret';
export type { SourceSecretDeps, SourceSecretOutputs } from './sourceSecret';
export type { SuppliedSshKeyNames } from './suppliedKey';
