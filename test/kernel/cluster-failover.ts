// The director-failover lab (used by test/kernel/failover-dr.test.ts and bench/failover.ts): the whole stack
// of cluster-lab.ts with TWO directors. On bridge br56: client .10, an observer .11 (sends the broadcast ARP
// probes, so the client's own neighbour cache is never touched by the test), director-a .34, director-b .35,
// web1 .37, web2 .38; every node also has mgmt0 on the management network. Both directors carry
// lvs.operator.dev/director=true and run `lvs-agent --cluster --vip-election`, so the VIP is elected on a Lease
// and IPVS sync daemons run master on the holder and backup on the standby.
//
// Observers, all reading state the agents do not write themselves:
//   - ClientProbe (node, in the client netns): a new TCP connection + HTTP GET to the VIP every probeMs, and
//     the client's ARP entry for the VIP read from /proc/net/arp every 25 ms (timestamps on the VM clock);
//     its `stream` mode opens long-lived downloads (realserver /stream) and reports whether they completed;
//   - AddressWatch: `ip -ts monitor address` on a director (when its kernel gained or lost the VIP);
//   - arpProbe: `arping -b` (broadcast requests) from the observer: every node with the VIP bound answers;
//   - leaseHolders: the VIP Leases as kubectl shows them; ipvsadm -Lnc for the synced connections.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackgroundProcess, Link, NetLab } from '../vm/netns.ts';
import { AgentProc, REPO, addresses, buildDrLab, eventually, ipvsadmSave, sleep } from './agent-lab.ts';
import { ControllerProc, ManagementNetwork, helm, installChart, kubeconfig, kubectl, kubectlOut, registerNode } from './cluster-lab.ts';

export const VIP = '192.168.56.40';
export const APP_NS = 'lab';
export const LEASE_NS = 'lvs-system';
const EXAMPLE = fs.readFileSync(path.join(REPO, 'deploy/examples/dr-lab.yaml'), 'utf8');
const POOL_FILE = path.join(REPO, 'deploy/examples/vip-pool-lab.yaml');

export type DirectorName = 'director-a' | 'director-b';
export const DIRECTOR_NAMES: readonly DirectorName[] = ['director-a', 'director-b'];

export interface Director {
  name: DirectorName;
  ns: string;
  ip: string;
  mac: string;
  agent: AgentProc;
  labLink: Link;
  mgmtLink: Link;
}

export interface HaStack {
  lab: NetLab;
  client: string;
  observer: string;
  web1: string;
  web2: string;
  directors: Record<DirectorName, Director>;
  controller: ControllerProc;
  /** Prints the logs of processes that failed or logged errors (all of them with `all`). */
  dumpLogs(all: boolean): void;
  /** Stops the agents and the controller, deletes the Nodes and the pool (the lab is the caller's). */
  stop(): Promise<void>;
}

export interface HaStackOptions {
  /** Extra lvs-agent arguments for the directors (e.g. failover timing). */
  directorArgs?: string[];
  /** Progress of the (minutes-long) start-up. */
  log?: (msg: string) => void;
}

const MACS: Record<DirectorName | 'client', string> = {
  'director-a': '02:00:00:00:56:34', 'director-b': '02:00:00:00:56:35', client: '02:00:00:00:56:10',
};

