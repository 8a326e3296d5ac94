// `npm run bench:agent`: the agent's reaction time at scale, measured inside the lab VM on a real kernel.
// With 5,000 services x 10 destinations programmed, desired-state changes go through Agent.setPlan (the
// path a plan change takes in standalone and cluster mode: health targets, reconcile, report hooks with
// metrics, coalesced state-file writes): 100 of each kind (a weight, a new destination, a new service), plus
// weight changes where every plan object is new (a standalone reload). Each is timed from setPlan to a
// kernel read (a second netlink socket) showing the change; we count the netlink requests the agent spent
// on it and read its RSS. A full resync (the periodic drift repair) is timed too, and `ipvsadm -e` doing
// single changes in the same run is the reference. Writes bench/results/agent.{json,md}.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { IpvsClient } from '../src/ipvs/client.ts';
import type { ServiceKey } from '../src/ipvs/types.ts';
import { FakeNetif } from '../src/netif/fake.ts';
import { SysctlManager } from '../src/sysctl/manager.ts';
import { FileLedgerStore } from '../src/sysctl/ledger.ts';
import { FileStateStore } from '../src/agent/state.ts';
import { DirectorReconciler } from '../src/agent/director/reconciler.ts';
import { RealServerReconciler } from '../src/agent/realserver/reconciler.ts';
import { HealthChecker } from '../src/agent/health/checker.ts';
import { Agent, failedCount, type AgentRun } from '../src/agent/agent.ts';
import { createReportSink } from '../src/agent/report.ts';
import { createLvsMetrics } from '../src/agent/metrics/registry.ts';
import { ipvsSnapshotReader } from '../src/agent/metrics/snapshot.ts';
import type { NodePlan, PlannedService } from '../src/model/plan.ts';
import { createLogger } from '../src/util/log.ts';
import { percentile } from '../test/support/percentile.ts';
import { runBenchInVm } from './host.ts';

if (process.env.LVS_VM !== '1') {
  // On the host: boot the lab VM and run this file inside it.
  runBenchInVm(import.meta.filename, 'agent', 3000);
  process.exit(0);
}

const SERVICES = Number(process.env.BENCH_SERVICES ?? 5000);
const DESTS = 10;
const CHANGES = Number(process.env.BENCH_CHANGES ?? 100);
const RELOADS = Math.max(1, Math.round(CHANGES / 5));
const out = process.env.LVS_VM_OUT ?? path.resolve(import.meta.dirname, 'results');

const vip = (i: number): string => `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
const svc = (i: number): PlannedService => ({
  id: `bench/svc-${i}`, generation: 1, vip: vip(i), port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: false, healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 0,
  destinations: Array.from({ length: DESTS }, (_, j) => ({ realServer: `bench/rs-${i}-${j}`, address: `10.200.${j}.${(i % 250) + 1}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 })),
});
const keyOf = (s: PlannedService): ServiceKey => ({ af: 'ipv4', protocol: 'tcp', address: s.vip, port: s.port });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-agent-'));
const log = createLogger('bench', process.env.BENCH_AGENT_LOG_LEVEL ?? 'silent');
const ipvs = new IpvsClient({});
// The benchmark's own socket for checking the kernel, so the agent's request counts are its own.
const kernel = new IpvsClient({});
// VIPs are not bound (a standby director): the benchmark is about IPVS. Sysctls are real, on lo.
const netif = new FakeNetif();
const sysctl = new SysctlManager({ ledger: new FileLedgerStore(path.join(tmp, 'ledger.json')) });
/** The agent's state file, with its (coalesced) writes timed, to tell them apart in the tail. */
class TimedStateStore extends FileStateStore {
  readonly writes: Array<{ start: number; end: number }> = [];
  override flush(): void {
    const start = performance.now();
    super.flush();
    this.writes.push({ start, end: performance.now() });
  }
}
const state = new TimedStateStore(path.join(tmp, 'agent-state.json'));
const metrics = createLvsMetrics({ readSnapshot: ipvsSnapshotReader(ipvs, state), log });
let waiting: ((run: AgentRun) => void) | undefined;
const reports = createReportSink({ metrics, also: (run) => waiting?.(run) });
const health = new HealthChecker({ log });
const agent = new Agent({
  node: 'bench', log, health,
  director: new DirectorReconciler({ ipvs, netif, sysctl, state, log, defaultInterface: async () => 'lo' }),
  realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'lo' }),
  onReport: reports.onReport,
  onError: (e) => {
    throw e;
  },
});
const nextRun = (): Promise<AgentRun> => new Promise((resolve) => (waiting = resolve));

