/**
 * Test helper (not exported from the package): small pieces of the real-peer preamble that the
 * action tests share.
 */
import net from 'node:net';
import {
  createKubeClient,
  type KubeClient,
  type KubeObject,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  KubeCleanup,
  peerGitEnv,
  PEER_GIT_CONFIG,
  run as runProcess,
  type BitbucketDouble,
  type FaultProxy,
  type KubeApiserverInfo,
} from '@flux-bootstrap/test-peers';

/** Runs git against a bare repository of the Bitbucket double; resolves with trimmed stdout. */
export function bareGit(bb: BitbucketDouble, project: string, slug: string) {
  return async (args: string[]): Promise<string> => {
    const r = await runProcess(
      'git',
      ['--git-dir', bb.repoPath(project, slug), ...args],
      { env: peerGitEnv({}, PEER_GIT_CONFIG) },
    );
    return r.stdout.trim();
  };
}

/** Requests that change something on the cluster, as the proxy saw them: `METHOD path`. */
export function clusterWrites(proxy: FaultProxy): string[] {
  return (
    proxy
      .requests()
      .filter(r => !['GET', 'HEAD'].includes(r.method))
      // Access reviews ask, they change nothing.
      .filter(r => !r.path.endsWith('/selfsubjectaccessreviews'))
      .map(r => `${r.method} ${r.path}`)
  );
}

/** A TCP listener standing in for a cluster: it counts connection attempts and answers none. */
export interface Blackhole {
  /** `https://127.0.0.1:PORT` */
  url: string;
  connections(): number;
  /** Sets the connection count back to 0. */
  reset(): void;
  stop(): Promise<void>;
}

export async function startBlackhole(): Promise<Blackhole> {
  let connections = 0;
  const server = net.createServer(socket => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => connections,
    reset: () => {
      connections = 0;
    },
    stop: () => new Promise<void>(r => server.close(() => r())),
  };
}

type ProjectPermission = Parameters<BitbucketDouble['grantProject']>[2];

/** A user of {@link seedProject}: added, granted `permission` on the project, owner of `token`. */
export interface SeedUser {
  name: string;
  displayName?: string;
  email?: string;
  permission?: ProjectPermission;
  token?: string;
}

/**
 * The usual Bitbucket preamble: the users, the project, each user's project permission and
 * HTTP access token, in that order.
 */
export function seedProject(
  bb: BitbucketDouble,
  project: { key: string; name: string },
  users: SeedUser[],
): void {
  for (const { name, displayName, email } of users)
    bb.addUser({
      name,
      ...(displayName ? { displayName } : {}),
      ...(email ? { email } : {}),
    });
  bb.addProject(project);
  for (const u of users)
    if (u.permission)
      bb.grantProject(project.key, { user: u.name }, u.permission);
  for (const u of users)
    if (u.token) bb.addToken({ token: u.token, user: u.name });
}

/** A kube client with the test apiserver's admin token (close it when done). */
export function adminKubeClient(
  kube: { url: string; adminToken: string; caPem: string },
  name = 'admin',
): Promise<KubeClient> {
  return createKubeClient({
    name,
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });
}

/**
 * Deletes the cluster-wide RBAC objects a Flux install into namespace `ns` made (labelled
 * `app.kubernetes.io/instance=<ns>`), which namespace clean-up does not reach.
 */
export async function removeInstanceClusterRbac(
  kube: KubeApiserverInfo,
  ns: string,
): Promise<void> {
  const cleanup = new KubeCleanup(kube);
  for (const resource of ['clusterroles', 'clusterrolebindings'])
    cleanup.trackSelector({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      resource,
      labelSelector: `app.kubernetes.io/instance=${ns}`,
    });
  await cleanup.run();
}

/** A Secret read back with `client`, its data decoded; undefined when it does not exist. */
export async function readSecret(
  client: KubeClient,
  namespace: string,
  name = 'flux-system',
): Promise<
  | {
      secret: KubeObject & { data?: Record<string, string> };
      data: Record<string, string>;
    }
  | undefined
> {
  const secret = await client.get<
    KubeObject & { data?: Record<string, string> }
  >({ apiVersion: 'v1', kind: 'Secret', name, namespace });
  if (!secret) return undefined;
  const data = Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [
      k,
      Buffer.from(v, 'base64').toString('utf8'),
    ]),
  );
  return { secret, data };
}
