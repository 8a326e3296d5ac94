// A real kube-apiserver (test/apiserver/harness.ts) on the HOST, made reachable from the lab VM: QEMU's
// user-mode network with restrict=on and one guestfwd (lab.ts HostForward) carries the guest's connections to
// it, and kubeconfigs naming the in-VM relay address (test/kernel/cluster-env.ts) are shared read-only.
// Used by the stack suites (run-kernel-suites.ts), the demo (scripts/demo.ts) and bench:controller.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { vmCacheDir, type HostForward, type VmShare } from './lab.ts';
import { startApiServer, type ApiServer, type StartOptions } from '../apiserver/harness.ts';
import { API_GUEST_PORT, API_RELAY_URL } from '../kernel/cluster-env.ts';

export const GUEST_KUBECONFIG_DIR = '/run/lvs-vm/kube';

export interface HostApi {
  api: ApiServer;
  /** Spread into RunInVmOptions. */
  vm: { hostForwards: HostForward[]; shares: VmShare[]; env: Record<string, string> };
  stop(): Promise<void>;
}

export async function startHostApi(opts: StartOptions = {}): Promise<HostApi> {
  const api = await startApiServer(opts);
  // On a fresh machine the VM cache does not exist yet: the kernel is fetched later, by runInVm.
  fs.mkdirSync(vmCacheDir(), { recursive: true });
  const kubeDir = fs.mkdtempSync(path.join(vmCacheDir(), 'kube-'));
  try {
    for (const [name, file] of Object.entries(api.kubeconfigs)) {
      // Same credentials and CA, server = the in-VM relay (10.96.0.1 is in the serving certificate's SANs).
      const text = fs.readFileSync(file, 'utf8');
      if (!text.includes(api.url)) throw new Error(`kubeconfig ${file} does not name ${api.url}`);
      fs.writeFileSync(path.join(kubeDir, `${name}.kubeconfig`), text.replaceAll(api.url, API_RELAY_URL), { mode: 0o600 });
    }
  } catch (e) {
    await api.stop();
    fs.rmSync(kubeDir, { recursive: true, force: true });
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    api,
    vm: {
      hostForwards: [{ guestPort: API_GUEST_PORT, hostPort: Number(new URL(api.url).port) }],
      shares: [{ hostPath: kubeDir, guestPath: GUEST_KUBECONFIG_DIR, readOnly: true }],
      env: { LVS_VM_KUBECONFIG_DIR: GUEST_KUBECONFIG_DIR },
    },
    stop: () => {
      stopping ??= (async () => {
        fs.rmSync(kubeDir, { recursive: true, force: true });
        await api.stop();
      })();
      return stopping;
    },
  };
}
