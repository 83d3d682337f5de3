import { Cell, Flex, Row, Text } from '@backstage/ui';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  advice,
  ClusterDetails,
  FluxFacts,
  LastReconcile,
  reasonOf,
  SourceFacts,
} from '../shared/ClusterFacts';
import { OperateActions } from '../shared/OperateActions';
import { StateChip } from '../shared/StateChip';

export { StateChip };

/** Cells start at the top, so a row's facts line up under their headers. */
const TOP = { verticalAlign: 'top' } as const;

export interface ClusterRowProps {
  status: ClusterBootstrapStatus;
  now: Date;
  onStatus?: (status: ClusterBootstrapStatus) => void;
}

/** Whether a cluster has a detail row (reason, pull request or advice). */
export function hasDetails(status: ClusterBootstrapStatus): boolean {
  return !!(reasonOf(status) || advice(status) || status.pullRequest);
}

/** One cluster's summary row of the card's table. */
export function ClusterRow({ status, now, onStatus }: ClusterRowProps) {
  const name = status.title ?? status.cluster;
  // The row's accessible name is its row header: the name, then the state chip's.
  return (
    <Row id={status.cluster} data-testid={`flux-cluster-${status.cluster}`}>
      <Cell style={TOP}>
        <Flex direction="column" gap="1" align="start">
          <Text variant="body-medium" weight="bold">
            {name}
          </Text>{' '}
          {status.title && (
            <Text variant="body-x-small" color="secondary">
              {status.cluster}
            </Text>
          )}{' '}
          <StateChip state={status.state} />
        </Flex>
      </Cell>
      <Cell style={TOP}>
        <FluxFacts status={status} />
      </Cell>
      <Cell style={TOP}>
        <SourceFacts status={status} />
      </Cell>
      <Cell style={TOP}>
        <Flex direction="column" gap="2" align="start">
          <LastReconcile status={status} now={now} />
          <OperateActions status={status} onStatus={onStatus} />
        </Flex>
      </Cell>
    </Row>
  );
}

/** The row under a cluster's summary: why it is in its state, the pull request, what to do. */
export function ClusterDetailRow({
  status,
}: {
  status: ClusterBootstrapStatus;
}) {
  return (
    <Row
      id={`${status.cluster}/details`}
      data-testid={`flux-cluster-${status.cluster}-details`}
    >
      <Cell colSpan={4} style={{ paddingTop: 0 }}>
        <ClusterDetails status={status} />
      </Cell>
    </Row>
  );
}