// The plan is sorted by id, as mergeShards hands it to the agent: a new service lands in the middle.
let director = Array.from({ length: SERVICES }, (_, i) => svc(i)).sort((a, b) => a.id.localeCompare(b.id));
const planOf = (services: PlannedService[]): NodePlan => ({ node: 'bench', director: services, realServer: [] });

// Garbage-collection pauses, to tell them apart in the tail.
const gcs: Array<{ start: number; end: number }> = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
}).observe({ entryTypes: ['gc'] });
const gcMsIn = (from: number, to: number): number => gcs.reduce((sum, g) => sum + Math.max(0, Math.min(to, g.end) - Math.max(from, g.start)), 0);

let t = performance.now();
let run = nextRun();
agent.setPlan(planOf(director));
const first = await run;
const initialSyncMs = performance.now() - t;
if (failedCount(first) > 0) throw new Error(`initial sync failed: ${JSON.stringify([...first.director.services.values()].find((s) => !s.ok))}`);
state.flush();
let rss = process.memoryUsage().rss;

type Kind = 'weight' | 'destination' | 'service' | 'reload';
const KINDS: Kind[] = ['weight', 'destination', 'service', 'reload'];
const samples: Record<Kind, number[]> = { weight: [], destination: [], service: [], reload: [] };
const runMs: Record<Kind, number[]> = { weight: [], destination: [], service: [], reload: [] };
const requests: Record<Kind, number[]> = { weight: [], destination: [], service: [], reload: [] };
let fresh = SERVICES;
const windows: Array<{ kind: Kind; from: number; to: number }> = [];

/** One change: `make` builds the new plan (not timed: the caller's cost), `check` reads the kernel. */
async function change(kind: Kind, make: () => PlannedService[], check: () => Promise<boolean>): Promise<void> {
  const next = make();
  const before = ipvs.requestCount;
  run = nextRun();
  t = performance.now();
  agent.setPlan(planOf(next));
  const r = await run;
  if (!(await check())) throw new Error(`${kind} change: the kernel does not show it`);
  const end = performance.now();
  samples[kind].push(end - t);
  windows.push({ kind, from: t, to: end });
  runMs[kind].push(r.durationMs);
  requests[kind].push(ipvs.requestCount - before);
  if (failedCount(r) > 0) throw new Error(`${kind} change failed`);
  director = next;
}