/** Builds the lab, installs the chart, starts controller and agents, applies the DR example; waits until served. */
export async function startHaStack(lab: NetLab, opts: HaStackOptions = {}): Promise<HaStack> {
  // buildDrLab's "director" becomes director-a; director-b and the observer join the same bridge.
  const dr = await buildDrLab(lab, { director: MACS['director-a'], client: MACS.client });
  const b = await lab.addNetns('dirb');
  const labLinkB = await lab.connect(b, dr.bridge, { addresses: ['192.168.56.35/24'], mac: MACS['director-b'] });
  const observer = await lab.addNetns('obs');
  await lab.connect(observer, dr.bridge, { addresses: ['192.168.56.11/24'] });
  const mgmt = await ManagementNetwork.create(lab);
  for (const ns of [dr.director, b, dr.web1, dr.web2]) await mgmt.join(ns);

  // Agents first, the controller as soon as the chart rendered its config: under TCG at host load ~15 a Node
  // process needs minutes to load (the controller once took over 4 min to listen), so overlap that with helm.
  const agentKc = { kubeconfig: kubeconfig('agent') };
  // --vip-election explicitly: these agents are not the chart's DaemonSet pods.
  // The product's resync period (10 s), not AgentProc's 1 s for drift tests: a full run (a second or more
  // under TCG) in flight delays the run that binds a VIP just won.
  const directorArgs = ['--metrics-address', 'none', '--vip-election', '--resync', '10', ...(opts.directorArgs ?? [])];
  const directors: Record<DirectorName, Director> = {
    'director-a': {
      name: 'director-a', ns: dr.director, ip: '192.168.56.34', mac: MACS['director-a'], labLink: dr.links.director, mgmtLink: mgmt.link(dr.director),
      agent: new AgentProc(lab, dr.director, 'director-a', agentKc, directorArgs),
    },
    'director-b': {
      name: 'director-b', ns: b, ip: '192.168.56.35', mac: MACS['director-b'], labLink: labLinkB, mgmtLink: mgmt.link(b),
      agent: new AgentProc(lab, b, 'director-b', agentKc, directorArgs),
    },
  };
  const realServers = {
    // Same for the realservers: six Node processes share the VM's two emulated CPUs with the Lease traffic.
    web1: new AgentProc(lab, dr.web1, 'web1', agentKc, ['--metrics-address', 'none', '--resync', '10']),
    web2: new AgentProc(lab, dr.web2, 'web2', agentKc, ['--metrics-address', 'none', '--resync', '10']),
  };
  for (const a of [...Object.values(directors).map((d) => d.agent), ...Object.values(realServers)]) a.start();
  const config = await installChart();
  const controller = new ControllerProc(lab, config);
  controller.start();
  for (const [name, ip] of [['director-a', '192.168.56.34'], ['director-b', '192.168.56.35']] as const) {
    await registerNode({ name, ip, labels: { 'lvs.operator.dev/director': 'true' } });
  }
  await registerNode({ name: 'web1', ip: '192.168.56.37' });
  await registerNode({ name: 'web2', ip: '192.168.56.38' });

  const procs = (): Record<string, BackgroundProcess | undefined> => ({
    controller: controller.proc,
    ...Object.fromEntries(Object.values(directors).map((d) => [`agent ${d.name}`, d.agent.proc])),
    'agent web1': realServers.web1.proc, 'agent web2': realServers.web2.proc,
  });
  const stack: HaStack = {
    lab, client: dr.client, observer, web1: dr.web1, web2: dr.web2, directors, controller,
    dumpLogs(all) {
      // Whole logs where the host can read them: the jest cache is the VM's one writable share (test:vm).
      const share = '/var/cache/lvs-operator-jest';
      if (fs.existsSync(share)) {
        const dir = path.join(share, 'lab-logs', new Date().toISOString().replace(/[:.]/g, '-'));
        fs.mkdirSync(dir, { recursive: true });
        for (const [name, p] of Object.entries(procs())) fs.writeFileSync(path.join(dir, `${name}.log`), p?.output ?? '');
        process.stderr.write(`--- whole logs: ${dir} (host: ~/.cache/lvs-operator/vm/jest-cache/lab-logs)\n`);
      }
      for (const [name, p] of Object.entries(procs())) {
        const lines = (p?.output ?? '').trimEnd().split('\n');
        const bad = lines.filter((l) => /"level":(50|60)\b/.test(l));
        if (all || bad.length || (p && !p.running)) {
          process.stderr.write(`--- ${name}${p && !p.running ? ' (exited)' : ''}, ${bad.length} errors; last lines:\n${lines.slice(-40).join('\n')}\n`);
        }
      }
    },
    async stop() {
      // The namespace first, while the controller and the agents still run: its VirtualServices carry
      // finalizers only they remove, and a namespace left terminating would keep the next whole-stack suite in
      // this VM run (stack-dr, same namespace name) from creating it.
      for (const d of Object.values(directors)) if (!d.agent.proc?.running) d.agent.start();
      await kubectl(['delete', 'namespace', APP_NS, '--ignore-not-found', '--wait=true', '--timeout=240s'], { allowFailure: true, timeoutMs: 260_000 });
      for (const a of [...Object.values(directors).map((d) => d.agent), ...Object.values(realServers)]) await a.stop().catch(() => undefined);
      await controller.stop().catch(() => undefined);
      for (const n of [...DIRECTOR_NAMES, 'web1', 'web2']) await kubectl(['delete', 'node', n, '--ignore-not-found'], { allowFailure: true });
      await kubectl(['delete', '-f', POOL_FILE, '--ignore-not-found'], { allowFailure: true });
      // Other whole-stack suites in the same VM run install the chart under the same release name.
      await helm(['uninstall', 'lvs-operator', '-n', 'lvs-system', '--wait'], { allowFailure: true }).catch(() => undefined);
    },
  };

  const progress = opts.log ?? ((): void => undefined);
  try {
    progress('chart installed, nodes registered; waiting for the controller');
    await controller.waitReady(900_000);
    progress('controller ready; applying the DR example');
    await kubectl(['create', 'namespace', APP_NS]);
    await kubectl(['apply', '-f', POOL_FILE]);
    await kubectl(['apply', '-n', APP_NS, '-f', '-'], { input: EXAMPLE });

    // Hot standby: both directors carry the same IPVS table; realservers have the VIP on lo.
    const want = [`-A -t ${VIP}:80 -s rr`, `-a -t ${VIP}:80 -r 192.168.56.37:80 -g -w 1`, `-a -t ${VIP}:80 -r 192.168.56.38:80 -g -w 1`].sort();
    for (const d of Object.values(directors)) {
      await eventually(`DR rules on ${d.name}`, async () => JSON.stringify(await ipvsadmSave(lab, d.ns)) === JSON.stringify(want), 600_000, 1000);
    }
    progress('DR rules on both directors');
    for (const ns of [dr.web1, dr.web2]) await eventually(`VIP on lo of ${ns}`, async () => (await addresses(lab, ns, 'lo')).includes(`${VIP}/32`), 300_000, 1000);
    progress('realservers prepared; waiting for one director to bind the VIP');
    await eventually('exactly one director binds the VIP', async () => (await boundOn(stack)).length === 1, 300_000, 500);
    await eventually('the VIP answers', async () => (await lab.httpGet(dr.client, `http://${VIP}/`, { timeoutSec: 5, allowFailure: true })) !== null, 300_000, 1000);
  } catch (e) {
    // The caller never gets the stack to dump: show what the processes said, then fail.
    stack.dumpLogs(true);
    await stack.stop();
    throw e;
  }
  return stack;
}

