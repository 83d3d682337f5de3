import type { Entity } from '@backstage/catalog-model';
import { discoveryApiRef, fetchApiRef } from '@backstage/core-plugin-api';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import {
  mockApis,
  MockFetchApi,
  registerMswTestHooks,
  renderInTestApp,
  TestApiProvider,
} from '@backstage/test-utils';
import type {
  ClusterBootstrapState,
  EntityClustersResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from '../../api/FluxBootstrapApi';
import { exampleStatuses } from '../../fixtures';
import { EntityFluxBootstrapCard } from '../../plugin';

const server = setupServer();
registerMswTestHooks(server);

const BASE = 'http://backstage.test/api/flux-bootstrap';

const fleet: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'fleet-infra',
    namespace: 'default',
    annotations: { 'flux-bootstrap.io/clusters': 'prod-eu, prod-us' },
  },
  spec: { type: 'service', owner: 'platform', lifecycle: 'production' },
};

interface Seen {
  url: URL;
  authorization: string | null;
}

/** Serves `body` (or an error status) for the entity route and records every request. */
function serveEntity(
  body:
    | EntityClustersResponse
    | { status: number; error: { name: string; message: string } },
): Seen[] {
  const seen: Seen[] = [];
  server.use(
    http.get(
      `${BASE}/entity/:kind/:namespace/:name/clusters`,
      ({ request }) => {
        seen.push({
          url: new URL(request.url),
          authorization: request.headers.get('authorization'),
        });
        if ('status' in body) {
          return HttpResponse.json(
            { error: body.error, response: { statusCode: body.status } },
            { status: body.status },
          );
        }
        return HttpResponse.json(body);
      },
    ),
  );
  return seen;
}

function responseWith(
  states: ClusterBootstrapState[],
  unknownClusters: string[] = [],
) {
  const all = exampleStatuses();
  const items = states.map(s => all[s]);
  return {
    entityRef: 'component:default/fleet-infra',
    clusters: [...items.map(i => i.cluster), ...unknownClusters],
    items,
    unknownClusters,
  };
}

async function renderCard(entity: Entity = fleet) {
  const client = new FluxBootstrapClient({
    discoveryApi: mockApis.discovery({ baseUrl: 'http://backstage.test' }),
    fetchApi: new MockFetchApi({
      injectIdentityAuth: { token: 'user-token-abc' },
    }),
  });
  return renderInTestApp(
    <TestApiProvider
      apis={[
        [fluxBootstrapApiRef, client],
        [discoveryApiRef, mockApis.discovery()],
        [fetchApiRef, new MockFetchApi()],
      ]}
    >
      <EntityProvider entity={entity}>
        <EntityFluxBootstrapCard />
      </EntityProvider>
    </TestApiProvider>,
  );
}

