export * from './bitbucketServer';
export * from './clusters';
export * from './settings';
