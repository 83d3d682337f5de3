import type { Entity } from '@backstage/catalog-model';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { renderInTestApp, TestApiProvider } from '@backstage/test-utils';
import type {
  ClusterBootstrapState,
  EntityClustersResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { act, fireEvent, screen, within } from '@testing-library/react';
import {
  FluxBootstrapApi,
  fluxBootstrapApiRef,
} from '../../api/FluxBootstrapApi';
import { exampleStatuses } from '../../fixtures';
import { FluxBootstrapCard } from './FluxBootstrapCard';
import { POLL_INITIAL_MS, POLL_MAX_MS } from './useEntityClusters';

/*
 * The card reads again on its own while a cluster is not settled (installing, not installed,
 * unreachable), backing off while nothing changes, and stops when every cluster is steady or the
 * card goes away. Fake timers: the waits are advanced, never slept.
 */

const entity: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Resource',
  metadata: {
    name: 'staging',
    namespace: 'default',
    annotations: { 'flux-bootstrap.io/clusters': 'staging' },
  },
  spec: { type: 'kubernetes-cluster', owner: 'platform' },
};

/** The `staging` cluster in `state`, read at `at`. */
function response(
  state: ClusterBootstrapState,
  at: number,
  reason?: string,
): EntityClustersResponse {
  const example = exampleStatuses(new Date(at))[state];
  return {
    entityRef: 'resource:default/staging',
    clusters: ['staging'],
    items: [
      {
        ...example,
        cluster: 'staging',
        title: 'Staging',
        checkedAt: new Date(at).toISOString(),
        ...(reason ? { reason } : {}),
      },
    ],
    unknownClusters: [],
  };
}

/** An API whose answers follow `script` (the last one repeats), recording every call. */
function scriptedApi(script: (() => EntityClustersResponse | Error)[]) {
  const calls: { refresh?: boolean }[] = [];
  const api: FluxBootstrapApi = {
    getEntityClusters: jest.fn(async (_ref, options) => {
      calls.push({ refresh: options?.refresh });
      const next = script[Math.min(calls.length - 1, script.length - 1)]();
      if (next instanceof Error) throw next;
      return next;
    }),
    getCluster: jest.fn(),
    listClusters: jest.fn(),
    getBitbucketServerIntegrations: jest.fn(),
    streamClusters: jest.fn(),
    operateCluster: jest.fn(),
  };
  return { api, calls };
}

async function renderCard(api: FluxBootstrapApi) {
  return renderInTestApp(
    <TestApiProvider apis={[[fluxBootstrapApiRef, api]]}>
      <EntityProvider entity={entity}>
        <FluxBootstrapCard />
      </EntityProvider>
    </TestApiProvider>,
  );
}

/** Lets the fake clock run `ms` and the reads it triggers settle. */
async function advance(ms: number) {
  await act(async () => {
    await jest.advanceTimersByTimeAsync(ms);
  });
}

/** The state chip of the row says `label`. */
function expectState(label: string) {
  expect(
    within(screen.getByRole('row', { name: /^Staging / })).getByText(label),
  ).toBeInTheDocument();
}

