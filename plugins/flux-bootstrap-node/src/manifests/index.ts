export * from './validation';
export * from './components';
export * from './sync';
export * from './kustomization';
export * from './bundle';
export * from './options';
