import { getCompoundEntityRef } from '@backstage/catalog-model';
import { useApi } from '@backstage/core-plugin-api';
import { useEntity } from '@backstage/plugin-catalog-react';
import {
  Alert,
  ButtonIcon,
  Card,
  CardBody,
  CardHeader,
  Column,
  Flex,
  Link,
  Skeleton,
  TableBody,
  TableHeader,
  TableRoot,
  Text,
  Tooltip,
  TooltipTrigger,
} from '@backstage/ui';
import {
  ClusterBootstrapStatus,
  FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION,
  FLUX_BOOTSTRAP_TEMPLATE_PATH,
  fluxBootstrapClusterReadPermission,
  getEntityClusterNames,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { RiRefreshLine } from '@remixicon/react';
import { ReactNode, useCallback, useEffect, useId, useState } from 'react';
import { fluxBootstrapApiRef } from '../../api/FluxBootstrapApi';
import { ClusterDetailRow, ClusterRow, hasDetails } from './ClusterRow';
import { unsettledClusters, useEntityClusters } from './useEntityClusters';

const TITLE = 'Flux bootstrap';

/** The HTTP status of a failed read, when the backend answered. */
export function statusOf(error: unknown): number | undefined {
  const e = error as
    | { response?: { status?: number }; statusCode?: number }
    | undefined;
  return e?.response?.status ?? e?.statusCode;
}

/** The error state of a read, saying what to do about it (shared with the fleet page). */
export function ReadError(props: { error: Error; entityRef?: string }) {
  const status = statusOf(props.error);
  if (status === 403) {
    return (
      <Alert
        status="warning"
        icon
        role="alert"
        title="You may not read the Flux bootstrap state of clusters"
        description={
          <>
            Ask a Backstage administrator to grant you the permission{' '}
            <code>{fluxBootstrapClusterReadPermission.name}</code> in the
            permission policy.
          </>
        }
      />
    );
  }
  if (status === 401) {
    return (
      <Alert
        status="warning"
        icon
        role="alert"
        title="Sign in to see the Flux bootstrap state"
        description="The status backend only answers signed-in users. Sign in again and reload the page."
      />
    );
  }
  if (status === 404 && props.entityRef) {
    return (
      <Alert
        status="warning"
        icon
        role="alert"
        title="The status backend does not know this entity"
        description={`${props.entityRef} was not found in the catalog (it may have been removed or renamed). Refresh the entity, or check that the flux-bootstrap backend plugin is installed.`}
      />
    );
  }
  if (status === undefined) {
    return (
      <Alert
        status="danger"
        icon
        role="alert"
        title="Could not reach the Flux bootstrap status backend"
        description={
          <>
            Check that @flux-bootstrap/plugin-flux-bootstrap-backend is added to
            the Backstage backend
            (backend.add(import('@flux-bootstrap/plugin-flux-bootstrap-backend'))).{' '}
            {props.error.message}
          </>
        }
      />
    );
  }
  return (
    <Alert
      status="danger"
      icon
      role="alert"
      title={`The status backend answered ${status}`}
      description={props.error.message}
    />
  );
}

/** No cluster named: how to annotate, and the template that bootstraps one. */
function EmptyClusters() {
  return (
    <Flex direction="column" gap="2" data-testid="flux-bootstrap-empty">
      <Text as="p" variant="body-medium">
        This entity does not name any Kubernetes cluster.
      </Text>
      <Text as="p" variant="body-small">
        List the clusters whose Flux bootstrap state it should show in the
        annotation <code>{FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION}</code> (a comma
        separated list of names from{' '}
        <code>kubernetes.clusterLocatorMethods</code>) in its{' '}
        <code>catalog-info.yaml</code>:
      </Text>
      <pre
        aria-label="Example annotation"
        style={{
          margin: 0,
          padding: 8,
          borderRadius: 4,
          background: 'var(--bui-bg-neutral-2)',
          overflowX: 'auto',
        }}
      >
        <code>{`metadata:\n  annotations:\n    ${FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION}: prod-eu, prod-us`}</code>
      </pre>
      <Text as="p" variant="body-small">
        A <code>Resource</code> of <code>spec.type: kubernetes-cluster</code>{' '}
        shows its own cluster. Flux not bootstrapped yet?{' '}
        <Link href={FLUX_BOOTSTRAP_TEMPLATE_PATH} variant="body-small">
          Bootstrap Flux on a cluster
        </Link>{' '}
        with the template.
      </Text>
    </Flex>
  );
}

/** A busy indicator with a name, while the first read runs. */
export function Loading(props: { label: string }) {
  return (
    <Flex
      direction="column"
      gap="2"
      role="progressbar"
      aria-label={props.label}
    >
      <Skeleton width="60%" height={16} />
      <Skeleton width="90%" height={16} />
      <Skeleton width="75%" height={16} />
    </Flex>
  );
}

/** The clusters' table: a summary row per cluster and, when there is one, its detail row. */
export function ClustersTable(props: {
  items: ClusterBootstrapStatus[];
  now: Date;
  onStatus?: (status: ClusterBootstrapStatus) => void;
}) {
  return (
    <TableRoot aria-label="Flux bootstrap state per cluster">
      <TableHeader>
        <Column id="cluster" isRowHeader>
          Cluster
        </Column>
        <Column id="flux">Flux</Column>
        <Column id="source">Source</Column>
        <Column id="reconcile">Last reconcile</Column>
      </TableHeader>
      <TableBody>
        {props.items.flatMap(status => {
          const rows = [
            <ClusterRow
              key={status.cluster}
              status={status}
              now={props.now}
              onStatus={props.onStatus}
            />,
          ];
          if (hasDetails(status)) {
            rows.push(
              <ClusterDetailRow
                key={`${status.cluster}/details`}
                status={status}
              />,
            );
          }
          return rows;
        })}
      </TableBody>
    </TableRoot>
  );
}

/**
 * The Flux bootstrap state of every cluster the current entity shows: one row per cluster.
 * Built from Backstage UI; shared by the legacy and the new frontend system.
 * @public
 */
export function FluxBootstrapCard() {
  const { entity } = useEntity();
  const api = useApi(fluxBootstrapApiRef);
  const [reload, setReload] = useState(0);
  const named = getEntityClusterNames(entity);
  const entityRef = getCompoundEntityRef(entity);
  const refString = `${entityRef.kind}:${entityRef.namespace}/${entityRef.name}`;
  const titleId = useId();

  // Reads again on its own while a cluster is installing, not installed or unreachable.
  const { loading, value, error, polling } = useEntityClusters({
    api,
    entityRef,
    key: `${refString}|${named.join(',')}`,
    enabled: named.length > 0,
    reload,
  });
  const refresh = useCallback(() => setReload(n => n + 1), []);
  // Statuses answered by an operate action, shown until the next read.
  const [operated, setOperated] = useState<
    Record<string, ClusterBootstrapStatus>
  >({});
  useEffect(() => setOperated({}), [value]);
  const onStatus = useCallback(
    (status: ClusterBootstrapStatus) =>
      setOperated(o => ({ ...o, [status.cluster]: status })),
    [],
  );

  let content: ReactNode;
  if (named.length === 0) {
    content = <EmptyClusters />;
  } else if (loading && !value) {
    content = <Loading label="Reading the clusters" />;
  } else if (error) {
    content = <ReadError error={error} entityRef={refString} />;
  } else if (value) {
    const now = new Date();
    const unsettled = unsettledClusters(value);
    content = (
      <Flex direction="column" gap="3">
        {value.unknownClusters.length > 0 && (
          <Alert
            status="warning"
            icon
            title={`Not configured: ${value.unknownClusters.join(', ')}`}
            description={`The entity names ${
              value.unknownClusters.length === 1 ? 'a cluster' : 'clusters'
            } that ${
              value.unknownClusters.length === 1 ? 'is' : 'are'
            } not in kubernetes.clusterLocatorMethods of the Backstage configuration. Fix the ${FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION} annotation or add the cluster to the configuration.`}
          />
        )}
        {value.items.length > 0 && (
          <ClustersTable
            items={value.items.map(s => operated[s.cluster] ?? s)}
            now={now}
            onStatus={onStatus}
          />
        )}
        {polling && (
          <Text
            as="p"
            variant="body-x-small"
            color="secondary"
            data-testid="flux-bootstrap-polling"
            aria-live="polite"
          >
            Updating on its own while {unsettled.join(', ')}{' '}
            {unsettled.length === 1 ? 'is' : 'are'} not settled (every few
            seconds, less often while nothing changes).
          </Text>
        )}
      </Flex>
    );
  }

  return (
    <Card
      aria-labelledby={titleId}
      data-testid="flux-bootstrap-card"
      aria-busy={loading}
    >
      <CardHeader>
        <Flex justify="between" align="center">
          <Text as="h2" id={titleId} variant="title-small" weight="bold">
            {TITLE}
          </Text>
          <TooltipTrigger delay={300}>
            <ButtonIcon
              aria-label="Refresh"
              variant="tertiary"
              size="small"
              icon={<RiRefreshLine size={16} aria-hidden />}
              onPress={refresh}
              isDisabled={loading || named.length === 0}
            />
            <Tooltip>Refresh (reads the clusters again)</Tooltip>
          </TooltipTrigger>
        </Flex>
      </CardHeader>
      <CardBody>{content}</CardBody>
    </Card>
  );
}
