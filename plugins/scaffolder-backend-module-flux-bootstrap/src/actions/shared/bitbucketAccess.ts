import {
  chooseBitbucketCredentials,
  parseBitbucketRepoUrl,
  type BitbucketAccess,
  type FluxBootstrapSettings,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';

/**
 * Parses `repoUrl` against the configured integrations and picks credentials by the engine's one
 * rule (`chooseBitbucketCredentials`: the `token` input, else the integration's, unless
 * `scaffolder.requireScmUserCredentials`), named for logs and errors. Sends nothing; a bad
 * `repoUrl` or missing credentials are an InputError naming the field.
 */
export function bitbucketAccess(
  settings: FluxBootstrapSettings,
  input: { repoUrl: string; token?: string },
): BitbucketAccess {
  const hosts = settings.bitbucketServer;
  const ref = parseBitbucketRepoUrl(input.repoUrl, hosts);
  const host = hosts.find(h => h.host === ref.host)!;
  const chosen = chooseBitbucketCredentials({
    token: input.token,
    host,
    hostName: ref.host,
    requireUserCredentials: settings.requireScmUserCredentials,
  });
  return { ref, host, ...chosen };
}
