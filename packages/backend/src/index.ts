/*
 * The runnable Backstage backend of this repository: catalog, scaffolder with the Flux bootstrap
 * actions, the Flux bootstrap status API, guest sign-in, a permission policy and an MCP server
 * for AI agents. `npm start` (scripts/start.js) and `npm run sandbox` (scripts/sandbox.js) run
 * it; see README.md.
 *
 * Database: in-memory SQLite by default (app-config.yaml). When POSTGRES_HOST, POSTGRES_PORT,
 * POSTGRES_USER and POSTGRES_PASSWORD are set, app-config.postgres.yaml is layered on top and
 * the backend uses PostgreSQL — required for scaffolder task recovery across restarts. When
 * REDIS_URL is set, app-config.redis.yaml puts Backstage's cache service on Redis, shared by
 * replicas (docs/production.md).
 */
import { createBackend } from '@backstage/backend-defaults';
import { rootConfigServiceFactory } from '@backstage/backend-defaults/rootConfig';
import {
  backendArgv,
  BITBUCKET_AUTH_ENV_VARS,
  bitbucketAuthBackendArgv,
  findRepoRoot,
  mcpBackendArgv,
  redisBackendArgv,
} from './config';
import { permissionModuleFluxBootstrapPolicy } from './permissions/module';

const repoRoot = findRepoRoot(process.cwd());
const { argv: dbArgv, database } = backendArgv(
  process.argv,
  process.env,
  repoRoot,
);
// REDIS_URL set: app-config.redis.yaml puts the cache service on Redis (docs/production.md).
const { argv: cacheArgv, redis } = redisBackendArgv(
  dbArgv,
  process.env,
  repoRoot,
);
// MCP_TOKEN set: app-config.mcp.yaml adds it as a static token for AI agents (docs/how-to/mcp.md).
const { argv: mcpArgv, mcpToken } = mcpBackendArgv(
  cacheArgv,
  process.env,
  repoRoot,
);
// AUTH_BITBUCKET_SERVER_CLIENT_ID set: app-config.bitbucket-auth.yaml configures Bitbucket Server's
// OAuth 2.0 provider, so templates act on Bitbucket as the user (docs/how-to/act-as-user.md).
const { argv, host: bitbucketAuthHost } = bitbucketAuthBackendArgv(
  mcpArgv,
  process.env,
  repoRoot,
);
if (bitbucketAuthHost) {
  // The overlay reads the host from here (default BITBUCKET_HOST).
  process.env[BITBUCKET_AUTH_ENV_VARS.host] = bitbucketAuthHost;
  // eslint-disable-next-line no-console
  console.log(
    `Bitbucket sign-in: users sign in to https://${bitbucketAuthHost} (OAuth 2.0) when a template acts on Bitbucket as them`,
  );
}
if (database === 'postgres') {
  // eslint-disable-next-line no-console
  console.log(
    `Database: PostgreSQL at ${process.env.POSTGRES_HOST}:${process.env.POSTGRES_PORT} (POSTGRES_* variables)`,
  );
}
if (redis) {
  // eslint-disable-next-line no-console
  console.log(`Cache: Redis at ${redis} (REDIS_URL)`);
}

if (mcpToken) {
  // eslint-disable-next-line no-console
  console.log(
    'MCP: agents may call /api/mcp-actions/v1 with the static token of MCP_TOKEN (app-config.mcp.yaml)',
  );
}

const backend = createBackend();
backend.add(rootConfigServiceFactory({ argv }));

// Serves the production build of packages/app (when built) with its runtime config.
backend.add(import('@backstage/plugin-app-backend'));

// Sign-in: guest, see auth.providers.guest in app-config.yaml.
backend.add(import('@backstage/plugin-auth-backend'));
backend.add(import('@backstage/plugin-auth-backend-module-guest-provider'));
// Bitbucket Server / Data Center OAuth 2.0: inert until auth.providers.bitbucketServer is
// configured (AUTH_BITBUCKET_SERVER_CLIENT_ID, app-config.bitbucket-auth.yaml); then
// /api/auth/bitbucketServer/* gives each user a Bitbucket token of their own, which the
// templates' repository field asks for (requestUserCredentials), so the steps act as that user.
backend.add(
  import('@backstage/plugin-auth-backend-module-bitbucket-server-provider'),
);

// Catalog, with the Template kind.
backend.add(import('@backstage/plugin-catalog-backend'));
backend.add(
  import('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'),
);

// Scaffolder with bitbucket:create-repo, flux:generate-key, flux:push-manifests, flux:install,
// fleet:wait-for-entity and the template global clusterEntityUrl(...).
backend.add(import('@backstage/plugin-scaffolder-backend'));
backend.add(
  import('@flux-bootstrap/plugin-scaffolder-backend-module-flux-bootstrap'),
);

// Cluster bootstrap status for the entity card, at /api/flux-bootstrap; also serves the cluster
// entity locations clusterEntityUrl(...) makes, and reads them for the catalog in-process.
backend.add(import('@flux-bootstrap/plugin-flux-bootstrap-backend'));

// Permissions: allow-all by default; permission.fluxBootstrap.* restricts the bootstrap and
// decommission actions, the status API and who operates clusters
// (packages/backend/src/permissions/policy.ts).
backend.add(import('@backstage/plugin-permission-backend'));
backend.add(permissionModuleFluxBootstrapPolicy);

// MCP for AI agents at /api/mcp-actions/v1: the actions of the plugins listed in
// backend.actions.pluginSources (app-config.yaml: flux-bootstrap's list-clusters,
// get-cluster-status, get-entity-clusters, and reconcile-, suspend- and resume-cluster for
// signed-in users) as MCP tools, with the caller's permissions.
backend.add(import('@backstage/plugin-mcp-actions-backend'));

backend.start();
