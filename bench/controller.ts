// `npm run bench:controller`: the whole stack at scale. 5,000 VirtualServices x 10 RealServers in a real
// kube-apiserver (test/apiserver harness, on this host); the controller (src/controller/main.ts) runs natively
// here as the chart's ServiceAccount; lvs-agent runs in cluster mode as node "director" inside the lab VM
// (bench/controller-vm.ts), reaching the apiserver through the VM's only forward.
//
// Measured: object creation, the controller's initial sync (every VirtualService Accepted at its generation
// and the director's NodePlans holding every service; then every RealServer status written) with its RSS
// and CPU; the agent's initial sync through the stack (agent start until its NodePlan reports say every
// service is programmed, checked against `ipvsadm -Sn`); then single changes timed from just before
// `kubectl apply` starts (native, on this host, as an admin's workstation would run it) until the director's
// kernel shows them (read by a probe in the director's netns, one GET_DEST of that service every 5 ms, which
// tells the host over the VM's forward): RealServer weight changes, new and deleted RealServers, weight
// changes again with `kubectl apply --server-side` (client-side apply reads, rewrites and parses its cached
// copy of the server's whole OpenAPI v2 document, 2 MB, on every run), plus weight changes with kubectl run
// inside the VM (emulated: shows kubectl's own cost there). Each change is split
// into kubectl's run time, the controller's share (until this host's NodePlan watch shows the new plan) and
// the director's share. `ipvsadm -e` on the same 50,000-destination table in the same VM is the reference.
// Writes bench/results/controller.{json,md}.
//
// The VIPs (a VIPPool admits them) are bound on the director's lo: on eth0 the agent would send each newly
// bound VIP's gratuitous ARP (`arping -U -c 3`, about 2 s) one after the other, which alone takes hours at
// 5,000 VIPs; the run measures one such arping in the VM and reports the estimate.
//
// Knobs: BENCH_SERVICES (5000), BENCH_CHANGES (300 weight changes, each way; a fifth as many new and deleted RealServers), BENCH_VM=0 (no VM: the controller leg
// only, kubectl apply -> NodePlan), BENCH_VIP_INTERFACE (lo), BENCH_OUT (results directory), BENCH_VM_CPUSET (host
// CPUs for the VM once booted, e.g. 1; default all), BENCH_KUBECTL_NICE (scheduling priority of the timed kubectl runs, default -10; 0 = as everything else), BENCH_AGENT_LOG_LEVEL (the agent's log level in the VM, default
// warn; when set, its whole log is printed at the end), BENCH_AGENT_NODE_OPTIONS (extra node flags for the agent,
// e.g. --trace-gc; its output joins the agent's log), BENCH_AGENT_MEMORY_LIMIT (the agent runs in a memory cgroup
// in the VM with the chart's agent limit; another quantity, or "none"), BENCH_AGENT_CPU_PROFILE=1 (the agent's
// CPU profile, sampled every 2 ms, is written to BENCH_OUT as agent-*.cpuprofile when it stops), BENCH_APISERVER_PPROF (a directory: kube-apiserver runs with
// --profiling and its allocation profile is saved there before and after the client-side weight changes, for
// `go tool pprof -sample_index=alloc_space -base allocs-before.pb.gz allocs-after.pb.gz`).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startHostApi, type HostApi } from '../test/vm/host-api.ts';
import { runInVm } from '../test/vm/lab.ts';
import { freePort } from '../test/apiserver/harness.ts';
import { helmPath, kubectlPath } from '../scripts/tools.ts';
import { apiserverCounters } from './apiserver-metrics.ts';
import { Informer } from '../src/kube/informer.ts';
import { isAlreadyExists } from '../src/kube/status.ts';
import { Writer } from '../src/kube/writer.ts';
import { NODE_LABEL, shardName, shardOf } from '../src/model/shards.ts';
import { GROUP, VERSION } from '../src/api/v1alpha1/meta.ts';
import type { NodePlan, RealServer, VirtualService } from '../src/api/v1alpha1/index.ts';
import { createLogger } from '../src/util/log.ts';
import { DRIVER_GUEST_PORT, DIRECTOR, DIRECTOR_IP, type Expect, type GuestMessage, type HostMessage } from './controller-vm.ts';
import { percentile } from '../test/support/percentile.ts';
import { chartMemoryLimit, memoryLimit, type MemoryLimit } from './memory-limit.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const SERVICES = Number(process.env.BENCH_SERVICES ?? 5000);
const RS_PER = 10;
// 300: the client-side weight changes then span about 3 minutes, so that kube-apiserver's periodic watch-cache
// consistency checks (every 5 to 7.5 minutes per resource) usually fall among them, as they would in a cluster,
// and p99 is not just the second slowest change.
const WEIGHTS = Number(process.env.BENCH_CHANGES ?? 300);
const ADDS = Math.max(1, Math.round(WEIGHTS / 5));
/** kubectl in the emulated VM takes seconds a run: a reference, 20 runs are enough. */
const VM_KUBECTL = Math.max(1, Math.round(Math.min(WEIGHTS, 100) / 5));
const IPVSADM = 30;
const USE_VM = process.env.BENCH_VM !== '0';
const VIP_INTERFACE = process.env.BENCH_VIP_INTERFACE ?? 'lo';
/** Host CPUs (taskset list) the lab VM is confined to once booted; default: it shares all of them. */
const VM_CPUSET = process.env.BENCH_VM_CPUSET ?? '';
// The timed kubectl stands for an admin's workstation, whose CPU the cluster does not share: at nice 0 on this
// host's 2 cores its own ~400 ms of CPU (client-side apply parses the server's 2 MB OpenAPI v2 document) waits
// behind the emulated VM and kube-apiserver's periodic consistency checks (one of 50,000 RealServers takes
// ~20 s of a core), and kubectl's run alone went past 1 s. The stack it measures keeps the priority it has.
const KUBECTL_NICE = Number(process.env.BENCH_KUBECTL_NICE ?? -10);
if (!Number.isInteger(KUBECTL_NICE) || KUBECTL_NICE < -20 || KUBECTL_NICE > 19) throw new Error(`BENCH_KUBECTL_NICE=${process.env.BENCH_KUBECTL_NICE}: a nice value from -20 to 19`);
// Raising a priority takes root (CAP_SYS_NICE): say so now rather than fail at the first timed change.
if (KUBECTL_NICE < 0 && process.getuid?.() !== 0) throw new Error(`BENCH_KUBECTL_NICE=${KUBECTL_NICE} needs root to raise kubectl's priority; run as root or set BENCH_KUBECTL_NICE=0`);
const PPROF_DIR = process.env.BENCH_APISERVER_PPROF;
const OUT = process.env.BENCH_OUT ?? path.join(REPO, 'bench', 'results');
/** The issue's target, 500 MB, in MiB. */
const RSS_TARGET_MIB = 500e6 / 2 ** 20;
/** The controller's memory cgroup, made inside the run's `try` so that its `finally` always removes it. */
let madeLimit: MemoryLimit | undefined;
const NS = 'bench';
const LABEL = 'bench.lvs.operator.dev/vs';
const R = {
  vs: { group: GROUP, version: VERSION, plural: 'virtualservices' },
  rs: { group: GROUP, version: VERSION, plural: 'realservers' },
  np: { group: GROUP, version: VERSION, plural: 'nodeplans' },
};

