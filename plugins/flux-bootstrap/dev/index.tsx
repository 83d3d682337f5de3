import { createDevApp } from '@backstage/dev-utils';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import type { Entity } from '@backstage/catalog-model';
import {
  CLUSTER_BOOTSTRAP_STATES,
  ClusterBootstrapState,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import Grid from '@material-ui/core/Grid';
import { ResponseError } from '@backstage/errors';
import {
  FluxBootstrapApi,
  fluxBootstrapApiRef,
} from '../src/api/FluxBootstrapApi';
import { exampleStatuses } from '../src/fixtures';
import { EntityFluxBootstrapCard, fluxBootstrapPlugin } from '../src/plugin';

/**
 * Dev harness: `backstage-cli package start` in plugins/flux-bootstrap, then open
 * http://localhost:3000/flux-bootstrap/<page>. Every page renders the real card against example
 * answers of the status backend (one page per state, plus empty, loading and error pages), so the
 * card can be looked at and screenshot without clusters.
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
};

const page = (entity: Entity) => (
  <Grid container spacing={3}>
    <Grid item xs={12}>
      <EntityProvider entity={entity}>
        <EntityFluxBootstrapCard />
      </EntityProvider>
    </Grid>
  </Grid>
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
