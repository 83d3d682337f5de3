import fs from 'node:fs/promises';
import type { Config } from '@backstage/config';
import { ScmIntegrations } from '@backstage/integration';

/** How the engine authenticates to Bitbucket Server: Bearer token, or Basic username + password/token. @public */
export type BitbucketServerAuth =
  | { token: string }
  | { username: string; password: string };

/** An `integrations.bitbucketServer[]` host with its `fluxBootstrap.bitbucketServer[]` extras. @public */
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
  commitSigningKey?: string;
}

/** Every configured Bitbucket Server host through `ScmIntegrations`, extras matched by host. @public */
export async function readBitbucketServerHosts(
  config: Config,
): Promise<BitbucketServerHostConfig[]> {
  const extras = new Map(
    (config.getOptionalConfigArray('fluxBootstrap.bitbucketServer') ?? []).map(
      c => [c.getString('host'), c],
    ),
  );
  const integrations = ScmIntegrations.fromConfig(config).bitbucketServer;
  return Promise.all(
    integrations.list().map(async ({ config: integration }) => {
      const { host, apiBaseUrl, token, username, password } = integration;
      const extra = extras.get(host);
      const caFile = extra?.getOptionalString('caFile');
      const caPem =
        extra?.getOptionalString('caData') ||
        (caFile ? await fs.readFile(caFile, 'utf8') : undefined);
      let auth: BitbucketServerAuth | undefined;
      if (token) auth = { token };
      else if (username && password) auth = { username, password };
      return {
        host,
        apiBaseUrl,
        baseUrl: apiBaseUrl.replace(/\/rest\/api\/1\.0$/, ''),
        auth,
        caPem: caPem || undefined,
        sshHost:
          extra?.getOptionalString('sshHost') ??
          `${new URL(`https://${host}`).hostname}:7999`,
        requestTimeoutMs:
          extra?.getOptionalNumber('requestTimeoutMs') ?? 30_000,
        retries: extra?.getOptionalNumber('retries') ?? 4,
        commitSigningKey: integration.commitSigningKey,
      };
    }),
  );
}
