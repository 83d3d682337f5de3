import { useApi, useApiHolder } from '@backstage/core-plugin-api';
import type { ResponseError } from '@backstage/errors';
import {
  permissionApiRef,
  usePermission,
} from '@backstage/plugin-permission-react';
import {
  Alert,
  Button,
  Dialog,
  DialogBody,
  DialogFooter,
  DialogHeader,
  Flex,
  TextAreaField,
} from '@backstage/ui';
import {
  ClusterBootstrapStatus,
  fluxBootstrapClusterOperatePermission,
  OperateClusterAction,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  RiPauseCircleLine,
  RiPlayCircleLine,
  RiRefreshLine,
} from '@remixicon/react';
import { useState } from 'react';
import { fluxBootstrapApiRef } from '../../api/FluxBootstrapApi';

/** States in which Flux runs on the cluster, so its sync can be reconciled or suspended. */
const OPERABLE = new Set(['ready', 'failing', 'installing', 'awaiting-merge']);

export interface OperateActionsProps {
  status: ClusterBootstrapStatus;
  /** The cluster's status read after an action, to show it at once. */
  onStatus?: (status: ClusterBootstrapStatus) => void;
}

/** The backend's message of a failed call (its `error.message`), else the error's own. */
function messageOf(error: unknown): string {
  const e = error as Partial<ResponseError> & { message?: string };
  return e.body?.error?.message ?? e.message ?? String(error);
}

type Outcome = { ok: boolean; text: string } | undefined;

/**
 * "Reconcile now", "Suspend" (asks for a reason) and "Resume" for one cluster, offered only to
 * users whom the permission policy allows `flux.bootstrap.cluster.operate` (hidden otherwise,
 * and in apps without a permission API). Shows what the backend answered, or why it refused.
 */
export function OperateActions(props: OperateActionsProps) {
  const holder = useApiHolder();
  if (!holder.get(permissionApiRef)) return null;
  return <PermittedOperateActions {...props} />;
}

function PermittedOperateActions({ status, onStatus }: OperateActionsProps) {
  const { allowed, loading } = usePermission({
    permission: fluxBootstrapClusterOperatePermission,
  });
  if (loading || !allowed) return null;
  return <OperateButtons status={status} onStatus={onStatus} />;
}

function OperateButtons({ status, onStatus }: OperateActionsProps) {
  const api = useApi(fluxBootstrapApiRef);
  const [busy, setBusy] = useState<OperateClusterAction>();
  const [outcome, setOutcome] = useState<Outcome>();
  const [askReason, setAskReason] = useState(false);
  const [reason, setReason] = useState('');
  const name = status.title ?? status.cluster;
  const suspended = status.state === 'suspended';
  const operable = OPERABLE.has(status.state);

  const run = async (action: OperateClusterAction, why?: string) => {
    setBusy(action);
    setOutcome(undefined);
    try {
      const answer = await api.operateCluster(
        status.cluster,
        action,
        why ? { reason: why } : {},
      );
      setOutcome({ ok: true, text: answer.message });
      onStatus?.(answer.status);
    } catch (error) {
      setOutcome({ ok: false, text: messageOf(error) });
    } finally {
      setBusy(undefined);
    }
  };

  if (!operable && !suspended) return null;
  return (
    <Flex direction="column" gap="1">
      <Flex
        gap="1"
        role="group"
        aria-label={`Operate Flux on ${name}`}
        style={{ flexWrap: 'wrap' }}
      >
        {!suspended && (
          <Button
            size="small"
            variant="secondary"
            iconStart={<RiRefreshLine size={14} aria-hidden />}
            isPending={busy === 'reconcile'}
            isDisabled={!!busy}
            onPress={() => run('reconcile')}
            aria-label={`Reconcile now ${name}`}
          >
            Reconcile now
          </Button>
        )}
        {!suspended && (
          <Button
            size="small"
            variant="secondary"
            iconStart={<RiPauseCircleLine size={14} aria-hidden />}
            isPending={busy === 'suspend'}
            isDisabled={!!busy}
            onPress={() => {
              setReason('');
              setAskReason(true);
            }}
            aria-label={`Suspend ${name}`}
          >
            Suspend
          </Button>
        )}
        {suspended && (
          <Button
            size="small"
            variant="secondary"
            iconStart={<RiPlayCircleLine size={14} aria-hidden />}
            isPending={busy === 'resume'}
            isDisabled={!!busy}
            onPress={() => run('resume')}
            aria-label={`Resume ${name}`}
          >
            Resume
          </Button>
        )}
      </Flex>
      {outcome && (
        <Alert
          status={outcome.ok ? 'success' : 'danger'}
          icon
          role={outcome.ok ? 'status' : 'alert'}
          title={outcome.ok ? 'Done' : 'Refused'}
          description={outcome.text}
        />
      )}
      <Dialog
        isOpen={askReason}
        onOpenChange={setAskReason}
        aria-label={`Suspend the Flux sync of ${name}`}
      >
        <DialogHeader>Suspend the Flux sync of {name}</DialogHeader>
        <DialogBody>
          <Flex direction="column" gap="2">
            <span>
              Flux stops applying changes from Git to {name} until it is
              resumed. The reason is recorded with your name.
            </span>
            <TextAreaField
              label="Reason"
              isRequired
              value={reason}
              onChange={setReason}
              placeholder="e.g. incident INC-1234: freeze deployments"
            />
          </Flex>
        </DialogBody>
        <DialogFooter>
          <Button variant="secondary" slot="close">
            Cancel
          </Button>
          <Button
            variant="primary"
            destructive
            isDisabled={!reason.trim()}
            onPress={() => {
              setAskReason(false);
              run('suspend', reason.trim());
            }}
          >
            Suspend sync
          </Button>
        </DialogFooter>
      </Dialog>
    </Flex>
  );
}
