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
 * throws an error naming REDIS_URL when it is not such a URL.
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
 * (a `pg` database reading the four POSTGRES_* variables, scaffolder task recovery) is appended
 * after the given files, so the in-memory SQLite default of `app-config.yaml` is replaced — the
 * way production Backstage runs. When `REDIS_URL` is set, `app-config.redis.yaml` (Backstage's
 * cache service on Redis) follows. Without any `--config` flag Backstage falls back to
 * `app-config.yaml` (+ `.local.yaml`); that fallback is made explicit here so the overlays do not
 * disable it.
 */
export function backendArgv(
  argv: string[],
  env: NodeJS.ProcessEnv,
  repoRoot: string,
): {
  argv: string[];
  database: 'postgres' | 'default';
  cache: 'redis' | 'default';
} {
  const postgres = !!env.POSTGRES_HOST;
  const redis = !!env[REDIS_ENV_VAR];
  if (!postgres && !redis)
    return { argv, database: 'default', cache: 'default' };
  const missing = postgres ? POSTGRES_ENV_VARS.filter(name => !env[name]) : [];
  if (missing.length) {
    throw new Error(
      `POSTGRES_HOST is set, so the backend uses PostgreSQL, but ${missing.join(
        ', ',
      )} ${missing.length === 1 ? 'is' : 'are'} not set`,
    );
  }
  if (redis) describeRedisUrl(env[REDIS_ENV_VAR]!);
  const out = [...argv];
  const hasConfigFlag = out.some(
    a => a === '--config' || a.startsWith('--config='),
  );
  if (!hasConfigFlag) {
    out.push('--config', path.join(repoRoot, 'app-config.yaml'));
    const local = path.join(repoRoot, 'app-config.local.yaml');
    if (fs.existsSync(local)) out.push('--config', local);
  }
  if (postgres)
    out.push('--config', path.join(repoRoot, 'app-config.postgres.yaml'));
  if (redis) out.push('--config', path.join(repoRoot, 'app-config.redis.yaml'));
  return {
    argv: out,
    database: postgres ? 'postgres' : 'default',
    cache: redis ? 'redis' : 'default',
  };
}
