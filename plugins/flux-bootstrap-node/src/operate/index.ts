export {
  FLUX_OPERATE_FIELD_MANAGER,
  fluxRequestTimestamp,
  locateFluxSync,
  RECONCILE_REQUESTED_AT_ANNOTATION,
  reconcileFluxSync,
  resumeFluxSync,
  suspendFluxSync,
  validateOperateReason,
} from './operate';
export type {
  FluxOperatedObject,
  FluxOperateDeps,
  FluxOperateOptions,
  FluxSyncTarget,
  ReconcileFluxSyncOptions,
  ReconcileFluxSyncResult,
  SuspendFluxSyncOptions,
  SuspendFluxSyncResult,
} from './operate';
