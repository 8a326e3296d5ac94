// Shared pieces of the agent's end-to-end kernel suites: the classic LVS labs built from network namespaces
// (client, director, realservers on a bridge) with lvs-agent running in standalone mode in each of them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Bridge, NetLab, BackgroundProcess, Link } from '../vm/netns.ts';
import type { AgentReport } from '../../src/agent/agent.ts';

export const REPO = path.resolve(import.meta.dirname, '..', '..');
const AGENT = path.join(REPO, 'src', 'agent', 'main.ts');

export interface NodeDef {
  name: string;
  ip: string;
  director?: boolean;
}

/** Writes a standalone config dir: Node manifests (addresses, director label) plus the given manifests. */
export function writeConfig(nodes: NodeDef[], manifests: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvs-config-'));
  const nodeDocs = nodes.map((n) => [
    'apiVersion: v1',
    'kind: Node',
    'metadata:',
    `  name: ${n.name}`,
    n.director ? '  labels:\n    lvs.operator.dev/director: "true"' : '  labels: {}',
    'status:',
    '  addresses:',
    `    - type: InternalIP`,
    `      address: ${n.ip}`,
  ].join('\n'));
  fs.writeFileSync(path.join(dir, 'nodes.yaml'), nodeDocs.join('\n---\n') + '\n');
  fs.writeFileSync(path.join(dir, 'services.yaml'), manifests);
  return dir;
}

export class AgentProc {
  readonly stateDir: string;
  readonly statusFile: string;
  proc: BackgroundProcess | undefined;
  readonly #lab: NetLab;
  readonly #ns: string;
  readonly #args: string[];

  /** `source`: a standalone config dir, or `{ kubeconfig }` for cluster mode (the node's NodePlans). */
  constructor(lab: NetLab, ns: string, node: string, source: string | { kubeconfig: string }, extra: string[] = []) {
    this.#lab = lab;
    this.#ns = ns;
    this.stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `lvs-state-${node}-`));
    this.statusFile = path.join(this.stateDir, 'status.json');
    const mode = typeof source === 'string' ? ['--config', source] : ['--cluster', '--kubeconfig', source.kubeconfig];
    this.#args = [...mode, '--node', node, '--state-dir', this.stateDir, '--status-file', this.statusFile,
      '--interface', 'eth0', '--resync', '1', ...extra];
  }

  /**
   * `nice`: start at a lower CPU priority. The lab's "nodes" share the VM's two emulated CPUs, and a Node
   * process loading for a minute there would starve the others (their Lease renewals), which separate
   * machines never do.
   */
  start(opts: { nice?: number } = {}): void {
    fs.rmSync(this.statusFile, { force: true });
    const argv = [process.execPath, AGENT, ...this.#args];
    this.proc = this.#lab.spawn(this.#ns, opts.nice ? ['nice', '-n', String(opts.nice), ...argv] : argv, { env: { LVS_LOG_LEVEL: process.env.LVS_LOG_LEVEL ?? 'info' } });
  }

  async stop(): Promise<void> {
    await this.proc?.stop('SIGTERM', 10_000);
  }

  /** Back to normal CPU priority (after a `start({ nice })`, once the agent runs): every thread, not just the main one. */
  async renice(nice = 0): Promise<void> {
    if (!this.proc?.running) return;
    const pid = this.proc.pid;
    await this.#lab.exec(null, ['sh', '-c', `for t in /proc/${pid}/task/*; do renice -n ${nice} -p "\${t##*/}" >/dev/null; done`], { allowFailure: true });
  }

  status(): AgentReport | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.statusFile, 'utf8')) as AgentReport;
    } catch {
      return undefined;
    }
  }

  /** Waits for a status report satisfying `ok` (default: every service and VIP programmed). */
  async waitReady(ok: (r: AgentReport) => boolean = allOk, timeoutMs = 240_000): Promise<AgentReport> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.status();
      if (r && ok(r)) return r;
      if (this.proc && !this.proc.running) throw new Error(`agent exited early:\n${this.proc.output}`);
      if (Date.now() > deadline) throw new Error(`agent not ready in ${timeoutMs} ms; last status ${JSON.stringify(r)}\n${this.proc?.output ?? ''}`);
      await sleep(250);
    }
  }

  /** Runs `lvs-agent teardown` for this node's state. */
  async teardown(): Promise<void> {
    await this.#lab.exec(this.#ns, [process.execPath, AGENT, 'teardown', '--state-dir', this.stateDir, '--interface', 'eth0'], { timeoutMs: 60_000 });
  }
}

