import {
  Link,
  StatusAborted,
  StatusError,
  StatusOK,
  StatusPending,
  StatusWarning,
} from '@backstage/core-components';
import {
  ClusterBootstrapState,
  ClusterBootstrapStatus,
  shortSha,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import Box from '@material-ui/core/Box';
import TableCell from '@material-ui/core/TableCell';
import TableRow from '@material-ui/core/TableRow';
import Tooltip from '@material-ui/core/Tooltip';
import Typography from '@material-ui/core/Typography';
import { makeStyles } from '@material-ui/core/styles';
import type { ReactNode } from 'react';
import { relativeTime } from './relativeTime';

const useStyles = makeStyles(theme => ({
  row: { '& > td': { borderBottom: 'none', verticalAlign: 'top' } },
  detailRow: { '& > td': { paddingTop: 0 } },
  message: {
    whiteSpace: 'pre-wrap',
    wordBreak: 'break-word',
    fontFamily: theme.typography.fontFamily,
  },
  mono: { fontFamily: 'monospace' },
  clusterCell: { minWidth: 140 },
  url: { wordBreak: 'break-all' },
  muted: { color: theme.palette.text.secondary },
}));

const STATE_LABEL: Record<ClusterBootstrapState, string> = {
  ready: 'Ready',
  failing: 'Failing',
  installing: 'Installing',
  'awaiting-merge': 'Awaiting merge',
  suspended: 'Suspended',
  'not-installed': 'Not installed',
  unreachable: 'Unreachable',
  forbidden: 'Forbidden',
};

/** The Backstage status chip of a state. */
export function StateChip(props: { state: ClusterBootstrapState }) {
  const label = STATE_LABEL[props.state] ?? props.state;
  switch (props.state) {
    case 'ready':
      return <StatusOK>{label}</StatusOK>;
    case 'failing':
    case 'unreachable':
      return <StatusError>{label}</StatusError>;
    case 'forbidden':
    case 'suspended':
      return <StatusWarning>{label}</StatusWarning>;
    case 'installing':
    case 'awaiting-merge':
      return <StatusPending>{label}</StatusPending>;
    default:
      return <StatusAborted>{label}</StatusAborted>;
  }
}

/** What to do about a state, shown under the row. */
function advice(status: ClusterBootstrapStatus): string | undefined {
  switch (status.state) {
    case 'unreachable':
      return 'Check the cluster URL and CA (caData/caFile) in kubernetes.clusterLocatorMethods, and that the Backstage backend can reach the API server.';
    case 'forbidden':
      return 'The cluster refused the token configured for it (serviceAccountToken in kubernetes.clusterLocatorMethods). It needs to get CustomResourceDefinitions and list Deployments, Namespaces and Flux objects; see the flux-bootstrap-backend README for a read-only ClusterRole.';
    case 'not-installed':
      return 'Run the "Bootstrap Flux" template to install Flux on this cluster.';
    case 'suspended':
      return 'Resume it with `flux resume kustomization` (or remove spec.suspend) to reconcile from Git again.';
    default:
      return undefined;
  }
}

export interface ClusterRowProps {
  status: ClusterBootstrapStatus;
  now: Date;
}

/** One cluster: a summary row, and a detail row with the reason or message when there is one. */
export function ClusterRow({ status, now }: ClusterRowProps) {
  const classes = useStyles();
  const { flux, source, sync, components, repository } = status;
  const readyCount = components.filter(c => c.ready).length;
  const notReady = components.filter(c => !c.ready);
  const applied = shortSha(sync?.lastAppliedRevision);
  const reconciled = relativeTime(sync?.lastTransitionTime, now);
  const reason =
    status.reason ?? (status.state === 'failing' ? sync?.message : undefined);
  const hint = advice(status);
  const testId = `flux-cluster-${status.cluster}`;

  let syncLabel: ReactNode = null;
  if (status.inSync === true) syncLabel = 'in sync';
  else if (status.inSync === false) {
    const head = repository?.headCommit
      ? ` (head ${repository.headCommit.slice(0, 8)})`
      : '';
    syncLabel = (
      <Tooltip title={`Bitbucket has newer commits${head}`}>
        <strong>behind</strong>
      </Tooltip>
    );
  } else if (applied && repository?.message) {
    syncLabel = (
      <Tooltip title={repository.message}>
        <span className={classes.muted}>sync unknown</span>
      </Tooltip>
    );
  }
  const dash = <span className={classes.muted}>—</span>;

  return (
    <>
      <TableRow className={classes.row} data-testid={testId}>
        <TableCell className={classes.clusterCell}>
          <Typography variant="body2">
            <strong>{status.title ?? status.cluster}</strong>
          </Typography>
          {status.title && (
            <Typography
              variant="caption"
              display="block"
              className={classes.muted}
            >
              {status.cluster}
            </Typography>
          )}
          <StateChip state={status.state} />
        </TableCell>
        <TableCell>
          <Typography variant="body2">{flux?.version ?? dash}</Typography>
          {flux?.managedBy && (
            <Typography
              variant="caption"
              display="block"
              className={classes.muted}
            >
              {flux.managedBy}
            </Typography>
          )}
          {components.length > 0 && (
            <Tooltip
              title={components
                .map(
                  c =>
                    `${c.name}${c.tag ? ` ${c.tag}` : ''}: ${
                      c.ready ? 'ready' : c.message ?? 'not ready'
                    }`,
                )
                .join('\n')}
            >
              <Typography variant="caption" display="block">
                controllers {readyCount}/{components.length} ready
              </Typography>
            </Tooltip>
          )}
          {notReady.length > 0 && (
            <Typography
              variant="caption"
              display="block"
              className={classes.muted}
            >
              {notReady.map(c => c.name).join(', ')}
            </Typography>
          )}
        </TableCell>
        <TableCell>
          {source?.url ? (
            <>
              <Typography variant="body2" className={classes.url}>
                {repository?.browseUrl ? (
                  <Link to={repository.browseUrl}>{source.url}</Link>
                ) : (
                  source.url
                )}
              </Typography>
              {source.branch && (
                <Typography
                  variant="caption"
                  display="block"
                  className={classes.muted}
                >
                  branch {source.branch}
                </Typography>
              )}
            </>
          ) : (
            dash
          )}
          {applied && (
            <Typography variant="caption" display="block">
              applied{' '}
              <span className={classes.mono}>
                {repository?.commitUrl ? (
                  <Link
                    to={repository.commitUrl}
                    title={sync?.lastAppliedRevision}
                  >
                    {applied}
                  </Link>
                ) : (
                  <span title={sync?.lastAppliedRevision}>{applied}</span>
                )}
              </span>
              {syncLabel && (
                <>
                  {' · '}
                  <span>{syncLabel}</span>
                </>
              )}
            </Typography>
          )}
        </TableCell>
        <TableCell>
          {reconciled ? (
            <span title={sync?.lastTransitionTime}>{reconciled}</span>
          ) : (
            dash
          )}
        </TableCell>
      </TableRow>
      {(reason || hint) && (
        <TableRow
          className={classes.detailRow}
          data-testid={`${testId}-details`}
        >
          <TableCell colSpan={4}>
            <Box pl={1} borderLeft={2} borderColor="divider">
              {reason && (
                <Typography
                  variant="body2"
                  component="pre"
                  className={classes.message}
                >
                  {reason}
                </Typography>
              )}
              {hint && (
                <Typography variant="caption" className={classes.muted}>
                  {hint}
                </Typography>
              )}
            </Box>
          </TableCell>
        </TableRow>
      )}
    </>
  );
}