/** Whether `ns` has the VIP bound on eth0 (the kernel's view). */
export async function vipBound(lab: NetLab, ns: string): Promise<boolean> {
  return (await addresses(lab, ns, 'eth0')).includes(`${VIP}/32`);
}

/** The directors that have the VIP bound now. */
export async function boundOn(s: HaStack): Promise<DirectorName[]> {
  const out: DirectorName[] = [];
  for (const d of Object.values(s.directors)) if (await vipBound(s.lab, d.ns)) out.push(d.name);
  return out;
}

/** Holders of the VIP Leases (lvs-vip-*) in the operator namespace, as kubectl shows them ('' = released). */
export async function leaseHolders(): Promise<string[]> {
  const list = JSON.parse(await kubectlOut(['get', 'leases', '-n', LEASE_NS, '-o', 'json'])) as {
    items: Array<{ metadata: { name: string }; spec?: { holderIdentity?: string } }>;
  };
  return list.items.filter((l) => l.metadata.name.startsWith('lvs-vip-')).map((l) => l.spec?.holderIdentity ?? '');
}

/** The client's neighbour entry for the VIP (`ip neigh`): its MAC, or undefined without a usable one. */
export async function clientNeighbour(s: HaStack): Promise<string | undefined> {
  const r = await s.lab.exec(s.client, ['ip', '-j', 'neigh', 'show', VIP]);
  const e = (JSON.parse(r.stdout || '[]') as Array<{ lladdr?: string; state?: string[] }>)[0];
  return e?.lladdr && !e.state?.includes('FAILED') ? e.lladdr.toLowerCase() : undefined;
}

