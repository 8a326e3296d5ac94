// The whole stack in the lab VM: a real kube-apiserver (on the host, reached through the VM's only forward,
// see cluster-env.ts), the Helm chart, the controller, and lvs-agent in cluster mode inside the lab's
// namespaces, each registered as a Node. Network namespaces get a second link (mgmt0) on a management bridge
// where a relay in the VM's root netns stands in for the cluster's `kubernetes` Service address.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BackgroundProcess, Bridge, ExecResult, Link, NetLab } from '../vm/netns.ts';
import { exec } from '../vm/netns.ts';
import { GUEST_FORWARD_ADDRESS } from '../vm/lab.ts';
import { helmPath, kubectlPath } from '../../scripts/tools.ts';
import { API_GUEST_PORT, API_RELAY_ADDRESS, API_RELAY_PORT, MGMT_PREFIX } from './cluster-env.ts';
import { REPO, sleep } from './agent-lab.ts';

export type Identity = 'admin' | 'controller' | 'agent';

/** Kubeconfig of a harness identity (system:serviceaccount:lvs-system:lvs-operator-{controller,agent}, admin). */
export function kubeconfig(identity: Identity): string {
  const dir = process.env.LVS_VM_KUBECONFIG_DIR;
  if (!dir) {
    throw new Error('LVS_VM_KUBECONFIG_DIR is not set: stack suites need the host kube-apiserver that '
      + '`npm run test:vm` starts for test/kernel/stack-*.test.ts (or LVS_VM_APISERVER=1)');
  }
  return path.join(dir, `${identity}.kubeconfig`);
}

// CommonJS for `node -e`: a plain TCP relay (each connection gets its own upstream connection).
const RELAY_JS = `
const net = require('node:net');
const [host, port, toHost, toPort] = process.argv.slice(1);
const srv = net.createServer((c) => {
  const u = net.connect(Number(toPort), toHost);
  const end = () => { c.destroy(); u.destroy(); };
  c.pipe(u); u.pipe(c);
  for (const s of [c, u]) { s.on('error', end); s.on('close', end); }
});
srv.listen(Number(port), host, () => console.log('listening ' + host + ':' + port));
process.on('SIGTERM', () => process.exit(0));
`;

/** The management network of one lab: bridge + relay to the apiserver. Torn down by lab.destroy(). */
export class ManagementNetwork {
  readonly #lab: NetLab;
  readonly #bridge: Bridge;
  readonly #links = new Map<string, Link>();
  #next = 10;

  private constructor(lab: NetLab, bridge: Bridge) {
    this.#lab = lab;
    this.#bridge = bridge;
  }

  static async create(lab: NetLab): Promise<ManagementNetwork> {
    const bridge = await lab.addBridge(`${lab.id}mgmt`, { addresses: [`${API_RELAY_ADDRESS}/${MGMT_PREFIX}`] });
    const relay = lab.spawn(null, [process.execPath, '-e', RELAY_JS, API_RELAY_ADDRESS, String(API_RELAY_PORT),
      GUEST_FORWARD_ADDRESS, String(API_GUEST_PORT)], { label: 'apiserver relay' });
    await relay.waitForOutput(/^listening /m, 60_000);
    return new ManagementNetwork(lab, bridge);
  }

  /** Gives `ns` a mgmt0 link with the next management address; returns that address. */
  async join(ns: string): Promise<string> {
    const address = `10.96.0.${this.#next++}`;
    this.#links.set(ns, await this.#lab.connect(ns, this.#bridge, { ifname: 'mgmt0', addresses: [`${address}/${MGMT_PREFIX}`] }));
    return address;
  }

  /** The mgmt0 link `join` gave `ns` (its bridge-side `peer` can be set down to cut the node off the API). */
  link(ns: string): Link {
    const l = this.#links.get(ns);
    if (!l) throw new Error(`${ns} has not joined the management network`);
    return l;
  }
}

export interface ToolOptions {
  identity?: Identity;
  input?: string;
  timeoutMs?: number;
  allowFailure?: boolean;
}

function toolEnv(identity: Identity): Record<string, string> {
  return {
    KUBECONFIG: kubeconfig(identity),
    KUBECACHEDIR: path.join(os.tmpdir(), 'kubectl-cache'),
    HELM_CACHE_HOME: path.join(os.tmpdir(), 'helm-cache'),
    HELM_CONFIG_HOME: path.join(os.tmpdir(), 'helm-config'),
    HELM_DATA_HOME: path.join(os.tmpdir(), 'helm-data'),
  };
}

