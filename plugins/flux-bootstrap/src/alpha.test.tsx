import type { Entity } from '@backstage/catalog-model';
import { ApiBlueprint } from '@backstage/frontend-plugin-api';
import {
  createExtensionTester,
  renderInTestApp,
} from '@backstage/frontend-test-utils';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { EntityCardBlueprint } from '@backstage/plugin-catalog-react/alpha';
import type { ClusterBootstrapState } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { screen, within } from '@testing-library/react';
import plugin, { fluxBootstrapApi, fluxBootstrapEntityCard } from './alpha';
import {
  FluxBootstrapApi,
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from './api/FluxBootstrapApi';
import { exampleStatuses } from './fixtures';

const annotated: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'fleet-infra',
    annotations: { 'flux-bootstrap.io/clusters': 'prod-eu' },
  },
  spec: { type: 'service' },
};
const clusterResource: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Resource',
  metadata: { name: 'prod-eu' },
  spec: { type: 'kubernetes-cluster' },
};
const database: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Resource',
  metadata: { name: 'db' },
  spec: { type: 'database' },
};

/** An API answering with the example status of one state for every cluster asked about. */
function apiAnswering(state: ClusterBootstrapState | Error): FluxBootstrapApi {
  return {
    async getEntityClusters(ref) {
      if (state instanceof Error) throw state;
      const item = {
        ...exampleStatuses()[state],
        cluster: 'prod-eu',
        title: undefined,
      };
      return {
        entityRef: `${ref.kind}:${ref.namespace}/${ref.name}`,
        clusters: ['prod-eu'],
        items: [item],
        unknownClusters: [],
      };
    },
    async getCluster() {
      throw new Error('not used');
    },
    async listClusters() {
      throw new Error('not used');
    },
    async getBitbucketServerIntegrations() {
      throw new Error('not used');
    },
    async streamClusters() {
      throw new Error('not used');
    },
    async operateCluster() {
      throw new Error('not used');
    },
  };
}

async function renderCard(
  state: ClusterBootstrapState | Error,
  entity = annotated,
) {
  const tester = createExtensionTester(fluxBootstrapEntityCard);
  return renderInTestApp(
    <EntityProvider entity={entity}>{tester.reactElement()}</EntityProvider>,
    { apis: [[fluxBootstrapApiRef, apiAnswering(state)]] },
  );
}

describe('flux-bootstrap plugin (new frontend system)', () => {
  it('is a frontend plugin with the flux-bootstrap id, providing the API and the card', () => {
    expect(plugin.pluginId).toBe('flux-bootstrap');
    const factory = createExtensionTester(fluxBootstrapApi).get(
      ApiBlueprint.dataRefs.factory,
    );
    expect(factory.api.id).toBe('plugin.flux-bootstrap.service');
    const client = factory.factory({
      discoveryApi: { getBaseUrl: async () => 'http://x/api/flux-bootstrap' },
      fetchApi: { fetch: async () => new Response('{}') },
    } as any);
    expect(client).toBeInstanceOf(FluxBootstrapClient);
  });

  it('shows the card on cluster Resources and annotated entities only', () => {
    const tester = createExtensionTester(fluxBootstrapEntityCard);
    const filter = tester.get(EntityCardBlueprint.dataRefs.filterFunction);
    expect(filter).toBeDefined();
    expect(filter!(annotated)).toBe(true);
    expect(filter!(clusterResource)).toBe(true);
    expect(filter!(database)).toBe(false);
  });

  it.each([
    ['ready', 'Ready'],
    ['failing', 'Failing'],
    ['installing', 'Installing'],
    ['suspended', 'Suspended'],
    ['not-installed', 'Not installed'],
    ['unreachable', 'Unreachable'],
    ['forbidden', 'Forbidden'],
  ] as const)('renders a %s cluster', async (state, label) => {
    await renderCard(state);
    const row = await screen.findByRole('row', { name: /^prod-eu / });
    expect(within(row).getByText(label)).toBeInTheDocument();
    // every state but ready has a reason, shown under the row
    const reason = exampleStatuses()[state].reason ?? '';
    expect(
      screen.queryByRole('group', { name: 'prod-eu: details' })?.textContent ??
        '',
    ).toContain(reason.split('\n')[0]);
  });

  it('renders the empty state for a cluster-less entity and the error state on 403', async () => {
    const lonely = await renderCard('ready', {
      ...annotated,
      metadata: { name: 'lonely' },
    });
    expect(
      await screen.findByText(
        'This entity does not name any Kubernetes cluster.',
      ),
    ).toBeInTheDocument();
    lonely.unmount();
    const forbidden = Object.assign(new Error('forbidden'), {
      name: 'ResponseError',
      response: { status: 403 },
    });
    await renderCard(forbidden);
    expect(
      await screen.findByText('flux.bootstrap.cluster.read'),
    ).toBeInTheDocument();
  });

  it('renders the loading state while the backend has not answered', async () => {
    const never: FluxBootstrapApi = {
      ...apiAnswering('ready'),
      getEntityClusters: () => new Promise(() => {}),
    };
    const tester = createExtensionTester(fluxBootstrapEntityCard);
    await renderInTestApp(
      <EntityProvider entity={annotated}>
        {tester.reactElement()}
      </EntityProvider>,
      { apis: [[fluxBootstrapApiRef, never]] },
    );
    expect(await screen.findByRole('progressbar')).toBeInTheDocument();
    expect(screen.getByText('Flux bootstrap')).toBeInTheDocument();
    expect(
      screen.queryByRole('row', { name: /^prod-eu / }),
    ).not.toBeInTheDocument();
  });
});
