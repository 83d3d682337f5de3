import fs from 'node:fs';
import path from 'node:path';

/** Environment variables that switch the database from in-memory SQLite to PostgreSQL. */
export const POSTGRES_ENV_VARS = [
  'POSTGRES_HOST',
  'POSTGRES_PORT',
  'POSTGRES_USER',
  'POSTGRES_PASSWORD',
] as const;

/** Environment variable that puts Backstage's cache service on Redis (app-config.redis.yaml). */
export const REDIS_ENV_VAR = 'REDIS_URL';

/**
 * Where a `redis://` / `rediss://` URL points, without its credentials (for the start-up line);
 * throws an error naming REDIS_URL, never echoing the value, when it is not such a URL.
 */
export function describeRedisUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(
      `REDIS_URL must be a redis:// or rediss:// URL (e.g. redis://:password@redis:6379), got something else`,
    );
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new Error(
      `REDIS_URL must be a redis:// or rediss:// URL, not ${url.protocol}//`,
    );
  }
  return `${url.protocol}//${url.host}${
    url.pathname.length > 1 ? url.pathname : ''
  }`;
}

/**
 * When `REDIS_URL` is set, appends `app-config.redis.yaml`: Backstage's cache service on Redis,
 * shared by backend replicas (docs/production.md). Without it the in-memory cache stays.
 */
export function redisBackendArgv(
  argv: string[],
  env: NodeJS.ProcessEnv,
  repoRoot: string,
): { argv: string[]; redis?: string } {
  const value = env[REDIS_ENV_VAR];
  if (!value) return { argv };
  const redis = describeRedisUrl(value);
  const out = withExplicitDefaultConfig(argv, repoRoot);
  out.push('--config', path.join(repoRoot, 'app-config.redis.yaml'));
  return { argv: out, redis };
}

/** Finds the repository root (the folder holding app-config.yaml) from a start folder. */
export function findRepoRoot(start: string): string {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, 'app-config.yaml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(start);
    dir = parent;
  }
}

/**
 * The command line the backend's config loader sees. Backstage reads `--config` flags in order,
 * later files overriding earlier ones. When `POSTGRES_HOST` is set, `app-config.postgres.yaml`
 * (a `pg` database reading the four POSTGRES_* variables) is appended after the given files, so
 * the in-memory SQLite default of `app-config.yaml` is replaced — the way production Backstage
 * runs. Without any `--config` flag Backstage falls back to `app-config.yaml` (+ `.local.yaml`);
 * that fallback is made explicit here so the PostgreSQL overlay does not disable it.
 */
export function backendArgv(
  argv: string[],
  env: NodeJS.ProcessEnv,
  repoRoot: string,
): { argv: string[]; database: 'postgres' | 'default' } {
  if (!env.POSTGRES_HOST) return { argv, database: 'default' };
  const missing = POSTGRES_ENV_VARS.filter(name => !env[name]);
  if (missing.length) {
    throw new Error(
      `POSTGRES_HOST is set, so the backend uses PostgreSQL, but ${missing.join(
        ', ',
      )} ${missing.length === 1 ? 'is' : 'are'} not set`,
    );
  }
  const pgConfig = path.join(repoRoot, 'app-config.postgres.yaml');
  const out = withExplicitDefaultConfig(argv, repoRoot);
  out.push('--config', pgConfig);
  return { argv: out, database: 'postgres' };
}

/**
 * A copy of the command line with Backstage's fallback made explicit: without any `--config`
 * flag Backstage reads `app-config.yaml` (+ `.local.yaml`), but an appended overlay would
 * disable that fallback.
 */
function withExplicitDefaultConfig(argv: string[], repoRoot: string): string[] {
  const out = [...argv];
  const hasConfigFlag = out.some(
    a => a === '--config' || a.startsWith('--config='),
  );
  if (!hasConfigFlag) {
    out.push('--config', path.join(repoRoot, 'app-config.yaml'));
    const local = path.join(repoRoot, 'app-config.local.yaml');
    if (fs.existsSync(local)) out.push('--config', local);
  }
  return out;
}

