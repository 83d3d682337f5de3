import { entityRouteRef } from '@backstage/plugin-catalog-react';
import { renderInTestApp, TestApiProvider } from '@backstage/test-utils';
import type {
  ClusterBootstrapStatus,
  ClusterStreamLine,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import {
  FluxBootstrapApi,
  FluxBootstrapStreamOptions,
  fluxBootstrapApiRef,
} from '../../api/FluxBootstrapApi';
import { exampleStatuses } from '../../fixtures';
import { FluxFleetPage } from './FluxFleetPage';

/*
 * The fleet page over a scripted stream: the test decides when each line arrives, so it can see
 * the page before, between and after the statuses (no sleeps: it waits for what the page shows).
 */

const examples = exampleStatuses();
const statusOf = (
  name: string,
  state: keyof typeof examples,
  title?: string,
): ClusterBootstrapStatus => ({ ...examples[state], cluster: name, title });

const FLEET = [
  { name: 'prod-eu', title: 'Production EU' },
  { name: 'prod-us', title: 'Production US' },
  { name: 'staging' },
  { name: 'lab' },
];

/** A stream the test feeds line by line; every call of streamClusters is recorded. */
function scriptedStream() {
  const calls: FluxBootstrapStreamOptions[] = [];
  let current:
    | { options: FluxBootstrapStreamOptions; end: () => void }
    | undefined;
  const api: FluxBootstrapApi = {
    getEntityClusters: jest.fn(),
    getCluster: jest.fn(),
    listClusters: jest.fn(),
    getBitbucketServerIntegrations: jest.fn(),
    operateCluster: jest.fn(),
    streamClusters: jest.fn(
      options =>
        new Promise<void>((resolve, reject) => {
          calls.push(options);
          current = { options, end: resolve };
          options.signal?.addEventListener('abort', () =>
            reject(new DOMException('aborted', 'AbortError')),
          );
        }),
    ),
  };
  const send = (line: ClusterStreamLine) =>
    act(() => {
      current!.options.onLine(line);
    });
  const end = () =>
    act(async () => {
      current!.end();
    });
  return { api, calls, send, end };
}

async function renderPage(api: FluxBootstrapApi) {
  return renderInTestApp(
    <TestApiProvider apis={[[fluxBootstrapApiRef, api]]}>
      <FluxFleetPage />
    </TestApiProvider>,
    { mountedRoutes: { '/catalog/:namespace/:kind/:name': entityRouteRef } },
  );
}

const rowOf = (name: string) =>
  screen.findByRole('row', { name: new RegExp(`^${name} \\(entity\\)`) });

describe('FluxFleetPage', () => {
  it('shows every cluster as soon as the list arrives, and each status as it arrives', async () => {
    const s = scriptedStream();
    await renderPage(s.api);
    await waitFor(() => expect(s.calls).toHaveLength(1));
    expect(s.calls[0].refresh).toBe(false);
    await s.send({ type: 'clusters', items: FLEET });
    // Listed before any status: each row says it is being read.
    const lab = await rowOf('lab');
    expect(
      within(lab).getByRole('img', { name: 'State: Reading' }),
    ).toBeInTheDocument();

    await s.send({
      type: 'status',
      status: statusOf('prod-eu', 'ready', 'Production EU'),
    });
    const prod = within(await rowOf('Production EU'));
    expect(
      await prod.findByRole('img', { name: 'State: Ready' }),
    ).toBeInTheDocument();
    expect(prod.getByText('v2.9.4')).toBeInTheDocument();
    expect(prod.getByText('4/4')).toBeInTheDocument();
    expect(prod.getByText('in sync')).toBeInTheDocument();
    expect(
      prod.getByRole('link', { name: 'commit 3f9c1e2b of prod-eu' }),
    ).toHaveAttribute(
      'href',
      'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/commits/3f9c1e2b7a4d5c6e8f90a1b2c3d4e5f60718293a',
    );
    expect(prod.getByText('3 minutes ago')).toBeInTheDocument();
    expect(
      prod.getByRole('link', { name: 'Production EU (entity)' }),
    ).toHaveAttribute('href', '/catalog/default/resource/prod-eu');
    // The dead one is still being read.
    expect(
      within(await rowOf('lab')).getByRole('img', { name: 'State: Reading' }),
    ).toBeInTheDocument();
    expect(screen.getByTestId('flux-fleet-summary')).toHaveTextContent(
      '4 of 4 clusters shown; 3 still being read',
    );

    await s.send({
      type: 'status',
      status: statusOf('prod-us', 'failing', 'Production US'),
    });
    await s.send({ type: 'status', status: statusOf('staging', 'installing') });
    await s.send({ type: 'status', status: statusOf('lab', 'unreachable') });
    await s.send({ type: 'done', count: 4 });
    await s.end();
    const lab2 = within(await rowOf('lab'));
    expect(
      await lab2.findByRole('img', { name: 'State: Unreachable' }),
    ).toBeInTheDocument();
    expect(lab2.getByText(/did not answer within 5 s/)).toBeInTheDocument();
    const us = within(await rowOf('Production US'));
    expect(us.getByText('behind')).toBeInTheDocument();
    expect(us.getByText(/knownhosts: key mismatch/)).toBeInTheDocument();
  });

  it('counts clusters per state, filters by state and searches by name or title', async () => {
    const s = scriptedStream();
    await renderPage(s.api);
    await waitFor(() => expect(s.calls).toHaveLength(1));
    await s.send({ type: 'clusters', items: FLEET });
    for (const [name, state, title] of [
      ['prod-eu', 'ready', 'Production EU'],
      ['prod-us', 'ready', 'Production US'],
      ['staging', 'failing', undefined],
      ['lab', 'unreachable', undefined],
    ] as const)
      await s.send({ type: 'status', status: statusOf(name, state, title) });
    await s.end();

    const counts = await screen.findByRole('radiogroup', {
      name: 'Clusters per state (filter)',
    });
    await waitFor(() =>
      expect(
        within(counts)
          .getAllByRole('radio')
          .map(b => b.getAttribute('aria-label')),
      ).toEqual(['All: 4', 'Ready: 2', 'Failing: 1', 'Unreachable: 1']),
    );
    await userEvent.click(
      within(counts).getByRole('radio', { name: 'Ready: 2' }),
    );
    await waitFor(() =>
      expect(screen.getByTestId('flux-fleet-summary')).toHaveTextContent(
        '2 of 4 clusters shown',
      ),
    );
    expect(screen.queryByRole('row', { name: /^staging / })).toBeNull();
    expect(await rowOf('Production US')).toBeInTheDocument();

    await userEvent.click(
      within(counts).getByRole('radio', { name: 'All: 4' }),
    );
    await userEvent.type(
      screen.getByRole('searchbox', {
        name: 'Search clusters by name or title',
      }),
      'US',
    );
    await waitFor(() =>
      expect(screen.getByTestId('flux-fleet-summary')).toHaveTextContent(
        '1 of 4 clusters shown',
      ),
    );
    expect(await rowOf('Production US')).toBeInTheDocument();
    expect(screen.queryByRole('row', { name: /^Production EU / })).toBeNull();
    await userEvent.clear(
      screen.getByRole('searchbox', {
        name: 'Search clusters by name or title',
      }),
    );
    await userEvent.type(
      screen.getByRole('searchbox', {
        name: 'Search clusters by name or title',
      }),
      'stag',
    );
    expect(await rowOf('staging')).toBeInTheDocument();
    await waitFor(() =>
      expect(screen.getByTestId('flux-fleet-summary')).toHaveTextContent(
        '1 of 4 clusters shown',
      ),
    );
  });

  it('reads again with refresh when Refresh is pressed, and aborts the stream on unmount', async () => {
    const s = scriptedStream();
    const page = await renderPage(s.api);
    await waitFor(() => expect(s.calls).toHaveLength(1));
    await s.send({ type: 'clusters', items: FLEET.slice(0, 1) });
    await s.send({
      type: 'status',
      status: statusOf('prod-eu', 'ready', 'Production EU'),
    });
    await s.end();
    await userEvent.click(
      await screen.findByRole('button', { name: 'Refresh' }),
    );
    await waitFor(() => expect(s.calls).toHaveLength(2));
    expect(s.calls[1].refresh).toBe(true);
    // The second stream is still open when the page goes away.
    const signal = s.calls[1].signal!;
    expect(signal.aborted).toBe(false);
    page.unmount();
    expect(signal.aborted).toBe(true);
  });

  it('pages a large fleet; counts, filter and search still cover all of it', async () => {
    const s = scriptedStream();
    await renderPage(s.api);
    await waitFor(() => expect(s.calls).toHaveLength(1));
    const many = Array.from({ length: 60 }, (_, i) => ({
      name: `c-${String(i + 1).padStart(2, '0')}`,
    }));
    await s.send({ type: 'clusters', items: many });
    for (const c of many)
      await s.send({ type: 'status', status: statusOf(c.name, 'ready') });
    await s.end();
    await waitFor(() =>
      expect(screen.getByTestId('flux-fleet-summary')).toHaveTextContent(
        '60 of 60 clusters shown',
      ),
    );
    expect(await rowOf('c-01')).toBeInTheDocument();
    expect(screen.queryByRole('row', { name: /^c-51 / })).toBeNull();
    await userEvent.click(screen.getByRole('button', { name: /next/i }));
    expect(await rowOf('c-51')).toBeInTheDocument();
    expect(screen.queryByRole('row', { name: /^c-01 / })).toBeNull();
    expect(
      within(
        screen.getByRole('radiogroup', { name: 'Clusters per state (filter)' }),
      ).getByRole('radio', { name: 'Ready: 60' }),
    ).toBeInTheDocument();
  });

  it('says which permission is missing when the stream is refused', async () => {
    const api = scriptedStream().api;
    api.streamClusters = jest.fn(async () => {
      throw Object.assign(new Error('forbidden'), {
        name: 'ResponseError',
        response: { status: 403 },
      });
    });
    await renderPage(api);
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(
      'You may not read the Flux bootstrap state of clusters',
    );
    expect(alert).toHaveTextContent('flux.bootstrap.cluster.read');
  });
});
