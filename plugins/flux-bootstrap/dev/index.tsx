import { createDevApp } from '@backstage/dev-utils';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import type { Entity } from '@backstage/catalog-model';
import {
  CLUSTER_BOOTSTRAP_STATES,
  ClusterBootstrapState,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { Flex } from '@backstage/ui';
import { ResponseError } from '@backstage/errors';
import {
  FluxBootstrapApi,
  fluxBootstrapApiRef,
} from '../src/api/FluxBootstrapApi';
import {
  exampleFleet,
  exampleOperatorStatus,
  exampleStatuses,
} from '../src/fixtures';
import {
  EntityFluxBootstrapCard,
  FluxFleetPage,
  fluxBootstrapPlugin,
} from '../src/plugin';

/**
 * Dev harness: `backstage-cli package start` in plugins/flux-bootstrap, then open
 * http://localhost:3000/flux-bootstrap/<page>. Every page renders the real card against example
 * answers of the status backend (one page per state, plus empty, loading and error pages), so the
 * card can be looked at and screenshot without clusters; `/flux-fleet?count=1000` is the fleet
 * page over a streamed fixture fleet. Every user may operate (the dev app allows every
 * permission).
 */

const entityNaming = (clusters: string[]): Entity => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'fleet-infra',
    namespace: 'default',
    annotations: clusters.length
      ? { 'flux-bootstrap.io/clusters': clusters.join(', ') }
      : {},
  },
  spec: { type: 'service', owner: 'platform', lifecycle: 'production' },
});

const examples = exampleStatuses();
const clusterOf = (state: ClusterBootstrapState) => examples[state].cluster;

const fixtureApi: FluxBootstrapApi = {
  async getEntityClusters(ref) {
    if (ref.name === 'forbidden-user') {
      throw await ResponseError.fromResponse(
        new Response(
          JSON.stringify({
            error: {
              name: 'NotAllowedError',
              message:
                'Reading the Flux bootstrap state of clusters requires the permission "flux.bootstrap.cluster.read"',
            },
            response: { statusCode: 403 },
          }),
          {
            status: 403,
            statusText: 'Forbidden',
            headers: { 'content-type': 'application/json' },
          },
        ),
      );
    }
    if (ref.name === 'loading') return new Promise(() => {});
    if (ref.name === 'state-operator') {
      const only = exampleOperatorStatus();
      return {
        entityRef: `${ref.kind}:${ref.namespace}/${ref.name}`.toLowerCase(),
        clusters: [only.cluster],
        items: [only],
        unknownClusters: [],
      };
    }
    const state = /^state-(.+)$/.exec(ref.name)?.[1] as
      | ClusterBootstrapState
      | undefined;
    if (state && examples[state]) {
      const only = exampleStatuses()[state];
      return {
        entityRef: `${ref.kind}:${ref.namespace}/${ref.name}`.toLowerCase(),
        clusters: [only.cluster],
        items: [only],
        unknownClusters: [],
      };
    }
    return {
      entityRef: `${ref.kind}:${ref.namespace}/${ref.name}`.toLowerCase(),
      clusters: Object.values(exampleStatuses()).map(s => s.cluster),
      items: Object.values(exampleStatuses()),
      unknownClusters: [],
    };
  },
  async getCluster(name) {
    const found = Object.values(exampleStatuses()).find(
      s => s.cluster === name,
    );
    if (!found) throw new Error(`no cluster ${name}`);
    return found;
  },
  async listClusters() {
    return {
      items: Object.values(exampleStatuses()).map(s => ({
        name: s.cluster,
        title: s.title,
      })),
    };
  },
  async getBitbucketServerIntegrations() {
    return {
      items: [{ host: 'bitbucket.example.com', credentials: 'token' }],
      requireScmUserCredentials: false,
    };
  },
  // The fleet page: `?count=N` clusters (default 40); statuses arrive over ~1 s, the
  // unreachable ones after 3 s, as the status backend streams them.
  async streamClusters({ onLine, signal }) {
    const count = Number(
      new URLSearchParams(window.location.search).get('count') ?? 40,
    );
    const fleet = exampleFleet(count);
    onLine({
      type: 'clusters',
      items: fleet.map(s => ({ name: s.cluster, title: s.title })),
    });
    const wait = (ms: number) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, ms);
        signal?.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new DOMException('aborted', 'AbortError'));
        });
      });
    const live = fleet.filter(s => s.state !== 'unreachable');
    for (let i = 0; i < live.length; i += 10) {
      await wait(100);
      for (const status of live.slice(i, i + 10))
        onLine({ type: 'status', status });
    }
    await wait(3000);
    for (const status of fleet.filter(s => s.state === 'unreachable'))
      onLine({ type: 'status', status });
    onLine({ type: 'done', count: fleet.length });
  },
  async operateCluster(cluster, action, request) {
    const found = Object.values(exampleStatuses()).find(
      s => s.cluster === cluster,
    ) ?? { ...exampleStatuses().ready, cluster };
    const after = { suspend: 'suspended', resume: 'ready' } as const;
    const state = action === 'reconcile' ? found.state : after[action];
    return {
      cluster,
      action,
      status: { ...found, state },
      message: `${action} done${
        request?.reason ? ` (reason: ${request.reason})` : ''
      }`,
    };
  },
};

const page = (entity: Entity) => (
  <Flex direction="column" p="4">
    <EntityProvider entity={entity}>
      <EntityFluxBootstrapCard />
    </EntityProvider>
  </Flex>
);

let app = createDevApp()
  .registerPlugin(fluxBootstrapPlugin)
  .registerApi({
    api: fluxBootstrapApiRef,
    deps: {},
    factory: () => fixtureApi,
  })
  .addPage({
    title: 'All states',
    path: '/flux-bootstrap/all',
    element: page(entityNaming(CLUSTER_BOOTSTRAP_STATES.map(clusterOf))),
  })
  .addPage({
    title: 'Fleet page',
    path: '/flux-fleet',
    element: <FluxFleetPage />,
  })
  .addPage({
    title: 'Operator-managed',
    path: '/flux-bootstrap/state/operator',
    element: page({
      ...entityNaming(['prod-op']),
      metadata: {
        name: 'state-operator',
        annotations: { 'flux-bootstrap.io/clusters': 'prod-op' },
      },
    }),
  })
  .addPage({
    title: 'Empty',
    path: '/flux-bootstrap/empty',
    element: page(entityNaming([])),
  })
  .addPage({
    title: 'Loading',
    path: '/flux-bootstrap/loading',
    element: page({
      ...entityNaming(['prod-eu']),
      metadata: {
        name: 'loading',
        annotations: { 'flux-bootstrap.io/clusters': 'prod-eu' },
      },
    }),
  })
  .addPage({
    title: 'No permission',
    path: '/flux-bootstrap/forbidden-user',
    element: page({
      ...entityNaming(['prod-eu']),
      metadata: {
        name: 'forbidden-user',
        annotations: { 'flux-bootstrap.io/clusters': 'prod-eu' },
      },
    }),
  });

for (const state of CLUSTER_BOOTSTRAP_STATES) {
  app = app.addPage({
    title: `State: ${state}`,
    path: `/flux-bootstrap/state/${state}`,
    element: page({
      ...entityNaming([clusterOf(state)]),
      metadata: {
        name: `state-${state}`,
        annotations: { 'flux-bootstrap.io/clusters': clusterOf(state) },
      },
    }),
  });
}

app.render();
