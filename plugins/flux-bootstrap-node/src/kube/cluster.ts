import fs from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { ClusterConnection } from '../config/clusters';
import type { FluxBootstrapSettings } from '../config/settings';
import { InputValidationError } from '../util/errors';

/**
 * A cluster resolved from a kubeconfig context. `createKubeClient` reloads the kubeconfig and
 * authenticates through it (exec plugins, auth providers, client certificates), so users whose
 * kubeconfig has no static token work too.
 * @public
 */
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

/** Loads the kubeconfig the backend would use (`$KUBECONFIG`, else `~/.kube/config`). @internal */
export function loadDefaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

function readMaybeFile(file?: string, data?: string): string | undefined {
  if (data) return Buffer.from(data, 'base64').toString('utf8');
  if (file) return fs.readFileSync(file, 'utf8');
  return undefined;
}

function kubeconfigContexts(): { kc: KubeConfig; names: string[] } | undefined {
  try {
    const kc = loadDefaultKubeConfig();
    return { kc, names: kc.getContexts().map(c => c.name) };
  } catch {
    return undefined;
  }
}

function listNames(names: string[]): string {
  return names.length ? names.map(n => `"${n}"`).join(', ') : '(none)';
}

/**
 * Resolves the cluster a template names: a config-located cluster
 * (`kubernetes.clusterLocatorMethods[type=config].clusters[].name`), or — only when
 * `fluxBootstrap.allowKubeconfigContexts` is true — a context of the backend's kubeconfig.
 * Throws InputValidationError naming `field` (and listing what is configured) when the name is
 * empty or unknown. Sends nothing over the network.
 * @public
 */
export function resolveCluster(
  settings: Pick<FluxBootstrapSettings, 'clusters' | 'allowKubeconfigContexts'>,
  name: string,
  field = 'cluster',
): ClusterConnection {
  const wanted = typeof name === 'string' ? name.trim() : '';
  const configured = settings.clusters;
  const allowContexts = settings.allowKubeconfigContexts;
  if (!wanted) {
    throw new InputValidationError(
      field,
      `is required: name one of the configured clusters ${listNames(
        configured.map(c => c.name),
      )}`,
    );
  }
  const fromConfig = configured.find(c => c.name === wanted);
  if (fromConfig) return fromConfig;

  let contextNames: string[] = [];
  if (allowContexts) {
    const loaded = kubeconfigContexts();
    if (loaded) {
      contextNames = loaded.names;
      const { kc } = loaded;
      const ctx = kc.getContextObject(wanted);
      if (ctx) {
        const cluster = kc.getCluster(ctx.cluster);
        if (!cluster) {
          throw new InputValidationError(
            field,
            `kubeconfig context "${wanted}" refers to cluster "${ctx.cluster}", which the kubeconfig does not define`,
          );
        }
        const user = kc.getUser(ctx.user) ?? undefined;
        const conn: KubeconfigClusterConnection = {
          name: wanted,
          url: cluster.server.replace(/\/+$/, ''),
          token: user?.token || undefined,
          caPem: readMaybeFile(cluster.caFile, cluster.caData),
          clientCertPem: readMaybeFile(user?.certFile, user?.certData),
          clientKeyPem: readMaybeFile(user?.keyFile, user?.keyData),
          skipTLSVerify: cluster.skipTLSVerify ?? false,
          source: 'kubeconfig',
          context: wanted,
        };
        return conn;
      }
    }
  }
  const parts = [
    `unknown cluster "${wanted}"; configured clusters (kubernetes.clusterLocatorMethods[type=config].clusters): ${listNames(
      configured.map(c => c.name),
    )}`,
  ];
  if (allowContexts)
    parts.push(`kubeconfig contexts: ${listNames(contextNames)}`);
  throw new InputValidationError(field, parts.join('; '));
}
