/* eslint-disable no-console */
import { startKubeApiserver } from '../kube/apiserver';
import { FLUX_TEST_KUBE_ENV } from '../kube/shared';

/** The handle lives on the jest main process's global so globalTeardown can stop it. */
export const HANDLE_KEY = '__fluxTestSharedKubeApiserver';

/**
 * jest globalSetup: starts ONE kube-apiserver + etcd for the whole test run and publishes its
 * connection info to the test workers as JSON in `process.env.FLUX_TEST_KUBE`.
 *
 * Guarded by the variable itself: when several jest projects (packages in `backstage-cli repo
 * test`) name this file they share one apiserver, and a developer may export FLUX_TEST_KUBE to
 * reuse an apiserver that is already running (then nothing is started or stopped here).
 */
export default async function globalSetup(): Promise<void> {
  if (process.env[FLUX_TEST_KUBE_ENV]) return;
  const kube = await startKubeApiserver();
  (globalThis as any)[HANDLE_KEY] = kube;
  process.env[FLUX_TEST_KUBE_ENV] = JSON.stringify(kube.info());
}
