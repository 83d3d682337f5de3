import type {
  ClusterBootstrapState,
  ClusterBootstrapStatus,
  FluxComponentStatus,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';

/**
 * Example statuses, one per state, shaped exactly like the status backend's answers. Used by the
 * tests and by the dev harness (`yarn start` / `backstage-cli package start`) for screenshots.
 */
const SHA = '3f9c1e2b7a4d5c6e8f90a1b2c3d4e5f60718293a';
const HEAD = '9a8b7c6d5e4f30211f2e3d4c5b6a798877665544';
const BB = 'https://bitbucket.example.com';

function controllers(
  version: string,
  notReady: string[] = [],
): FluxComponentStatus[] {
  return [
    'helm-controller',
    'kustomize-controller',
    'notification-controller',
    'source-controller',
  ].map(name => ({
    name,
    ready: !notReady.includes(name),
    image: `ghcr.io/fluxcd/${name}:${version}`,
    tag: version,
    ...(notReady.includes(name)
      ? { message: 'Deployment does not have minimum availability.' }
      : {}),
  }));
}

function minutesAgo(now: Date, minutes: number): string {
  return new Date(now.getTime() - minutes * 60_000).toISOString();
}

/** One example status per state (times relative to `now`). */
export function exampleStatuses(
  now: Date = new Date(),
): Record<ClusterBootstrapState, ClusterBootstrapStatus> {
  const source = (
    url = 'ssh://git@bitbucket.example.com:7999/PLAT/fleet-infra.git',
  ) => ({
    kind: 'GitRepository',
    name: 'flux-system',
    namespace: 'flux-system',
    url,
    branch: 'main',
    ready: true as boolean | null,
    suspended: false,
    revision: `main@sha1:${SHA}`,
    message: `stored artifact for revision 'main@sha1:${SHA}'`,
  });
  const sync = () => ({
    name: 'flux-system',
    namespace: 'flux-system',
    path: './clusters/prod-eu',
    ready: true as boolean | null,
    suspended: false,
    lastAppliedRevision: `main@sha1:${SHA}`,
    lastAttemptedRevision: `main@sha1:${SHA}`,
    lastTransitionTime: minutesAgo(now, 3),
    message: `Applied revision: main@sha1:${SHA}`,
  });
  const repository = (headCommit = SHA) => ({
    host: 'bitbucket.example.com',
    project: 'PLAT',
    slug: 'fleet-infra',
    browseUrl: `${BB}/projects/PLAT/repos/fleet-infra/browse`,
    commitUrl: `${BB}/projects/PLAT/repos/fleet-infra/commits/${SHA}`,
    headCommit,
  });
  const flux = {
    version: 'v2.9.4',
    distribution: 'flux',
    managedBy: 'flux bootstrap',
    bootstrapped: true,
    namespace: 'flux-system',
    reportedBy: 'crd-labels' as const,
  };
  const checkedAt = now.toISOString();
  return {
    ready: {
      cluster: 'prod-eu',
      title: 'Production EU',
      state: 'ready',
      checkedAt,
      flux,
      components: controllers('v1.9.4'),
      source: source(),
      sync: sync(),
      inSync: true,
      repository: repository(),
      kubernetesVersion: 'v1.34.2',
    },
    failing: {
      cluster: 'prod-us',
      title: 'Production US',
      state: 'failing',
      reason:
        "GitRepository flux-system/flux-system: failed to checkout and determine revision: unable to clone 'ssh://git@bitbucket.example.com:7999/PLAT/fleet-infra.git': ssh: handshake failed: knownhosts: key mismatch",
      checkedAt,
      flux,
      components: controllers('v1.9.4'),
      source: {
        ...source(),
        ready: false,
        message:
          "failed to checkout and determine revision: unable to clone 'ssh://git@bitbucket.example.com:7999/PLAT/fleet-infra.git': ssh: handshake failed: knownhosts: key mismatch",
      },
      sync: { ...sync(), lastTransitionTime: minutesAgo(now, 42) },
      inSync: false,
      repository: repository(HEAD),
      kubernetesVersion: 'v1.33.5',
    },
    installing: {
      cluster: 'staging',
      state: 'installing',
      reason:
        'controllers not ready: source-controller (Deployment does not have minimum availability.)\nGitRepository flux-system/flux-system: not reconciled yet',
      checkedAt,
      flux,
      components: controllers('v1.9.4', ['source-controller']),
      source: {
        ...source(),
        ready: null,
        revision: undefined,
        message: undefined,
      },
      sync: {
        ...sync(),
        ready: null,
        lastAppliedRevision: undefined,
        lastAttemptedRevision: undefined,
        lastTransitionTime: undefined,
        message: undefined,
      },
      inSync: null,
    },
    'awaiting-merge': {
      cluster: 'prod-ap',
      title: 'Production AP',
      state: 'awaiting-merge',
      reason:
        'Flux is installed and waits for pull request #12 (flux/prod-ap → main) to be merged.',
      checkedAt,
      flux,
      components: controllers('v1.9.4'),
      source: {
        ...source(),
        ready: null,
        revision: undefined,
        message: undefined,
      },
      sync: {
        ...sync(),
        ready: null,
        lastAppliedRevision: undefined,
        lastAttemptedRevision: undefined,
        lastTransitionTime: undefined,
        message: undefined,
      },
      inSync: null,
      repository: repository(),
      pullRequest: {
        id: 12,
        url: 'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/pull-requests/12',
        title: 'Add Flux v2.9.4 to clusters/prod-ap',
        state: 'OPEN',
        fromBranch: 'flux/prod-ap',
        toBranch: 'main',
        reviewers: [
          { name: 'alice', displayName: 'Alice Example', status: 'APPROVED' },
          { name: 'bob', displayName: 'Bob Example', status: 'UNAPPROVED' },
        ],
      },
    },
    suspended: {
      cluster: 'edge-1',
      state: 'suspended',
      reason:
        'Kustomization flux-system/flux-system is suspended: Flux does not reconcile the cluster from Git.',
      checkedAt,
      flux,
      components: controllers('v1.9.4'),
      source: source(),
      sync: {
        ...sync(),
        suspended: true,
        lastTransitionTime: minutesAgo(now, 60 * 26),
      },
      inSync: true,
      repository: repository(),
    },
    'not-installed': {
      cluster: 'dev',
      state: 'not-installed',
      reason:
        'Flux is not installed: the CustomResourceDefinition gitrepositories.source.toolkit.fluxcd.io does not exist.',
      checkedAt,
      components: [],
      inSync: null,
    },
    unreachable: {
      cluster: 'lab',
      state: 'unreachable',
      reason:
        'The API server at https://10.20.30.40:6443 did not answer within 5 s.',
      checkedAt,
      components: [],
      inSync: null,
    },
    forbidden: {
      cluster: 'partner',
      state: 'forbidden',
      reason:
        'Kubernetes API of cluster "partner": get CustomResourceDefinition gitrepositories.source.toolkit.fluxcd.io failed: customresourcedefinitions.apiextensions.k8s.io "gitrepositories.source.toolkit.fluxcd.io" is forbidden: User "system:serviceaccount:backstage:reader" cannot get resource "customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope (HTTP 403 Forbidden)',
      checkedAt,
      components: [],
      inSync: null,
    },
  };
}

/**
 * A cluster whose Flux the Flux Operator manages: a `FluxInstance` asking for `2.9.x`, with
 * v2.9.4 installed and Ready, as the status backend reports it from `FluxInstance` +
 * `FluxReport`.
 */
export function exampleOperatorStatus(
  now: Date = new Date(),
): ClusterBootstrapStatus {
  const ready = exampleStatuses(now).ready;
  return {
    ...ready,
    cluster: 'prod-op',
    title: 'Production (operator)',
    flux: {
      version: 'v2.9.4',
      distribution: 'flux',
      managedBy: 'flux-operator',
      bootstrapped: false,
      namespace: 'flux-system',
      reportedBy: 'flux-report',
      manager: 'flux-operator',
      instance: {
        name: 'flux',
        namespace: 'flux-system',
        requestedVersion: '2.9.x',
        installedVersion: 'v2.9.4',
        ready: true,
        lastAppliedRevision: 'v2.9.4@sha256:5f0c3a1e9b7d',
        lastAttemptedRevision: 'v2.9.4@sha256:5f0c3a1e9b7d',
        message: 'Reconciliation finished in 2s',
      },
    },
    kubernetesVersion: 'v1.34.2',
  };
}

/**
 * A fleet of `count` clusters in a realistic mix of states (mostly ready, a few behind, failing,
 * installing, awaiting a merge, suspended, unreachable), named `cluster-0001`… For the fleet
 * page's tests, its dev page and its browser benchmark.
 */
export function exampleFleet(
  count: number,
  now: Date = new Date(),
): ClusterBootstrapStatus[] {
  const examples = exampleStatuses(now);
  const operator = exampleOperatorStatus(now);
  const mix: ClusterBootstrapStatus[] = [
    ...Array.from({ length: 12 }, () => examples.ready),
    {
      ...examples.ready,
      inSync: false,
      repository: { ...examples.ready.repository, headCommit: HEAD },
    },
    operator,
    examples.failing,
    examples.installing,
    examples['awaiting-merge'],
    examples.suspended,
    examples.unreachable,
    examples['not-installed'],
  ];
  return Array.from({ length: count }, (_, i) => {
    const base = mix[i % mix.length];
    const name = `cluster-${String(i + 1).padStart(4, '0')}`;
    return {
      ...base,
      cluster: name,
      title: `Cluster ${i + 1} (${base.state})`,
    };
  });
}
