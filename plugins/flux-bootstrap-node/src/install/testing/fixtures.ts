/**
 * Test fixtures for the install tests (not exported from the package): plans generated exactly
 * as the action generates them — the project's Flux bundle fixture through the manifest
 * generator — and cleanup of the cluster-scoped objects an install creates.
 */
import {
  buildFluxBundle,
  KubeCleanup,
  type KubeApiserverInfo,
} from '@flux-bootstrap/test-peers';
import type { ClusterConnection } from '../../config';
import type { KubeObject } from '../../kube/types';
import {
  generateComponentsManifest,
  generateSyncManifest,
  resolveFluxManifestOptions,
  type FluxManifestInput,
} from '../../manifests';
import type { EngineLogger } from '../../util';
import { buildFluxInstallPlan, type FluxInstallPlan } from '../plan';

export const FLUX_VERSION = 'v2.9.4';

let bundleFiles: Promise<Record<string, string>> | undefined;
export function fluxBundleFiles(): Promise<Record<string, string>> {
  bundleFiles ??= buildFluxBundle({ version: FLUX_VERSION }).then(b => b.files);
  return bundleFiles;
}

export function adminConnection(
  kube: KubeApiserverInfo,
  over: Partial<ClusterConnection> = {},
): ClusterConnection {
  return {
    name: 'test-cluster',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
    ...over,
  };
}

export async function planFor(
  namespace: string,
  input: Partial<FluxManifestInput> & { secret?: KubeObject; expectedRevision?: string } = {},
): Promise<FluxInstallPlan> {
  const { secret, expectedRevision, ...manifestInput } = input;
  const resolved = resolveFluxManifestOptions(
    {
      path: 'clusters/test',
      syncUrl: 'https://127.0.0.1:1/scm/flux/fleet.git',
      ...manifestInput,
      namespace,
    },
    { fluxVersion: FLUX_VERSION },
  );
  return buildFluxInstallPlan({
    namespace,
    fluxVersion: resolved.components.version,
    components: resolved.components.components,
    componentsYaml: generateComponentsManifest(await fluxBundleFiles(), resolved.components),
    syncYaml: generateSyncManifest(resolved.sync),
    secret,
    expectedRevision,
  });
}

const CLUSTER_SCOPED_PLURALS: Record<string, string> = {
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
};

/** Tracks the ClusterRoles/Bindings of a plan (its namespace-suffixed RBAC) for deletion. */
export function trackClusterObjects(cleanup: KubeCleanup, plan: FluxInstallPlan): KubeCleanup {
  for (const o of plan.componentObjects) {
    const resource = CLUSTER_SCOPED_PLURALS[o.kind];
    if (resource) cleanup.track({ apiVersion: o.apiVersion, resource, name: o.metadata.name });
  }
  return cleanup;
}

export function recordingLogger() {
  const lines: string[] = [];
  const add = (level: string) => (m: string, meta?: unknown) =>
    lines.push(`${level} ${m}${meta ? ` ${JSON.stringify(meta)}` : ''}`);
  const logger: EngineLogger = {
    error: add('error'),
    warn: add('warn'),
    info: add('info'),
    debug: add('debug'),
  };
  return { logger, lines };
}