export const allOk = (r: AgentReport): boolean => r.director.services.every((s) => s.ok) && r.realServer.every((v) => v.ok);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { eventually } from '../support/eventually.ts';

/** `ipvsadm -Sn` lines in a netns, sorted (the independent oracle). */
export async function ipvsadmSave(lab: NetLab, ns: string): Promise<string[]> {
  const r = await lab.exec(ns, ['ipvsadm', '-S', '-n']);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort();
}

export async function addresses(lab: NetLab, ns: string, ifname: string): Promise<string[]> {
  const r = await lab.exec(ns, ['ip', '-j', 'addr', 'show', 'dev', ifname]);
  const links = JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>;
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

export const SYSCTLS = [
  'net/ipv4/ip_forward',
  'net/ipv4/conf/all/arp_ignore', 'net/ipv4/conf/all/arp_announce', 'net/ipv4/conf/default/arp_ignore',
  'net/ipv4/conf/default/arp_announce', 'net/ipv4/conf/lo/arp_ignore', 'net/ipv4/conf/lo/arp_announce',
  'net/ipv4/conf/eth0/arp_ignore', 'net/ipv4/conf/eth0/arp_announce', 'net/ipv4/conf/all/send_redirects',
  'net/ipv4/conf/default/send_redirects', 'net/ipv4/conf/eth0/send_redirects', 'net/ipv4/conf/all/rp_filter',
];

export async function readSysctls(lab: NetLab, ns: string, keys: string[] = SYSCTLS): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const k of keys) {
    const r = await lab.exec(ns, ['cat', `/proc/sys/${k}`], { allowFailure: true });
    out[k] = r.code === 0 ? r.stdout.trim() : 'absent';
  }
  return out;
}

/** Sequential HTTP GETs from `ns` in the background; `result()` stops and counts bodies and failures. */
export function loadLoop(lab: NetLab, ns: string, url: string, count: number, pauseSec = 0.05): { done: Promise<{ bodies: string[]; failures: number }> } {
  const script = `for i in $(seq 1 ${count}); do busybox wget -q -O - ${url} || echo FAILED; sleep ${pauseSec}; done; echo LOOP-DONE`;
  const p = lab.spawn(ns, ['sh', '-c', script], { label: 'load loop' });
  const done = p.waitForOutput(/LOOP-DONE/, 600_000).then(() => {
    const lines = p.output.split('\n').map((l) => l.trim()).filter((l) => l && l !== 'LOOP-DONE');
    return { bodies: lines.filter((l) => l !== 'FAILED'), failures: lines.filter((l) => l === 'FAILED').length };
  });
  return { done };
}

export interface DrLab {
  bridge: Bridge;
  client: string;
  director: string;
  web1: string;
  web2: string;
  /** The web servers (answer "web1\n" / "web2\n" on port 80 of every address, the VIP on lo included). */
  servers: { web1: BackgroundProcess; web2: BackgroundProcess };
  /** Each namespace's link to br56 (its bridge-side `peer` can be set down to cut the node off). */
  links: Record<'client' | 'director' | 'web1' | 'web2', Link>;
}

/**
 * The classic LVS-DR lab of lvs-primer.md on bridge br56: client .10, director .34, web1 .37 and web2 .38
 * in 192.168.56.0/24, each a network namespace, with an HTTP server on web1 and web2. `macs` pins MAC
 * addresses (for ARP assertions).
 */
export async function buildDrLab(lab: NetLab, macs: Partial<Record<'client' | 'director' | 'web1' | 'web2', string>> = {}): Promise<DrLab> {
  const bridge = await lab.addBridge('br56');
  const ns: Record<'client' | 'director' | 'web1' | 'web2', string> = {
    client: await lab.addNetns('client'),
    director: await lab.addNetns('director'),
    web1: await lab.addNetns('web1'),
    web2: await lab.addNetns('web2'),
  };
  const ips = { client: '192.168.56.10', director: '192.168.56.34', web1: '192.168.56.37', web2: '192.168.56.38' } as const;
  const links = {} as DrLab['links'];
  for (const n of ['client', 'director', 'web1', 'web2'] as const) links[n] = await lab.connect(ns[n], bridge, { addresses: [`${ips[n]}/24`], mac: macs[n] });
  const servers = { web1: await lab.startHttpServer(ns.web1, { name: 'web1' }), web2: await lab.startHttpServer(ns.web2, { name: 'web2' }) };
  return { bridge, ...ns, servers, links };
}