for (let c = 0; c < 3 * CHANGES; c++) {
  const kind = KINDS[c % 3]!;
  const i = (c * 7919) % director.length;
  const cur = director[i]!;
  if (kind === 'weight') {
    const j = c % DESTS;
    const weight = cur.destinations[j]!.weight === 1 ? 5 : 1;
    await change(kind, () => director.map((s) => (s === cur ? { ...s, destinations: s.destinations.map((d, k) => (k === j ? { ...d, weight } : d)) } : s)),
      async () => (await kernel.listDestinations(keyOf(cur))).some((d) => d.destination.address === cur.destinations[j]!.address && d.destination.weight === weight));
  } else if (kind === 'destination') {
    const address = `10.201.${c % 250}.${(i % 250) + 1}`;
    await change(kind, () => director.map((s) => (s === cur ? { ...s, destinations: [...s.destinations, { ...s.destinations[0]!, realServer: `bench/extra-${c}`, address }] } : s)),
      async () => (await kernel.listDestinations(keyOf(cur))).some((d) => d.destination.address === address));
  } else {
    const added = svc(fresh++);
    await change(kind, () => {
      const next = [...director];
      const at = next.findIndex((s) => s.id.localeCompare(added.id) > 0);
      next.splice(at === -1 ? next.length : at, 0, added);
      return next;
    }, async () => (await kernel.listDestinations(keyOf(added))).length === DESTS);
  }
}
// A standalone reload re-plans every object: the agent finds the one change by value.
for (let c = 0; c < RELOADS; c++) {
  const i = (c * 104729) % director.length;
  const weight = 10 + c;
  const target = director[i]!;
  await change('reload', () => director.map((s) => (s === target
    ? { ...structuredClone(s), destinations: s.destinations.map((d, k) => ({ ...d, weight: k === 0 ? weight : d.weight })) }
    : structuredClone(s))),
  async () => (await kernel.listDestinations(keyOf(target))).some((d) => d.destination.address === target.destinations[0]!.address && d.destination.weight === weight));
}
rss = Math.max(rss, process.memoryUsage().rss);

// A full run (dump, diff of everything, sysctl claims), as Agent.resync() runs it: the kernel read inside the
// run, so a change that arrives meanwhile waits for all of it.
const resyncMs: number[] = [];
for (let c = 0; c < 3; c++) {
  t = performance.now();
  const r = await agent.resync();
  resyncMs.push(performance.now() - t);
  if (r.director.ops !== 0 || failedCount(r) > 0) throw new Error(`resync found ${r.director.ops} ops to do, ${failedCount(r)} failures`);
}
// Weight changes one after another while a full run is in flight, each timed until the kernel shows it: the
// periodic resync is a sweep (the kernel's services read ahead, outside any run, then compared in slices,
// each slice a run of its own that reads its services' destinations, changes first, a pause after each), so a change waits for one slice at most; a resync() reads and compares in
// one run, so a change waits for all of it.
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let during = 0;
async function changesDuring(full: () => Promise<unknown>): Promise<{ ms: number[]; fullMs: number }> {
  const ms: number[] = [];
  let done = false;
  const start = performance.now();
  const running = full().then(() => {
    done = true;
  });
  await sleep(5); // the full run has begun
  while (!done) {
    const c = during++;
    const cur = director[(c * 7919 + 11) % director.length]!;
    const weight = 20 + (c % 50);
    const next = director.map((x) => (x === cur ? { ...x, destinations: x.destinations.map((d, k) => (k === 0 ? { ...d, weight } : d)) } : x));
    const t0 = performance.now();
    agent.setPlan(planOf(next));
    while (!(await kernel.listDestinations(keyOf(cur))).some((d) => d.destination.address === cur.destinations[0]!.address && d.destination.weight === weight)) await sleep(1);
    ms.push(performance.now() - t0);
    director = next;
  }
  await running;
  return { ms, fullMs: performance.now() - start };
}
const duringSweep = await changesDuring(() => agent.periodicResync());
const duringOneRun = await changesDuring(() => agent.resync());

// What a full resync spends on the dump alone (one GET_SERVICE dump plus one GET_DEST per service).
t = performance.now();
await kernel.listServices();
const dumpMs = performance.now() - t;
// Drift repair still works at this scale: flush the table behind the agent's back, resync, compare.
execFileSync('ipvsadm', ['-C']);
t = performance.now();
const repaired = await agent.resync();
const repairMs = performance.now() - t;
const table = await kernel.listServices();
const expected = director.length;
if (table.length !== expected || repaired.director.drift !== expected) throw new Error(`drift repair: kernel has ${table.length} services, drift ${repaired.director.drift}, expected ${expected}`);

