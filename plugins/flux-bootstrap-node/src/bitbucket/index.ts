export * from './repoUrl';
