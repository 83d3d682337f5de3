import fs from 'node:fs';
import type { ConfigLike } from './ConfigLike';

/** How the engine authenticates to Bitbucket Server: Bearer token, or Basic username + password/token. @public */
export type BitbucketServerAuth =
  | { token: string }
  | { username: string; password: string };

/**
 * One Bitbucket Server / Data Center host: credentials from Backstage's
 * `integrations.bitbucketServer[]`, extras (CA, SSH host) from `fluxBootstrap.bitbucketServer[]`.
 * @public
 */
export interface BitbucketServerHostConfig {
  /** `integrations.bitbucketServer[].host`, e.g. `bitbucket.example.com` or `127.0.0.1:7990`. */
  host: string;
  /** REST base, e.g. `https://bitbucket.example.com/bitbucket/rest/api/1.0` (context path kept). */
  apiBaseUrl: string;
  /** Root of the server including its context path, e.g. `https://bitbucket.example.com/bitbucket`. */
  baseUrl: string;
  /** Integration credentials; undefined when the integration has none (a token input is then required). */
  auth?: BitbucketServerAuth;
  /** Extra CA certificates (PEM) trusted for this host, in addition to Node's defaults. */
  caPem?: string;
  /** `host:port` of the SSH endpoint; default `<hostname>:7999`. */
  sshHost: string;
  /** Per-request timeout in milliseconds (default 30 000). */
  requestTimeoutMs: number;
  /** Retries for 429, 5xx and connection resets (default 4). */
  retries: number;
  /** Commit signing key from the integration (`commitSigningKey`), when configured. */
  commitSigningKey?: string;
}

/** Derives the server root (with context path) from an apiBaseUrl ending in `/rest/api/1.0`. @public */
export function baseUrlFromApiBaseUrl(apiBaseUrl: string): string {
  const trimmed = apiBaseUrl.replace(/\/+$/, '');
  return trimmed.replace(/\/rest\/api\/1\.0$/, '');
}

function hostnameOf(host: string): string {
  // host may carry a port; IPv6 literals come bracketed.
  return new URL(`https://${host}`).hostname;
}

/**
 * Reads every configured Bitbucket Server host. Mirrors Backstage's integration defaults
 * (`apiBaseUrl` defaults to `https://<host>/rest/api/1.0`, trailing slashes trimmed, token trimmed).
 * @public
 */
export function readBitbucketServerHosts(
  config: ConfigLike,
): BitbucketServerHostConfig[] {
  const extras = new Map<string, ConfigLike>();
  for (const extra of config.getOptionalConfigArray(
    'fluxBootstrap.bitbucketServer',
  ) ?? []) {
    const host = extra.getOptionalString('host');
    if (host) extras.set(host, extra);
  }
  const hosts: BitbucketServerHostConfig[] = [];
  for (const integration of config.getOptionalConfigArray(
    'integrations.bitbucketServer',
  ) ?? []) {
    const host = integration.getOptionalString('host');
    if (!host) continue;
    const apiBaseUrl = (
      integration.getOptionalString('apiBaseUrl') ??
      `https://${host}/rest/api/1.0`
    ).replace(/\/+$/, '');
    const token = integration.getOptionalString('token')?.trim();
    const username = integration.getOptionalString('username');
    const password = integration.getOptionalString('password');
    let auth: BitbucketServerAuth | undefined;
    if (token) auth = { token };
    else if (username && password) auth = { username, password };
    const extra = extras.get(host);
    let caPem = extra?.getOptionalString('caData');
    const caFile = extra?.getOptionalString('caFile');
    if (!caPem && caFile) caPem = fs.readFileSync(caFile, 'utf8');
    hosts.push({
      host,
      apiBaseUrl,
      baseUrl: baseUrlFromApiBaseUrl(apiBaseUrl),
      auth,
      caPem: caPem || undefined,
      sshHost:
        extra?.getOptionalString('sshHost') ?? `${hostnameOf(host)}:7999`,
      requestTimeoutMs: extra?.getOptionalNumber('requestTimeoutMs') ?? 30_000,
      retries: extra?.getOptionalNumber('retries') ?? 4,
      commitSigningKey: integration.getOptionalString('commitSigningKey'),
    });
  }
  return hosts;
}
