export * from './publicKey';
export * from './keyPair';
export * from './hostKey';
export * from './accessKey';
export * from './deployKey';
export * from './suppliedKey';
export * from './gitSecret';
