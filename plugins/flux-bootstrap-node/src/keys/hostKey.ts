import { isIP } from 'node:net';
import { Client } from 'ssh2';
import { networkCodeText } from '../http/client';
import { silentLogger, type EngineLogger } from '../util/logger';
import {
  FluxBootstrapError,
  InputValidationError,
  OperationAbortedError,
} from '../util/errors';
import {
  readSshPublicKey,
  sshFingerprint,
  sshPublicKeyFromBlob,
} from './publicKey';

/** An SSH endpoint. `host` is a DNS name or an IP literal (IPv6 without brackets). @public */
export interface SshEndpoint {
  host: string;
  port: number;
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/**
 * Parses `host:port`, `[ipv6]:port` or a bare host (port 22, like flux). Throws
 * {@link InputValidationError} naming `field`.
 * @public
 */
export function parseSshHost(value: string, field = 'sshHost'): SshEndpoint {
  const fail = (message: string) => new InputValidationError(field, message);
  const raw = typeof value === 'string' ? value.trim() : '';
  if (!raw) throw fail('is required, in the form host:port');
  // The authority of an ssh:// URL; a bare IPv6 address (no port) gets its brackets.
  const authority = `ssh://${isIP(raw) === 6 ? `[${raw}]` : raw}`;
  if (raw.length > 300 || /[\s/@?#]/.test(raw) || !URL.canParse(authority)) {
    throw fail(
      'must be host:port (no scheme, user, path or spaces), e.g. bitbucket.example.com:7999',
    );
  }
  const url = new URL(authority);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (!isIP(host) && !HOSTNAME.test(host)) {
    throw fail(`"${host.slice(0, 80)}" is not a valid host name`);
  }
  const port = Number(url.port || 22);
  if (port < 1) throw fail(`has an invalid port "${url.port}"`);
  return { host: host.replace(/\.$/, ''), port };
}

/** `host:port` (`[v6]:port`). */
export function formatSshHost({ host, port }: SshEndpoint): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** The host field of a known_hosts line: `host` for port 22, else `[host]:port` (OpenSSH's form). */
export function knownHostsHostField({ host, port }: SshEndpoint): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** One entry of a known_hosts file; `key` is `type base64`. */
export interface KnownHostsEntry {
  hosts: string[];
  type: string;
  key: string;
  fingerprint: string;
}

/** Parses known_hosts text (plain host patterns; hashed and marker lines are skipped). */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  return text.split(/\r?\n/).flatMap(line => {
    const [hosts, ...rest] = line.trim().split(/\s+/);
    if (!hosts || /^[#@|]/.test(hosts)) return [];
    const key = readSshPublicKey(rest.join(' '));
    if (!key) return []; // not a key line
    const { type, fingerprint } = key;
    return [{ hosts: hosts.split(','), type, key: key.text, fingerprint }];
  });
}

/** Entries of `knownHosts` that apply to `endpoint` (exact host field match). */
export function knownHostsFor(
  knownHosts: string,
  endpoint: SshEndpoint,
): KnownHostsEntry[] {
  const field = knownHostsHostField(endpoint);
  return parseKnownHosts(knownHosts).filter(e => e.hosts.includes(field));
}

/**
 * Result of {@link scanHostKey}: `type` is `ssh-rsa` for RSA whatever the signature algorithm,
 * `publicKey` is `type base64`, `knownHosts` the known_hosts line without newline.
 */
export interface ScannedHostKey {
  type: string;
  publicKey: string;
  fingerprint: string;
  knownHosts: string;
}

/** The server's host key did not match the pinned fingerprint (a `ConflictError`). @public */
export class HostKeyMismatchError extends FluxBootstrapError {
  constructor(
    endpoint: SshEndpoint,
    readonly expected: string,
    readonly presented: string[],
  ) {
    const shown = presented.join(', ') || 'no key';
    super(
      'ConflictError',
      `The SSH host key of ${formatSshHost(
        endpoint,
      )} does not match the pinned fingerprint ${expected}; the server presented ${shown}. Nothing was written.`,
    );
  }
}

/** The host key could not be scanned: unreachable, not SSH, timeout (a `ServiceUnavailableError`). @public */
export class HostKeyScanError extends FluxBootstrapError {
  constructor(message: string, readonly code?: string) {
    super('ServiceUnavailableError', message);
  }
}

/** Options of {@link scanHostKey}: `timeoutMs` is the whole scan's budget (30 s, like flux). */
export interface ScanHostKeyOptions {
  sshHost: string | SshEndpoint;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** A pinned `SHA256:` fingerprint. */
  expectedFingerprint?: string;
  logger?: EngineLogger;
}

/** Host key types in ssh2's preference order; RSA keys sign with three algorithms. */
const HOST_KEY_TYPES =
  `ssh-ed25519 ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521
  ssh-rsa`.split(/\s+/);
const algorithmsOf = (type: string) =>
  type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];

/**
 * One SSH handshake through ssh2's Client: its `hostVerifier` records the host key, the key
 * exchange finishes (the server proves it holds the key), and the connection is closed before
 * any authentication. A key `accept` refuses ends the handshake at once (`verified: false`).
 */
function handshakeOnce(
  endpoint: SshEndpoint,
  algorithms: string[],
  accept: (blob: Buffer) => boolean,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<{ blob?: Buffer; verified: boolean }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let captured: Buffer | undefined;
    // Settles first: the events destroy() may emit then change nothing.
    const finish = (fn: () => void) => {
      fn();
      signal.removeEventListener('abort', onAbort);
      client.destroy();
    };
    function onAbort() {
      finish(() => reject(new OperationAbortedError()));
    }
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    client.on('handshake', () =>
      finish(() => resolve({ blob: captured, verified: true })),
    );
    client.on('error', (err: Error) =>
      finish(() =>
        captured && /Host denied/i.test(err.message)
          ? resolve({ blob: captured, verified: false })
          : reject(err),
      ),
    );
    const closed = `${formatSshHost(
      endpoint,
    )} closed the connection before the SSH handshake completed`;
    client.on('close', () =>
      finish(() => reject(new HostKeyScanError(closed, 'ECONNRESET'))),
    );
    try {
      client.connect({
        host: endpoint.host,
        port: endpoint.port,
        username: 'git',
        readyTimeout: timeoutMs,
        keepaliveInterval: 0,
        // Never authenticate: no credentials are configured, and we disconnect on 'handshake'.
        tryKeyboard: false,
        agent: undefined,
        algorithms: { serverHostKey: algorithms as never },
        hostVerifier: (key: Buffer) => accept((captured = Buffer.from(key))),
      });
    } catch (err) {
      finish(() => reject(err));
    }
  });
}

/**
 * Reads the SSH host key of `sshHost` through a real SSH handshake (ssh2), like flux's
 * `ScanHostKey`: the single key the server presents with default algorithm preferences, the
 * connection closed before authentication. With `expectedFingerprint`, a server presenting
 * another key is asked for its other key types; no match throws {@link HostKeyMismatchError}.
 * @public
 */
export async function scanHostKey(
  options: ScanHostKeyOptions,
): Promise<ScannedHostKey> {
  const endpoint =
    typeof options.sshHost === 'string'
      ? parseSshHost(options.sshHost)
      : options.sshHost;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const logger = options.logger ?? silentLogger;
  const expected = options.expectedFingerprint;
  const where = formatSshHost(endpoint);
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal
    ? AbortSignal.any([options.signal, timeout])
    : timeout;
  const seen: string[] = [];
  let remainingTypes = HOST_KEY_TYPES;
  for (;;) {
    let outcome: { blob?: Buffer; verified: boolean };
    try {
      outcome = await handshakeOnce(
        endpoint,
        remainingTypes.flatMap(algorithmsOf),
        blob => !expected || sshFingerprint(blob) === expected,
        signal,
        timeoutMs,
      );
    } catch (err) {
      if (options.signal?.aborted) {
        throw new OperationAbortedError(
          `Cancelled while scanning the SSH host key of ${where}`,
        );
      }
      const e = (err ?? {}) as { message?: string; code?: string };
      if (
        seen.length &&
        /no matching|handshake failed|host key/i.test(`${e.message}`)
      ) {
        // The server has no further key type to offer.
        throw new HostKeyMismatchError(endpoint, expected!, seen);
      }
      if (
        timeout.aborted ||
        /Timed out while waiting for handshake/i.test(`${e.message}`)
      )
        throw new HostKeyScanError(
          `Timed out after ${timeoutMs} ms waiting for the SSH handshake with ${where} (is it an SSH server, and is the port right?)`,
          'ETIMEDOUT',
        );
      const text = networkCodeText(e.code) ?? e.message ?? String(err);
      throw new HostKeyScanError(
        `SSH handshake with ${where} failed: ${text}`,
        e.code,
      );
    }
    if (!outcome.blob) throw new HostKeyScanError(`${where} sent no host key`);
    const key = sshPublicKeyFromBlob(outcome.blob);
    if (outcome.verified) {
      logger.info(`SSH host key of ${where}: ${key.type} ${key.fingerprint}`);
      return {
        type: key.type,
        publicKey: key.text,
        fingerprint: key.fingerprint,
        knownHosts: `${knownHostsHostField(endpoint)} ${key.text}`,
      };
    }
    seen.push(`${key.type} ${key.fingerprint}`);
    logger.info(
      `SSH host key ${key.type} ${key.fingerprint} of ${where} is not the pinned ${expected}; asking for another key type`,
    );
    remainingTypes = remainingTypes.filter(t => t !== key.type);
    if (remainingTypes.length === 0) {
      throw new HostKeyMismatchError(endpoint, expected!, seen);
    }
  }
}
