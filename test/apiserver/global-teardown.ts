// Jest globalTeardown for the "apiserver" project: stops what global-setup.ts started.
import type { ApiServer } from './harness.ts';

export default async function globalTeardown(): Promise<void> {
  const g = globalThis as { __lvsTestApiServer?: ApiServer };
  await g.__lvsTestApiServer?.stop();
  delete g.__lvsTestApiServer;
}
