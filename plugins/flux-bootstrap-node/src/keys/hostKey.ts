import { isIP } from 'node:net';
import { Client } from 'ssh2';
import type { EngineLogger } from '../util/logger';
import { silentLogger } from '../util/logger';
import {
  FluxBootstrapError,
  InputValidationError,
  OperationAbortedError,
} from '../util/errors';
import { combineSignals } from '../util/async';
import { parseSshPublicKey, sshFingerprint, sshKeyTypeOfBlob } from './sshWire';

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
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InputValidationError(field, 'is required, in the form host:port');
  }
  const raw = value.trim();
  if (
    raw.length > 300 ||
    /[\s/@?#]/.test(raw) ||
    /^[a-z][a-z0-9+.-]*:\/\//i.test(raw)
  ) {
    throw new InputValidationError(
      field,
      'must be host:port (no scheme, user, path or spaces), e.g. bitbucket.example.com:7999',
    );
  }
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(raw);
  if (bracketed) {
    host = bracketed[1];
    portText = bracketed[2];
    if (isIP(host) !== 6) {
      throw new InputValidationError(
        field,
        `"[${host}]" is not an IPv6 address`,
      );
    }
  } else if (isIP(raw) === 6) {
    host = raw;
  } else {
    const idx = raw.lastIndexOf(':');
    host = idx >= 0 ? raw.slice(0, idx) : raw;
    portText = idx >= 0 ? raw.slice(idx + 1) : undefined;
    if (!(isIP(host) === 4 || HOSTNAME.test(host))) {
      throw new InputValidationError(
        field,
        `"${host.slice(0, 80)}" is not a valid host name`,
      );
    }
  }
  let port = 22;
  if (portText !== undefined) {
    if (
      !/^\d{1,5}$/.test(portText) ||
      Number(portText) < 1 ||
      Number(portText) > 65535
    ) {
      throw new InputValidationError(
        field,
        `has an invalid port "${portText.slice(0, 10)}"`,
      );
    }
    port = Number(portText);
  }
  return { host: host.replace(/\.$/, '').toLowerCase(), port };
}

/** `host:port` (`[v6]:port`). @public */
export function formatSshHost(endpoint: SshEndpoint): string {
  const host = isIP(endpoint.host) === 6 ? `[${endpoint.host}]` : endpoint.host;
  return `${host}:${endpoint.port}`;
}

/** The host field of a known_hosts line: `host` for port 22, else `[host]:port` (OpenSSH's form). @public */
export function knownHostsHostField(endpoint: SshEndpoint): string {
  return endpoint.port === 22
    ? endpoint.host
    : `[${endpoint.host}]:${endpoint.port}`;
}

/**
 * Validates and normalises a pinned host key fingerprint: `SHA256:` followed by 43 base64
 * characters (a trailing `=` is tolerated and dropped).
 * @public
 */
export function parseHostKeyFingerprint(
  value: string,
  field = 'hostKeyFingerprint',
): string {
  const raw = typeof value === 'string' ? value.trim() : '';
  const m = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(raw);
  if (!m) {
    throw new InputValidationError(
      field,
      'must be an OpenSSH SHA256 fingerprint, e.g. SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s (ssh-keyscan -p PORT HOST | ssh-keygen -lf -)',
    );
  }
  return `SHA256:${m[1]}`;
}

/** One entry of a known_hosts file. @public */
export interface KnownHostsEntry {
  hosts: string[];
  type: string;
  /** `type base64` */
  key: string;
  fingerprint: string;
}

/** Parses known_hosts text (plain host patterns; hashed and marker lines are skipped). @public */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (
      !trimmed ||
      trimmed.startsWith('#') ||
      trimmed.startsWith('@') ||
      trimmed.startsWith('|')
    ) {
      continue;
    }
    const [hosts, ...rest] = trimmed.split(/\s+/);
    try {
      const key = parseSshPublicKey(rest.join(' '));
      out.push({
        hosts: hosts.split(','),
        type: key.type,
        key: key.text,
        fingerprint: key.fingerprint,
      });
    } catch {
      // not a key line
    }
  }
  return out;
}

/** Entries of `knownHosts` that apply to `endpoint` (exact host field match). @public */
export function knownHostsFor(
  knownHosts: string,
  endpoint: SshEndpoint,
): KnownHostsEntry[] {
  const field = knownHostsHostField(endpoint);
  return parseKnownHosts(knownHosts).filter(e => e.hosts.includes(field));
}

/** Result of {@link scanHostKey}. @public */
export interface ScannedHostKey {
  host: string;
  port: number;
  /** Key type, e.g. `ecdsa-sha2-nistp256` (`ssh-rsa` for RSA keys whatever signature algorithm). */
  type: string;
  /** `type base64` */
  publicKey: string;
  fingerprint: string;
  /** The known_hosts line, `[host]:port type base64` (plain `host` for port 22), no newline. */
  knownHosts: string;
}

/** The server's host key did not match the pinned fingerprint (a `ConflictError`). @public */
export class HostKeyMismatchError extends FluxBootstrapError {
  constructor(
    endpoint: SshEndpoint,
    readonly expected: string,
    readonly presented: string[],
  ) {
    super(
      'ConflictError',
      `The SSH host key of ${formatSshHost(
        endpoint,
      )} does not match the pinned fingerprint ${expected}; the server presented ${
        presented.join(', ') || 'no key'
      }. Nothing was written.`,
    );
  }
}

/** The host key could not be scanned: unreachable, not SSH, timeout (a `ServiceUnavailableError`). @public */
export class HostKeyScanError extends FluxBootstrapError {
  constructor(message: string, readonly code?: string) {
    super('ServiceUnavailableError', message);
  }
}

