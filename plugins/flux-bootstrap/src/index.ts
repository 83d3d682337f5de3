/**
 * Entity card showing the Flux bootstrap state of clusters.
 *
 * @packageDocumentation
 */
export { fluxBootstrapPlugin } from './plugin';
