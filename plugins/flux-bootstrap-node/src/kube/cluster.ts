import { KubeConfig } from '@kubernetes/client-node';
import type { ClusterConnection } from '../config/clusters';
import type { FluxBootstrapSettings } from '../config/settings';
import { InputValidationError } from '../util/errors';
import { KubeApiError } from './errors';

/** A cluster from a kubeconfig context; `createKubeClient` authenticates through the kubeconfig. @public */
export interface KubeconfigClusterConnection extends ClusterConnection {
  source: 'kubeconfig';
  /** Name of the kubeconfig context (= the cluster name a template used). */
  context: string;
}

/** True for a connection resolved from a kubeconfig context. @public */
export function isKubeconfigConnection(
  conn: ClusterConnection,
): conn is KubeconfigClusterConnection {
  return (
    conn.source === 'kubeconfig' &&
    typeof (conn as Partial<KubeconfigClusterConnection>).context === 'string'
  );
}

/** `$KUBECONFIG`, else `~/.kube/config`. */
function loadDefaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

const b64 = (pem?: string) => pem && Buffer.from(pem).toString('base64');

/** The KubeConfig a connection authenticates with: its context (reloaded), or one built from it. */
export function kubeConfigFor(conn: ClusterConnection): KubeConfig {
  if (isKubeconfigConnection(conn)) {
    const kc = loadDefaultKubeConfig();
    if (!kc.getContextObject(conn.context)) {
      throw new KubeApiError(
        `Kubernetes cluster "${conn.name}": the kubeconfig no longer has context "${conn.context}"`,
        { kind: 'not-found', reason: 'NoContext' },
      );
    }
    kc.setCurrentContext(conn.context);
    return kc;
  }
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: conn.name,
      server: conn.url,
      caData: b64(conn.caPem),
      skipTLSVerify: conn.skipTLSVerify,
    },
    {
      name: 'flux-bootstrap',
      token: conn.token,
      certData: b64(conn.clientCertPem),
      keyData: b64(conn.clientKeyPem),
    },
  );
  return kc;
}

const listNames = (names: string[]) =>
  names.length ? names.map(n => `"${n}"`).join(', ') : '(none)';

/**
 * The cluster a template names: a config-located one, or (with
 * `fluxBootstrap.allowKubeconfigContexts`) a kubeconfig context. An empty or unknown name throws
 * InputValidationError naming `field` and listing the choices. Sends nothing.
 * @public
 */
export function resolveCluster(
  settings: Pick<FluxBootstrapSettings, 'clusters' | 'allowKubeconfigContexts'>,
  name: string,
  field = 'cluster',
): ClusterConnection {
  const wanted = typeof name === 'string' ? name.trim() : '';
  const configured = listNames(settings.clusters.map(c => c.name));
  if (!wanted) {
    throw new InputValidationError(
      field,
      `is required: name one of the configured clusters ${configured}`,
    );
  }
  const fromConfig = settings.clusters.find(c => c.name === wanted);
  if (fromConfig) return fromConfig;

  let kc: KubeConfig | undefined;
  try {
    if (settings.allowKubeconfigContexts) kc = loadDefaultKubeConfig();
  } catch {
    // no readable kubeconfig: no contexts to offer
  }
  const ctx = kc?.getContextObject(wanted);
  if (ctx) {
    const cluster = kc!.getCluster(ctx.cluster);
    if (!cluster) {
      throw new InputValidationError(
        field,
        `kubeconfig context "${wanted}" refers to cluster "${ctx.cluster}", which the kubeconfig does not define`,
      );
    }
    // Credentials stay in the kubeconfig; the token is carried for redactors.
    const conn: KubeconfigClusterConnection = {
      name: wanted,
      url: cluster.server.replace(/\/+$/, ''),
      token: kc!.getUser(ctx.user)?.token || undefined,
      skipTLSVerify: cluster.skipTLSVerify ?? false,
      source: 'kubeconfig',
      context: wanted,
    };
    return conn;
  }
  const contexts = settings.allowKubeconfigContexts
    ? `; kubeconfig contexts: ${listNames(
        kc?.getContexts().map(c => c.name) ?? [],
      )}`
    : '';
  throw new InputValidationError(
    field,
    `unknown cluster "${wanted}"; configured clusters (kubernetes.clusterLocatorMethods[type=config].clusters): ${configured}${contexts}`,
  );
}
