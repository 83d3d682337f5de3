/**
 * Status backend of the Flux bootstrap plugins, and the cluster entity locations the templates
 * register. The default export installs both (plugin and URL reader).
 *
 * @packageDocumentation
 */
export { fluxBootstrapBackend as default } from './feature';
export { fluxBootstrapPlugin } from './plugin';
export {
  clusterEntityUrlReaderFactory,
  createClusterEntityReader,
} from './clusterEntities/urlReader';
export {
  clusterEntityParamsFromUrl,
  renderClusterEntity,
  renderClusterEntityYaml,
} from './clusterEntities/entities';