const t0 = performance.now();
const log = (msg: string): void => {
  process.stderr.write(`[bench:controller +${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r1 = (n: number): number => Math.round(n * 10) / 10;
const stats = (xs: number[]): { n: number; p50: number; p99: number; max: number } => ({ n: xs.length, p50: r1(percentile(xs, 50)), p99: r1(percentile(xs, 99)), max: r1(Math.max(...xs)) });

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

/** Set when the run must stop (the VM died, a signal): every wait gives up. */
let abort: string | undefined;

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (abort) throw new Error(`${abort} (while waiting for ${what})`);
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// --- the objects ------------------------------------------------------------------------------------------

const vip = (i: number): string => `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
const rsAddress = (i: number, j: number): string => `10.200.${j}.${(i % 250) + 1}`;
const vsDoc = (i: number): VirtualService => ({
  apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtualService',
  metadata: { name: `vs-${i}`, namespace: NS },
  // No health checks: 50,000 probes from an emulated VM would measure the VM, not the operator.
  spec: { vip: vip(i), port: 80, protocol: 'TCP', scheduler: 'wlc', forwarding: 'DirectRouting', realServerSelector: { matchLabels: { [LABEL]: `vs-${i}` } }, healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 } },
});
const rsDoc = (i: number, name: string, address: string, weight: number): RealServer => ({
  apiVersion: `${GROUP}/${VERSION}`, kind: 'RealServer',
  metadata: { name, namespace: NS, labels: { [LABEL]: `vs-${i}` } },
  spec: { address, weight },
});

// --- processes --------------------------------------------------------------------------------------------

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `cmd`; with `nice`, at that scheduling priority (set right after the spawn). */
function run(cmd: string, args: string[], env: Record<string, string>, input?: string, nice?: number): Promise<Run> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    if (nice !== undefined && p.pid !== undefined) os.setPriority(p.pid, nice);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code: code ?? 128, stdout, stderr, ms: performance.now() - start }));
    p.stdin.end(input ?? '');
  });
}

