import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { utils } from 'ssh2';
import { throwIfAborted } from '../util/errors';
import { parseSshPublicKey, SshPublicKey, sshPublicKeyOf } from './publicKey';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Key algorithms Flux's `--ssh-key-algorithm` offers. @public */
export const SSH_KEY_ALGORITHMS = ['ecdsa', 'rsa', 'ed25519'] as const;
/** ECDSA curves Flux's `--ssh-ecdsa-curve` offers. @public */
export const ECDSA_CURVES = ['p256', 'p384', 'p521'] as const;

/** The key to generate: RSA takes 2048 to 8192 bits in steps of 8 (flux allows 1024; NIST retired it). @public */
export interface SshKeyOptions {
  algorithm: (typeof SSH_KEY_ALGORITHMS)[number];
  ecdsaCurve: (typeof ECDSA_CURVES)[number];
  rsaBits: number;
}

/** Key options, each defaulting to flux's. @public */
export type SshKeyOptionsInput = Partial<SshKeyOptions>;

/** Flux's defaults: ECDSA P-384 (and 2048 bits for RSA). @public */
export const SSH_KEY_DEFAULTS: SshKeyOptions = {
  algorithm: 'ecdsa',
  ecdsaCurve: 'p384',
  rsaBits: 2048,
};

/**
 * A generated key pair as Flux's Git Secret holds it: `privateKeyPem` (`identity`) and
 * `publicKey` (`identity.pub`, `<type> <base64>\n`), with the `SHA256:` fingerprint.
 */
export interface SshKeyPair {
  type: string;
  privateKeyPem: string;
  publicKey: string;
  fingerprint: string;
  /** e.g. `ecdsa p384`, `rsa 4096`, `ed25519`. */
  description: string;
}

/** A short human description of the options, e.g. `ecdsa p384`, `rsa 4096`, `ed25519`. */
export function describeSshKeyOptions(o: SshKeyOptions): string {
  const size = { ecdsa: ` ${o.ecdsaCurve}`, rsa: ` ${o.rsaBits}`, ed25519: '' };
  return `${o.algorithm}${size[o.algorithm]}`;
}

/**
 * Generates a key pair off the event loop: ECDSA and RSA with Node's crypto, as PKCS#8 like
 * flux; Ed25519 with ssh2 in the OpenSSH format (OpenSSH before 9.6 cannot load it from
 * PKCS#8), re-wrapped to ssh-keygen's 70 columns.
 * @public
 */
export async function generateSshKeyPair(
  input: SshKeyOptionsInput = {},
  signal?: AbortSignal,
): Promise<SshKeyPair> {
  const options = { ...SSH_KEY_DEFAULTS, ...input };
  throwIfAborted(signal, 'generating the SSH key');
  let privateKeyPem: string;
  let key: SshPublicKey;
  if (options.algorithm === 'ed25519') {
    let pair: utils.KeyPairReturn;
    let draws = 0;
    // ssh2 strips leading zero bytes off an Ed25519 public key (1 key in 256), which leaves both
    // halves unreadable: such a key is drawn again.
    do {
      pair = await new Promise<utils.KeyPairReturn>((resolve, reject) =>
        utils.generateKeyPair('ed25519', (e, kp) =>
          e ? reject(e) : resolve(kp),
        ),
      );
    } while (utils.parseKey(pair.public) instanceof Error && ++draws < 16);
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
 * What a Redactor needs to hide a private key: the PEM JSON-escaped and base64-encoded (a
 * Secret's `data`), and each PEM line with private bytes (lines of the embedded public key stay).
 */
export function privateKeyRedactions(
  pair: Pick<SshKeyPair, 'privateKeyPem' | 'publicKey'>,
): string[] {
  const publicB64 = pair.publicKey.trim().split(/\s+/)[1] ?? '';
  const pem = pair.privateKeyPem;
  const lines = pem
    .split(/\r?\n/)
    .map(line => line.trim())
    .filter(
      l => l.length >= 16 && !l.startsWith('-----') && !publicB64.includes(l),
    );
  return [
    JSON.stringify(pem),
    JSON.stringify(pem.trim()),
    Buffer.from(pem, 'utf8').toString('base64'),
    ...lines,
  ];
}
