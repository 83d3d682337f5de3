export * from './packs';
