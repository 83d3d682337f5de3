export { requireClusterConfirmation } from './confirm';
export {
  describeFluxUninstallPlan,
  describeObjectRef,
  FLUX_UNINSTALL_FIELD_MANAGER,
  inventoryEntryRef,
  isFluxUninstallPlanEmpty,
  planFluxUninstall,
  plannedRemovals,
  uninstallFlux,
} from './uninstall';
export type {
  FluxCustomResourceRef,
  FluxObjectRef,
  FluxUninstallDeps,
  FluxUninstallOptions,
  FluxUninstallPlan,
  FluxUninstallResult,
} from './uninstall';
export { deleteFluxAccessKeys } from './accessKeys';
export type {
  DeleteFluxAccessKeysOptions,
  DeleteFluxAccessKeysResult,
  FluxAccessKeyInfo,
} from './accessKeys';
export { removeClusterPath, removeClusterPathMessage } from './clusterPath';
export type {
  RemoveClusterPathOptions,
  RemoveClusterPathResult,
} from './clusterPath';
export { unregisterClusterEntity } from './clusterEntity';
export type {
  CatalogEntityLike,
  ClusterEntityCatalog,
  UnregisterClusterEntityOptions,
  UnregisterClusterEntityResult,
} from './clusterEntity';
