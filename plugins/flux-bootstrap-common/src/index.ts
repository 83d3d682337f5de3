/**
 * Types and permissions shared by the Flux bootstrap backend and frontend.
 *
 * @packageDocumentation
 */
export * from './types';
export * from './annotations';
export * from './permissions';
export * from './revision';
export * from './clusterEntity';
export * from './integrations';
export * from './operate';
