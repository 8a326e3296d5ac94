// Jest globalSetup for the "apiserver" project: one real kube-apiserver for all
// test files, exported through LVS_TEST_* environment variables (see harness.ts ENV
// and sharedApiServer()). Test files that need their own instance call startApiServer().
import { exportEnv, startApiServer } from './harness.ts';
import type { ApiServer } from './harness.ts';

export default async function globalSetup(): Promise<void> {
  const api = await startApiServer();
  exportEnv(api);
  (globalThis as { __lvsTestApiServer?: ApiServer }).__lvsTestApiServer = api;
  process.stderr.write(`\nlvs-test-apiserver ${api.version} ready at ${api.url} in ${api.startupMs} ms (dir ${api.dir})\n`);
}
