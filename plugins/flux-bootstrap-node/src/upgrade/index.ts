export {
  checkKubernetesVersion,
  judgeKubernetesVersion,
  KUBERNETES_VERSION_SUPPORT,
  readKubernetesVersionsConfig,
} from './kubernetesVersions';
export type {
  KubernetesVersionSupport,
  KubernetesVersionVerdict,
} from './kubernetesVersions';
export {
  checkFluxVersionChange,
  componentsFluxVersion,
  KUSTOMIZE_NAME_LABEL,
} from './fluxVersions';