/** The environment variable holding the static token AI agents send to the MCP endpoint. */
export const MCP_TOKEN_ENV_VAR = 'MCP_TOKEN';

/**
 * When `MCP_TOKEN` is set, appends `app-config.mcp.yaml`, which declares it as a static
 * external access token (`backend.auth.externalAccess`, subject `mcp-clients`) limited to the
 * MCP endpoint and the plugins it calls. Without it nothing changes, and agents sign in as users
 * (a Backstage user token) instead. The token must follow Backstage's rules for static tokens
 * (at least 8 characters, no whitespace); the error names the variable, never the value.
 */
export function mcpBackendArgv(
  argv: string[],
  env: NodeJS.ProcessEnv,
  repoRoot: string,
): { argv: string[]; mcpToken: boolean } {
  const token = env[MCP_TOKEN_ENV_VAR];
  if (token === undefined || token === '') return { argv, mcpToken: false };
  if (!/^\S{8,}$/.test(token)) {
    throw new Error(
      `${MCP_TOKEN_ENV_VAR} must be at least 8 characters without whitespace (Backstage's rule for static tokens); generate one with: openssl rand -hex 24`,
    );
  }
  const out = withExplicitDefaultConfig(argv, repoRoot);
  out.push('--config', path.join(repoRoot, 'app-config.mcp.yaml'));
  return { argv: out, mcpToken: true };
}

/** Environment variables of the Bitbucket Server auth provider (app-config.bitbucket-auth.yaml). */
export const BITBUCKET_AUTH_ENV_VARS = {
  clientId: 'AUTH_BITBUCKET_SERVER_CLIENT_ID',
  clientSecret: 'AUTH_BITBUCKET_SERVER_CLIENT_SECRET',
  host: 'AUTH_BITBUCKET_SERVER_HOST',
} as const;

/**
 * When `AUTH_BITBUCKET_SERVER_CLIENT_ID` is set, appends `app-config.bitbucket-auth.yaml`: the
 * Bitbucket Server / Data Center auth provider (`auth.providers.bitbucketServer`, OAuth 2.0
 * against an incoming application link), so templates act on Bitbucket as the signed-in user
 * (docs/how-to/act-as-user.md). The client secret must be set too; the provider's host is
 * `AUTH_BITBUCKET_SERVER_HOST` (host[:port][/context-path]) or else `BITBUCKET_HOST`, returned as
 * `host` for the caller to put into the environment the config reads. Without the client id
 * nothing changes and the provider stays off. Errors name the variables, never their values.
 */
export function bitbucketAuthBackendArgv(
  argv: string[],
  env: NodeJS.ProcessEnv,
  repoRoot: string,
): { argv: string[]; host?: string } {
  const { clientId, clientSecret, host: hostVar } = BITBUCKET_AUTH_ENV_VARS;
  if (!env[clientId]) return { argv };
  if (!env[clientSecret]) {
    throw new Error(
      `${clientId} is set, so the backend signs users in to Bitbucket Server, but ${clientSecret} is not set`,
    );
  }
  const host = env[hostVar] || env.BITBUCKET_HOST;
  if (!host) {
    throw new Error(
      `${clientId} is set, but neither ${hostVar} nor BITBUCKET_HOST names the Bitbucket Server host (host[:port][/context-path])`,
    );
  }
  if (
    !/^[A-Za-z0-9.-]+(:\d+)?(\/[^\s?#]*)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?(\/[^\s?#]*)?$/.test(
      host,
    )
  ) {
    throw new Error(
      `${
        env[hostVar] ? hostVar : 'BITBUCKET_HOST'
      } must be host[:port][/context-path] without a scheme, e.g. bitbucket.example.com or bitbucket.example.com:8443/bitbucket (Backstage builds https://<host>/rest/oauth2/latest/… from it)`,
    );
  }
  const out = withExplicitDefaultConfig(argv, repoRoot);
  out.push('--config', path.join(repoRoot, 'app-config.bitbucket-auth.yaml'));
  return { argv: out, host: host.replace(/\/+$/, '') };
}
