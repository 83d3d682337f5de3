import { createHash, createPublicKey, KeyObject } from 'node:crypto';
import { utils } from 'ssh2';

/** An SSH public key: its type, wire-format blob, `type base64` text and fingerprint. @public */
export interface SshPublicKey {
  type: string;
  blob: Buffer;
  /** `type base64` without comment or newline. */
  text: string;
  fingerprint: string;
}

/** `SHA256:` + unpadded base64 of sha256(blob), exactly as `ssh-keygen -l` prints it. @public */
export function sshFingerprint(blob: Buffer): string {
  const digest = createHash('sha256').update(blob).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** The key in an SSH wire-format public key blob. @public */
export function sshPublicKeyFromBlob(blob: Buffer): SshPublicKey {
  const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1');
  return {
    type,
    blob,
    text: `${type} ${blob.toString('base64')}`,
    fingerprint: sshFingerprint(blob),
  };
}

/**
 * Parses `type base64 [comment]` (an authorized_keys line without options, or the key part of a
 * known_hosts line) with ssh2, which checks that the blob holds a key of the declared type.
 * @public
 */
export function parseSshPublicKey(line: string): SshPublicKey {
  const [type = '', b64] = line.trim().split(/\s+/);
  if (!b64 || type.startsWith('-----'))
    throw new Error('not an SSH public key: expected "<type> <base64>"');
  const key = utils.parseKey(line.trim());
  if (key instanceof Error) {
    throw new Error(
      /unsupported/i.test(key.message)
        ? `unsupported SSH key type "${type.slice(0, 40)}"`
        : `SSH public key blob does not hold a ${type.slice(0, 40)} key`,
    );
  }
  return sshPublicKeyFromBlob(key.getPublicSSH());
}

/** True when both `type base64 [comment]` strings carry the same key (comments ignored). @public */
export function sameSshPublicKey(
  a: string | undefined,
  b: string | undefined,
): boolean {
  try {
    return (
      !!a && !!b && parseSshPublicKey(a).text === parseSshPublicKey(b).text
    );
  } catch {
    return false;
  }
}

/** `string "ssh-ed25519"` of the SSH wire format, then the length of the 32-byte key. */
const ED25519_BLOB_PREFIX = Buffer.from(
  '0000000b7373682d6564323535313900000020',
  'hex',
);

/**
 * The SSH public key of a Node private key (ECDSA, RSA or Ed25519). ECDSA and RSA go through
 * ssh2 (SEC1 / PKCS#1 PEM); Ed25519's blob is its 32 raw bytes behind a fixed prefix.
 * @public
 */
export function sshPublicKeyOf(privateKey: KeyObject): SshPublicKey {
  switch (privateKey.asymmetricKeyType) {
    case 'ed25519': {
      const spki = createPublicKey(privateKey).export({
        type: 'spki',
        format: 'der',
      });
      return sshPublicKeyFromBlob(
        Buffer.concat([ED25519_BLOB_PREFIX, spki.subarray(-32)]),
      );
    }
    case 'ec':
    case 'rsa': {
      const type = privateKey.asymmetricKeyType === 'ec' ? 'sec1' : 'pkcs1';
      const key = utils.parseKey(privateKey.export({ type, format: 'pem' }));
      if (!(key instanceof Error))
        return sshPublicKeyFromBlob(key.getPublicSSH());
      throw new Error(
        `unsupported ${privateKey.asymmetricKeyType} key: ${key.message}`,
      );
    }
    default:
      throw new Error(
        `unsupported key type ${privateKey.asymmetricKeyType} (SSH uses ed25519, ecdsa or rsa)`,
      );
  }
}