/** Options of {@link scanHostKey}. @public */
export interface ScanHostKeyOptions {
  /** `host:port` or a parsed endpoint. */
  sshHost: string | SshEndpoint;
  /** Whole-scan budget (connect + handshake), default 30 000 ms like flux. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** A pinned `SHA256:` fingerprint; other keys of the server are tried before giving up. */
  expectedFingerprint?: string;
  logger?: EngineLogger;
}

/** Host key signature algorithms per key type, in ssh2's preference order. */
const HOST_KEY_ALGORITHMS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

interface HandshakeOutcome {
  blob?: Buffer;
  /** true when the handshake completed (the server proved it holds the key). */
  verified: boolean;
}

/**
 * One SSH handshake: records the host key, lets the key exchange finish (so the server proves
 * possession of the key by signing the exchange hash), then disconnects before any
 * authentication request is sent. With `reject`, the key is refused right away instead.
 */
function handshakeOnce(
  endpoint: SshEndpoint,
  algorithms: string[],
  accept: (blob: Buffer) => boolean,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<HandshakeOutcome> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let captured: Buffer | undefined;
    let settled = false;
    function onAbort() {
      // eslint-disable-next-line @typescript-eslint/no-use-before-define
      finish(() => reject(signal.reason ?? new OperationAbortedError()));
    }
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      try {
        client.end();
      } catch {
        // already closed
      }
      client.destroy();
      fn();
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    client.on('handshake', () => {
      finish(() => resolve({ blob: captured, verified: true }));
    });
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (captured && /Host denied/i.test(err.message)) {
        finish(() => resolve({ blob: captured, verified: false }));
        return;
      }
      finish(() => reject(err));
    });
    client.on('close', () => {
      finish(() =>
        reject(
          new HostKeyScanError(
            `${formatSshHost(
              endpoint,
            )} closed the connection before the SSH handshake completed`,
            'ECONNRESET',
          ),
        ),
      );
    });
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
        hostVerifier: (key: Buffer) => {
          captured = Buffer.from(key);
          return accept(captured);
        },
      });
    } catch (err) {
      finish(() => reject(err));
    }
  });
}

function describeScanError(
  endpoint: SshEndpoint,
  err: unknown,
  timedOut: boolean,
  timeoutMs: number,
) {
  const e = err as { message?: string; code?: string; level?: string };
  const where = formatSshHost(endpoint);
  if (
    timedOut ||
    /Timed out while waiting for handshake/i.test(e?.message ?? '')
  ) {
    return new HostKeyScanError(
      `Timed out after ${timeoutMs} ms waiting for the SSH handshake with ${where} (is it an SSH server, and is the port right?)`,
      'ETIMEDOUT',
    );
  }
  switch (e?.code) {
    case 'ECONNREFUSED':
      return new HostKeyScanError(
        `Connection to ${where} refused: no SSH server listens there`,
        e.code,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new HostKeyScanError(
        `Cannot resolve the SSH host ${endpoint.host}`,
        e.code,
      );
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new HostKeyScanError(`SSH host ${where} is unreachable`, e.code);
    default:
      return new HostKeyScanError(
        `SSH handshake with ${where} failed: ${e?.message ?? String(err)}`,
        e?.code,
      );
  }
}

/**
 * Reads the SSH host key of `sshHost` through a real SSH handshake (ssh2), like flux's
 * `ScanHostKey`: the single key the server presents with default algorithm preferences. The
 * connection is closed right after the key exchange, before authentication.
 *
 * With `expectedFingerprint`, the key must match; when the first key presented does not, the
 * scan retries restricted to the server's other key types. A mismatch throws
 * {@link HostKeyMismatchError}.
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
  const expected = options.expectedFingerprint
    ? parseHostKeyFingerprint(options.expectedFingerprint)
    : undefined;
  const where = formatSshHost(endpoint);
  const { signal, dispose, timedOut } = combineSignals(
    [options.signal],
    timeoutMs,
  );
  const seen: string[] = [];
  let remainingTypes = Object.keys(HOST_KEY_ALGORITHMS);
  try {
    for (;;) {
      const algorithms = remainingTypes.flatMap(t => HOST_KEY_ALGORITHMS[t]);
      let outcome: HandshakeOutcome;
      try {
        outcome = await handshakeOnce(
          endpoint,
          algorithms,
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
        const message = (err as Error)?.message ?? '';
        if (
          seen.length > 0 &&
          /no matching|handshake failed|host key/i.test(message)
        ) {
          // The server has no further key type to offer.
          throw new HostKeyMismatchError(endpoint, expected!, seen);
        }
        throw describeScanError(endpoint, err, timedOut(), timeoutMs);
      }
      if (!outcome.blob) {
        throw new HostKeyScanError(`${where} sent no host key`);
      }
      const type = sshKeyTypeOfBlob(outcome.blob);
      const fingerprint = sshFingerprint(outcome.blob);
      if (outcome.verified) {
        const publicKey = `${type} ${outcome.blob.toString('base64')}`;
        logger.info(`SSH host key of ${where}: ${type} ${fingerprint}`);
        return {
          host: endpoint.host,
          port: endpoint.port,
          type,
          publicKey,
          fingerprint,
          knownHosts: `${knownHostsHostField(endpoint)} ${publicKey}`,
        };
      }
      seen.push(`${type} ${fingerprint}`);
      logger.info(
        `SSH host key ${type} ${fingerprint} of ${where} is not the pinned ${expected}; asking for another key type`,
      );
      remainingTypes = remainingTypes.filter(t => t !== type);
      if (remainingTypes.length === 0) {
        throw new HostKeyMismatchError(endpoint, expected!, seen);
      }
    }
  } finally {
    dispose();
  }
}
