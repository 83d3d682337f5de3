export * from './types';
export { KubeApiError, isKubeApiError } from './errors';
export type { KubeApiErrorKind } from './errors';
export { resolveCluster, isKubeconfigConnection } from './cluster';
export type { KubeconfigClusterConnection } from './cluster';
export { createKubeClient } from './client';
export type { KubeClientOptions } from './client';
