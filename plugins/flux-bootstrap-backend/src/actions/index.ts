export {
  createGetClusterStatusAction,
  createGetEntityClustersAction,
  createListClustersAction,
  registerFluxBootstrapActions,
} from './clusterActions';
export type { FluxBootstrapActionsOptions } from './clusterActions';
export { createOperateActions, operateResponseSchema } from './operateActions';
export type { OperateActionsOptions } from './operateActions';