/** Client ports of the ESTABLISHED connections to the VIP in `ns`'s IPVS connection table (ipvsadm -Lnc). */
export async function ipvsConnections(lab: NetLab, ns: string): Promise<Set<number>> {
  const r = await lab.exec(ns, ['ipvsadm', '-L', '-n', '-c']);
  const ports = new Set<number>();
  for (const line of r.stdout.split('\n')) {
    const m = /^TCP\s+\S+\s+ESTABLISHED\s+192\.168\.56\.10:(\d+)\s+192\.168\.56\.40:80\s/.exec(line.trim());
    if (m) ports.add(Number(m[1]));
  }
  return ports;
}

export type Fault = 'kill' | 'link';

/**
 * Fails director `d` and returns the VM-clock time of the fault: `kill` SIGKILLs its agent (the kernel keeps
 * what it had: VIP, IPVS table, sync daemon); `link` makes the switch stop forwarding for it: both of its
 * bridge ports (lab and management network) go to the disabled state in one `bridge -batch`, so no frame gets
 * in or out (a dead switch port or cable beyond the NIC). Not `ip link set down`: all the lab's "nodes" share
 * one kernel, and taking a veth down holds the kernel-wide RTNL lock through RCU grace periods (seconds under
 * emulation), which stalled the OTHER director's address and sync-daemon requests: a cost no real cable cut
 * puts on another machine. The link fault's time is the kernel's (`ip -ts monitor link` sees the port's state
 * change): starting `ip` costs a few hundred ms under TCG, which would otherwise count as failover time.
 */
export async function fail(s: HaStack, d: Director, fault: Fault): Promise<number> {
  if (fault === 'kill') {
    const p = d.agent.proc;
    if (!p?.running) throw new Error(`agent ${d.name} is not running`);
    const t = Date.now();
    process.kill(p.pid, 'SIGKILL');
    await p.exited;
    return t;
  }
  return setPorts(s, d, 0);
}

/** Bridge port state of both of `d`'s links (0 disabled, 3 forwarding); the kernel time of the lab port's change. */
async function setPorts(s: HaStack, d: Director, state: 0 | 3): Promise<number> {
  const watch = s.lab.spawn(null, ['ip', '-ts', 'monitor', 'link'], { label: 'ip monitor link' });
  await sleep(1_000);
  const t = Date.now();
  // `bridge`, not `ip link set … type bridge_slave state N`: that one exits 0 and leaves the state alone.
  await s.lab.exec(null, ['bridge', '-batch', '-'], {
    input: [d.labLink.peer, d.mgmtLink.peer].map((port) => `link set dev ${port} state ${state}\n`).join(''),
  });
  for (const port of [d.labLink.peer, d.mgmtLink.peer]) {
    const shown = (await s.lab.exec(null, ['bridge', 'link', 'show', 'dev', port])).stdout;
    if (!shown.includes(state === 0 ? 'state disabled' : 'state forwarding')) throw new Error(`bridge port ${port} of ${d.name} not set to state ${state}: ${shown.trim()}`);
  }
  let at: number | undefined;
  for (let i = 0; i < 50 && at === undefined; i++) {
    // [2026-12-02T12:09:49.491964] 4: lab0v3@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master lab0br56 state UP
    for (const m of watch.output.matchAll(/^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] \d+: ([^:@\s]+)[@:]/gm)) {
      const when = Date.parse(`${m[1]!.slice(0, 23)}Z`);
      if (m[2] === d.labLink.peer && when >= t - 50) {
        at = when;
        break;
      }
    }
    if (at === undefined) await sleep(100);
  }
  await watch.stop('SIGKILL');
  return at ?? t;
}

