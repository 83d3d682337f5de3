import { createPrivateKey, KeyObject } from 'node:crypto';
import { utils } from 'ssh2';
import { InputValidationError } from '../util/errors';
import { parseSshPublicKey, SshPublicKey, sshPublicKeyOf } from './publicKey';

/**
 * A checked user key: `privateKey` normalised (`identity`), `passphrase` only when encrypted
 * (`password`), and its public half. Holds secrets: never log, output or checkpoint it.
 */
export interface SuppliedSshKey {
  privateKey: string;
  passphrase?: string;
  encrypted: boolean;
  /** A passphrase was given for a key that is not encrypted (it is not stored). */
  passphraseIgnored: boolean;
  type: string;
  publicKey: string;
  fingerprint: string;
}

/** How errors name the inputs and task secrets of the key and passphrase (never their values). @public */
export interface SuppliedSshKeyNames {
  keyField: string;
  passphraseField: string;
  keySecret: string;
  passphraseSecret?: string;
}

const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/;

/** Keys Flux or OpenSSH cannot use (Go's x/crypto/ssh cannot read encrypted PKCS#8). */
const REFUSED_BLOCKS: Record<string, string | undefined> = {
  'ENCRYPTED PRIVATE KEY':
    'is an encrypted PKCS#8 key, which Flux cannot read; convert it to the OpenSSH format with "ssh-keygen -p -f <file>" (it keeps the passphrase)',
  'DSA PRIVATE KEY':
    'is a DSA key, which current OpenSSH servers refuse; use an ed25519, ecdsa or rsa key',
};

/**
 * Reads a user's SSH private key as source-controller (Go's x/crypto/ssh) and OpenSSH do:
 * OpenSSH, PKCS#1 RSA or SEC1 EC PEM (optionally encrypted), or unencrypted PKCS#8. Errors are
 * {@link InputValidationError}s naming the input and task secret, never the content.
 */
export function readSuppliedSshKey(
  privateKey: string | undefined,
  passphrase: string | undefined,
  names: SuppliedSshKeyNames,
): SuppliedSshKey {
  const { keyField, passphraseField, keySecret } = names;
  const passName = names.passphraseSecret
    ? `the task secret "${names.passphraseSecret}"`
    : 'the passphrase';
  const bad = (what: string) =>
    new InputValidationError(
      keyField,
      `the task secret "${keySecret}" ${what}`,
    );
  if (typeof privateKey !== 'string' || privateKey.trim() === '')
    throw bad(
      'is empty or missing: pass the private key through a ui:field Secret (never as a plain input)',
    );
  const text = `${privateKey.replace(/\r\n?/g, '\n').trim()}\n`;
  const blockType = PEM_BEGIN.exec(text)?.[1];
  if (!blockType || !/PRIVATE KEY$/.test(blockType)) {
    throw bad(
      /^(ssh-|ecdsa-|sk-)/.test(text)
        ? 'holds a public key; give the private key (the file without .pub)'
        : 'is not an SSH private key (OpenSSH "BEGIN OPENSSH PRIVATE KEY" or PEM)',
    );
  }
  const refused = REFUSED_BLOCKS[blockType];
  if (refused) throw bad(refused);
  const given = passphrase || undefined;
  let key: SshPublicKey;
  let encrypted = false;
  if (blockType === 'PRIVATE KEY') {
    // Unencrypted PKCS#8 (what flux:generate-key writes): Node reads it, ssh2 does not.
    let node: KeyObject;
    try {
      node = createPrivateKey(text);
    } catch {
      throw bad('is not a readable PEM private key');
    }
    try {
      key = sshPublicKeyOf(node);
    } catch {
      throw bad(
        'holds a key type SSH does not use (use ed25519, ecdsa or rsa)',
      );
    }
  } else {
    // OpenSSH, PKCS#1 RSA or SEC1 EC, optionally encrypted: ssh2 reads them as OpenSSH does.
    const plain = utils.parseKey(text);
    encrypted =
      plain instanceof Error && /encrypted|passphrase/i.test(plain.message);
    if (plain instanceof Error && !encrypted) {
      const why = /unsupported/i.test(plain.message)
        ? 'unsupported key type'
        : 'malformed';
      throw bad(
        blockType !== 'OPENSSH PRIVATE KEY'
          ? 'is not a readable PEM private key'
          : `is not a readable OpenSSH private key (${why})`,
      );
    }
    if (encrypted && !given) {
      throw new InputValidationError(
        passphraseField,
        `is needed: the private key in the task secret "${keySecret}" is encrypted`,
      );
    }
    const parsed = encrypted ? utils.parseKey(text, given) : plain;
    if (parsed instanceof Error) {
      throw new InputValidationError(
        passphraseField,
        `${passName} does not decrypt the private key in the task secret "${keySecret}" (wrong passphrase)`,
      );
    }
    const [first] = Array.isArray(parsed) ? parsed : [parsed];
    if (!first?.isPrivateKey()) throw bad('does not hold a private key');
    key = parseSshPublicKey(
      `${first.type} ${first.getPublicSSH().toString('base64')}`,
    );
  }
  return {
    privateKey: text,
    passphrase: encrypted ? given : undefined,
    encrypted,
    passphraseIgnored: !encrypted && given !== undefined,
    type: key.type,
    publicKey: key.text,
    fingerprint: key.fingerprint,
  };
}