/** kubectl (1.35, from the npm layer package) as `identity` (default admin), in the VM's root netns. */
export function kubectl(args: string[], opts: ToolOptions = {}): Promise<ExecResult> {
  return exec(null, [kubectlPath(), ...args], {
    env: toolEnv(opts.identity ?? 'admin'), input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000, allowFailure: opts.allowFailure,
  });
}

export async function kubectlOut(args: string[], opts: ToolOptions = {}): Promise<string> {
  return (await kubectl(args, opts)).stdout;
}

export function helm(args: string[], opts: ToolOptions = {}): Promise<ExecResult> {
  return exec(null, [helmPath(), ...args], {
    env: toolEnv(opts.identity ?? 'admin'), input: opts.input, timeoutMs: opts.timeoutMs ?? 300_000, allowFailure: opts.allowFailure,
  });
}

export interface NodeSpec {
  name: string;
  ip: string;
  labels?: Record<string, string>;
}

/** Registers a Node the way a kubelet would: the object, then its addresses on the status subresource. */
export async function registerNode(n: NodeSpec): Promise<void> {
  const doc = { apiVersion: 'v1', kind: 'Node', metadata: { name: n.name, labels: n.labels ?? {} } };
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(doc) });
  await kubectl(['patch', 'node', n.name, '--subresource=status', '--type=merge', '-p',
    JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] } })]);
}

/**
 * Installs charts/lvs-operator as release "lvs-operator" in lvs-system (the namespace and ServiceAccounts the
 * harness identities belong to) and returns the controller configuration the chart rendered (its ConfigMap).
 */
export async function installChart(extra: string[] = []): Promise<string> {
  await helm(['install', 'lvs-operator', path.join(REPO, 'charts', 'lvs-operator'), '-n', 'lvs-system', '--create-namespace', ...extra]);
  const cm = JSON.parse(await kubectlOut(['get', 'configmap', '-n', 'lvs-system', '-l', 'app.kubernetes.io/instance=lvs-operator', '-o', 'json'])) as {
    items: Array<{ metadata: { name: string }; data?: Record<string, string> }>;
  };
  const config = cm.items.find((i) => i.data?.['config.json'])?.data?.['config.json'];
  if (!config) throw new Error(`the chart rendered no ConfigMap with config.json (got ${cm.items.map((i) => i.metadata.name).join(', ') || 'none'})`);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lvs-controller-')), 'config.json');
  fs.writeFileSync(file, config);
  return file;
}

/** The controller (src/controller/main.ts) as the chart's ServiceAccount, in the VM's root netns. */
export class ControllerProc {
  proc: BackgroundProcess | undefined;
  readonly #lab: NetLab;
  readonly #args: string[];

  constructor(lab: NetLab, configFile: string, extra: string[] = []) {
    this.#lab = lab;
    this.#args = ['--kubeconfig', kubeconfig('controller'), '--namespace', 'lvs-system', '--config', configFile,
      '--leader-elect', '--metrics-address', '127.0.0.1:18080', '--health-address', '127.0.0.1:18081', ...extra];
  }

  start(): void {
    this.proc = this.#lab.spawn(null, [process.execPath, path.join(REPO, 'src', 'controller', 'main.ts'), ...this.#args],
      { env: { LVS_LOG_LEVEL: process.env.LVS_LOG_LEVEL ?? 'info' }, label: 'lvs-controller' });
  }

  /** Waits until /readyz answers 200 (informers synced). */
  async waitReady(timeoutMs = 360_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = await fetch('http://127.0.0.1:18081/readyz', { signal: AbortSignal.timeout(5_000) }).then((r) => r.ok, () => false);
      if (ok) return;
      if (this.proc && !this.proc.running) throw new Error(`controller exited early:\n${this.proc.output}`);
      if (Date.now() > deadline) throw new Error(`controller not ready in ${timeoutMs} ms:\n${this.proc?.output ?? ''}`);
      await sleep(500);
    }
  }

  async stop(): Promise<void> {
    await this.proc?.stop('SIGTERM', 15_000);
  }
}
