export { fluxAccessKeyLabel } from './accessKey';
export { provisionDeployKey } from './deployKey';
export type { DeployKeyRequest } from './deployKey';
export { storeSuppliedKey } from './gitSecret';
export type { SuppliedKeyRequest } from './gitSecret';
export { parseSshHost } from './hostKey';
export type { SshEndpoint } from './hostKey';
export {
  ECDSA_CURVES,
  generateSshKeyPair,
  SSH_KEY_ALGORITHMS,
  SSH_KEY_DEFAULTS,
} from './keyPair';
export type { SshKeyOptions } from './keyPair';