/** Undoes `fail`: restarts the agent (same state dir: it finds the VIP it had bound) or lets its switch ports forward again. */
export async function restore(s: HaStack, d: Director, fault: Fault): Promise<number> {
  if (fault === 'link') return setPorts(s, d, 3);
  const t = Date.now();
  d.agent.start({ nice: 10 });
  return t;
}

// ------------------------------------------------------------------------------------------------------
// The client-side observer (CommonJS for `node -e`, runs in the client netns).

const CLIENT_JS = `
const net = require('node:net');
const fs = require('node:fs');
const [mode, vip, port, a, b, c] = process.argv.slice(1);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
if (mode === 'probe') {
  const everyMs = Number(a), timeoutMs = Number(b);
  let mac;
  const readArp = () => {
    let m = 'none';
    try {
      for (const line of fs.readFileSync('/proc/net/arp', 'utf8').split('\\n').slice(1)) {
        const f = line.trim().split(/\\s+/);
        if (f[0] === vip) m = (Number(f[2]) & 2) ? f[3].toLowerCase() : 'incomplete';
      }
    } catch (e) { m = 'error'; }
    if (m !== mac) { mac = m; out({ k: 'arp', t: Date.now(), mac: m }); }
  };
  const attempt = () => {
    const t0 = Date.now();
    let data = '';
    let done = false;
    const s = net.connect({ host: vip, port: Number(port) });
    const finish = (ok, err) => {
      if (done) return;
      done = true;
      s.destroy();
      const who = (/\\r\\n\\r\\n(\\S+)/.exec(data) || [])[1];
      out({ k: 'p', t0, t1: Date.now(), ok: ok && !!who, who, err });
    };
    s.setTimeout(timeoutMs, () => finish(false, 'timeout'));
    s.on('connect', () => s.write('GET / HTTP/1.0\\r\\n\\r\\n'));
    s.on('data', (d) => { data += d; });
    s.on('end', () => finish(true));
    s.on('error', (e) => finish(false, e.code || e.message));
  };
  readArp();
  setInterval(readArp, 25);
  setInterval(attempt, everyMs);
  out({ k: 'ready', t: Date.now() });
} else if (mode === 'stream') {
  const n = Number(a), lines = Number(b), ms = Number(c);
  let left = n;
  for (let id = 0; id < n; id++) {
    let data = '';
    let done = false;
    const s = net.connect({ host: vip, port: Number(port) });
    const finish = (err) => {
      if (done) return;
      done = true;
      const body = data.split('\\r\\n\\r\\n').slice(1).join('\\r\\n\\r\\n').split('\\n').filter(Boolean);
      const ok = !err && body.length === lines + 1 && body[lines] === 'END';
      out({ k: 'sd', id, t: Date.now(), ok, lines: body.length, who: (body[0] || '').split(' ')[0], err });
      if (--left === 0) process.exit(0);
    };
    s.on('connect', () => {
      out({ k: 'so', id, t: Date.now(), port: s.localPort });
      s.write('GET /stream?lines=' + lines + '&ms=' + ms + ' HTTP/1.0\\r\\n\\r\\n');
    });
    s.on('data', (d) => { data += d; });
    s.on('end', () => finish());
    s.on('error', (e) => finish(e.code || e.message));
  }
}
`;

export interface ProbeResult { t0: number; t1: number; ok: boolean; who?: string; err?: string }
export interface ArpChange { t: number; mac: string }

