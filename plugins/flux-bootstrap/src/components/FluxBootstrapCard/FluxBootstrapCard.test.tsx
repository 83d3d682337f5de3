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
import {
  CLUSTER_BOOTSTRAP_STATES,
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
import { exampleOperatorStatus, exampleStatuses } from '../../fixtures';
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

/** The summary row of a cluster, named by its row header (title or name, then its state). */
const rowOf = (name: string) =>
  screen.findByRole('row', {
    name: new RegExp(`^${name.replace(/[()]/g, '\\$&')} `),
  });
/** The details of a cluster (reason, pull request, what to do), in the row under its summary. */
const detailsOf = (name: string) =>
  screen.getByRole('group', { name: `${name}: details` });

describe('EntityFluxBootstrapCard (legacy frontend system)', () => {
  it('is a Backstage UI card named "Flux bootstrap" with a labelled table of clusters', async () => {
    serveEntity(responseWith(['ready']));
    await renderCard();
    const card = await screen.findByRole('article', { name: 'Flux bootstrap' });
    expect(
      within(card).getByRole('grid', {
        name: 'Flux bootstrap state per cluster',
      }),
    ).toBeInTheDocument();
    expect(
      within(card)
        .getAllByRole('columnheader')
        .map(c => c.textContent),
    ).toEqual(['Cluster', 'Flux', 'Source', 'Last reconcile']);
    expect(
      within(card).getByRole('button', { name: 'Refresh' }),
    ).toBeInTheDocument();
  });

  it('shows a ready cluster: chip, version, controllers, source, linked short SHA, in sync, last reconcile', async () => {
    const seen = serveEntity(responseWith(['ready']));
    await renderCard();
    const row = await rowOf('Production EU');
    const r = within(row);
    expect(r.getByRole('rowheader')).toHaveTextContent('Production EU');
    expect(r.getByRole('img', { name: 'State: Ready' })).toBeInTheDocument();
    expect(r.getByText('v2.9.4')).toBeInTheDocument();
    expect(r.getByText('managed by flux bootstrap')).toBeInTheDocument();
    expect(
      r.getByRole('button', { name: /source-controller v1\.9\.4: ready/ }),
    ).toHaveTextContent('controllers 4/4 ready');
    expect(r.getByText('Kubernetes v1.34.2')).toBeInTheDocument();
    expect(
      r.getByRole('link', {
        name: 'ssh://git@bitbucket.example.com:7999/PLAT/fleet-infra.git',
      }),
    ).toHaveAttribute(
      'href',
      'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse',
    );
    expect(r.getByText('branch main')).toBeInTheDocument();
    expect(r.getByRole('link', { name: 'commit 3f9c1e2b' })).toHaveAttribute(
      'href',
      'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/commits/3f9c1e2b7a4d5c6e8f90a1b2c3d4e5f60718293a',
    );
    expect(r.getByText('in sync')).toBeInTheDocument();
    expect(r.getByText('3 minutes ago')).toBeInTheDocument();
    expect(
      screen.queryByRole('group', { name: 'Production EU: details' }),
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
    const row = await rowOf('Production US');
    expect(
      within(row).getByRole('img', { name: 'State: Failing' }),
    ).toBeInTheDocument();
    expect(
      within(row).getByRole('button', {
        name: 'Bitbucket has newer commits (head 9a8b7c6d)',
      }),
    ).toHaveTextContent('behind');
    expect(within(row).getByText('42 minutes ago')).toBeInTheDocument();
    expect(detailsOf('Production US')).toHaveTextContent(
      'knownhosts: key mismatch',
    );
  });

  it('shows a cluster awaiting the merge of its pull request: its own chip, the PR link, each reviewer', async () => {
    serveEntity(responseWith(['awaiting-merge']));
    await renderCard();
    const row = await rowOf('Production AP');
    expect(
      within(row).getByRole('img', { name: 'State: Awaiting merge' }),
    ).toBeInTheDocument();
    const details = detailsOf('Production AP');
    const pr = within(details).getByRole('group', { name: 'Pull request' });
    expect(
      within(pr).getByRole('link', { name: '#12 flux/prod-ap → main' }),
    ).toHaveAttribute(
      'href',
      'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/pull-requests/12',
    );
    const reviewers = within(pr).getByRole('list', { name: 'Reviewers' });
    expect(
      within(reviewers)
        .getAllByRole('listitem')
        .map(li => li.textContent),
    ).toEqual(['Alice Example: approved', 'Bob Example: not reviewed yet']);
    expect(details).toHaveTextContent('once the pull request is merged');
  });

  it('shows an operator-managed cluster: Flux Operator, requested and installed version, Ready, last applied revision', async () => {
    serveEntity({
      entityRef: 'component:default/fleet-infra',
      clusters: ['prod-op'],
      items: [exampleOperatorStatus()],
      unknownClusters: [],
    });
    await renderCard();
    const row = await rowOf('Production (operator)');
    const r = within(row);
    expect(r.getByText('managed by Flux Operator')).toBeInTheDocument();
    const instance = r.getByRole('group', {
      name: 'FluxInstance flux-system/flux',
    });
    expect(instance).toHaveTextContent(
      'FluxInstance flux: requested 2.9.x, installed v2.9.4',
    );
    expect(instance).toHaveTextContent(
      'Ready: True · last applied v2.9.4@sha256:5f0c3a1e9b7d',
    );
    expect(r.getByText('Kubernetes v1.34.2')).toBeInTheDocument();
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
    const installing = await rowOf('staging');
    expect(
      within(installing).getByRole('img', { name: 'State: Installing' }),
    ).toBeInTheDocument();
    expect(
      within(installing).getByText('controllers 3/4 ready'),
    ).toBeInTheDocument();
    expect(
      within(installing).getByText('not ready: source-controller'),
    ).toBeInTheDocument();
    expect(detailsOf('staging')).toHaveTextContent(
      'controllers not ready: source-controller',
    );

    expect(
      within(await rowOf('edge-1')).getByRole('img', {
        name: 'State: Suspended',
      }),
    ).toBeInTheDocument();
    expect(detailsOf('edge-1')).toHaveTextContent('flux resume');

    expect(
      within(await rowOf('dev')).getByRole('img', {
        name: 'State: Not installed',
      }),
    ).toBeInTheDocument();
    expect(detailsOf('dev')).toHaveTextContent('Bootstrap Flux');

    expect(
      within(await rowOf('lab')).getByRole('img', {
        name: 'State: Unreachable',
      }),
    ).toBeInTheDocument();
    expect(detailsOf('lab')).toHaveTextContent('did not answer within 5 s');
    expect(detailsOf('lab')).toHaveTextContent('caData/caFile');

    expect(
      within(await rowOf('partner')).getByRole('img', {
        name: 'State: Forbidden',
      }),
    ).toBeInTheDocument();
    expect(detailsOf('partner')).toHaveTextContent('serviceAccountToken');
  });

  it('tells every state apart by colour, icon and words', async () => {
    serveEntity(responseWith([...CLUSTER_BOOTSTRAP_STATES]));
    await renderCard();
    await rowOf('Production EU');
    const chips = CLUSTER_BOOTSTRAP_STATES.map(state =>
      screen
        .getAllByRole('img', { name: /^State: / })
        .find(c => c.getAttribute('data-state') === state),
    );
    const looks = chips.map(c => ({
      words: c!.textContent,
      icon: c!.querySelector('svg')?.innerHTML,
      colour: c!.style.background,
    }));
    // Words and icons differ for every state; a colour is shared by at most two states.
    expect(new Set(looks.map(l => l.words)).size).toBe(
      CLUSTER_BOOTSTRAP_STATES.length,
    );
    expect(new Set(looks.map(l => l.icon)).size).toBe(
      CLUSTER_BOOTSTRAP_STATES.length,
    );
    expect(looks.every(l => l.icon && l.colour)).toBe(true);
    const byColour = new Map<string, number>();
    for (const l of looks)
      byColour.set(l.colour, (byColour.get(l.colour) ?? 0) + 1);
    expect(Math.max(...byColour.values())).toBeLessThanOrEqual(2);
    expect(byColour.size).toBeGreaterThanOrEqual(5);
  });

  it('warns about cluster names that are not configured', async () => {
    serveEntity(responseWith(['ready'], ['prod-typo']));
    await renderCard();
    expect(
      await screen.findByText(/Not configured: prod-typo/),
    ).toBeInTheDocument();
    expect(await rowOf('Production EU')).toBeInTheDocument();
  });

  it('shows the empty state with the annotation and the template link, without asking the backend', async () => {
    const seen = serveEntity(responseWith([]));
    await renderCard({
      ...fleet,
      metadata: { name: 'lonely', namespace: 'default' },
    });
    await screen.findByText(
      'This entity does not name any Kubernetes cluster.',
    );
    expect(
      screen.getByRole('article', { name: 'Flux bootstrap' }),
    ).toHaveTextContent('flux-bootstrap.io/clusters');
    expect(
      screen.getByRole('link', { name: 'Bootstrap Flux on a cluster' }),
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
    await rowOf('Production EU');
    fireEvent.click(screen.getByRole('button', { name: 'Refresh' }));
    await waitFor(() => expect(seen).toHaveLength(2));
    expect(seen[1].url.searchParams.get('refresh')).toBe('true');
    expect(await rowOf('Production EU')).toBeInTheDocument();
  });
});
