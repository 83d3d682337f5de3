import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type { KubeObject } from '../kube/types';
import {
  conditionOf,
  generationObserved,
  readyOf,
  record,
  str,
} from '../status/fluxObjects';
import { instanceRevisionVersion, isReconcileDisabled } from './instance';

/**
 * Adds the Flux Operator's view to a cluster's status: the manager, the instance's versions,
 * Ready and revisions; a paused instance (`fluxcd.controlplane.io/reconcile: disabled`) makes the
 * cluster suspended, Ready=False failing, not reconciled yet installing.
 */
export function addFluxInstanceState(
  status: ClusterBootstrapStatus,
  instance: KubeObject | undefined,
  clean: (text: string | undefined) => string | undefined,
): void {
  const flux = status.flux;
  if (!flux) return;
  if (!instance) {
    if (flux.bootstrapped) flux.manager = 'flux-bootstrap';
    return;
  }
  const s = record(instance.status);
  const ready = generationObserved(instance) ? readyOf(instance) : null;
  const message = clean(str(conditionOf(instance, 'Ready')?.message));
  const name = `FluxInstance ${instance.metadata.namespace}/${instance.metadata.name}`;
  flux.manager = 'flux-operator';
  flux.instance = {
    name: instance.metadata.name,
    namespace: instance.metadata.namespace ?? flux.namespace,
    requestedVersion: str(record(record(instance.spec).distribution).version),
    installedVersion: instanceRevisionVersion(s.lastAppliedRevision),
    ready,
    lastAppliedRevision: str(s.lastAppliedRevision),
    lastAttemptedRevision: str(s.lastAttemptedRevision),
    ...(message ? { message } : {}),
  };
  const set = (state: ClusterBootstrapStatus['state'], reason: string) => {
    status.state = state;
    status.reason = status.reason ? `${reason}\n${status.reason}` : reason;
  };
  if (isReconcileDisabled(instance)) {
    if (status.state !== 'suspended') status.reason = undefined; // the objects' own state is not what the card should lead with
    set(
      'suspended',
      `${name} is suspended (fluxcd.controlplane.io/reconcile: disabled): the Flux Operator does not reconcile Flux.`,
    );
  } else if (ready === false && status.state !== 'suspended') {
    set('failing', `${name}: ${message ?? 'Ready=False'}`);
  } else if (ready === null && status.state === 'ready') {
    set(
      'installing',
      `${name}: ${
        generationObserved(instance)
          ? message ?? 'not reconciled yet'
          : 'the Flux Operator has not reconciled its latest change yet'
      }`,
    );
  }
}
