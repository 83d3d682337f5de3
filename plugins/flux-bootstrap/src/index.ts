/**
 * Entity card showing the Flux bootstrap state of clusters (legacy frontend system; the new
 * frontend system plugin is the default export of `./alpha`).
 *
 * @packageDocumentation
 */
export { fluxBootstrapPlugin, EntityFluxBootstrapCard } from './plugin';
export {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from './api/FluxBootstrapApi';
export type {
  FluxBootstrapApi,
  FluxBootstrapReadOptions,
} from './api/FluxBootstrapApi';
export { FluxBootstrapCard } from './components/FluxBootstrapCard';
export { fluxBootstrapCardFilter, isFluxBootstrapAvailable } from './filter';
