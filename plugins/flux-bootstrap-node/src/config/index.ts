export * from './ConfigLike';
export * from './bitbucketServer';
export * from './clusters';