describe('EntityFluxBootstrapCard (legacy frontend system)', () => {
  it('shows a ready cluster: chip, version, controllers, source, linked short SHA, in sync, last reconcile', async () => {
    const seen = serveEntity(responseWith(['ready']));
    await renderCard();
    const row = await screen.findByTestId('flux-cluster-prod-eu');
    const r = within(row);
    expect(r.getByText('Production EU')).toBeInTheDocument();
    expect(r.getByText('Ready')).toBeInTheDocument();
    expect(r.getByText('v2.9.4')).toBeInTheDocument();
    expect(r.getByText('flux bootstrap')).toBeInTheDocument();
    expect(r.getByText('controllers 4/4 ready')).toBeInTheDocument();
    expect(
      r.getByText('ssh://git@bitbucket.example.com:7999/PLAT/fleet-infra.git'),
    ).toBeInTheDocument();
    expect(r.getByText('branch main')).toBeInTheDocument();
    const sha = r.getByText('3f9c1e2b');
    expect(sha.closest('a')).toHaveAttribute(
      'href',
      'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/commits/3f9c1e2b7a4d5c6e8f90a1b2c3d4e5f60718293a',
    );
    expect(r.getByText('in sync')).toBeInTheDocument();
    expect(r.getByText('3 minutes ago')).toBeInTheDocument();
    expect(
      screen.queryByTestId('flux-cluster-prod-eu-details'),
    ).not.toBeInTheDocument();
    // the request went to the entity route with the user's token, without refresh
    expect(seen).toHaveLength(1);
    expect(seen[0].url.pathname).toBe(
      '/api/flux-bootstrap/entity/Component/default/fleet-infra/clusters',
    );
    expect(seen[0].url.searchParams.get('refresh')).toBeNull();
    expect(seen[0].authorization).toBe('Bearer user-token-abc');
  });

  it('shows a failing cluster with the controller message and "behind"', async () => {
    serveEntity(responseWith(['failing']));
    await renderCard();
    const row = await screen.findByTestId('flux-cluster-prod-us');
    expect(within(row).getByText('Failing')).toBeInTheDocument();
    expect(within(row).getByText('behind')).toBeInTheDocument();
    expect(within(row).getByText('42 minutes ago')).toBeInTheDocument();
    const details = screen.getByTestId('flux-cluster-prod-us-details');
    expect(details).toHaveTextContent('knownhosts: key mismatch');
  });

  it('shows installing, suspended, not-installed, unreachable and forbidden clusters with what to do', async () => {
    serveEntity(
      responseWith([
        'installing',
        'suspended',
        'not-installed',
        'unreachable',
        'forbidden',
      ]),
    );
    await renderCard();
    const installing = await screen.findByTestId('flux-cluster-staging');
    expect(within(installing).getByText('Installing')).toBeInTheDocument();
    expect(
      within(installing).getByText('controllers 3/4 ready'),
    ).toBeInTheDocument();
    expect(
      within(installing).getByText('source-controller'),
    ).toBeInTheDocument();
    expect(
      screen.getByTestId('flux-cluster-staging-details'),
    ).toHaveTextContent('controllers not ready: source-controller');

    expect(
      within(screen.getByTestId('flux-cluster-edge-1')).getByText('Suspended'),
    ).toBeInTheDocument();
    expect(screen.getByTestId('flux-cluster-edge-1-details')).toHaveTextContent(
      'flux resume',
    );

    expect(
      within(screen.getByTestId('flux-cluster-dev')).getByText('Not installed'),
    ).toBeInTheDocument();
    expect(screen.getByTestId('flux-cluster-dev-details')).toHaveTextContent(
      'Bootstrap Flux',
    );

    expect(
      within(screen.getByTestId('flux-cluster-lab')).getByText('Unreachable'),
    ).toBeInTheDocument();
    expect(screen.getByTestId('flux-cluster-lab-details')).toHaveTextContent(
      'did not answer within 5 s',
    );
    expect(screen.getByTestId('flux-cluster-lab-details')).toHaveTextContent(
      'caData/caFile',
    );

    expect(
      within(screen.getByTestId('flux-cluster-partner')).getByText('Forbidden'),
    ).toBeInTheDocument();
    expect(
      screen.getByTestId('flux-cluster-partner-details'),
    ).toHaveTextContent('serviceAccountToken');
  });

  it("shows each state with Backstage's status chip of its kind", async () => {
    serveEntity(
      responseWith([
        'ready',
        'failing',
        'installing',
        'suspended',
        'not-installed',
        'unreachable',
        'forbidden',
      ]),
    );
    await renderCard();
    await screen.findByTestId('flux-cluster-prod-eu');
    const chipOf = (cluster: string, label: string) =>
      within(screen.getByTestId(`flux-cluster-${cluster}`))
        .getByText(label)
        .closest('[aria-label^="Status "]')
        ?.getAttribute('aria-label');
    expect({
      ready: chipOf('prod-eu', 'Ready'),
      failing: chipOf('prod-us', 'Failing'),
      installing: chipOf('staging', 'Installing'),
      suspended: chipOf('edge-1', 'Suspended'),
      notInstalled: chipOf('dev', 'Not installed'),
      unreachable: chipOf('lab', 'Unreachable'),
      forbidden: chipOf('partner', 'Forbidden'),
    }).toEqual({
      ready: 'Status ok', // StatusOK
      failing: 'Status error', // StatusError
      installing: 'Status pending', // StatusPending
      suspended: 'Status warning', // StatusWarning
      notInstalled: 'Status aborted', // StatusAborted
      unreachable: 'Status error',
      forbidden: 'Status warning',
    });
  });

  it('warns about cluster names that are not configured', async () => {
    serveEntity(responseWith(['ready'], ['prod-typo']));
    await renderCard();
    expect(
      await screen.findByText(/Not configured: prod-typo/),
    ).toBeInTheDocument();
    expect(screen.getByTestId('flux-cluster-prod-eu')).toBeInTheDocument();
  });

  it('shows the empty state with the annotation and the template link, without asking the backend', async () => {
    const seen = serveEntity(responseWith([]));
    await renderCard({
      ...fleet,
      metadata: { name: 'lonely', namespace: 'default' },
    });
    const empty = await screen.findByTestId('flux-bootstrap-empty');
    expect(empty).toHaveTextContent('flux-bootstrap.io/clusters');
    expect(
      screen.getByText('Bootstrap Flux on a cluster').closest('a'),
    ).toHaveAttribute(
      'href',
      '/create/templates/default/flux-bootstrap-bitbucket-server',
    );
    expect(seen).toHaveLength(0);
  });

  it('says which permission is missing on 403', async () => {
    serveEntity({
      status: 403,
      error: {
        name: 'NotAllowedError',
        message: 'requires the permission "flux.bootstrap.cluster.read"',
      },
    });
    await renderCard();
    expect(
      await screen.findByText(
        /You may not read the Flux bootstrap state of clusters/,
      ),
    ).toBeInTheDocument();
    expect(screen.getByText('flux.bootstrap.cluster.read')).toBeInTheDocument();
  });

  it('says what to do on 401 and 404', async () => {
    serveEntity({
      status: 401,
      error: { name: 'AuthenticationError', message: 'Missing credentials' },
    });
    const first = await renderCard();
    expect(
      await screen.findByText(/Sign in to see the Flux bootstrap state/),
    ).toBeInTheDocument();
    first.unmount();
    serveEntity({
      status: 404,
      error: { name: 'NotFoundError', message: 'No entity' },
    });
    await renderCard();
    expect(
      await screen.findByText(/The status backend does not know this entity/),
    ).toBeInTheDocument();
  });

  it('refreshes with ?refresh=true when the refresh button is pressed', async () => {
    const seen = serveEntity(responseWith(['ready']));
    await renderCard();
    await screen.findByTestId('flux-cluster-prod-eu');
    fireEvent.click(screen.getByRole('button', { name: 'Refresh' }));
    await waitFor(() => expect(seen).toHaveLength(2));
    expect(seen[1].url.searchParams.get('refresh')).toBe('true');
    expect(
      await screen.findByTestId('flux-cluster-prod-eu'),
    ).toBeInTheDocument();
  });
});
