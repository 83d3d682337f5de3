import type { KubeApiserver } from '../kube/apiserver';
import { FLUX_TEST_KUBE_ENV } from '../kube/shared';
import { HANDLE_KEY } from './globalSetup';

/** jest globalTeardown: stops the apiserver that globalSetup started (never one it reused). */
export default async function globalTeardown(): Promise<void> {
  const kube = (globalThis as any)[HANDLE_KEY] as KubeApiserver | undefined;
  if (!kube) return;
  delete (globalThis as any)[HANDLE_KEY];
  delete process.env[FLUX_TEST_KUBE_ENV];
  await kube.stop();
}
