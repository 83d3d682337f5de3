// Kubernetes: kube-apiserver + etcd, tokens, per-test isolation (owner: peers-kube)
export * from './kube';
