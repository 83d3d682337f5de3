import { createHash, createPublicKey, KeyObject } from 'node:crypto';
import { utils } from 'ssh2';

/** An SSH public key: type, wire-format blob, `type base64` text (no comment) and fingerprint. */
export interface SshPublicKey {
  type: string;
  blob: Buffer;
  text: string;
  fingerprint: string;
}

/** `SHA256:` + unpadded base64 of sha256(blob), exactly as `ssh-keygen -l` prints it. */
export function sshFingerprint(blob: Buffer): string {
  const digest = createHash('sha256').update(blob).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** The key in an SSH wire-format public key blob. */
export function sshPublicKeyFromBlob(blob: Buffer): SshPublicKey {
  const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1');
  return {
    type,
    blob,
    text: `${type} ${blob.toString('base64')}`,
    fingerprint: sshFingerprint(blob),
  };
}

/** Parses `type base64 [comment]` with ssh2, which checks the blob holds a key of that type. */
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

/** {@link parseSshPublicKey}, or `undefined` when the line holds no key. */
export function readSshPublicKey(line: string): SshPublicKey | undefined {
  try {
    return parseSshPublicKey(line);
  } catch {
    return undefined;
  }
}

/** True when both `type base64 [comment]` strings carry the same key (comments ignored). */
export function sameSshPublicKey(
  a: string | undefined,
  b: string | undefined,
): boolean {
  const text = a && readSshPublicKey(a)?.text;
  return !!text && text === (b && readSshPublicKey(b)?.text);
}

/** SSH wire-format strings (RFC 4251 §5): each part behind its uint32 length. */
function sshStrings(...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    parts.flatMap(part => {
      const bytes = Buffer.from(part);
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return [length, bytes];
    }),
  );
}

const raw = (b64url?: string) => Buffer.from(b64url ?? '', 'base64url');
/** An RFC 4251 mpint of JWK's unsigned bytes: positive, so a set high bit gets a 0 byte first. */
const mpint = (b: Buffer) =>
  b[0] & 0x80 ? Buffer.concat([Buffer.of(0), b]) : b;

/**
 * The SSH public key of a Node private key (ECDSA, RSA or Ed25519), encoded from its JWK: ssh2
 * would recompute an EC point from the private key, which costs more than generating it.
 */
export function sshPublicKeyOf(privateKey: KeyObject): SshPublicKey {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519')
    return sshPublicKeyFromBlob(sshStrings('ssh-ed25519', raw(jwk.x)));
  if (jwk.kty === 'EC' && /^P-(256|384|521)$/.test(jwk.crv ?? '')) {
    const curve = `nistp${jwk.crv!.slice(2)}`;
    const point = Buffer.concat([Buffer.of(4), raw(jwk.x), raw(jwk.y)]);
    return sshPublicKeyFromBlob(
      sshStrings(`ecdsa-sha2-${curve}`, curve, point),
    );
  }
  if (jwk.kty === 'RSA')
    return sshPublicKeyFromBlob(
      sshStrings('ssh-rsa', mpint(raw(jwk.e)), mpint(raw(jwk.n))),
    );
  throw new Error(
    `unsupported key type ${privateKey.asymmetricKeyType} (SSH uses ed25519, ecdsa or rsa)`,
  );
}
