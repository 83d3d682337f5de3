import { useApi, useRouteRef } from '@backstage/core-plugin-api';
import { entityRouteRef } from '@backstage/plugin-catalog-react';
import {
  Alert,
  Button,
  Cell,
  ColumnConfig,
  Container,
  Flex,
  Link,
  SearchField,
  Table,
  Text,
  ToggleButton,
  ToggleButtonGroup,
} from '@backstage/ui';
import {
  CLUSTER_BOOTSTRAP_STATES,
  ClusterBootstrapState,
  shortSha,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { RiRefreshLine } from '@remixicon/react';
import {
  useCallback,
  useDeferredValue,
  useEffect,
  useMemo,
  useState,
} from 'react';
import { fluxBootstrapApiRef } from '../../api/FluxBootstrapApi';
import { ReadError } from '../FluxBootstrapCard/FluxBootstrapCard';
import {
  controllersReady,
  LastReconcile,
  reasonOf,
  syncWords,
  Unknown,
} from '../shared/ClusterFacts';
import { OperateActions } from '../shared/OperateActions';
import { STATE_LABEL, StateChip, StateIcon } from '../shared/StateChip';
import { FleetCluster, useFleetStatus } from './useFleetStatus';

/** The order of the state filters: what needs attention first after the ready ones. */
const FILTER_ORDER: ClusterBootstrapState[] = [
  'ready',
  'failing',
  'unreachable',
  'forbidden',
  'suspended',
  'awaiting-merge',
  'installing',
  'not-installed',
];

const SYNC_COLOUR = {
  'in sync': 'success',
  behind: 'warning',
  'sync unknown': 'secondary',
} as const;

/** The words of a filter button. */
function filterLabel(f: Filter): string {
  if (f === 'all') return 'All';
  if (f === 'reading') return 'Reading';
  return STATE_LABEL[f];
}

/** The applied commit, linked to Bitbucket when the URL is known. */
function RevisionCell({ cluster }: { cluster: FleetCluster }) {
  const revision = cluster.status?.sync?.lastAppliedRevision;
  const sha = shortSha(revision);
  const url = cluster.status?.repository?.commitUrl;
  if (!sha) return <Unknown />;
  if (!url) return <code title={revision}>{sha}</code>;
  return (
    <Link
      href={url}
      title={revision}
      variant="body-small"
      aria-label={`commit ${sha} of ${cluster.name}`}
    >
      <code>{sha}</code>
    </Link>
  );
}

/** Cells start at the top, so a row's facts line up under their headers. */
const TOP = { verticalAlign: 'top' } as const;

/**
 * Rows per page. Above it the table is paged (react-aria builds a table's whole collection on
 * every render, so a thousand rows at once are slow even when only those in view are drawn);
 * counts, filter and search always cover the whole fleet.
 */
export const PAGE_SIZE = 50;

type Row = FleetCluster & { id: string };
type Filter = ClusterBootstrapState | 'all' | 'reading';

/** The catalog page of a cluster's entity (`resource:default/<name>`). */
function useEntityLink(): (name: string) => string {
  let route:
    | ((p: { kind: string; namespace: string; name: string }) => string)
    | undefined;
  try {
    // eslint-disable-next-line react-hooks/rules-of-hooks
    route = useRouteRef(entityRouteRef);
  } catch {
    route = undefined;
  }
  return useCallback(
    (name: string) =>
      route
        ? route({ kind: 'resource', namespace: 'default', name })
        : `/catalog/default/resource/${encodeURIComponent(name)}`,
    [route],
  );
}

/** Does the cluster match the search text (name or title, case-insensitive)? */
export function matchesSearch(cluster: FleetCluster, text: string): boolean {
  const q = text.trim().toLocaleLowerCase('en-US');
  if (!q) return true;
  return (
    cluster.name.toLocaleLowerCase('en-US').includes(q) ||
    (cluster.title ?? '').toLocaleLowerCase('en-US').includes(q)
  );
}

/** Counts of clusters per state (`reading` for those whose status has not arrived yet). */
export function countByState(clusters: FleetCluster[]): Record<Filter, number> {
  const counts = Object.fromEntries(
    [...CLUSTER_BOOTSTRAP_STATES, 'all', 'reading'].map(s => [s, 0]),
  ) as Record<Filter, number>;
  for (const c of clusters) {
    counts.all++;
    counts[c.status?.state ?? 'reading']++;
  }
  return counts;
}

/**
 * The fleet page: every configured cluster with its Flux bootstrap state, rendered as soon as
 * each cluster's status is known (streamed from `GET /api/flux-bootstrap/clusters/stream`);
 * counts per state that filter the table, a search by name or title, a link to each cluster's
 * entity, refresh, the card's polling rules, and the operate buttons per row for users allowed
 * `flux.bootstrap.cluster.operate`. Shared by the legacy (`FluxFleetPage`) and the new frontend
 * system (the plugin's page at `/flux-fleet`).
 * @public
 */
export function FluxFleetPage() {
  const api = useApi(fluxBootstrapApiRef);
  const fleet = useFleetStatus(api);
  const entityLink = useEntityLink();
  const [filter, setFilter] = useState<Filter>('all');
  const [search, setSearch] = useState('');
  const deferredSearch = useDeferredValue(search);
  const [pageSize, setPageSize] = useState(PAGE_SIZE);
  const [offset, setOffset] = useState(0);
  // "3 minutes ago" is counted from when the statuses last changed.
  const now = useMemo(() => new Date(), [fleet.clusters]); // eslint-disable-line react-hooks/exhaustive-deps
  const counts = useMemo(() => countByState(fleet.clusters), [fleet.clusters]);

  const rows: Row[] = useMemo(
    () =>
      fleet.clusters
        .filter(
          c =>
            filter === 'all' ||
            (filter === 'reading' ? !c.status : c.status?.state === filter),
        )
        .filter(c => matchesSearch(c, deferredSearch))
        .map(c => ({ ...c, id: c.name })),
    [fleet.clusters, filter, deferredSearch],
  );

  // Back to the first page when what is shown changes.
  useEffect(() => setOffset(0), [filter, deferredSearch, pageSize]);
  const page = useMemo(
    () => rows.slice(offset, offset + pageSize),
    [rows, offset, pageSize],
  );
  const { setStatus } = fleet;

  const columns: ColumnConfig<Row>[] = useMemo(
    () => [
      {
        id: 'cluster',
        label: 'Cluster',
        isRowHeader: true,
        defaultWidth: '2fr',
        cell: c => (
          <Cell style={TOP}>
            <Flex direction="column" gap="1" align="start">
              <Link
                href={entityLink(c.name)}
                variant="body-medium"
                weight="bold"
                aria-label={`${c.title ?? c.name} (entity)`}
              >
                {c.title ?? c.name}
              </Link>{' '}
              {c.title && (
                <Text variant="body-x-small" color="secondary">
                  {c.name}
                </Text>
              )}{' '}
              {c.status ? (
                <StateChip state={c.status.state} />
              ) : (
                <Text
                  variant="body-small"
                  color="secondary"
                  role="img"
                  aria-label="State: Reading"
                >
                  Reading…
                </Text>
              )}
            </Flex>
          </Cell>
        ),
      },
      {
        id: 'flux',
        label: 'Flux',
        defaultWidth: '1fr',
        cell: c => (
          <Cell style={TOP}>
            <Flex direction="column" gap="0.5">
              <Text variant="body-small" weight="bold">
                {c.status?.flux?.version ?? <Unknown />}
              </Text>
              {c.status?.flux?.instance && (
                <Text variant="body-x-small" color="secondary">
                  Flux Operator ({c.status.flux.instance.requestedVersion})
                </Text>
              )}
              {c.status?.kubernetesVersion && (
                <Text variant="body-x-small" color="secondary">
                  Kubernetes {c.status.kubernetesVersion}
                </Text>
              )}
            </Flex>
          </Cell>
        ),
      },
      {
        id: 'controllers',
        label: 'Controllers',
        defaultWidth: '1fr',
        cell: c => (
          <Cell style={TOP}>
            {c.status && c.status.components.length > 0 ? (
              <Text
                variant="body-small"
                color={
                  c.status.components.every(x => x.ready)
                    ? 'success'
                    : 'warning'
                }
              >
                {controllersReady(c.status)}
              </Text>
            ) : (
              <Unknown />
            )}
          </Cell>
        ),
      },
      {
        id: 'sync',
        label: 'Sync',
        defaultWidth: '1fr',
        cell: c => {
          const words = c.status ? syncWords(c.status) : undefined;
          return (
            <Cell style={TOP}>
              {words ? (
                <Text
                  variant="body-small"
                  color={SYNC_COLOUR[words]}
                  weight={words === 'behind' ? 'bold' : 'regular'}
                >
                  {words}
                </Text>
              ) : (
                <Unknown />
              )}
            </Cell>
          );
        },
      },
      {
        id: 'revision',
        label: 'Applied',
        defaultWidth: '1fr',
        cell: c => (
          <Cell style={TOP}>
            <RevisionCell cluster={c} />
          </Cell>
        ),
      },
      {
        id: 'reconcile',
        label: 'Last reconcile',
        defaultWidth: '1fr',
        cell: c => (
          <Cell style={TOP}>
            {c.status ? (
              <LastReconcile status={c.status} now={now} />
            ) : (
              <Unknown />
            )}
          </Cell>
        ),
      },
      {
        id: 'reason',
        label: 'Reason',
        defaultWidth: '2fr',
        cell: c => {
          const reason = c.status ? reasonOf(c.status) : undefined;
          const pr = c.status?.pullRequest;
          return (
            <Cell style={TOP}>
              <Flex direction="column" gap="1">
                {pr && (
                  <Text variant="body-small">
                    <Link href={pr.url} variant="body-small">
                      #{pr.id} {pr.fromBranch} → {pr.toBranch}
                    </Link>
                  </Text>
                )}
                {reason ? (
                  <Text
                    variant="body-small"
                    style={{ whiteSpace: 'pre-wrap', wordBreak: 'break-word' }}
                  >
                    {reason}
                  </Text>
                ) : (
                  !pr && <Unknown />
                )}
                {c.status && (
                  <OperateActions status={c.status} onStatus={setStatus} />
                )}
              </Flex>
            </Cell>
          );
        },
      },
    ],
    [entityLink, now, setStatus],
  );

  const filters: Filter[] = [
    'all',
    ...FILTER_ORDER.filter(s => counts[s] > 0 || filter === s),
    ...(counts.reading > 0 ? (['reading'] as const) : []),
  ];

  return (
    <Container>
      <Flex direction="column" gap="4" py="4">
        <Flex justify="between" align="center">
          <Flex direction="column" gap="1">
            <Text as="h1" variant="title-medium" weight="bold">
              Flux fleet
            </Text>
            <Text variant="body-small" color="secondary">
              Every cluster of kubernetes.clusterLocatorMethods with its Flux
              bootstrap state; each row appears as soon as its cluster answered.
            </Text>
          </Flex>
          <Button
            variant="secondary"
            iconStart={<RiRefreshLine size={16} aria-hidden />}
            onPress={fleet.refresh}
            isPending={fleet.streaming && !fleet.loading}
            isDisabled={fleet.streaming}
          >
            Refresh
          </Button>
        </Flex>
        {fleet.error && <ReadError error={fleet.error} />}
        {!fleet.loading && fleet.clusters.length === 0 && !fleet.error && (
          <Alert
            status="info"
            icon
            title="No cluster is configured"
            description="Add clusters to kubernetes.clusterLocatorMethods in app-config.yaml; the fleet page lists each of them."
          />
        )}
        {fleet.clusters.length > 0 && (
          <>
            <Flex gap="3" align="end" style={{ flexWrap: 'wrap' }}>
              <ToggleButtonGroup
                aria-label="Clusters per state (filter)"
                selectionMode="single"
                disallowEmptySelection
                selectedKeys={[filter]}
                onSelectionChange={keys => {
                  const [key] = [...keys];
                  if (key) setFilter(String(key) as Filter);
                }}
              >
                {filters.map(f => (
                  <ToggleButton
                    key={f}
                    id={f}
                    aria-label={`${filterLabel(f)}: ${counts[f]}`}
                  >
                    <Flex gap="1" align="center">
                      {f !== 'all' && f !== 'reading' && (
                        <StateIcon state={f} />
                      )}
                      {filterLabel(f)} <strong>{counts[f]}</strong>
                    </Flex>
                  </ToggleButton>
                ))}
              </ToggleButtonGroup>
              <SearchField
                aria-label="Search clusters by name or title"
                placeholder="Search by name or title"
                value={search}
                onChange={setSearch}
                size="small"
              />
            </Flex>
            <Text
              variant="body-x-small"
              color="secondary"
              aria-live="polite"
              data-testid="flux-fleet-summary"
            >
              {rows.length} of {fleet.clusters.length} clusters shown
              {counts.reading > 0 ? `; ${counts.reading} still being read` : ''}
              {fleet.polling
                ? '; updating on its own while some are not settled'
                : ''}
            </Text>
            <section aria-label="Clusters">
              <Table
                columnConfig={columns}
                data={page}
                pagination={
                  rows.length > PAGE_SIZE
                    ? {
                        type: 'page',
                        pageSize,
                        offset,
                        totalCount: rows.length,
                        pageSizeOptions: [25, 50, 100],
                        onPageSizeChange: setPageSize,
                        hasPreviousPage: offset > 0,
                        hasNextPage: offset + pageSize < rows.length,
                        onPreviousPage: () =>
                          setOffset(o => Math.max(0, o - pageSize)),
                        onNextPage: () => setOffset(o => o + pageSize),
                      }
                    : { type: 'none' }
                }
                emptyState={
                  <Text variant="body-small">
                    No cluster matches the filter and the search.
                  </Text>
                }
              />
            </section>
          </>
        )}
      </Flex>
    </Container>
  );
}
