import { createHash, createPublicKey, KeyObject } from 'node:crypto';

/**
 * SSH wire-format helpers (RFC 4251 §5): `string` and `mpint`, public key blobs
 * (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4), authorized_keys lines and OpenSSH fingerprints.
 */

/** `uint32 length || bytes`. @public */
export function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([len, bytes]);
}

/**
 * `mpint` of a non-negative integer given as unsigned big-endian bytes: leading zero bytes
 * stripped, one zero byte prepended when the high bit is set (two's complement), zero is the
 * empty string.
 * @public
 */
export function sshMpint(unsignedBigEndian: Buffer): Buffer {
  let start = 0;
  while (start < unsignedBigEndian.length && unsignedBigEndian[start] === 0)
    start++;
  let bytes = unsignedBigEndian.subarray(start);
  if (bytes.length > 0 && (bytes[0] & 0x80) !== 0) {
    bytes = Buffer.concat([Buffer.from([0]), bytes]);
  }
  return sshString(bytes);
}

/** Reads consecutive `string` fields of a blob; throws on a truncated blob. @public */
export function readSshStrings(blob: Buffer, max = 16): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < blob.length && out.length < max) {
    if (pos + 4 > blob.length) throw new Error('truncated SSH string length');
    const len = blob.readUInt32BE(pos);
    pos += 4;
    if (pos + len > blob.length) throw new Error('truncated SSH string');
    out.push(blob.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

const CURVES: Record<string, { name: string; bytes: number }> = {
  'P-256': { name: 'nistp256', bytes: 32 },
  'P-384': { name: 'nistp384', bytes: 48 },
  'P-521': { name: 'nistp521', bytes: 66 },
};

function b64url(value: string | undefined, what: string): Buffer {
  if (!value) throw new Error(`JWK has no ${what}`);
  return Buffer.from(value, 'base64url');
}

function leftPad(bytes: Buffer, length: number): Buffer {
  if (bytes.length >= length) return bytes;
  return Buffer.concat([Buffer.alloc(length - bytes.length), bytes]);
}

/**
 * The SSH public key blob of a Node public (or private) key, built from its JWK:
 * `ecdsa-sha2-nistpNNN` = string type, string curve, string Q (0x04||X||Y);
 * `ssh-rsa` = string type, mpint e, mpint n; `ssh-ed25519` = string type, string key(32).
 * @public
 */
export function sshPublicKeyBlob(key: KeyObject): {
  type: string;
  blob: Buffer;
} {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' }) as {
    kty?: string;
    crv?: string;
    x?: string;
    y?: string;
    n?: string;
    e?: string;
  };
  if (jwk.kty === 'EC') {
    const curve = CURVES[jwk.crv ?? ''];
    if (!curve) throw new Error(`unsupported EC curve ${jwk.crv}`);
    const type = `ecdsa-sha2-${curve.name}`;
    const q = Buffer.concat([
      Buffer.from([0x04]),
      leftPad(b64url(jwk.x, 'x'), curve.bytes),
      leftPad(b64url(jwk.y, 'y'), curve.bytes),
    ]);
    return {
      type,
      blob: Buffer.concat([
        sshString(type),
        sshString(curve.name),
        sshString(q),
      ]),
    };
  }
  if (jwk.kty === 'RSA') {
    const type = 'ssh-rsa';
    return {
      type,
      blob: Buffer.concat([
        sshString(type),
        sshMpint(b64url(jwk.e, 'e')),
        sshMpint(b64url(jwk.n, 'n')),
      ]),
    };
  }
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    const type = 'ssh-ed25519';
    const x = b64url(jwk.x, 'x');
    if (x.length !== 32) throw new Error('Ed25519 public key is not 32 bytes');
    return { type, blob: Buffer.concat([sshString(type), sshString(x)]) };
  }
  throw new Error(
    `unsupported key type ${jwk.kty}${jwk.crv ? `/${jwk.crv}` : ''}`,
  );
}

/** `SHA256:` + unpadded base64 of sha256(blob), exactly as `ssh-keygen -l` prints it. @public */
export function sshFingerprint(blob: Buffer): string {
  const digest = createHash('sha256').update(blob).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** A parsed authorized_keys / known_hosts key: type, blob and the `type base64` text. @public */
export interface SshPublicKey {
  type: string;
  blob: Buffer;
  /** `type base64` without comment or newline. */
  text: string;
  fingerprint: string;
}

const KEY_TYPE =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|ssh-dss|sk-[a-z0-9@.-]+)$/;

/**
 * Parses `type base64 [comment]` (an authorized_keys line without options, or the key part of
 * a known_hosts line). Checks that the blob's embedded type equals the declared type.
 * @public
 */
export function parseSshPublicKey(line: string): SshPublicKey {
  const fields = line.trim().split(/\s+/);
  if (fields.length < 2)
    throw new Error('not an SSH public key: expected "<type> <base64>"');
  const [type, b64] = fields;
  if (!KEY_TYPE.test(type))
    throw new Error(`unsupported SSH key type "${type.slice(0, 40)}"`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
    throw new Error('SSH public key is not base64');
  const blob = Buffer.from(b64, 'base64');
  const [embedded] = readSshStrings(blob, 1);
  if (!embedded || embedded.toString('latin1') !== type) {
    throw new Error(`SSH public key blob does not hold a ${type} key`);
  }
  return {
    type,
    blob,
    text: `${type} ${blob.toString('base64')}`,
    fingerprint: sshFingerprint(blob),
  };
}

/** The key type inside a blob (`ssh-rsa`, `ecdsa-sha2-nistp256`, …). @public */
export function sshKeyTypeOfBlob(blob: Buffer): string {
  const [type] = readSshStrings(blob, 1);
  if (!type) throw new Error('empty SSH key blob');
  return type.toString('latin1');
}

/** True when both `type base64 [comment]` strings carry the same key (comments ignored). @public */
export function sameSshPublicKey(
  a: string | undefined,
  b: string | undefined,
): boolean {
  if (!a || !b) return false;
  try {
    return parseSshPublicKey(a).text === parseSshPublicKey(b).text;
  } catch {
    return false;
  }
}
