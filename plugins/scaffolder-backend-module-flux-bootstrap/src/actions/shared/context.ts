import type { Config } from '@backstage/config';
import {
  BitbucketRepoRef,
  BitbucketServerAuth,
  BitbucketServerHostConfig,
  EngineLogger,
  FluxBootstrapSettings,
  FluxBootstrapSettingsSource,
  fluxBootstrapSettings,
  InputValidationError,
  parseBitbucketRepoUrl,
  Redactor,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';

/**
 * What every action factory receives: the settings the module read once at start, or the root
 * config (then the factory reads it, once).
 */
export type FluxBootstrapActionOptions =
  | { settings: FluxBootstrapSettingsSource }
  | { config: Config };

/** The settings an action uses: read once, never per run. */
export function actionSettings(
  options: FluxBootstrapActionOptions,
): FluxBootstrapSettingsSource {
  return 'settings' in options
    ? options.settings
    : fluxBootstrapSettings(options.config);
}

/** The scaffolder context fields the shared helpers use (kept structural for tests). */
export interface ActionContextLike {
  logger: EngineLogger;
  secrets?: Record<string, string | undefined>;
  signal?: AbortSignal;
  isDryRun?: boolean;
}

/**
 * A redactor seeded with every task secret and the given extra secrets, and a logger that passes
 * every line through it. The scaffolder already redacts task secrets; this also covers
 * integration credentials and values the action derives (generated keys).
 */
export function createActionRedaction(
  ctx: ActionContextLike,
  extraSecrets: Array<string | undefined> = [],
): { redactor: Redactor; logger: EngineLogger } {
  const redactor = new Redactor([
    ...Object.values(ctx.secrets ?? {}),
    ...extraSecrets,
  ]);
  return { redactor, logger: redactor.wrapLogger(ctx.logger) };
}

/**
 * Strips secrets from an error before it reaches the task log. The engine's errors already carry
 * Backstage's names (`InputError`, `NotFoundError`, …) and their detail (`field`, `kind`,
 * `status`), which the redacted copy keeps.
 */
export function toActionError(error: unknown, redactor: Redactor): Error {
  return redactor.redactError(error);
}

/** Resolved Bitbucket access for one action run. */
export interface ResolvedBitbucket {
  ref: BitbucketRepoRef;
  host: BitbucketServerHostConfig;
  auth: BitbucketServerAuth;
  /** Where the credentials came from, for log lines (never the value). */
  authSource:
    | 'input token'
    | 'integration token'
    | 'integration username and password';
}

/**
 * Parses `repoUrl` against the configured integrations and picks credentials: the `token` input
 * (from a Secret field) when given, else the integration's token or username/password.
 * With `scaffolder.requireScmUserCredentials: true` the token input is mandatory.
 * Throws InputValidationError (no request is sent) when anything is missing.
 */
export function resolveBitbucket(
  settings: FluxBootstrapSettings,
  input: { repoUrl: string; token?: string },
): ResolvedBitbucket {
  const hosts = settings.bitbucketServer;
  const ref = parseBitbucketRepoUrl(input.repoUrl, hosts);
  const host = hosts.find(h => h.host === ref.host)!;
  const requireUser = settings.requireScmUserCredentials;
  const token = input.token?.trim();
  if (token) {
    // Bitbucket HTTP access tokens are Bearer tokens for REST; for git over HTTPS the
    // integration's username (if any) lets Basic auth be used as well.
    return { ref, host, auth: { token }, authSource: 'input token' };
  }
  if (requireUser) {
    throw new InputValidationError(
      'token',
      `is required: scaffolder.requireScmUserCredentials is enabled, so the integration's credentials for ${ref.host} are not used`,
    );
  }
  if (!host.auth) {
    throw new InputValidationError(
      'token',
      `is required: integrations.bitbucketServer for ${ref.host} has neither a token nor a username and password`,
    );
  }
  return {
    ref,
    host,
    auth: host.auth,
    authSource:
      'token' in host.auth
        ? 'integration token'
        : 'integration username and password',
  };
}

/** How errors and logs name the credentials of a {@link ResolvedBitbucket} (never their value). */
export function describeCredentials(resolved: ResolvedBitbucket): string {
  switch (resolved.authSource) {
    case 'input token':
      return 'the token input';
    case 'integration token':
      return `the token of integrations.bitbucketServer for ${resolved.host.host}`;
    default:
      return `the username and password of integrations.bitbucketServer for ${resolved.host.host}`;
  }
}

/**
 * Adapts the scaffolder's `ctx.checkpoint({ key, fn })` to the engine's `(key, fn)` form.
 * Values returned by `fn` must be JSON.
 */
export function checkpointFor(ctx: {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  checkpoint(opts: { key: string; fn: () => Promise<any> }): Promise<any>;
}): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  return <T>(key: string, fn: () => Promise<T>) =>
    ctx.checkpoint({ key, fn }) as Promise<T>;
}
