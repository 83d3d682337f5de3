export {
  startKubeApiserver,
  findKubeBinaries,
  findKubectl,
  kubeconfigYaml,
} from './apiserver';
export type { KubeApiserver, StartKubeApiserverOptions } from './apiserver';
export { KubeHttp, KubeRequestError, kubePath } from './http';
export type { KubeApiserverInfo, KubeResponse } from './http';
export { mintToken, ensureNamespace } from './rbac';
export { mintClientCertificate } from './pki';
export type { PolicyRule, MintTokenOptions } from './rbac';
export { uniqueName, createTestNamespace, KubeCleanup } from './isolation';
export type { ClusterObjectRef } from './isolation';
export { getSharedKubeApiserver, FLUX_TEST_KUBE_ENV } from './shared';
