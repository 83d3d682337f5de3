// Kubernetes: kube-apiserver + etcd, tokens, per-test isolation (owner: peers-kube)
export * from './kube';
// Flux: release bundle fixture and controller simulator (owner: peers-kube)
export * from './flux';
// Bitbucket Server double, git over smart HTTP, OpenSSH sshd, shared helpers (owner: peers-bitbucket)
export * from './bitbucket';
export * from './git';
export * from './ssh';
export * from './common';
// Fault-injecting HTTPS proxy, e.g. in front of the kube-apiserver (owner: reliability)
export * from './proxy';
// Redis (Backstage's shared cache between backend replicas) (owner: replicas)
export * from './redis';
