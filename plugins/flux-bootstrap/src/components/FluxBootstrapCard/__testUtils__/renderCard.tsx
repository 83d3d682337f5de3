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
import { screen } from '@testing-library/react';
import {
  FluxBootstrapApi,
  fluxBootstrapApiRef,
} from '../../../api/FluxBootstrapApi';
import { exampleStatuses } from '../../../fixtures';
import { FluxBootstrapCard } from '../FluxBootstrapCard';

/** The card's entity in the operate tests: one cluster, prod-eu ("Production EU"). */
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

/** A mocked client: prod-eu in the example status of `state`; `operate` answers the operate calls. */
export function apiWith(
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

/**
 * Renders the real card for the entity with `api` and a permission API that allows (or denies)
 * every permission; `asked` collects the permission names the card asked for.
 */
export async function renderCard(api: FluxBootstrapApi, allow: boolean) {
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

/** The card's row of prod-eu. */
export const row = () => screen.findByRole('row', { name: /^Production EU / });