// The same single changes with ipvsadm (one process per change, as an admin or keepalived would).
const ipvsadmMs: number[] = [];
for (let c = 0; c < 30; c++) {
  const i = (c * 104729) % SERVICES;
  t = performance.now();
  execFileSync('ipvsadm', ['-e', '-t', `${vip(i)}:80`, '-r', `10.200.0.${(i % 250) + 1}:80`, '-g', '-w', String(2 + (c % 3))]);
  ipvsadmMs.push(performance.now() - t);
}
agent.stop();
state.flush();
ipvs.close();
kernel.close();

const all = [...samples.weight, ...samples.destination, ...samples.service];
await new Promise((r) => setImmediate(r)); // let the GC observer deliver
const slow = windows.filter((w) => w.kind !== 'reload' && w.to - w.from > 50);
const slowWithGc = slow.filter((w) => gcMsIn(w.from, w.to) > 0);
const overlaps = (w: { from: number; to: number }, x: { start: number; end: number }): boolean => x.start < w.to && x.end > w.from && x.end - x.start > 1;
const slowWithWrite = slow.filter((w) => state.writes.some((x) => overlaps(w, x)));
const writeMs = state.writes.map((x) => x.end - x.start).filter((d) => d > 1);
const result = {
  kernel: os.release(),
  path: 'Agent.setPlan -> report hook -> kernel read (IPVS GET_DEST on a second socket)',
  services: SERVICES,
  destinationsPerService: DESTS,
  changesPerKind: CHANGES,
  initialSyncMs: Math.round(initialSyncMs),
  changeLatencyMs: { p50: percentile(all, 50), p99: percentile(all, 99), max: Math.max(...all) },
  perKind: Object.fromEntries(KINDS.map((k) => [k, {
    changes: samples[k].length,
    p50: percentile(samples[k], 50), p99: percentile(samples[k], 99), max: Math.max(...samples[k]),
    agentRunP50: percentile(runMs[k], 50),
    netlinkRequests: [...new Set(requests[k])].sort((a, b) => a - b),
  }])),
  changesOver50Ms: slow.length,
  changesOver50MsWithGcPause: slowWithGc.length,
  gcPauseMsInSlowChanges: Math.round(slow.reduce((a, w) => a + gcMsIn(w.from, w.to), 0)),
  changesOver50MsWithStateWrite: slowWithWrite.length,
  stateFileWriteMs: { count: writeMs.length, p50: percentile(writeMs, 50), max: Math.max(0, ...writeMs) },
  fullResyncMs: { p50: percentile(resyncMs, 50), max: Math.max(...resyncMs) },
  kernelDumpMs: Math.round(dumpMs),
  changesDuringFullRun: Object.fromEntries(([['sweep', duringSweep], ['oneRun', duringOneRun]] as const).map(([k, v]) => [k, {
    n: v.ms.length, p50: percentile(v.ms, 50), p99: percentile(v.ms, 99), max: Math.max(0, ...v.ms), fullRunMs: Math.round(v.fullMs),
  }])),
  driftRepairMs: Math.round(repairMs),
  ipvsadmSingleChangeMs: { p50: percentile(ipvsadmMs, 50), p99: percentile(ipvsadmMs, 99) },
  ratioP50OursToIpvsadm: percentile(all, 50) / percentile(ipvsadmMs, 50),
  agentRssMiB: Math.round(rss / 1048576),
  targets: { p99Ms: 50 },
};
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'agent.json'), JSON.stringify(result, null, 2) + '\n');
const f = (n: number): string => n.toFixed(2);
const LABEL: Record<Kind, string> = { weight: 'weight', destination: 'new destination', service: 'new service', reload: 'weight, every plan object new (standalone reload)' };
fs.writeFileSync(path.join(out, 'agent.md'), [
  `# Agent reaction time (${SERVICES} services x ${DESTS} destinations, kernel ${result.kernel}, QEMU TCG)`,
  '',
  'Each change goes through `Agent.setPlan` and is timed until a kernel read on a second netlink socket shows it.',
  '',
  '| measure | value |',
  '|---|---|',
  `| initial full sync | ${result.initialSyncMs} ms |`,
  `| change -> kernel, p50 / p99 / max (${all.length} changes: weight, destination, service) | ${f(result.changeLatencyMs.p50)} / ${f(result.changeLatencyMs.p99)} / ${f(result.changeLatencyMs.max)} ms (target p99 < 50 ms) |`,
  ...KINDS.map((k) => `| ${LABEL[k]}: p50 / p99 (${samples[k].length} changes), agent run p50, netlink requests per change | ${f(percentile(samples[k], 50))} / ${f(percentile(samples[k], 99))} ms, ${f(percentile(runMs[k], 50))} ms, ${[...new Set(requests[k])].join(', ')} |`),
  `| changes over 50 ms (weight, destination, service); of them with a GC pause, with a state-file write inside | ${slow.length}; ${slowWithGc.length} (${result.gcPauseMsInSlowChanges} ms of GC), ${slowWithWrite.length} |`,
  `| state-file writes (coalesced, 100 ms): count, p50 / max | ${writeMs.length}, ${f(result.stateFileWriteMs.p50)} / ${f(result.stateFileWriteMs.max)} ms |`,
  `| full resync (periodic drift repair, nothing to do) p50 / max; of it, the kernel dump alone | ${f(result.fullResyncMs.p50)} / ${f(result.fullResyncMs.max)} ms; ${result.kernelDumpMs} ms |`,
  `| weight changes during a periodic resync, one after another, p50 / p99 / max (n; the resync's length): a sweep: the services read ahead, then compared in slices of about 25 ms (150 services at most; each reads its destinations, then pauses 3× its time), changes first | ${f(result.changesDuringFullRun.sweep!.p50)} / ${f(result.changesDuringFullRun.sweep!.p99)} / ${f(result.changesDuringFullRun.sweep!.max)} ms (${result.changesDuringFullRun.sweep!.n}; ${result.changesDuringFullRun.sweep!.fullRunMs} ms) |`,
  `| ... the same during a full run that reads and compares in one run (\`Agent.resync()\`: the first run, and after a failed one) | ${f(result.changesDuringFullRun.oneRun!.p50)} / ${f(result.changesDuringFullRun.oneRun!.p99)} / ${f(result.changesDuringFullRun.oneRun!.max)} ms (${result.changesDuringFullRun.oneRun!.n}; ${result.changesDuringFullRun.oneRun!.fullRunMs} ms) |`,
  `| drift repair after \`ipvsadm -C\` (${expected} services re-created) | ${result.driftRepairMs} ms |`,
  `| ipvsadm -e (one process per change) p50 / p99 | ${f(result.ipvsadmSingleChangeMs.p50)} / ${f(result.ipvsadmSingleChangeMs.p99)} ms |`,
  `| ratio ours / ipvsadm (p50) | ${f(result.ratioP50OursToIpvsadm)} |`,
  `| agent RSS (max over the run) | ${result.agentRssMiB} MiB |`,
  '',
  'A change-driven run reconciles only the services whose planned objects changed (found by identity, then by value), with',
  'the kernel view kept from the last dump; the first run is a full run that dumps the kernel. The periodic resync (every',
  '10 s by default, or ten times its last length) repairs drift as a sweep: it reads the kernel\'s services ahead, outside',
  'any run, then compares the plan with the kernel in slices sized to take about 25 ms (at most 150 services), each slice a',
  'run of its own that reads its services\' destinations, with a pause of three times its length after it; a change that',
  'arrives meanwhile runs before the next slice (services changed since the read are taken from the view). A change',
  'meeting a resync waits for one slice at most.',
  '',
].join('\n'));
console.log(JSON.stringify(result, null, 2));
