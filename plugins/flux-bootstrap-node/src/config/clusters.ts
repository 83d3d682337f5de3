import fs from 'node:fs/promises';
import type { Config } from '@backstage/config';

/**
 * How to reach one Kubernetes API server: a `kubernetes.clusterLocatorMethods[type=config]`
 * cluster, or a kubeconfig context with `fluxBootstrap.allowKubeconfigContexts`.
 * @public
 */
export interface ClusterConnection {
  name: string;
  title?: string;
  /** API server URL, e.g. `https://127.0.0.1:6443`. */
  url: string;
  token?: string;
  /** PEM CA bundle (decoded from `caData`, or read from `caFile`). */
  caPem?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  skipTLSVerify: boolean;
  source: 'config' | 'kubeconfig';
}

/** `caData` is base64 PEM as in kubeconfig files (raw PEM accepted), or a `caFile` read once. */
async function readCa(c: Config): Promise<string | undefined> {
  const caData = c.getOptionalString('caData')?.trim();
  if (caData?.startsWith('-----BEGIN')) return caData;
  if (caData) return Buffer.from(caData, 'base64').toString('utf8');
  const caFile = c.getOptionalString('caFile');
  return caFile ? fs.readFile(caFile, 'utf8') : undefined;
}

/** Every config-located cluster (entries without a name or URL are left out). @public */
export async function readConfigClusters(
  config: Config,
): Promise<ClusterConnection[]> {
  const entries = (
    config.getOptionalConfigArray('kubernetes.clusterLocatorMethods') ?? []
  )
    .filter(m => m.getOptionalString('type') === 'config')
    .flatMap(m => m.getOptionalConfigArray('clusters') ?? []);
  return Promise.all(
    entries
      .filter(c => c.getOptionalString('name') && c.getOptionalString('url'))
      .map(async c => ({
        name: c.getString('name'),
        title: c.getOptionalString('title'),
        url: c.getString('url').replace(/\/+$/, ''),
        token: c.getOptionalString('serviceAccountToken') || undefined,
        caPem: await readCa(c),
        skipTLSVerify: c.getOptionalBoolean('skipTLSVerify') ?? false,
        source: 'config' as const,
      })),
  );
}
