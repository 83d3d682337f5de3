import type {
  BitbucketAccess,
  FluxBootstrapSettings,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { describeCredentials, resolveBitbucket } from './context';

/**
 * The repository a `repoUrl` names and the credentials to use there (the `token` input, else
 * the integration's), named for logs and errors. Sends nothing; a bad `repoUrl` or missing
 * credentials are an `InputError` naming the field.
 */
export function bitbucketAccess(
  settings: FluxBootstrapSettings,
  input: { repoUrl: string; token?: string },
): BitbucketAccess {
  const resolved = resolveBitbucket(settings, input);
  return { ...resolved, credentials: describeCredentials(resolved) };
}
