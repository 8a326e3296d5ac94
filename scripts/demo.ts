// `npm start` (after scripts/demo.sh installed what was missing): the whole product on one machine with no
// cluster. A real kube-apiserver (the test harness's, with etcd and RBAC) runs here on the host; the lab VM
// runs the controller, lvs-agent on three "nodes" (director, web1, web2: network namespaces) and two web
// servers, and reaches the apiserver through its only link out (QEMU user network, restrict=on, one forward).
// On a terminal the lab stays up until Ctrl-C so you can change things with kubectl from here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheRoot, runInVm } from '../test/vm/lab.ts';
import { startHostApi } from '../test/vm/host-api.ts';
import { kubectlPath } from './tools.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const interactive = process.stdout.isTTY === true && process.env.LVS_DEMO_INTERACTIVE !== '0';
const log = (msg: string): void => void process.stderr.write(`[demo] ${msg}\n`);

log('starting kube-apiserver + etcd on 127.0.0.1 (first run: builds it from Go modules, ~20 min, then cached)');
const hostApi = await startHostApi({ log });
const demoDir = path.join(cacheRoot(), 'demo');
fs.mkdirSync(demoDir, { recursive: true });
const kubeconfig = path.join(demoDir, 'kubeconfig');
fs.copyFileSync(hostApi.api.kubeconfigs.admin, kubeconfig);
const kubectl = kubectlPath();

let code = 1;
try {
  const r = await runInVm({
    command: [process.execPath, '--no-warnings', path.join(REPO, 'scripts', 'demo-lab.ts')],
    cwd: REPO,
    env: {
      ...hostApi.vm.env,
      LVS_DEMO_INTERACTIVE: interactive ? '1' : '0',
      LVS_DEMO_HOST_KUBECTL: `KUBECONFIG=${kubeconfig} ${kubectl}`,
    },
    shares: hostApi.vm.shares,
    hostForwards: hostApi.vm.hostForwards,
    timeoutMs: interactive ? 4 * 3600_000 : 30 * 60_000,
    stream: true,
    log,
  });
  code = r.exitCode;
} catch (e) {
  // Ctrl-C kills QEMU: that is how the interactive demo ends.
  code = interactive ? 0 : 1;
  if (!interactive) log(e instanceof Error ? e.message : String(e));
} finally {
  await hostApi.stop();
  fs.rmSync(kubeconfig, { force: true });
}
log(code === 0 ? 'lab stopped; apiserver stopped' : `demo failed (exit ${code})`);
process.exit(code);
