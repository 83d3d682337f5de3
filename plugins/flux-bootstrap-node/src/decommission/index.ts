export * from './shared';
export * from './uninstall';
export * from './accessKeys';
export * from './clusterPath';
export * from './clusterEntity';
export * from './useCases';
