import type { Entity } from '@backstage/catalog-model';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { permissionApiRef } from '@backstage/plugin-permission-react';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  mockApis,
  renderInTestApp,
  TestApiProvider,
} from '@backstage/test-utils';
import type { ClusterBootstrapState } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { screen, waitFor, within } from '@testing-library/react';
import {
  FluxBootstrapApi,
  fluxBootstrapApiRef,
} from '../../api/FluxBootstrapApi';
import { exampleStatuses } from '../../fixtures';
import { FluxBootstrapCard } from './FluxBootstrapCard';

/*
 * Operating Flux from the card: the buttons appear only when the permission policy allows
 * flux.bootstrap.cluster.operate, call the client for the operate routes, and show the answer or
 * the refusal. The API and the permission API are mocks; the card, its buttons and the dialog
 * are the real components. This file: a user without the permission (usePermission caches its
 * answer per test file).
 */

const entity: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'fleet-infra',
    namespace: 'default',
    annotations: { 'flux-bootstrap.io/clusters': 'prod-eu' },
  },
  spec: { type: 'service', owner: 'platform', lifecycle: 'production' },
};

function apiWith(
  state: ClusterBootstrapState,
  operate: FluxBootstrapApi['operateCluster'],
): FluxBootstrapApi {
  return {
    getEntityClusters: jest.fn(async () => ({
      entityRef: 'component:default/fleet-infra',
      clusters: ['prod-eu'],
      items: [
        {
          ...exampleStatuses()[state],
          cluster: 'prod-eu',
          title: 'Production EU',
        },
      ],
      unknownClusters: [],
    })),
    getCluster: jest.fn(),
    listClusters: jest.fn(),
    getBitbucketServerIntegrations: jest.fn(),
    streamClusters: jest.fn(),
    operateCluster: jest.fn(operate),
  };
}

async function renderCard(api: FluxBootstrapApi, allow: boolean) {
  const asked: string[] = [];
  const permissionApi = mockApis.permission({
    authorize: request => {
      asked.push(request.permission.name);
      return allow ? AuthorizeResult.ALLOW : AuthorizeResult.DENY;
    },
  });
  await renderInTestApp(
    <TestApiProvider
      apis={[
        [fluxBootstrapApiRef, api],
        [permissionApiRef, permissionApi],
      ]}
    >
      <EntityProvider entity={entity}>
        <FluxBootstrapCard />
      </EntityProvider>
    </TestApiProvider>,
  );
  return { asked };
}

const row = () => screen.findByRole('row', { name: /^Production EU / });

describe('operating Flux from the card, without the permission', () => {
  it('offers no operate button without flux.bootstrap.cluster.operate', async () => {
    const api = apiWith('ready', async () => {
      throw new Error('must not be called');
    });
    const { asked } = await renderCard(api, false);
    const r = within(await row());
    await waitFor(() =>
      expect(asked).toContain('flux.bootstrap.cluster.operate'),
    );
    expect(r.queryByRole('group', { name: /^Operate Flux/ })).toBeNull();
    expect(r.queryByRole('button', { name: /Reconcile now/ })).toBeNull();
    expect(r.queryByRole('button', { name: /Suspend/ })).toBeNull();
    expect(api.operateCluster).not.toHaveBeenCalled();
  });
});
