// `npm run bench:ipvs`: full-table sync and dump through IpvsClient vs ipvsadm, on a real kernel in the lab VM.
//
// Per round, on an empty table: program BENCH_SERVICES services x BENCH_DESTS destinations with
// IpvsClient.apply() (pipelined) and read everything back with listServices(); then the same table
// with `ipvsadm -R` (an equivalent rules file on stdin) and `ipvsadm -Sn`. Rounds alternate who goes
// first. Also checks that, at that table size, a weight change costs exactly one netlink request.
// Writes bench/results/ipvs-sync.{json,md}. Targets: ours/ipvsadm <= 1.0 for sync and for dump.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IpvsClient } from '../src/ipvs/client.ts';
import type { IpvsOp } from '../src/ipvs/interface.ts';
import { formatIpvsadmRules } from '../src/ipvs/ipvsadm.ts';
import type { Destination, Service, ServiceState } from '../src/ipvs/types.ts';
import { ZERO_COUNTERS, ZERO_STATS } from '../src/ipvs/types.ts';

const repo = path.resolve(import.meta.dirname, '..');
if (process.env.LVS_VM !== '1') {
  // On the host: boot the lab VM and run this file inside it (results land in bench/results).
  const env = Object.entries(process.env).flatMap(([k, v]) => (k.startsWith('BENCH_') && v !== undefined ? ['--env', `${k}=${v}`] : []));
  execFileSync(process.execPath, [path.join(repo, 'test/vm/run.ts'), '--timeout', '5000', ...env, '--', process.execPath, '--no-warnings', import.meta.filename], {
    stdio: 'inherit',
  });
  process.exit(0);
}

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const DESTS = Number(process.env.BENCH_DESTS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const out = process.env.LVS_VM_OUT ?? path.join(repo, 'bench', 'results');

const vip = (i: number): string => `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
const services: Service[] = Array.from({ length: SERVICES }, (_, i) => ({
  af: 'ipv4',
  protocol: 'tcp',
  address: vip(i),
  port: 80,
  scheduler: 'wlc',
  flags: 0,
  timeout: 0,
  netmask: 0xffffffff,
}));
const destsOf = (i: number): Destination[] =>
  Array.from({ length: DESTS }, (_, j) => ({
    address: `172.16.${j}.${(i % 250) + 1}`,
    port: 80,
    af: 'ipv4',
    forwarding: 'droute',
    weight: 1,
    upperThreshold: 0,
    lowerThreshold: 0,
    tunnelType: 'ipip',
    tunnelPort: 0,
    tunnelFlags: 0,
  }));
const desired: ServiceState[] = services.map((service, i) => ({
  service,
  stats: ZERO_STATS,
  destinations: destsOf(i).map((destination) => ({ destination, counters: ZERO_COUNTERS, stats: ZERO_STATS })),
}));
const ops: IpvsOp[] = desired.flatMap((st) => [
  { op: 'addService' as const, service: st.service },
  ...st.destinations.map((d) => ({ op: 'addDestination' as const, service: st.service, destination: d.destination })),
]);
const rules = formatIpvsadmRules(desired);
const rulesText = `${rules.join('\n')}\n`;
const expectedSorted = [...rules].sort();

function ipvsadm(args: string[], input?: string): { ms: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync('ipvsadm', args, { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`ipvsadm ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

const lines = (s: string): string[] => s.split('\n').filter(Boolean);
const log = (msg: string): void => {
  process.stderr.write(`[bench:ipvs] ${msg}\n`);
};

const client = new IpvsClient();
await client.info();

interface Round {
  oursFirst: boolean;
  ours: { syncMs: number; dumpMs: number };
  ipvsadm: { restoreMs: number; saveMs: number };
}
const rounds: Round[] = [];
let weightChange: { requests: number; ms: number; ipvsadmEditMs: number } | undefined;

async function runOurs(round: number): Promise<Round['ours']> {
  ipvsadm(['-C']);
  const t0 = performance.now();
  const results = await client.apply(ops);
  const syncMs = performance.now() - t0;
  const failed = results.filter(Boolean);
  if (failed.length) throw new Error(`${failed.length} ops failed, first: ${failed[0]?.message}`);
  const t1 = performance.now();
  const dump = await client.listServices();
  const dumpMs = performance.now() - t1;
  // Correctness (untimed): what we read back is exactly what ipvsadm -R would have programmed.
  const got = formatIpvsadmRules(dump).sort();
  if (got.length !== expectedSorted.length || got.some((l, i) => l !== expectedSorted[i])) throw new Error('dump differs from the desired table');
  if (round === 0) {
    // At full table size: one weight change = one request.
    const before = client.requestCount;
    const t = performance.now();
    await client.updateDestination(services[SERVICES >> 1] as Service, { ...(destsOf(SERVICES >> 1)[3] as Destination), weight: 5 });
    const ms = performance.now() - t;
    const requests = client.requestCount - before;
    const svc = services[SERVICES >> 1] as Service;
    const edit = ipvsadm(['-e', '-t', `${svc.address}:80`, '-r', `172.16.3.${((SERVICES >> 1) % 250) + 1}:80`, '-g', '-w', '6']);
    weightChange = { requests, ms, ipvsadmEditMs: edit.ms };
    log(`weight change: ${requests} request(s), ${ms.toFixed(2)} ms (ipvsadm -e: ${edit.ms.toFixed(1)} ms)`);
  }
  return { syncMs, dumpMs };
}

function runIpvsadm(): Round['ipvsadm'] {
  ipvsadm(['-C']);
  const restore = ipvsadm(['-R'], rulesText);
  const save = ipvsadm(['-S', '-n']);
  if (lines(save.stdout).length !== rules.length) throw new Error(`ipvsadm -Sn printed ${lines(save.stdout).length} lines, expected ${rules.length}`);
  return { restoreMs: restore.ms, saveMs: save.ms };
}

log(`${SERVICES} services x ${DESTS} destinations = ${ops.length} operations, ${ROUNDS} rounds`);
for (let r = 0; r < ROUNDS; r++) {
  const oursFirst = r % 2 === 0;
  let ours: Round['ours'];
  let adm: Round['ipvsadm'];
  if (oursFirst) {
    ours = await runOurs(r);
    adm = runIpvsadm();
  } else {
    adm = runIpvsadm();
    ours = await runOurs(r);
  }
  rounds.push({ oursFirst, ours, ipvsadm: adm });
  log(
    `round ${r + 1}: ours sync ${(ours.syncMs / 1000).toFixed(2)} s, dump ${(ours.dumpMs / 1000).toFixed(2)} s | ` +
      `ipvsadm -R ${(adm.restoreMs / 1000).toFixed(2)} s, -Sn ${(adm.saveMs / 1000).toFixed(2)} s`,
  );
}
ipvsadm(['-C']);
client.close();

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const med = {
  oursSyncMs: median(rounds.map((r) => r.ours.syncMs)),
  oursDumpMs: median(rounds.map((r) => r.ours.dumpMs)),
  ipvsadmRestoreMs: median(rounds.map((r) => r.ipvsadm.restoreMs)),
  ipvsadmSaveMs: median(rounds.map((r) => r.ipvsadm.saveMs)),
};
const ratio = { sync: med.oursSyncMs / med.ipvsadmRestoreMs, dump: med.oursDumpMs / med.ipvsadmSaveMs };
const kernel = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
const ipvsadmVersion = spawnSync('ipvsadm', ['--version'], { encoding: 'utf8' }).stdout.trim();
const result = {
  benchmark: 'ipvs-sync',
  date: new Date().toISOString(),
  environment: { kernel, ipvsadm: ipvsadmVersion, node: process.version, cpus: os.cpus().length, vm: 'QEMU TCG (lab VM, test/vm/lab.ts)' },
  table: { services: SERVICES, destinationsPerService: DESTS, operations: ops.length },
  rounds,
  median: med,
  ratio,
  targets: { sync: 1.0, dump: 1.0 },
  pass: { sync: ratio.sync <= 1.0, dump: ratio.dump <= 1.0, weightChangeOneRequest: weightChange?.requests === 1 },
  weightChange,
};
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'ipvs-sync.json'), `${JSON.stringify(result, null, 2)}\n`);
const s = (ms: number): string => (ms / 1000).toFixed(2);
const md = `# IPVS full sync: IpvsClient vs ipvsadm

${result.date} — kernel ${kernel}, ${ipvsadmVersion}, Node ${process.version}, ${os.cpus().length} vCPU QEMU TCG lab VM (emulated CPU: absolute times are slow, ratios are what counts).

Table: ${SERVICES.toLocaleString('en')} TCP services × ${DESTS} DR destinations = ${ops.length.toLocaleString('en')} operations, programmed into an empty table, then read back completely.

| | IpvsClient | ipvsadm 1.31 | ours / ipvsadm | target |
|---|---:|---:|---:|---:|
| sync (apply vs \`ipvsadm -R\`) | ${s(med.oursSyncMs)} s | ${s(med.ipvsadmRestoreMs)} s | **${ratio.sync.toFixed(2)}** | ≤ 1.0 ${result.pass.sync ? '✓' : '✗'} |
| dump (listServices vs \`ipvsadm -Sn\`) | ${s(med.oursDumpMs)} s | ${s(med.ipvsadmSaveMs)} s | **${ratio.dump.toFixed(2)}** | ≤ 1.0 ${result.pass.dump ? '✓' : '✗'} |

Medians of ${ROUNDS} rounds (alternating who goes first):

| round | first | ours sync | ours dump | ipvsadm -R | ipvsadm -Sn |
|---:|---|---:|---:|---:|---:|
${rounds.map((r, i) => `| ${i + 1} | ${r.oursFirst ? 'ours' : 'ipvsadm'} | ${s(r.ours.syncMs)} s | ${s(r.ours.dumpMs)} s | ${s(r.ipvsadm.restoreMs)} s | ${s(r.ipvsadm.saveMs)} s |`).join('\n')}

Weight change of one destination at this table size: **${weightChange?.requests ?? '?'} netlink request** (${weightChange?.ms.toFixed(2) ?? '?'} ms; \`ipvsadm -e\` ${weightChange?.ipvsadmEditMs.toFixed(1) ?? '?'} ms including process start).

How: \`apply()\` packs 256 requests per sendmsg and asks only the last of each for an ACK (the kernel reports every failure by seq, so the ACK of the last one confirms the batch); \`listServices()\` runs one service dump, then the per-service destination dumps 8 at a time on separate sockets. \`ipvsadm -R\` opens a socket and resolves the family for every line; \`ipvsadm -Sn\` does the same per service.
`;
fs.writeFileSync(path.join(out, 'ipvs-sync.md'), md);
log(`sync ratio ${ratio.sync.toFixed(2)}, dump ratio ${ratio.dump.toFixed(2)}; wrote ${path.join(out, 'ipvs-sync.json')} and .md`);
