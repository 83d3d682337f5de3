/**
 * Engine of the Flux bootstrap plugins. Plain Node.js: no Backstage runtime imports, so the
 * scaffolder actions, the status backend, the test ground and benchmarks all share it.
 *
 * Seams follow flux2's `pkg/bootstrap`: a git provider (Bitbucket Server), git, kube and
 * manifest generation behind small interfaces.
 *
 * @packageDocumentation
 */
export * from './util';
export * from './http';
export * from './config';
export * from './bitbucket';
export * from './manifests';
export * from './git';
export * from './keys';
export * from './kube';
export * from './install';
export * from './status';
export {
  checkKubernetesVersion,
  judgeKubernetesVersion,
} from './upgrade/kubernetesVersions';
export type {
  KubernetesVersionSupport,
  KubernetesVersionVerdict,
} from './upgrade/kubernetesVersions';
export * from './decommission';
export * from './operate';
export * from './fleet';