async function ok(cmd: string, args: string[], env: Record<string, string>, input?: string, nice?: number): Promise<Run> {
  const r = await run(cmd, args, env, input, nice);
  if (r.code !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')}: exit ${r.code}\n${r.stderr || r.stdout}`);
  return r;
}

/** utime + stime (clock ticks) from a /proc/PID/stat line. */
function cpuTicks(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * CPU time so far, ms: this process's reaped children (kubectl, once it has exited), this process itself, each
 * group of processes given, and the host's busy and total time summed over its cores. Around one kubectl run it
 * says how much CPU kubectl itself took and what else ran on the host's cores meanwhile.
 */
function cpuNowMs<K extends string>(groups: Record<K, readonly number[]>): { children: number; self: number; busy: number; total: number; groups: Record<K, number> } {
  const self = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = self.slice(self.lastIndexOf(')') + 2).split(' ');
  const out = {} as Record<K, number>;
  for (const k of Object.keys(groups) as K[]) {
    let ticks = 0;
    for (const pid of groups[k]) {
      try {
        ticks += cpuTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch { /* gone */ }
    }
    out[k] = ticks * 10;
  }
  const [, ...h] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const t = h.map(Number);
  const total = t.slice(0, 8).reduce((a, b) => a + b, 0);
  return { children: (Number(f[13]) + Number(f[14])) * 10, self: (Number(f[11]) + Number(f[12])) * 10, busy: (total - t[3]! - t[4]!) * 10, total: total * 10, groups: out };
}

/** PIDs of the host's processes whose command name (/proc/PID/stat) matches. */
function pidsNamed(name: RegExp): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (name.test(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')))) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

/** PIDs of the host's QEMU processes (the lab VM). */
const qemuPids = (): number[] => pidsNamed(/^qemu-system/);

/** The host's busy and total CPU seconds since boot, and those of its QEMU processes (the lab VM), from /proc. */
function hostCpu(): { busySec: number; totalSec: number; qemuSec: number } {
  const c = cpuNowMs({ qemu: qemuPids() });
  return { busySec: c.busy / 1000, totalSec: c.total / 1000, qemuSec: c.groups.qemu / 1000 };
}

/** VmRSS / VmHWM (MiB) and CPU seconds of a process, from /proc. */
function procStats(pid: number): { rssMiB: number; hwmMiB: number; cpuSec: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024, cpuSec: cpuTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) / 100 };
  } catch {
    return undefined;
  }
}

/** The controller's own counters from its /metrics. */
async function controllerMetrics(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(lvs_controller_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}
const delta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.keys(b).filter((k) => !k.includes('_bucket')).map((k) => [k, r1((b[k] ?? 0) - (a[k] ?? 0))]).filter(([, v]) => v !== 0));

// --- the guest channel ------------------------------------------------------------------------------------

/** The guest clock's offset from the host's (guest - host) at host time hostEpoch, uncertain by ± errMs. */
interface ClockOffset {
  hostEpoch: number;
  offsetMs: number;
  errMs: number;
}

/** The offset at host time `epoch`, interpolated between two estimates (the guest clock may drift a little). */
function offsetAt(a: ClockOffset, b: ClockOffset, epoch: number): number {
  if (b.hostEpoch === a.hostEpoch) return a.offsetMs;
  return a.offsetMs + ((b.offsetMs - a.offsetMs) * (epoch - a.hostEpoch)) / (b.hostEpoch - a.hostEpoch);
}

class Channel {
  #sock: net.Socket | undefined;
  #buf = '';
  #waiters: Array<{ match: (m: GuestMessage) => boolean; resolve: (m: GuestMessage) => void; reject: (e: Error) => void; at: number }> = [];
  readonly connected: Promise<void>;
  #onConnect!: () => void;
  readonly server: net.Server;

  constructor() {
    this.connected = new Promise((r) => (this.#onConnect = r));
    this.server = net.createServer((s) => {
      if (this.#sock) {
        s.destroy();
        return;
      }
      this.#sock = s;
      s.setNoDelay(true);
      s.on('data', (d: Buffer) => {
        const at = performance.now();
        this.#buf += d.toString();
        let nl: number;
        while ((nl = this.#buf.indexOf('\n')) >= 0) {
          const line = this.#buf.slice(0, nl);
          this.#buf = this.#buf.slice(nl + 1);
          if (!line.trim()) continue;
          const m = JSON.parse(line) as GuestMessage;
          if (m.op === 'log') {
            log(`guest: ${m.text}`);
            continue;
          }
          if (m.op === 'failed') {
            log(`guest failed: ${m.text}`);
            abort = `the guest failed: ${m.text}`;
            for (const w of this.#waiters.splice(0)) w.reject(new Error(`the guest failed: ${m.text}`));
            continue;
          }
          const w = this.#waiters.find((x) => x.match(m));
          if (w) {
            this.#waiters = this.#waiters.filter((x) => x !== w);
            w.at = at;
            w.resolve(m);
          }
        }
      });
      s.on('close', () => {
        for (const w of this.#waiters.splice(0)) w.reject(new Error('the guest closed the channel'));
      });
      this.#onConnect();
    });
  }

  send(m: HostMessage): void {
    this.#sock?.write(`${JSON.stringify(m)}\n`);
  }

  /** The next message matching `match`, and when (host clock) its bytes arrived. */
  wait<T extends GuestMessage>(match: (m: GuestMessage) => m is T, timeoutMs: number): Promise<{ msg: T; at: number }> {
    return new Promise((resolve, reject) => {
      const w = { match, at: 0, resolve: (m: GuestMessage) => { clearTimeout(timer); resolve({ msg: m as T, at: w.at }); }, reject: (e: Error) => { clearTimeout(timer); reject(e); } };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        reject(new Error(`no answer from the guest within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  close(): void {
    this.#sock?.destroy();
    this.server.close();
  }
}

/**
 * kube-apiserver's watch-cache consistency checks of lvs.operator.dev resources (when each ended), from its log
 * at --vmodule=delegator=3. klog stamps lines with this host's local time and no year.
 */
function consistencyChecks(logFile: string): Array<{ at: string; resource: string; result: string }> {
  const year = new Date().getFullYear();
  const out: Array<{ at: string; resource: string; result: string }> = [];
  const line = /^[IE](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3})\d*\s+\d+ delegator\.go:\d+\] "Cache consistency check (\w+)".*? group="lvs\.operator\.dev" resource="(\w+)"/;
  for (const l of fs.readFileSync(logFile, 'utf8').split('\n')) {
    const m = line.exec(l);
    if (!m || m[7] === 'start') continue;
    const t = new Date(year, Number(m[1]) - 1, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])).getTime();
    out.push({ at: new Date(t).toISOString(), resource: m[8]!, result: m[7]! });
  }
  return out;
}
const is = <K extends GuestMessage['op']>(op: K, id?: number) => (m: GuestMessage): m is Extract<GuestMessage, { op: K }> =>
  m.op === op && (id === undefined || (m as { id?: number }).id === id);

// --- main -------------------------------------------------------------------------------------------------

const loadStart = os.loadavg();
const machine = { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release() };
let hostApi: HostApi | undefined;
let controller: ChildProcess | undefined;
let vmRun: Promise<unknown> | undefined;
let vmDone = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    abort = `stopped by ${sig}`;
    channel.close();
    if (controller && controller.exitCode === null) controller.kill('SIGTERM');
    void hostApi?.stop().finally(() => process.exit(130));
  });
}
const channel = new Channel();
try {
  // The controller runs under the chart's memory limit, as in its Pod.
  const controllerLimit = memoryLimit(`lvs-bench-controller-${process.pid}`, chartMemoryLimit(path.join(REPO, 'charts', 'lvs-operator'), 'controller'));
  madeLimit = controllerLimit;
  // delegator.go at level 3 logs each of the watch cache's consistency checks (DetectCacheInconsistency, on
  // by default since 1.34): every 5 to 7.5 minutes per resource, the API server reads and decodes all of that
  // resource's objects from etcd. The results list those that ended during the timed changes.
  hostApi = await startHostApi({ log: (m) => log(m), extraArgs: ['--vmodule=delegator=3', ...(PPROF_DIR ? ['--profiling=true'] : [])] });
  const api = hostApi.api;
  log(`kube-apiserver ${api.version} at ${api.url} (started in ${api.startupMs} ms)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-controller-'));
  const adminEnv = {
    KUBECONFIG: api.kubeconfigs.admin,
    KUBECACHEDIR: path.join(tmp, 'kube-cache'),
    HELM_CACHE_HOME: path.join(tmp, 'helm-cache'), HELM_CONFIG_HOME: path.join(tmp, 'helm-config'), HELM_DATA_HOME: path.join(tmp, 'helm-data'),
  };
  const kubectl = kubectlPath();
  /** Saves kube-apiserver's allocation profile (since its start) when BENCH_APISERVER_PPROF is set. */
  const saveAllocProfile = (name: string): void => {
    if (!PPROF_DIR) return;
    fs.mkdirSync(PPROF_DIR, { recursive: true });
    fs.writeFileSync(path.join(PPROF_DIR, `allocs-${name}.pb.gz`), execFileSync(kubectl, ['get', '--raw', '/debug/pprof/allocs'], { env: { ...process.env, ...adminEnv }, maxBuffer: 1 << 28 }));
    log(`kube-apiserver allocation profile saved: ${path.join(PPROF_DIR, `allocs-${name}.pb.gz`)}`);
  };

  /** kube-apiserver's own counters (read around the client-side weight changes, outside the timed windows). */
  const readApiserverCounters = async (): Promise<ReturnType<typeof apiserverCounters>> => apiserverCounters((await ok(kubectl, ['get', '--raw', '/metrics'], adminEnv)).stdout);

  // The chart (CRDs, RBAC for the harness's ServiceAccount identities, controller configuration).
  await ok(helmPath(), ['install', 'lvs-operator', path.join(REPO, 'charts', 'lvs-operator'), '-n', 'lvs-system', '--create-namespace', '--wait=false'], adminEnv);
  const cms = JSON.parse((await ok(kubectl, ['get', 'configmap', '-n', 'lvs-system', '-l', 'app.kubernetes.io/instance=lvs-operator', '-o', 'json'], adminEnv)).stdout) as { items: Array<{ data?: Record<string, string> }> };
  const configJson = cms.items.find((i) => i.data?.['config.json'])?.data?.['config.json'];
  if (!configJson) throw new Error('the chart rendered no controller config.json');
  const configFile = path.join(tmp, 'config.json');
  fs.writeFileSync(configFile, configJson);
  await ok(kubectl, ['create', 'namespace', NS], adminEnv);
  // VIPs are default-deny: a pool for the bench's VIPs, in its namespace only.
  await ok(kubectl, ['create', '-f', '-'], adminEnv, JSON.stringify({
    apiVersion: `${GROUP}/${VERSION}`, kind: 'VIPPool', metadata: { name: NS },
    spec: { addresses: ['10.100.0.0/16'], namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } }, directors: { interface: VIP_INTERFACE } },
  }));
  await ok(kubectl, ['create', '-f', '-'], adminEnv, JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: DIRECTOR, labels: { 'lvs.operator.dev/director': 'true' } } }));
  await ok(kubectl, ['patch', 'node', DIRECTOR, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: DIRECTOR_IP }, { type: 'Hostname', address: DIRECTOR }] } })], adminEnv);

  // 5,000 x 10 objects, created concurrently.
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigs.admin);
  // Over keep-alive connections (the controller's writer): client-node would open a TLS connection per object.
  const objects = new Writer(kc, 'bench');
  const docs: Array<[typeof R.vs, VirtualService | RealServer]> = [];
  for (let i = 0; i < SERVICES; i++) {
    docs.push([R.vs, vsDoc(i)]);
    for (let j = 0; j < RS_PER; j++) docs.push([R.rs, rsDoc(i, `rs-${i}-${j}`, rsAddress(i, j), 1)]);
  }
  let t = performance.now();
  await pool(docs, 64, async ([r, o]) => {
    await objects.create(r, o).catch((e: unknown) => {
      if (!isAlreadyExists(e)) throw e;
    });
  });
  const createMs = performance.now() - t;
  objects.close();
  log(`created ${SERVICES} VirtualServices and ${SERVICES * RS_PER} RealServers in ${(createMs / 1000).toFixed(1)} s`);

  // What the bench watches (as admin): VirtualService and RealServer statuses, the director's NodePlans.
  const quiet = createLogger('bench', 'silent');
  // The status informers are stopped and dropped once their phase is measured: 55,000 cached objects made this
  // process's own GC take up to 0.9 s of the host's CPU while a timed kubectl ran.
  let vsInf: Informer<VirtualService> | undefined = new Informer<VirtualService>(kc, { resource: { ...R.vs, namespace: NS }, logger: quiet });
  let rsInf: Informer<RealServer> | undefined = new Informer<RealServer>(kc, { resource: { ...R.rs, namespace: NS }, logger: quiet });
  const npInf = new Informer<NodePlan>(kc, { resource: R.np, labelSelector: `${NODE_LABEL}=${DIRECTOR}`, logger: quiet });
  const cond = (o: { status?: { conditions?: Array<{ type: string; status: string }> } }, type: string): boolean => o.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
  const current = (o: VirtualService | RealServer): boolean => o.status?.observedGeneration === o.metadata.generation;
  const accepted = new Set<string>();
  const ready = new Set<string>();
  const rsDone = new Set<string>();
  const track = <T extends VirtualService | RealServer>(inf: Informer<T>, fn: (o: T) => void): void => {
    inf.on('add', fn);
    inf.on('update', fn);
  };
  track(vsInf, (o) => {
    const k = o.metadata.name ?? '';
    if (current(o) && cond(o, 'Accepted')) accepted.add(k);
    else accepted.delete(k);
    if (current(o) && cond(o, 'Ready')) ready.add(k);
    else ready.delete(k);
  });
  track(rsInf, (o) => {
    if (current(o) && cond(o, 'Accepted')) rsDone.add(o.metadata.name ?? '');
  });
  const planned = (): number => npInf.list().reduce((n, o) => n + o.spec.director.length, 0);
  const programmed = (): number => npInf.list().reduce((n, o) => {
    const gen = new Map(o.spec.director.map((s) => [s.id, s.generation]));
    return n + (o.status?.services ?? []).filter((s) => s.programmed && gen.get(s.id) === s.generation).length;
  }, 0);
  await Promise.all([vsInf.start(), rsInf.start(), npInf.start()]);

  // The controller, natively, as the chart's ServiceAccount.
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  t = performance.now();
  // BENCH_CONTROLLER_NODE_OPTIONS: extra node flags for diagnostics (e.g. --heapsnapshot-signal=SIGUSR2).
  const nodeFlags = (process.env.BENCH_CONTROLLER_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
  const [cmd, args] = controllerLimit.wrap([process.execPath, '--no-warnings', ...nodeFlags, path.join(REPO, 'src', 'controller', 'main.ts'), '--kubeconfig', api.kubeconfigs.controller,
    '--namespace', 'lvs-system', '--config', configFile, '--leader-elect', '--metrics-address', `127.0.0.1:${metricsPort}`, '--health-address', `127.0.0.1:${healthPort}`]);
  controller = spawn(cmd, args, { env: { ...process.env, LVS_LOG_LEVEL: process.env.LVS_LOG_LEVEL ?? 'warn' }, stdio: ['ignore', 'inherit', 'inherit'] });
  log(`controller under the chart's memory limit ${controllerLimit.quantity} (${controllerLimit.how}; V8 heap limit ${controllerLimit.heapLimitMiB} MiB)`);
  const pid = controller.pid!;
  let maxRss = 0;
  const rssTimeline: Array<{ s: number; rssMiB: number }> = [];
  const sampler = setInterval(() => {
    const s = procStats(pid);
    if (!s) return;
    maxRss = Math.max(maxRss, s.rssMiB);
    rssTimeline.push({ s: r1((performance.now() - t) / 1000), rssMiB: Math.round(s.rssMiB) });
  }, 500);
  const controllerStart = t;
  const phase = async (what: string, fn: () => boolean, timeoutMs: number): Promise<number> => {
    await until(what, () => {
      if (controller?.exitCode !== null || controller.signalCode !== null) {
        throw new Error(`the controller exited (${controller?.exitCode ?? controller?.signalCode}; OOM kills in its memory cgroup: ${controllerLimit.oomKills()})`);
      }
      return fn();
    }, timeoutMs, 50);
    const s = performance.now() - controllerStart;
    log(`${what}: ${(s / 1000).toFixed(1)} s after the controller started`);
    return s;
  };
  const plannedMs = await phase(`all ${SERVICES} VirtualServices Accepted and planned on the director`, () => accepted.size === SERVICES && planned() === SERVICES, 3_600_000);
  const afterPlanned = procStats(pid);
  const rsStatusMs = await phase(`all ${SERVICES * RS_PER} RealServer statuses written`, () => rsDone.size === SERVICES * RS_PER, 3_600_000);
  await rsInf.stop();
  rsInf = undefined;
  rsDone.clear();
  /** Waits until the controller's write counter stood still for `quietMs`. */
  const settle = async (quietMs: number): Promise<void> => {
    let last = -1;
    let since = performance.now();
    for (;;) {
      const m = await controllerMetrics(metricsPort);
      const writes = Object.entries(m).filter(([k]) => k.startsWith('lvs_controller_writes_total')).reduce((a, [, v]) => a + v, 0);
      if (writes !== last) {
        last = writes;
        since = performance.now();
      } else if (performance.now() - since >= quietMs) return;
      await sleep(500);
    }
  };
  await settle(3000);
  const settledMs = performance.now() - controllerStart;
  const afterSync = procStats(pid)!;
  const metricsAfterSync = await controllerMetrics(metricsPort);
  log(`controller settled after ${(settledMs / 1000).toFixed(1)} s; RSS ${afterSync.rssMiB.toFixed(0)} MiB (peak ${afterSync.hwmMiB.toFixed(0)}), CPU ${afterSync.cpuSec.toFixed(1)} s`);

  // --- changes ----------------------------------------------------------------------------------------------
  type Kind = 'weight' | 'weightSsa' | 'add' | 'remove' | 'vmKubectl';
  interface Sample {
    kind: Kind; totalMs: number; kubectlMs: number; controllerMs?: number; directorMs?: number; /** Start, ISO time. */ at?: string; /** When the probe saw the kernel change, the guest's clock (the agent's log uses it). */ seenAt?: string;
    /**
     * CPU ms while kubectl ran: kubectl's own, the lab VM's (QEMU), kube-apiserver's (with its embedded etcd), the controller's,
     * this benchmark's, and the whole host's busy time (of both cores).
     */
    cpu?: { kubectl: number; qemu: number; apiserver: number; controller: number; bench: number; hostBusy: number };
    /** When the probe's 'seen' reached the host (epoch ms), and of directorMs the report's way back (set at the end). */
    arrivedEpoch?: number;
    reportMs?: number;
  }
  const samples: Sample[] = [];
  const weights = new Map<string, number>();
  let expectPlan: { shard: string; id: string; test: (o: NodePlan) => boolean; at?: number } | undefined;
  npInf.on('update', (o) => {
    if (expectPlan && expectPlan.at === undefined && o.metadata.name === expectPlan.shard && expectPlan.test(o)) expectPlan.at = performance.now();
  });
  const planShows = (id: string, address: string, want: Expect['want']) => (o: NodePlan): boolean => {
    const d = o.spec.director.find((s) => s.id === id)?.destinations.find((x) => x.address === address);
    return want === 'absent' ? !d : want === 'present' ? !!d : d?.weight === want.weight;
  };
  let seq = 0;
  /** One change: `apply` runs kubectl (timed); `want` is what the kernel must then show for (i, address). */
  const change = async (kind: Kind, i: number, address: string, want: Expect['want'], args: string[], input?: string): Promise<void> => {
    const id = ++seq;
    const svcId = `${NS}/vs-${i}`;
    expectPlan = { shard: shardName(DIRECTOR, shardOf(svcId)), id: svcId, test: planShows(svcId, address, want) };
    if (!USE_VM) {
      const start = performance.now();
      const k = await ok(kubectl, args, adminEnv, input, KUBECTL_NICE);
      await until('the NodePlan change', () => expectPlan?.at !== undefined, 120_000, 1);
      samples.push({ kind, totalMs: expectPlan.at! - start, kubectlMs: k.ms, controllerMs: expectPlan.at! - start });
      return;
    }
    const expect: Expect = { vip: vip(i), port: 80, address, want };
    channel.send({ op: 'expect', id, expect });
    await channel.wait(is('ready', id), 60_000);
    const cpu0 = cpuNowMs(watched);
    const start = performance.now();
    const seen = channel.wait(is('seen', id), 120_000);
    seen.catch(() => undefined); // awaited below; a failure meanwhile must not count as unhandled
    const k = await ok(kubectl, args, adminEnv, input, KUBECTL_NICE);
    channel.send({ op: 'kubectl-exited', id });
    const cpu1 = cpuNowMs(watched);
    const { at, msg } = await seen;
    const planAt = expectPlan.at;
    samples.push({ kind, arrivedEpoch: performance.timeOrigin + at, totalMs: at - start, kubectlMs: k.ms, controllerMs: planAt === undefined ? undefined : planAt - start, directorMs: planAt === undefined ? undefined : at - planAt, at: new Date(Date.now() - (performance.now() - start)).toISOString(), seenAt: msg.seenAt,
      cpu: { kubectl: cpu1.children - cpu0.children, qemu: cpu1.groups.qemu - cpu0.groups.qemu, apiserver: cpu1.groups.apiserver - cpu0.groups.apiserver,
        controller: cpu1.groups.controller - cpu0.groups.controller, bench: cpu1.self - cpu0.self, hostBusy: cpu1.busy - cpu0.busy } });
    slowPolls.push(msg.slowPolls);
  };
  const applyWeight = (kind: Kind, i: number, j: number): Promise<void> => {
    const name = `rs-${i}-${j}`;
    const w = ((weights.get(name) ?? 1) % 9) + 2;
    weights.set(name, w);
    // Server-side apply skips client-side apply's pass over the whole OpenAPI v2 document and its GET; the
    // objects were created by the bench (another field manager), so it takes the field over (--force-conflicts).
    const how = kind === 'weightSsa' ? ['--server-side', '--force-conflicts'] : [];
    return change(kind, i, rsAddress(i, j), { weight: w }, ['apply', ...how, '-f', '-'], JSON.stringify(rsDoc(i, name, rsAddress(i, j), w)));
  };

  let vmResult: { exitCode: number; guestClockRatio: number; kernelWarnings: string[]; bootMs: number } | undefined;
  let agentSyncMs: number | undefined;
  let agentMemory: Extract<GuestMessage, { op: 'agent-memory' }> | undefined;
  let agentReadyMs: number | undefined;
  let kernelCount: { services: number; destinations: number } | undefined;
  const rttMs: number[] = [];
  /** The guest clock's offset from the host's (guest - host, ms), before and after the timed changes. */
  let clockBefore: ClockOffset | undefined;
  let clockAfter: ClockOffset | undefined;
  /** Pings the probe (the same way back as its 'seen' reports) and estimates the guest clock's offset from the fastest. */
  const pingClock = async (n: number, idBase: number): Promise<{ rtts: number[]; offset: ClockOffset }> => {
    const rtts: number[] = [];
    let best: ClockOffset | undefined;
    for (let p = 0; p < n; p++) {
      const id = idBase - p;
      const start = performance.now();
      channel.send({ op: 'ping', id });
      const { at, msg } = await channel.wait(is('pong', id), 30_000);
      rtts.push(at - start);
      const hostEpoch = performance.timeOrigin + (start + at) / 2;
      if (!best || (at - start) / 2 < best.errMs) best = { hostEpoch, offsetMs: msg.guestNow - hostEpoch, errMs: (at - start) / 2 };
      await sleep(20);
    }
    return { rtts, offset: best! };
  };
  let ipvsadmMs: number[] = [];
  let guestPolls: number[] = [];
  /** Probe polls per change made while kubectl still ran (every 50 ms). */
  const slowPolls: number[] = [];
  /** Processes whose CPU each change records: the lab VM's QEMU (once it runs), the harness's kube-apiserver with its embedded etcd (one process), the controller. */
  const watched = { qemu: [] as number[], apiserver: pidsNamed(/^lvs-test-apiser/), controller: [pid] };
  let arpingMs: number | undefined;
  const vmSamples: Sample[] = [];
  let metricsBeforeChanges: Record<string, number> = {};
  if (USE_VM) {
    await new Promise<void>((resolve) => channel.server.listen(0, '127.0.0.1', resolve));
    const driverPort = (channel.server.address() as net.AddressInfo).port;
    vmRun = runInVm({
      command: [process.execPath, '--no-warnings', path.join(REPO, 'bench', 'controller-vm.ts')],
      env: { ...hostApi.vm.env, LVS_LOG_LEVEL: process.env.LVS_LOG_LEVEL ?? 'warn', ...(process.env.BENCH_AGENT_LOG_LEVEL ? { BENCH_AGENT_LOG_LEVEL: process.env.BENCH_AGENT_LOG_LEVEL } : {}),
        ...(process.env.BENCH_AGENT_NODE_OPTIONS ? { BENCH_AGENT_NODE_OPTIONS: process.env.BENCH_AGENT_NODE_OPTIONS } : {}),
        ...(process.env.BENCH_AGENT_MEMORY_LIMIT ? { BENCH_AGENT_MEMORY_LIMIT: process.env.BENCH_AGENT_MEMORY_LIMIT } : {}),
        ...(process.env.BENCH_AGENT_CPU_PROFILE ? { BENCH_AGENT_CPU_PROFILE: process.env.BENCH_AGENT_CPU_PROFILE } : {}) },
      ...(process.env.BENCH_AGENT_CPU_PROFILE ? { outDir: OUT } : {}),
      hostForwards: [...hostApi.vm.hostForwards, { guestPort: DRIVER_GUEST_PORT, hostPort: driverPort }],
      shares: hostApi.vm.shares,
      cwd: REPO,
      timeoutMs: 3 * 3_600_000,
      memoryMiB: 4096,
      cpus: 2,
      stream: true,
      log: (m) => log(`vm: ${m}`),
    }).then((r) => {
      vmResult = r;
      if (!vmDone) abort = `the VM ended early (exit ${r.exitCode})`;
    }, (e: unknown) => {
      log(`VM run failed: ${(e as Error).message}`);
      abort = 'the VM run failed';
      channel.close();
    });
    await Promise.race([channel.connected, vmRun.then(() => { throw new Error('the VM ended before the guest connected'); })]);
    await channel.wait(is('hello'), 600_000);
    watched.qemu = qemuPids();
    if (VM_CPUSET) {
      // The VM on its own cores, all its threads (as a director on its own machine takes no CPU from the
      // admin's kubectl or the control plane).
      for (const qpid of qemuPids()) await ok('taskset', ['-a', '-p', '-c', VM_CPUSET, String(qpid)], {});
      log(`lab VM pinned to host CPU(s) ${VM_CPUSET}`);
    }
    const pinged = await pingClock(20, -1);
    rttMs.push(...pinged.rtts);
    clockBefore = pinged.offset;
    log(`host -> guest probe -> host round trip p50 ${percentile(rttMs, 50).toFixed(1)} ms`);

    // The agent's initial sync through the whole stack.
    t = performance.now();
    channel.send({ op: 'start-agent' });
    await channel.wait(is('agent-started'), 120_000);
    agentSyncMs = await until('the director reporting every service programmed', () => (programmed() === SERVICES ? performance.now() - t : undefined), 3_600_000, 50);
    log(`agent initial sync (start -> every service programmed in its NodePlan reports): ${(agentSyncMs / 1000).toFixed(1)} s`);
    channel.send({ op: 'kernel-count' });
    kernelCount = (await channel.wait(is('kernel-count'), 600_000)).msg;
    log(`director kernel: ${kernelCount.services} services, ${kernelCount.destinations} destinations`);
    if (kernelCount.services !== SERVICES || kernelCount.destinations !== SERVICES * RS_PER) throw new Error('the kernel does not hold the planned table');
    agentReadyMs = await until('every VirtualService Ready', () => (ready.size === SERVICES ? performance.now() - t : undefined), 3_600_000, 200);
    await settle(5000);
    log(`every VirtualService Ready ${(agentReadyMs / 1000).toFixed(1)} s after the agent started; controller settled`);
  }

  if (process.env.BENCH_PAUSE_MS) {
    log(`pausing ${process.env.BENCH_PAUSE_MS} ms (controller pid ${pid})`);
    await sleep(Number(process.env.BENCH_PAUSE_MS));
  }
  await vsInf.stop();
  vsInf = undefined;
  // kube-apiserver's counters and profile before the untimed warm-up, then a pause: building /metrics or a
  // profile costs it CPU and garbage, and the collection that garbage may set off took 0.45-0.84 s of CPU
  // from the first timed change when they were read just before it. The counters then cover the warm-up too.
  saveAllocProfile('before');
  const apiBeforeChanges = await readApiserverCounters();
  await sleep(3000);
  // Warm-up (kubectl's discovery cache, connections), untimed.
  await applyWeight('weight', 1, 0);
  samples.length = 0;
  metricsBeforeChanges = await controllerMetrics(metricsPort);
  const cpuBeforeChanges = procStats(pid)!.cpuSec;
  const hostBeforeChanges = hostCpu();
  for (let c = 0; c < WEIGHTS; c++) {
    await applyWeight('weight', (c * 7919 + 17) % SERVICES, c % RS_PER);
    await sleep(200);
  }
  const apiAfterWeights = await readApiserverCounters();
  saveAllocProfile('after');
  await sleep(3000);
  log(`weight changes: ${JSON.stringify(stats(samples.filter((s) => s.kind === 'weight').map((s) => s.totalMs)))}`);
  await applyWeight('weightSsa', 2, 0); // warm-up (the first server-side apply of an object), untimed
  samples.pop();
  for (let c = 0; c < WEIGHTS; c++) {
    await applyWeight('weightSsa', (c * 7919 + 23) % SERVICES, (c + 5) % RS_PER);
    await sleep(200);
  }
  log(`weight changes, server-side apply: ${JSON.stringify(stats(samples.filter((s) => s.kind === 'weightSsa').map((s) => s.totalMs)))}`);
  const added: Array<{ i: number; name: string; address: string }> = [];
  for (let c = 0; c < ADDS; c++) {
    const i = (c * 104729 + 5) % SERVICES;
    const a = { i, name: `rs-${i}-extra`, address: `10.201.${c % 250}.${(i % 250) + 1}` };
    added.push(a);
    await change('add', i, a.address, 'present', ['apply', '-f', '-'], JSON.stringify(rsDoc(i, a.name, a.address, 1)));
    await sleep(200);
  }
  // A deleted RealServer drains (weight 0 for the service's drainTimeoutSeconds) before it is removed.
  for (const a of added) {
    await change('remove', a.i, a.address, 'absent', ['delete', 'lvsrs', a.name, '-n', NS]);
    await sleep(200);
  }
  const changeStats = procStats(pid);
  const cpuChanges = (changeStats?.cpuSec ?? 0) - cpuBeforeChanges;
  // How busy the host's cores were while changes were timed, and how much of that the emulated VM took: kubectl
  // and the API server compete with it for the same cores.
  const hostAfterChanges = hostCpu();
  const coreSec = hostAfterChanges.totalSec - hostBeforeChanges.totalSec; // summed over all cores
  const percentOfCores = (sec: number): number => Math.round((100 * sec) / coreSec);
  const hostDuringChanges = {
    seconds: r1(coreSec / machine.cpus),
    busyPercent: percentOfCores(hostAfterChanges.busySec - hostBeforeChanges.busySec),
    qemuPercent: percentOfCores(hostAfterChanges.qemuSec - hostBeforeChanges.qemuSec),
    controllerPercent: percentOfCores(cpuChanges),
  };
  const metricsAfterChanges = await controllerMetrics(metricsPort);

  if (USE_VM) {
    // Of each director share, the probe's report back to the host: by the guest's clock, the kernel showed the
    // change at seenAt; the guest's offset is taken from the fastest ping before and after the changes and
    // interpolated in between (both are in the results, with the half round trip each is uncertain by).
    clockAfter = (await pingClock(20, -1001)).offset;
    for (const x of samples) {
      if (x.seenAt === undefined || x.arrivedEpoch === undefined || !clockBefore) continue;
      const offset = offsetAt(clockBefore, clockAfter, x.arrivedEpoch);
      x.reportMs = x.arrivedEpoch - (Date.parse(x.seenAt) - offset);
    }
    // kubectl run inside the (emulated) VM, from the director's netns.
    for (let c = 0; c < VM_KUBECTL; c++) {
      const i = (c * 31337 + 3) % SERVICES;
      const j = (c + 3) % RS_PER;
      const name = `rs-${i}-${j}`;
      const w = ((weights.get(name) ?? 1) % 9) + 2;
      weights.set(name, w);
      const id = ++seq;
      channel.send({ op: 'vm-kubectl', id, args: ['apply', '-f', '-'], input: JSON.stringify(rsDoc(i, name, rsAddress(i, j), w)), expect: { vip: vip(i), port: 80, address: rsAddress(i, j), want: { weight: w } } });
      const { msg } = await channel.wait(is('vm-kubectl-done', id), 180_000);
      vmSamples.push({ kind: 'vmKubectl', totalMs: msg.totalMs, kubectlMs: msg.kubectlMs });
      await sleep(200);
    }
    // ipvsadm -e on the same table, in the same netns.
    const targets = Array.from({ length: IPVSADM }, (_, c) => {
      const i = (c * 7907 + 11) % SERVICES;
      return { vip: vip(i), address: rsAddress(i, c % RS_PER), weight: 20 + (c % 5) };
    });
    channel.send({ op: 'ipvsadm', targets });
    ipvsadmMs = (await channel.wait(is('ipvsadm-done'), 600_000)).msg.ms;
    channel.send({ op: 'probe-stats' });
    guestPolls = (await channel.wait(is('probe-stats'), 60_000)).msg.polls;
    channel.send({ op: 'arping' });
    arpingMs = (await channel.wait(is('arping-done'), 120_000)).msg.ms;
    channel.send({ op: 'agent-memory' });
    agentMemory = (await channel.wait(is('agent-memory'), 60_000)).msg;
    vmDone = true;
    channel.send({ op: 'done' });
    await vmRun;
  }
  clearInterval(sampler);
  const end = procStats(pid)!;

  // --- results ----------------------------------------------------------------------------------------------
  const of = (k: Kind): Sample[] => samples.filter((s) => s.kind === k);
  // The target is judged on client-side apply and delete (kubectl's default); server-side apply is reported apart.
  const kubectlChanges = samples.filter((s) => s.kind !== 'weightSsa');
  const total = kubectlChanges.map((s) => s.totalMs);
  const totalSsa = of('weightSsa').map((s) => s.totalMs);
  const split = (xs: Sample[]) => ({
    total: stats(xs.map((s) => s.totalMs)),
    kubectl: stats(xs.map((s) => s.kubectlMs)),
    /** Each change's total less kubectl's own run: what the API server, controller and agent add. */
    afterKubectl: stats(xs.map((s) => s.totalMs - s.kubectlMs)),
    controller: stats(xs.flatMap((s) => (s.controllerMs === undefined ? [] : [s.controllerMs]))),
    director: stats(xs.flatMap((s) => (s.directorMs === undefined ? [] : [s.directorMs]))),
  });
  const cpuSplit = (xs: Sample[]) => {
    const withCpu = xs.filter((x) => x.cpu !== undefined);
    return {
      kubectl: stats(withCpu.map((x) => x.cpu!.kubectl)),
      qemu: stats(withCpu.map((x) => x.cpu!.qemu)),
      apiserver: stats(withCpu.map((x) => x.cpu!.apiserver)),
      controller: stats(withCpu.map((x) => x.cpu!.controller)),
      bench: stats(withCpu.map((x) => x.cpu!.bench)),
      hostBusy: stats(withCpu.map((x) => x.cpu!.hostBusy)),
      /** The same for the ten changes whose kubectl ran longest. */
      slowestTen: withCpu.toSorted((a, b) => b.kubectlMs - a.kubectlMs).slice(0, 10).map((x) => ({ kubectlMs: Math.round(x.kubectlMs), ...x.cpu })),
    };
  };
  // Everything kube-apiserver did during the client-side weight changes (and their warm-up), per change.
  const n = WEIGHTS + 1;
  const apiPerChange = {
    allocatedMB: r1((apiAfterWeights.allocatedBytes - apiBeforeChanges.allocatedBytes) / 1e6 / n),
    cpuMs: r1(((apiAfterWeights.cpuSeconds - apiBeforeChanges.cpuSeconds) * 1000) / n),
    requests: Object.fromEntries(Object.entries(apiAfterWeights.requests)
      .map(([k, v]) => [k, r1((v - (apiBeforeChanges.requests[k] ?? 0)) / n)] as const).filter(([, v]) => v !== 0)),
  };
  // The checks of the whole run, and those that ended between the first timed change's start and the last one's end.
  const timed = samples.flatMap((x) => (x.at ? [{ from: Date.parse(x.at), to: Date.parse(x.at) + x.totalMs }] : []));
  const timedWindow = timed.length ? { from: Math.min(...timed.map((t) => t.from)), to: Math.max(...timed.map((t) => t.to)) } : undefined;
  const allChecks = consistencyChecks(hostApi.api.logFile);
  const checks = timedWindow ? allChecks.filter((x) => Date.parse(x.at) >= timedWindow.from && Date.parse(x.at) <= timedWindow.to) : [];
  const loadEnd = os.loadavg();
  const ipvsadmP50 = percentile(ipvsadmMs, 50);
  const result = {
    date: new Date().toISOString(),
    machine: { ...machine, loadAverage: { start: loadStart.map(r1), end: loadEnd.map(r1) } },
    /** Scheduling priority of the timed kubectl runs (BENCH_KUBECTL_NICE; 0 = as everything else). */
    kubectlNice: KUBECTL_NICE,
    vm: USE_VM ? { emulation: `QEMU TCG (no KVM), 2 vCPU, 4 GiB${VM_CPUSET ? `, pinned to host CPU(s) ${VM_CPUSET}` : ', sharing all host CPUs'}`, guestClockRatio: vmResult?.guestClockRatio, bootMs: vmResult?.bootMs, kernelWarnings: vmResult?.kernelWarnings.length } : null,
    apiserver: hostApi.api.version,
    services: SERVICES,
    realServersPerService: RS_PER,
    createObjectsMs: Math.round(createMs),
    controller: {
      initialSync: {
        acceptedAndPlannedMs: Math.round(plannedMs),
        realServerStatusesMs: Math.round(rsStatusMs),
        settledMs: Math.round(settledMs),
        cpuSecondsToSettle: r1(afterSync.cpuSec),
        rssMiBWhenPlanned: Math.round(afterPlanned?.rssMiB ?? NaN),
        writes: delta({}, metricsAfterSync),
      },
      rssMiB: { peak: Math.round(Math.max(end.hwmMiB, maxRss)), steady: Math.round(end.rssMiB), afterSync: Math.round(afterSync.rssMiB) },
      memoryLimit: { quantity: controllerLimit.quantity, how: controllerLimit.how, heapLimitMiB: controllerLimit.heapLimitMiB, oomKills: controllerLimit.oomKills() },
      duringChanges: { cpuSeconds: r1(cpuChanges), metrics: delta(metricsBeforeChanges, metricsAfterChanges) },
      hostDuringChanges,
    },
    agent: USE_VM ? {
      initialSyncThroughStackMs: Math.round(agentSyncMs ?? NaN), everyVirtualServiceReadyMs: Math.round(agentReadyMs ?? NaN), kernel: kernelCount,
      vipInterface: VIP_INTERFACE, oneGratuitousArpMs: Math.round(arpingMs ?? NaN),
      rssMiB: agentMemory ? { peak: Math.round(agentMemory.hwmMiB), atEnd: Math.round(agentMemory.rssMiB) } : null,
      memoryLimit: agentMemory?.limit ?? null,
    } : null,
    changes: {
      path: USE_VM ? 'kubectl (host) -> kube-apiserver -> controller (host) -> NodePlan -> agent (VM) -> kernel; the probe in the director netns tells the host' : 'kubectl (host) -> kube-apiserver -> controller -> NodePlan seen by the bench watch',
      all: split(kubectlChanges),
      weight: split(of('weight')),
      weightServerSide: split(of('weightSsa')),
      addRealServer: split(of('add')),
      removeRealServer: split(of('remove')),
      kubectlInVm: USE_VM ? { total: stats(vmSamples.map((s) => s.totalMs)), kubectl: stats(vmSamples.map((s) => s.kubectlMs)), afterKubectl: stats(vmSamples.map((s) => s.totalMs - s.kubectlMs)) } : null,
      hostGuestRoundTripMs: USE_VM ? stats(rttMs) : null,
      /** Guest clock offset (guest - host) from the fastest ping before / after the changes, ± half its round trip. */
      guestClock: USE_VM && clockBefore && clockAfter ? { before: { offsetMs: r1(clockBefore.offsetMs), errMs: r1(clockBefore.errMs) }, after: { offsetMs: r1(clockAfter.offsetMs), errMs: r1(clockAfter.errMs) } } : null,
      /** Of the director share of each client-side kubectl change: the probe's report back to the host; and the total without it. */
      reportBack: USE_VM ? stats(kubectlChanges.flatMap((x) => (x.reportMs === undefined ? [] : [x.reportMs]))) : null,
      totalByGuestClock: USE_VM ? stats(kubectlChanges.flatMap((x) => (x.reportMs === undefined ? [] : [x.totalMs - x.reportMs]))) : null,
      totalByGuestClockServerSide: USE_VM ? stats(of('weightSsa').flatMap((x) => (x.reportMs === undefined ? [] : [x.totalMs - x.reportMs]))) : null,
      probePollsPerChange: USE_VM ? stats(guestPolls) : null,
      probeSlowPollsPerChange: USE_VM ? stats(slowPolls) : null,
      /** CPU ms taken while each client-side kubectl change's kubectl ran (the target's changes). */
      cpuDuringKubectl: USE_VM ? cpuSplit(kubectlChanges) : null,
    },
    ipvsadm: USE_VM ? { singleWeightChangeMs: stats(ipvsadmMs), ratioP50OursToIpvsadm: Math.round((percentile(total, 50) / ipvsadmP50) * 100) / 100, ratioP99OursToIpvsadm: Math.round((percentile(total, 99) / percentile(ipvsadmMs, 99)) * 100) / 100 } : null,
    targets: { changeP99Ms: 1000, controllerRssMiB: r1(RSS_TARGET_MIB) },
    met: { changeP99: percentile(total, 99) < 1000, changeP99ServerSideApply: percentile(totalSsa, 99) < 1000, controllerRss: Math.max(end.hwmMiB, maxRss) < RSS_TARGET_MIB },
    /** kube-apiserver during the client-side weight changes, per change: MB allocated, CPU ms, requests to our group. */
    apiserverPerWeightChange: apiPerChange,
    /** kube-apiserver's watch-cache consistency checks of our resources that ended during the timed changes. */
    apiserverConsistencyChecks: { duringTimedChanges: checks, wholeRun: allChecks },
    rssTimeline: rssTimeline.filter((_, k) => k % 10 === 0),
    /** Every timed change (ms, rounded), to find when the slow ones happened. */
    samples: samples.map((x) => ({ kind: x.kind, at: x.at, totalMs: Math.round(x.totalMs), kubectlMs: Math.round(x.kubectlMs), controllerMs: x.controllerMs === undefined ? undefined : Math.round(x.controllerMs), directorMs: x.directorMs === undefined ? undefined : Math.round(x.directorMs), reportMs: x.reportMs === undefined ? undefined : Math.round(x.reportMs), seenAt: x.seenAt, cpu: x.cpu })),
  };
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'controller.json'), JSON.stringify(result, null, 2) + '\n');
  const f = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '-' : n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const row = (label: string, s: ReturnType<typeof split>): string =>
    `| ${label} | ${s.total.n} | ${f(s.total.p50)} / ${f(s.total.p99)} / ${f(s.total.max)} | ${f(s.kubectl.p50)} / ${f(s.kubectl.p99)} | ${f(s.afterKubectl.p50)} / ${f(s.afterKubectl.p99)} / ${f(s.afterKubectl.max)} | ${f(s.controller.p50)} / ${f(s.controller.p99)} | ${f(s.director.p50)} / ${f(s.director.p99)} |`;
  const c = result.controller;
  const md = [
    `# Controller at scale: ${SERVICES} VirtualServices x ${RS_PER} RealServers`,
    '',
    `${result.date}; host ${machine.cpus} cores (${machine.model}), load average ${result.machine.loadAverage.start.join(' / ')} at the start, ${result.machine.loadAverage.end.join(' / ')} at the end;`
      + ` kube-apiserver ${result.apiserver} (test harness, etcd, RBAC) and the controller native on the host${KUBECTL_NICE ? `, the timed kubectl runs at nice ${KUBECTL_NICE}` : ''}${USE_VM ? `; lvs-agent and the kernel in the lab VM (${result.vm?.emulation}, guest clock ratio ${result.vm?.guestClockRatio?.toFixed(2)})${process.env.BENCH_AGENT_LOG_LEVEL ? `, the agent logging at ${process.env.BENCH_AGENT_LOG_LEVEL} level` : ''}` : ''}.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| create ${SERVICES} VirtualServices + ${SERVICES * RS_PER} RealServers (64 concurrent requests) | ${f(createMs / 1000)} s |`,
    `| controller initial sync: every VirtualService Accepted at its generation and on the director's NodePlans | ${f(plannedMs / 1000)} s |`,
    `| ... every RealServer status written | ${f(rsStatusMs / 1000)} s |`,
    `| ... no more writes (settled); CPU spent | ${f(settledMs / 1000)} s; ${f(c.initialSync.cpuSecondsToSettle)} CPU s |`,
    `| controller memory: the chart's limit ${c.memoryLimit.quantity} (${c.memoryLimit.how}); V8 heap limit there; OOM kills | ${c.memoryLimit.heapLimitMiB} MiB; ${c.memoryLimit.oomKills} |`,
    `| controller RSS: peak (VmHWM) / after the initial sync / at the end | ${c.rssMiB.peak} / ${c.rssMiB.afterSync} / ${c.rssMiB.steady} MiB (target < 500 MB = ${f(RSS_TARGET_MIB)} MiB) |`,
    ...(USE_VM ? [
      `| agent initial sync through the stack (agent start until its NodePlan reports show all ${SERVICES} services programmed) | ${f((agentSyncMs ?? NaN) / 1000)} s |`,
      `| ... the director's kernel then (ipvsadm -Sn) | ${kernelCount?.services} services, ${kernelCount?.destinations} destinations |`,
      `| ... every VirtualService Ready (controller wrote Programmed/Ready) | ${f((agentReadyMs ?? NaN) / 1000)} s |`,
      `| agent memory in the VM: ${agentMemory?.limit ? `the chart's limit ${agentMemory.limit.quantity} (${agentMemory.limit.how}; V8 heap limit there ${agentMemory.limit.heapLimitMiB} MiB; OOM kills ${agentMemory.limit.oomKills})` : 'no limit'}; RSS peak (VmHWM) / at the end | ${f(agentMemory?.hwmMiB)} / ${f(agentMemory?.rssMiB)} MiB |`,
      `| VIPs bound on the director's ${VIP_INTERFACE}; one VIP's gratuitous ARP as the agent sends it on eth0 (\`arping -U -c 3\`, in the VM) | ${f((arpingMs ?? NaN) / 1000)} s (x ${SERVICES} one after the other: ${f(((arpingMs ?? NaN) * SERVICES) / 3_600_000)} h) |`,
    ] : []),
    '',
    `Single changes, ms: from just before \`kubectl\` starts until ${USE_VM ? "the director's kernel shows the change" : 'the NodePlan shows it'} (p50 / p99 / max);`
      + ' kubectl = its own run time (native); after kubectl = each change\'s total less its kubectl run (API server, controller, agent, kernel); controller = until the bench\'s NodePlan watch on the host saw the new plan;'
      + ' director = from then until the kernel showed it (agent in the VM, probe, report back to the host).',
    '',
    '| change | n | total p50 / p99 / max | kubectl p50 / p99 | after kubectl p50 / p99 / max | controller p50 / p99 | director p50 / p99 |',
    '|---|---|---|---|---|---|---|',
    row('all kubectl changes', result.changes.all),
    row('RealServer weight (`kubectl apply`)', result.changes.weight),
    row('RealServer weight (`kubectl apply --server-side`; not in the first row)', result.changes.weightServerSide),
    row('new RealServer (`kubectl apply`)', result.changes.addRealServer),
    row('deleted RealServer (`kubectl delete`; the kernel shows it draining, weight 0)', result.changes.removeRealServer),
    '',
    ...(USE_VM ? [
      `Target: p99 < 1000 ms: **${result.met.changeP99 ? 'met' : 'missed'}** (${f(percentile(total, 99))} ms; with \`kubectl apply --server-side\`: **${result.met.changeP99ServerSideApply ? 'met' : 'missed'}**, ${f(percentile(totalSsa, 99))} ms; after kubectl's own run, p99 ${f(result.changes.all.afterKubectl.p99)} ms and ${f(result.changes.weightServerSide.afterKubectl.p99)} ms). Controller RSS < 500 MB: **${result.met.controllerRss ? 'met' : 'missed'}** (${c.rssMiB.peak} MiB = ${f((c.rssMiB.peak * 2 ** 20) / 1e6)} MB).`,
      '',
      '| reference | value |',
      '|---|---|',
      `| \`ipvsadm -e\` weight change on the same ${SERVICES * RS_PER}-destination table (process start to exit, in the VM) p50 / p99 | ${f(result.ipvsadm?.singleWeightChangeMs.p50)} / ${f(result.ipvsadm?.singleWeightChangeMs.p99)} ms |`,
      `| ratio kubectl apply -> kernel / ipvsadm -e, p50 (p99) | ${result.ipvsadm?.ratioP50OursToIpvsadm} (${result.ipvsadm?.ratioP99OursToIpvsadm}) |`,
      `| weight changes with kubectl run inside the VM (emulated): total / kubectl alone / after kubectl, p50 (p99) | ${f(result.changes.kubectlInVm?.total.p50)} (${f(result.changes.kubectlInVm?.total.p99)}) / ${f(result.changes.kubectlInVm?.kubectl.p50)} (${f(result.changes.kubectlInVm?.kubectl.p99)}) / ${f(result.changes.kubectlInVm?.afterKubectl.p50)} (${f(result.changes.kubectlInVm?.afterKubectl.p99)}) ms |`,
      `| host -> probe -> host round trip over the VM's forward (included in every total above) p50 / p99 | ${f(result.changes.hostGuestRoundTripMs?.p50)} / ${f(result.changes.hostGuestRoundTripMs?.p99)} ms |`,
      `| of the director share, the probe's report back to the host (probe -> VM -> forward; the guest clock's offset from the fastest of 20 pings before and after the changes, ${f(result.changes.guestClock?.before.offsetMs)} ± ${f(result.changes.guestClock?.before.errMs)} and ${f(result.changes.guestClock?.after.offsetMs)} ± ${f(result.changes.guestClock?.after.errMs)} ms) p50 / p99 / max | ${f(result.changes.reportBack?.p50)} / ${f(result.changes.reportBack?.p99)} / ${f(result.changes.reportBack?.max)} ms |`,
      `| kubectl start -> the kernel showing the change, by the guest's clock (each total less its report back), p50 / p99 / max: client-side; \`--server-side\` | ${f(result.changes.totalByGuestClock?.p50)} / ${f(result.changes.totalByGuestClock?.p99)} / ${f(result.changes.totalByGuestClock?.max)}; ${f(result.changes.totalByGuestClockServerSide?.p50)} / ${f(result.changes.totalByGuestClockServerSide?.p99)} / ${f(result.changes.totalByGuestClockServerSide?.max)} ms |`,
      `| controller during the ${samples.length} changes: CPU; passes; writes | ${f(cpuChanges)} s; ${JSON.stringify(c.duringChanges.metrics)} |`,
      `| CPU while each \`kubectl apply\`/\`delete\` ran (the ${kubectlChanges.length} changes), p50 (p99) ms: kubectl's own / the lab VM (QEMU) / kube-apiserver with etcd / the controller / this benchmark / the host's busy time over both cores | ${(['kubectl', 'qemu', 'apiserver', 'controller', 'bench', 'hostBusy'] as const).map((k) => `${f(result.changes.cpuDuringKubectl?.[k].p50)} (${f(result.changes.cpuDuringKubectl?.[k].p99)})`).join(' / ')} |`,
      `| the probe's polls of the kernel per change, all / while kubectl ran (every 50 ms; every 5 ms after), p50 (p99) | ${f(result.changes.probePollsPerChange?.p50)} (${f(result.changes.probePollsPerChange?.p99)}) / ${f(result.changes.probeSlowPollsPerChange?.p50)} (${f(result.changes.probeSlowPollsPerChange?.p99)}) |`,
      `| kube-apiserver during the ${WEIGHTS} client-side weight changes and their warm-up, per change: MB allocated; CPU ms; requests to lvs.operator.dev | ${apiPerChange.allocatedMB} MB; ${apiPerChange.cpuMs} ms; ${Object.entries(apiPerChange.requests).map(([k, v]) => `${k} ${v}`).join(', ')} |`,
      `| kube-apiserver's watch-cache consistency checks (each reads and decodes every object of one resource from etcd) that ended during the timed changes (${timedWindow ? `${new Date(timedWindow.from).toISOString().slice(11, 19)}–${new Date(timedWindow.to).toISOString().slice(11, 19)}` : '-'}); in the whole run | ${checks.map((x) => `${x.resource} at ${x.at.slice(11, 19)}`).join(', ') || 'none'}; ${allChecks.map((x) => `${x.resource} ${x.at.slice(11, 19)}`).join(', ') || 'none'} |`,
      `| the host's ${machine.cpus} cores during the ${samples.length} timed changes (${f(hostDuringChanges.seconds)} s), % of all cores: busy / QEMU (the lab VM) / the controller | ${hostDuringChanges.busyPercent} / ${hostDuringChanges.qemuPercent} / ${hostDuringChanges.controllerPercent} % |`,
    ] : [
      `Controller during the ${samples.length} changes: ${f(cpuChanges)} CPU s; ${JSON.stringify(c.duringChanges.metrics)}`,
    ]),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(OUT, 'controller.md'), md);
  process.stdout.write(md);
  await npInf.stop();
} finally {
  channel.close();
  if (controller && controller.exitCode === null && controller.signalCode === null) {
    controller.kill('SIGTERM');
    await new Promise((r) => controller?.once('exit', r));
  }
  try {
    madeLimit?.remove();
  } catch (err) {
    log(`could not remove the controller's memory cgroup: ${(err as Error).message}`);
  }
  await hostApi?.stop();
}
process.exit(0);
