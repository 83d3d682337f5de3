import { KubeApiserverInfo } from './http';

/** Name of the environment variable through which the jest globalSetup publishes the shared apiserver. */
export const FLUX_TEST_KUBE_ENV = 'FLUX_TEST_KUBE';

/**
 * The kube-apiserver started once per test run by `test/peers/src/jest/globalSetup.ts`
 * (published to the jest workers as JSON in `process.env.FLUX_TEST_KUBE`).
 */
export function getSharedKubeApiserver(): KubeApiserverInfo {
  const raw = process.env[FLUX_TEST_KUBE_ENV];
  if (!raw) {
    throw new Error(
      `No shared kube-apiserver: ${FLUX_TEST_KUBE_ENV} is not set. Add the jest globalSetup/globalTeardown of ` +
        '@flux-bootstrap/test-peers to this package\'s package.json "jest" block (see test/peers/README.md), ' +
        'or use startKubeApiserver() for a private one.',
    );
  }
  const info = JSON.parse(raw) as KubeApiserverInfo;
  for (const k of ['url', 'caPem', 'adminToken', 'kubeconfigPath'] as const) {
    if (typeof info[k] !== 'string' || !info[k]) {
      throw new Error(`${FLUX_TEST_KUBE_ENV} is missing "${k}"`);
    }
  }
  return info;
}