function jsonLines<T>(p: BackgroundProcess, kind: string): T[] {
  const out: T[] = [];
  for (const line of p.output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as { k?: string };
      if (o.k === kind) out.push(o as T);
    } catch {
      // a partial last line
    }
  }
  return out;
}

/** New connections to the VIP every `everyMs` and the client's ARP entry for it, both timestamped. */
export class ClientProbe {
  readonly #p: BackgroundProcess;
  // Parsed incrementally: a benchmark run prints tens of thousands of lines.
  #offset = 0;
  readonly #probes: ProbeResult[] = [];
  readonly #arp: ArpChange[] = [];
  private constructor(p: BackgroundProcess) {
    this.#p = p;
  }

  static async start(s: HaStack, everyMs = 100, timeoutMs = 1000): Promise<ClientProbe> {
    const p = s.lab.spawn(s.client, [process.execPath, '-e', CLIENT_JS, 'probe', VIP, '80', String(everyMs), String(timeoutMs)], { label: 'client probe' });
    await p.waitForOutput(/"k":"ready"/, 300_000);
    return new ClientProbe(p);
  }

  #parse(): void {
    const text = this.#p.output;
    const end = text.lastIndexOf('\n') + 1;
    if (end <= this.#offset) return;
    for (const line of text.slice(this.#offset, end).split('\n')) {
      if (!line.startsWith('{')) continue;
      const o = JSON.parse(line) as { k: string } & ProbeResult & ArpChange;
      if (o.k === 'p') this.#probes.push(o);
      else if (o.k === 'arp') this.#arp.push(o);
    }
    this.#offset = end;
  }

  get running(): boolean {
    return this.#p.running;
  }

  probes(): ProbeResult[] {
    this.#parse();
    return this.#probes;
  }

  arp(): ArpChange[] {
    this.#parse();
    return this.#arp;
  }

  /** The client's ARP entry for the VIP at time t (last change at or before t). */
  macAt(t: number): string | undefined {
    return this.arp().filter((a) => a.t <= t).at(-1)?.mac;
  }

  /** When the client's ARP entry first showed `mac` at or after `since`. */
  movedAt(mac: string, since: number): number | undefined {
    return this.arp().find((a) => a.t >= since && a.mac === mac)?.t;
  }

  /** The first probe started at or after `since` that succeeded. */
  firstOkAfter(since: number): ProbeResult | undefined {
    return this.probes().find((p) => p.t0 >= since && p.ok);
  }

  async stop(): Promise<void> {
    await this.#p.stop('SIGTERM', 5_000);
  }
}

/** `t`: when the stream ended on the client (VM clock; 0 if it did not end). */
export interface StreamResult { id: number; port: number; t: number; ok: boolean; lines: number; who: string; err?: string }

/** `n` long-lived downloads (lines × ms) through the VIP, opened at once. */
export class Streams {
  readonly #p: BackgroundProcess;
  readonly n: number;
  private constructor(p: BackgroundProcess, n: number) {
    this.#p = p;
    this.n = n;
  }

  static async open(s: HaStack, n: number, lines: number, ms: number): Promise<Streams> {
    const p = s.lab.spawn(s.client, [process.execPath, '-e', CLIENT_JS, 'stream', VIP, '80', String(n), String(lines), String(ms)], { label: 'client streams' });
    const st = new Streams(p, n);
    await eventually('streams connected', async () => st.ports().length === n || p.running === false, 300_000, 100);
    if (st.ports().length !== n) throw new Error(`streams did not connect:\n${p.output}`);
    return st;
  }

