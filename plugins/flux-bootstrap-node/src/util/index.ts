export * from './logger';
export * from './redact';
export * from './errors';
export * from './async';
export * from './checkpoint';
