import { getCompoundEntityRef } from '@backstage/catalog-model';
import {
  CodeSnippet,
  InfoCard,
  Link,
  Progress,
  ResponseErrorPanel,
  WarningPanel,
} from '@backstage/core-components';
import { useApi } from '@backstage/core-plugin-api';
import { useEntity } from '@backstage/plugin-catalog-react';
import {
  FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION,
  FLUX_BOOTSTRAP_TEMPLATE_PATH,
  fluxBootstrapClusterReadPermission,
  getEntityClusterNames,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import IconButton from '@material-ui/core/IconButton';
import Table from '@material-ui/core/Table';
import TableBody from '@material-ui/core/TableBody';
import TableCell from '@material-ui/core/TableCell';
import TableContainer from '@material-ui/core/TableContainer';
import TableHead from '@material-ui/core/TableHead';
import TableRow from '@material-ui/core/TableRow';
import Tooltip from '@material-ui/core/Tooltip';
import Typography from '@material-ui/core/Typography';
import RefreshIcon from '@material-ui/icons/Refresh';
import { ReactNode, useCallback, useState } from 'react';
import { fluxBootstrapApiRef } from '../../api/FluxBootstrapApi';
import { ClusterRow } from './ClusterRow';
import { unsettledClusters, useEntityClusters } from './useEntityClusters';

const TITLE = 'Flux bootstrap';

function statusOf(error: unknown): number | undefined {
  const e = error as
    | { response?: { status?: number }; statusCode?: number }
    | undefined;
  return e?.response?.status ?? e?.statusCode;
}

/** The error state, saying what to do about it. */
function CardError(props: { error: Error; entityRef: string }) {
  const status = statusOf(props.error);
  if (status === 403) {
    return (
      <WarningPanel
        defaultExpanded
        title="You may not read the Flux bootstrap state of clusters"
        message={
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
      <WarningPanel
        defaultExpanded
        title="Sign in to see the Flux bootstrap state"
        message="The status backend only answers signed-in users. Sign in again and reload the page."
      />
    );
  }
  if (status === 404) {
    return (
      <WarningPanel
        defaultExpanded
        title="The status backend does not know this entity"
        message={`${props.entityRef} was not found in the catalog (it may have been removed or renamed). Refresh the entity, or check that the flux-bootstrap backend plugin is installed.`}
      />
    );
  }
  if (status === undefined) {
    return (
      <WarningPanel
        defaultExpanded
        severity="error"
        title="Could not reach the Flux bootstrap status backend"
        message="Check that @flux-bootstrap/plugin-flux-bootstrap-backend is added to the Backstage backend (backend.add(import('@flux-bootstrap/plugin-flux-bootstrap-backend')))."
      >
        {props.error.message}
      </WarningPanel>
    );
  }
  return <ResponseErrorPanel error={props.error} />;
}

/** No cluster named: how to annotate, and the template that bootstraps one. */
function EmptyClusters() {
  return (
    <div data-testid="flux-bootstrap-empty">
      <Typography variant="body1" gutterBottom>
        This entity does not name any Kubernetes cluster.
      </Typography>
      <Typography variant="body2" gutterBottom>
        List the clusters whose Flux bootstrap state it should show in the
        annotation <code>{FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION}</code> (a comma
        separated list of names from{' '}
        <code>kubernetes.clusterLocatorMethods</code>) in its{' '}
        <code>catalog-info.yaml</code>:
      </Typography>
      <CodeSnippet
        language="yaml"
        text={`metadata:\n  annotations:\n    ${FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION}: prod-eu, prod-us`}
      />
      <Typography variant="body2">
        A <code>Resource</code> of <code>spec.type: kubernetes-cluster</code>{' '}
        shows its own cluster. Flux not bootstrapped yet?{' '}
        <Link to={FLUX_BOOTSTRAP_TEMPLATE_PATH}>
          Bootstrap Flux on a cluster
        </Link>{' '}
        with the template.
      </Typography>
    </div>
  );
}

/**
 * The Flux bootstrap state of every cluster the current entity shows: one row per cluster.
 * Shared by the legacy and the new frontend system.
 * @public
 */
export function FluxBootstrapCard() {
  const { entity } = useEntity();
  const api = useApi(fluxBootstrapApiRef);
  const [reload, setReload] = useState(0);
  const named = getEntityClusterNames(entity);
  const entityRef = getCompoundEntityRef(entity);
  const refString = `${entityRef.kind}:${entityRef.namespace}/${entityRef.name}`;

  // Reads again on its own while a cluster is installing, not installed or unreachable.
  const { loading, value, error, polling } = useEntityClusters({
    api,
    entityRef,
    key: `${refString}|${named.join(',')}`,
    enabled: named.length > 0,
    reload,
  });
  const refresh = useCallback(() => setReload(n => n + 1), []);

  const action = (
    <Tooltip title="Refresh (reads the clusters again)">
      <span>
        <IconButton aria-label="Refresh" onClick={refresh} disabled={loading}>
          <RefreshIcon />
        </IconButton>
      </span>
    </Tooltip>
  );

  let content: ReactNode;
  if (named.length === 0) {
    content = <EmptyClusters />;
  } else if (loading && !value) {
    content = <Progress />;
  } else if (error) {
    content = <CardError error={error} entityRef={refString} />;
  } else if (value) {
    const now = new Date();
    content = (
      <>
        {loading && <Progress />}
        {value.unknownClusters.length > 0 && (
          <WarningPanel
            defaultExpanded
            title={`Not configured: ${value.unknownClusters.join(', ')}`}
            message={`The entity names ${
              value.unknownClusters.length === 1 ? 'a cluster' : 'clusters'
            } that ${
              value.unknownClusters.length === 1 ? 'is' : 'are'
            } not in kubernetes.clusterLocatorMethods of the Backstage configuration. Fix the ${FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION} annotation or add the cluster to the configuration.`}
          />
        )}
        {value.items.length > 0 && (
          <TableContainer>
            <Table size="small" aria-label="Flux bootstrap state per cluster">
              <TableHead>
                <TableRow>
                  <TableCell>Cluster</TableCell>
                  <TableCell>Flux</TableCell>
                  <TableCell>Source and applied commit</TableCell>
                  <TableCell>Last reconcile</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {value.items.map(status => (
                  <ClusterRow key={status.cluster} status={status} now={now} />
                ))}
              </TableBody>
            </Table>
          </TableContainer>
        )}
        {polling && (
          <Typography
            variant="caption"
            color="textSecondary"
            component="p"
            data-testid="flux-bootstrap-polling"
          >
            Updating on its own while {unsettledClusters(value).join(', ')}{' '}
            {unsettledClusters(value).length === 1 ? 'is' : 'are'} not settled
            (every few seconds, less often while nothing changes).
          </Typography>
        )}
      </>
    );
  }

  return (
    <InfoCard title={TITLE} action={action} noPadding={false}>
      {content}
    </InfoCard>
  );
}
