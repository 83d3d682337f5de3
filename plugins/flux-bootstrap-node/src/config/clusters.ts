import fs from 'node:fs';
import type { ConfigLike } from './ConfigLike';

/**
 * How to reach one Kubernetes API server. Comes from Backstage's
 * `kubernetes.clusterLocatorMethods[type=config].clusters[]`, or from a kubeconfig context when
 * `fluxBootstrap.allowKubeconfigContexts` is on (local development).
 * @public
 */
export interface ClusterConnection {
  name: string;
  title?: string;
  /** API server URL, e.g. `https://127.0.0.1:6443`. */
  url: string;
  /** Bearer token (`serviceAccountToken`). */
  token?: string;
  /** PEM CA bundle (decoded from `caData`, or read from `caFile`). */
  caPem?: string;
  /** Client certificate auth (kubeconfig contexts only). */
  clientCertPem?: string;
  clientKeyPem?: string;
  skipTLSVerify: boolean;
  /** `kubeconfig` when resolved from a kubeconfig context. */
  source: 'config' | 'kubeconfig';
}

/**
 * `caData` in Backstage's kubernetes config is base64 PEM (as in kubeconfig files); a raw PEM is
 * accepted too.
 */
function decodeCaData(caData: string): string {
  const trimmed = caData.trim();
  if (trimmed.startsWith('-----BEGIN')) return trimmed;
  return Buffer.from(trimmed, 'base64').toString('utf8');
}

function readCa(caData?: string, caFile?: string): string | undefined {
  if (caData) return decodeCaData(caData);
  if (caFile) return fs.readFileSync(caFile, 'utf8');
  return undefined;
}

/** Reads every config-located cluster. @public */
export function readConfigClusters(config: ConfigLike): ClusterConnection[] {
  const clusters: ClusterConnection[] = [];
  for (const method of config.getOptionalConfigArray(
    'kubernetes.clusterLocatorMethods',
  ) ?? []) {
    if (method.getOptionalString('type') !== 'config') continue;
    for (const c of method.getOptionalConfigArray('clusters') ?? []) {
      const name = c.getOptionalString('name');
      const url = c.getOptionalString('url');
      if (!name || !url) continue;
      const caData = c.getOptionalString('caData');
      const caFile = c.getOptionalString('caFile');
      clusters.push({
        name,
        title: c.getOptionalString('title'),
        url: url.replace(/\/+$/, ''),
        token: c.getOptionalString('serviceAccountToken') || undefined,
        caPem: readCa(caData, caFile),
        skipTLSVerify: c.getOptionalBoolean('skipTLSVerify') ?? false,
        source: 'config',
      });
    }
  }
  return clusters;
}