  ports(): number[] {
    return jsonLines<{ port: number }>(this.#p, 'so').map((o) => o.port);
  }

  /** Waits for every stream to end; its result (ok = the whole body arrived over the one connection). */
  async done(timeoutMs: number): Promise<StreamResult[]> {
    const timer = sleep(timeoutMs).then(() => 'timeout' as const);
    if ((await Promise.race([this.#p.exited, timer])) === 'timeout') {
      await this.#p.stop('SIGKILL');
    }
    const opened = new Map(jsonLines<{ id: number; port: number }>(this.#p, 'so').map((o) => [o.id, o.port]));
    const ended = jsonLines<Omit<StreamResult, 'port'>>(this.#p, 'sd');
    return [...opened].map(([id, port]) => {
      const e = ended.find((x) => x.id === id);
      return e ? { ...e, port } : { id, port, t: 0, ok: false, lines: 0, who: '', err: 'did not end in time' };
    });
  }
}

/** Waits until `ns`'s IPVS connection table (a standby's: filled by its backup sync daemon) lists every port. */
export async function waitSynced(lab: NetLab, ns: string, ports: number[], timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  await eventually(`connections ${ports.join(',')} synced to ${ns}`, async () => {
    const have = await ipvsConnections(lab, ns);
    return ports.every((p) => have.has(p));
  }, timeoutMs, 200);
  return Date.now() - t0;
}

// ------------------------------------------------------------------------------------------------------

/** `ip addr` of both directors in a loop: which of them had the VIP bound, when (VM clock, ms). */
/**
 * The VIP's comings and goings on one director's eth0, from `ip -ts monitor address` (kernel events with
 * their time): exact, and no process per sample competing with the agents for the VM's emulated CPUs.
 */
export class AddressWatch {
  readonly #p: BackgroundProcess;
  private constructor(p: BackgroundProcess) {
    this.#p = p;
  }

  /** Resolves once the monitor runs (its first line can only come from an event, so give it a moment). */
  static async start(lab: NetLab, ns: string): Promise<AddressWatch> {
    const w = new AddressWatch(lab.spawn(ns, ['ip', '-ts', 'monitor', 'address', 'dev', 'eth0'], { label: `ip monitor address (${ns})` }));
    await sleep(1_000);
    return w;
  }

  /** VIP events in order: 'add' or 'del' and when (epoch ms). */
  events(): Array<{ t: number; op: 'add' | 'del' }> {
    const out: Array<{ t: number; op: 'add' | 'del' }> = [];
    // [2026-12-02T07:25:01.123456] Deleted 3: eth0    inet 192.168.56.40/32 scope global eth0
    for (const m of this.#p.output.matchAll(/^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (Deleted )?\d+: \S+\s+inet (\S+)\//gm)) {
      if (m[3] !== VIP) continue;
      out.push({ t: Date.parse(`${m[1]!.slice(0, 23)}Z`), op: m[2] ? 'del' : 'add' });
    }
    return out;
  }

  /** The first add/del of the VIP at or after `since`. */
  first(op: 'add' | 'del', since: number): number | undefined {
    return this.events().find((e) => e.op === op && e.t >= since)?.t;
  }

  async stop(): Promise<void> {
    await this.#p.stop('SIGKILL');
  }
}

/**
 * Broadcast ARP requests for the VIP from the observer (`arping -b`: never switches to unicast), for
 * `seconds`: every node with the VIP bound on the bridge answers. Resolves with the replying MACs and counts.
 */
export async function arpProbe(s: HaStack, seconds: number): Promise<Map<string, number>> {
  // One request a second (iputils arping takes whole seconds only: `-i 0.2` is refused with exit 2).
  const r = await s.lab.exec(s.observer, ['arping', '-b', '-I', 'eth0', '-c', String(seconds), '-w', String(seconds + 1), VIP],
    { allowFailure: true, timeoutMs: (seconds + 30) * 1000 });
  // 0: replies, 1: none; anything else is a broken probe, not "nobody answered".
  if (r.code !== 0 && r.code !== 1) throw new Error(`arping from the observer failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  const macs = new Map<string, number>();
  for (const m of r.stdout.matchAll(/reply from \S+ \[([0-9A-Fa-f:]+)\]/g)) {
    const mac = m[1]!.toLowerCase();
    macs.set(mac, (macs.get(mac) ?? 0) + 1);
  }
  return macs;
}
