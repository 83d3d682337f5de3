// Kubernetes: kube-apiserver + etcd, tokens, per-test isolation (owner: peers-kube)
export * from './kube';
// Flux: release bundle fixture and controller simulator (owner: peers-kube)
export * from './flux';
