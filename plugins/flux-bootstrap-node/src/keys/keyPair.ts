import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { utils } from 'ssh2';
import { InputValidationError, throwIfAborted } from '../util/errors';
import { parseSshPublicKey, SshPublicKey, sshPublicKeyOf } from './publicKey';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Key algorithms Flux's `--ssh-key-algorithm` offers. @public */
export const SSH_KEY_ALGORITHMS = ['ecdsa', 'rsa', 'ed25519'] as const;
/** @public */
export type SshKeyAlgorithm = (typeof SSH_KEY_ALGORITHMS)[number];
/** ECDSA curves Flux's `--ssh-ecdsa-curve` offers. @public */
export const ECDSA_CURVES = ['p256', 'p384', 'p521'] as const;
/** @public */
export type EcdsaCurve = (typeof ECDSA_CURVES)[number];

/** Options of {@link generateSshKeyPair}, as they come from an action's input. @public */
export interface SshKeyOptionsInput {
  algorithm?: string | null;
  ecdsaCurve?: string | null;
  rsaBits?: number | null;
}

/** Validated key options. @public */
export interface SshKeyOptions {
  algorithm: SshKeyAlgorithm;
  ecdsaCurve: EcdsaCurve;
  rsaBits: number;
}

function oneOf<T extends string>(
  field: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (allowed.includes(value as T)) return value as T;
  throw new InputValidationError(
    field,
    `must be one of ${allowed.join(', ')} (got "${String(value).slice(
      0,
      40,
    )}")`,
  );
}

/**
 * Applies flux's defaults (ecdsa, P-384, RSA 2048) and validates key options; throws
 * {@link InputValidationError} naming the field. RSA takes 2048 to 8192 bits in steps of 8 (flux
 * allows 1024; NIST retired it).
 * @public
 */
export function normaliseSshKeyOptions(
  input: SshKeyOptionsInput = {},
): SshKeyOptions {
  const algorithm = oneOf(
    'algorithm',
    input.algorithm ?? 'ecdsa',
    SSH_KEY_ALGORITHMS,
  );
  const ecdsaCurve = oneOf(
    'ecdsaCurve',
    input.ecdsaCurve ?? 'p384',
    ECDSA_CURVES,
  );
  const rsaBits = input.rsaBits ?? 2048;
  if (
    !Number.isInteger(rsaBits) ||
    rsaBits < 2048 ||
    rsaBits > 8192 ||
    rsaBits % 8 !== 0
  ) {
    throw new InputValidationError(
      'rsaBits',
      `must be a multiple of 8 between 2048 and 8192 (got ${String(
        rsaBits,
      ).slice(0, 20)})`,
    );
  }
  return { algorithm, ecdsaCurve, rsaBits };
}

/** A generated key pair in the formats of Flux's Git Secret. @public */
export interface SshKeyPair {
  /** `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp384`, … */
  type: string;
  /**
   * The Secret's `identity`. PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) for ecdsa and rsa, as
   * flux writes it. Ed25519 keys use the OpenSSH format (`-----BEGIN OPENSSH PRIVATE KEY-----`):
   * OpenSSH before 9.6 cannot load Ed25519 from PKCS#8, while Flux's Go SSH stack reads both.
   */
  privateKeyPem: string;
  /** The Secret's `identity.pub`: `<type> <base64>\n`, no comment. */
  publicKey: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** Human description, e.g. `ecdsa P-384` or `rsa 4096`. */
  description: string;
}

/** A short human description of the options, e.g. `ecdsa p384`, `rsa 4096`, `ed25519`. @public */
export function describeSshKeyOptions(options: SshKeyOptions): string {
  if (options.algorithm === 'ecdsa') return `ecdsa ${options.ecdsaCurve}`;
  if (options.algorithm === 'rsa') return `rsa ${options.rsaBits}`;
  return 'ed25519';
}

/**
 * Generates a key pair off the event loop: ECDSA and RSA with Node's crypto, written as PKCS#8
 * like flux; Ed25519 with ssh2, in the OpenSSH format (re-wrapped to ssh-keygen's 70 columns).
 * @public
 */
export async function generateSshKeyPair(
  input: SshKeyOptionsInput | SshKeyOptions = {},
  signal?: AbortSignal,
): Promise<SshKeyPair> {
  const options = normaliseSshKeyOptions(input);
  throwIfAborted(signal, 'generating the SSH key');
  let privateKeyPem: string;
  let key: SshPublicKey;
  if (options.algorithm === 'ed25519') {
    const pair = await new Promise<utils.KeyPairReturn>((resolve, reject) =>
      utils.generateKeyPair('ed25519', (e, kp) =>
        e ? reject(e) : resolve(kp),
      ),
    );
    const body = pair.private.replace(/-----[^-]+-----|\s/g, '');
    privateKeyPem = `-----BEGIN OPENSSH PRIVATE KEY-----\n${body
      .match(/.{1,70}/g)!
      .join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
    key = parseSshPublicKey(pair.public);
  } else {
    const { privateKey } =
      options.algorithm === 'ecdsa'
        ? await generateKeyPairAsync('ec', {
            namedCurve: `P-${options.ecdsaCurve.slice(1)}`,
          })
        : await generateKeyPairAsync('rsa', {
            modulusLength: options.rsaBits,
            publicExponent: 0x10001,
          });
    privateKeyPem = privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    key = sshPublicKeyOf(privateKey);
  }
  throwIfAborted(signal, 'generating the SSH key');
  return {
    type: key.type,
    privateKeyPem,
    publicKey: `${key.text}\n`,
    fingerprint: key.fingerprint,
    description: describeSshKeyOptions(options),
  };
}

/**
 * Strings to register with a {@link Redactor} so that a private key cannot leave through a log
 * line or an error: the PEM as JSON would escape it, the PEM base64-encoded (a Secret's `data`),
 * and every PEM line that carries private bytes. PEM lines that only encode public bytes (PKCS#8
 * and OpenSSH containers embed the public key) are left out, so the public key stays readable.
 * @public
 */
export function privateKeyRedactions(
  pair: Pick<SshKeyPair, 'privateKeyPem' | 'publicKey'>,
): string[] {
  const publicB64 = pair.publicKey.trim().split(/\s+/)[1] ?? '';
  const pem = pair.privateKeyPem;
  const out = [
    JSON.stringify(pem),
    JSON.stringify(pem.trim()),
    Buffer.from(pem, 'utf8').toString('base64'),
  ];
  for (const raw of pem.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.length < 16 || line.startsWith('-----')) continue;
    if (publicB64.includes(line)) continue;
    out.push(line);
  }
  return out;
}