beforeEach(() => {
  jest.useFakeTimers({ now: Date.parse('2026-03-01T10:00:00Z') });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('FluxBootstrapCard polling', () => {
  it('reads again while the cluster is installing, backs off while nothing changes, and stops once it is ready', async () => {
    const t0 = Date.now();
    const { api, calls } = scriptedApi([
      () => response('installing', t0, 'waiting for source-controller'),
      () => response('installing', t0 + 5_000, 'waiting for source-controller'),
      () => response('installing', t0 + 15_000, 'waiting for the sync'),
      () => response('ready', t0 + 20_000),
    ]);
    await renderCard(api);
    await screen.findByRole('row', { name: /^Staging / });
    expectState('Installing');
    expect(screen.getByText(/^Updating on its own/)).toHaveTextContent(
      'Updating on its own while Staging is not settled',
    );
    expect(calls).toHaveLength(1);

    // 5 s later: read again (from the backend's cache, not ?refresh).
    await advance(POLL_INITIAL_MS);
    expect(calls).toHaveLength(2);
    expect(calls[1]).toEqual({ refresh: false });
    // Nothing changed: the next read waits twice as long.
    await advance(POLL_INITIAL_MS);
    expect(calls).toHaveLength(2);
    await advance(POLL_INITIAL_MS);
    expect(calls).toHaveLength(3);
    // Something changed (the reason): back to 5 s.
    await advance(POLL_INITIAL_MS);
    expect(calls).toHaveLength(4);
    expectState('Ready');
    expect(screen.queryByText(/^Updating on its own/)).toBeNull();

    // Ready is steady: no more reads, however long the card stays open.
    await advance(10 * POLL_MAX_MS);
    expect(calls).toHaveLength(4);
  });

  it('keeps polling a cluster that is not installed yet, the wait capped, until the bootstrap turns it ready', async () => {
    const t0 = Date.now();
    let ready = false;
    const { api, calls } = scriptedApi([
      () =>
        ready ? response('ready', Date.now()) : response('not-installed', t0),
    ]);
    await renderCard(api);
    await screen.findByRole('row', { name: /^Staging / });
    expectState('Not installed');
    // 5, 10, 20, 40, then 60 s (capped), 60 s …
    for (const wait of [5_000, 10_000, 20_000, 40_000, 60_000, 60_000]) {
      const before = calls.length;
      await advance(wait - 1);
      expect(calls).toHaveLength(before);
      await advance(1);
      expect(calls).toHaveLength(before + 1);
    }
    ready = true;
    await advance(POLL_MAX_MS);
    expectState('Ready');
    const total = calls.length;
    await advance(10 * POLL_MAX_MS);
    expect(calls).toHaveLength(total);
  });

  it.each<ClusterBootstrapState>([
    'ready',
    'failing',
    'suspended',
    'forbidden',
  ])('does not poll a %s cluster', async state => {
    const { api, calls } = scriptedApi([() => response(state, Date.now())]);
    await renderCard(api);
    await screen.findByRole('row', { name: /^Staging / });
    await advance(10 * POLL_MAX_MS);
    expect(calls).toHaveLength(1);
    expect(screen.queryByText(/^Updating on its own/)).toBeNull();
  });

  it('stops polling when the card unmounts', async () => {
    const { api, calls } = scriptedApi([
      () => response('installing', Date.now()),
    ]);
    const rendered = await renderCard(api);
    await screen.findByRole('row', { name: /^Staging / });
    await advance(POLL_INITIAL_MS);
    expect(calls).toHaveLength(2);
    rendered.unmount();
    await advance(10 * POLL_MAX_MS);
    expect(calls).toHaveLength(2);
  });

  it('keeps the last answer when a poll fails, and tries again later', async () => {
    const t0 = Date.now();
    const { api, calls } = scriptedApi([
      () => response('installing', t0),
      () => new Error('backend restarting'),
      () => response('ready', t0 + 15_000),
    ]);
    await renderCard(api);
    await screen.findByRole('row', { name: /^Staging / });
    await advance(POLL_INITIAL_MS);
    expect(calls).toHaveLength(2);
    // The failed poll shows no error; the installing row stays.
    expectState('Installing');
    expect(screen.queryByText(/backend restarting/)).toBeNull();
    await advance(2 * POLL_INITIAL_MS);
    expect(calls).toHaveLength(3);
    expectState('Ready');
  });

  it('the refresh button asks for ?refresh and polling goes on from there', async () => {
    const { api, calls } = scriptedApi([
      () => response('installing', Date.now()),
    ]);
    await renderCard(api);
    await screen.findByRole('row', { name: /^Staging / });
    await act(async () => {
      fireEvent.click(screen.getByRole('button', { name: 'Refresh' }));
    });
    expect(calls).toEqual([{ refresh: false }, { refresh: true }]);
    await advance(POLL_INITIAL_MS);
    expect(calls).toEqual([
      { refresh: false },
      { refresh: true },
      { refresh: false },
    ]);
  });
});
