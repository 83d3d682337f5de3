export {
  createGetClusterStatusAction,
  createGetEntityClustersAction,
  createListClustersAction,
  registerFluxBootstrapActions,
} from './clusterActions';
export type { FluxBootstrapActionsOptions } from './clusterActions';
