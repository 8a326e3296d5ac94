// `npm run bench:agent`: the agent's reaction time at scale, measured inside the lab VM on a real kernel.
// With 5,000 services x 10 destinations programmed, 100 desired-state changes (a weight, a new destination,
// a new service, in turn) each go through the director reconciler; we time from the change to the kernel
// holding it, count the netlink requests each change costs, and read the agent's RSS. `ipvsadm` doing the
// same single changes in the same run is the reference. Writes bench/results/agent.{json,md}.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IpvsClient } from '../src/ipvs/client.ts';
import { FakeNetif } from '../src/netif/fake.ts';
import { SysctlManager } from '../src/sysctl/manager.ts';
import { FileLedgerStore } from '../src/sysctl/ledger.ts';
import { MemoryStateStore } from '../src/agent/state.ts';
import { DirectorReconciler } from '../src/agent/director/reconciler.ts';
import type { PlannedService } from '../src/model/plan.ts';
import { createLogger } from '../src/util/log.ts';

if (process.env.LVS_VM !== '1') {
  // On the host: boot the lab VM and run this file inside it.
  const repo = path.resolve(import.meta.dirname, '..');
  execFileSync(process.execPath, [path.join(repo, 'test/vm/run.ts'), '--timeout', '3000', '--', process.execPath, '--no-warnings', import.meta.filename], { stdio: 'inherit' });
  process.exit(0);
}

const SERVICES = Number(process.env.BENCH_SERVICES ?? 5000);
const DESTS = 10;
const CHANGES = Number(process.env.BENCH_CHANGES ?? 100);
const out = process.env.LVS_VM_OUT ?? path.resolve(import.meta.dirname, 'results');

const vip = (i: number): string => `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
const svc = (i: number): PlannedService => ({
  id: `bench/svc-${i}`, generation: 1, vip: vip(i), port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: false, healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 0,
  destinations: Array.from({ length: DESTS }, (_, j) => ({ realServer: `bench/rs-${i}-${j}`, address: `10.200.${j}.${(i % 250) + 1}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 })),
});

const ipvs = new IpvsClient({});
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-agent-'));
// VIPs are not bound (a standby director): the benchmark is about IPVS. Sysctls are real, on lo.
const netif = new FakeNetif();
const rec = new DirectorReconciler({
  ipvs, netif, state: new MemoryStateStore(), log: createLogger('bench', 'silent'),
  sysctl: new SysctlManager({ ledger: new FileLedgerStore(path.join(tmp, 'ledger.json')) }),
  defaultInterface: async () => 'lo',
});
const healthy = (): undefined => undefined;

const plan = Array.from({ length: SERVICES }, (_, i) => svc(i));
let t = performance.now();
const first = await rec.reconcile(plan, healthy);
const initialSyncMs = performance.now() - t;
if (!first.services.every((s) => s.ok)) throw new Error(`initial sync failed: ${JSON.stringify(first.services.find((s) => !s.ok))}`);
const rss = process.memoryUsage().rss;

type Kind = 'weight' | 'destination' | 'service';
const samples: Record<Kind, number[]> = { weight: [], destination: [], service: [] };
const requests: Record<Kind, number[]> = { weight: [], destination: [], service: [] };
let next = SERVICES;
for (let c = 0; c < CHANGES; c++) {
  const kind: Kind = (['weight', 'destination', 'service'] as const)[c % 3]!;
  const i = (c * 7919) % SERVICES;
  const cur = plan[i]!;
  if (kind === 'weight') plan[i] = { ...cur, destinations: cur.destinations.map((d, j) => (j === c % DESTS ? { ...d, weight: d.weight === 1 ? 5 : 1 } : d)) };
  else if (kind === 'destination') plan[i] = { ...cur, destinations: [...cur.destinations, { realServer: `bench/extra-${c}`, address: `10.201.${c % 250}.${(i % 250) + 1}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 }] };
  else plan.push(svc(next++));
  const before = ipvs.requestCount;
  t = performance.now();
  const r = await rec.reconcile(plan, healthy);
  samples[kind].push(performance.now() - t);
  requests[kind].push(ipvs.requestCount - before);
  if (!r.services.every((s) => s.ok)) throw new Error(`change ${c} failed`);
}

// Check the kernel really holds the last state (one targeted read, not timed).
const last = plan[plan.length - 1]!;
const dests = await ipvs.listDestinations({ af: 'ipv4', protocol: 'tcp', address: last.vip, port: 80 });
if (dests.length !== DESTS) throw new Error(`kernel has ${dests.length} destinations for ${last.vip}, expected ${DESTS}`);

// The same single changes with ipvsadm (one process per change, as an admin or keepalived would).
const ipvsadmMs: number[] = [];
for (let c = 0; c < 30; c++) {
  const i = (c * 104729) % SERVICES;
  t = performance.now();
  execFileSync('ipvsadm', ['-e', '-t', `${vip(i)}:80`, '-r', `10.200.0.${(i % 250) + 1}:80`, '-g', '-w', String(2 + (c % 3))]);
  ipvsadmMs.push(performance.now() - t);
}
ipvs.close();

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const all = [...samples.weight, ...samples.destination, ...samples.service];
const result = {
  kernel: os.release(),
  services: SERVICES,
  destinationsPerService: DESTS,
  changes: CHANGES,
  initialSyncMs: Math.round(initialSyncMs),
  changeLatencyMs: { p50: pct(all, 50), p99: pct(all, 99), max: Math.max(...all) },
  perKind: Object.fromEntries((Object.keys(samples) as Kind[]).map((k) => [k, { p50: pct(samples[k], 50), p99: pct(samples[k], 99), netlinkRequests: [...new Set(requests[k])] }])),
  ipvsadmSingleChangeMs: { p50: pct(ipvsadmMs, 50), p99: pct(ipvsadmMs, 99) },
  ratioP50OursToIpvsadm: pct(all, 50) / pct(ipvsadmMs, 50),
  agentRssMiB: Math.round(rss / 1048576),
  targets: { p99Ms: 50 },
};
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'agent.json'), JSON.stringify(result, null, 2) + '\n');
const f = (n: number): string => n.toFixed(2);
fs.writeFileSync(path.join(out, 'agent.md'), [
  `# Agent reaction time (${SERVICES} services x ${DESTS} destinations, kernel ${result.kernel}, QEMU TCG)`,
  '',
  '| measure | value |',
  '|---|---|',
  `| initial full sync | ${result.initialSyncMs} ms |`,
  `| change -> kernel, p50 / p99 / max (${CHANGES} changes) | ${f(result.changeLatencyMs.p50)} / ${f(result.changeLatencyMs.p99)} / ${f(result.changeLatencyMs.max)} ms (target p99 < 50 ms) |`,
  ...(Object.keys(samples) as Kind[]).map((k) => `| ${k} change p50 / p99, netlink requests per change | ${f(pct(samples[k], 50))} / ${f(pct(samples[k], 99))} ms, ${[...new Set(requests[k])].join(', ')} |`),
  `| ipvsadm -e (one process per change) p50 / p99 | ${f(result.ipvsadmSingleChangeMs.p50)} / ${f(result.ipvsadmSingleChangeMs.p99)} ms |`,
  `| ratio ours / ipvsadm (p50) | ${f(result.ratioP50OursToIpvsadm)} |`,
  `| agent RSS with the table loaded | ${result.agentRssMiB} MiB |`,
  '',
].join('\n'));
console.log(JSON.stringify(result, null, 2));
