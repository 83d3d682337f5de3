/**
 * Status backend of the Flux bootstrap plugins.
 *
 * @packageDocumentation
 */
export { fluxBootstrapPlugin as default } from './plugin';
