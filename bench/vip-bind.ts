// `npm run bench:vips`: binding, listing and refreshing thousands of VIPs through RtNetif vs iproute2, on a real
// kernel in the lab VM.
//
// Per round, each measurement in a fresh network namespace with one dummy interface: bind BENCH_VIPS /32
// addresses with RtNetif.addVips (pipelined), list them with listAddresses and restart their lifetimes with
// setVipLifetimes (what a director's failover heartbeat does); the same with `ip -b -` (addr add / addr change
// lines on stdin) and `ip -j addr show`; and the agent's former way, one addVip round trip per address. Rounds
// alternate who goes first. Writes bench/results/vip-bind.{json,md}. Target: ours / iproute2 ≤ 1.0 for each.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RtNetif } from '../src/netif/rtnetlink.ts';
import { runBenchInVm } from './host.ts';
import { median, run } from './vm-tools.ts';

const repo = path.resolve(import.meta.dirname, '..');
if (process.env.LVS_VM !== '1') {
  runBenchInVm(import.meta.filename, 'vip-bind', 1800);
  process.exit(0);
}

const VIPS = Number(process.env.BENCH_VIPS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LIFETIME = 300;
const DEV = 'vb0';
const out = process.env.LVS_VM_OUT ?? path.join(repo, 'bench', 'results');
const vip = (i: number): string => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const vips = Array.from({ length: VIPS }, (_, i) => vip(i));

interface OursResult {
  addMs: number;
  listMs: number;
  refreshMs: number;
}
interface SequentialResult {
  addMs: number;
}

if (process.env.BENCH_ROLE === 'ours' || process.env.BENCH_ROLE === 'sequential') {
  // A cold process inside the round's netns, as an agent starting up.
  const net = new RtNetif();
  let t = performance.now();
  if (process.env.BENCH_ROLE === 'sequential') {
    for (const v of vips) if (!(await net.addVip(DEV, v))) throw new Error(`${v} was bound already`);
    const r: SequentialResult = { addMs: performance.now() - t };
    net.close();
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  }
  const added = await net.addVips(vips.map((v) => ({ ifname: DEV, vip: v })));
  const addMs = performance.now() - t;
  const notAdded = added.findIndex((r) => r !== true);
  if (notAdded >= 0) throw new Error(`${vips[notAdded]}: ${String(added[notAdded])}`);
  t = performance.now();
  const listed = (await net.listAddresses(DEV)).filter((a) => a.family === 4); // not the link-local IPv6 one
  const listMs = performance.now() - t;
  if (listed.length !== VIPS) throw new Error(`listAddresses gave ${listed.length} addresses, expected ${VIPS}`);
  t = performance.now();
  const refreshed = await net.setVipLifetimes(DEV, vips, LIFETIME);
  const refreshMs = performance.now() - t;
  if (refreshed.length !== VIPS) throw new Error(`setVipLifetimes refreshed ${refreshed.length}, expected ${VIPS}`);
  net.close();
  const r: OursResult = { addMs, listMs, refreshMs };
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

const log = (msg: string): void => void process.stderr.write(`[bench:vips] ${msg}\n`);
let nsCount = 0;
function freshNetns(): string {
  const ns = `vipbench${nsCount++}`;
  run(['ip', 'netns', 'add', ns]);
  run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'add', DEV, 'type', 'dummy']);
  run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', DEV, 'up']);
  return ns;
}
interface IpAddr { local: string; prefixlen: number; valid_life_time?: number }
/** The oracle's view after a run: every VIP bound as /32 with a lifetime no longer than LIFETIME. */
function check(ns: string, who: string, lifetimes: boolean): void {
  const [link] = JSON.parse(run(['ip', 'netns', 'exec', ns, 'ip', '-j', 'addr', 'show', 'dev', DEV]).stdout) as { addr_info?: IpAddr[] }[];
  const mine = (link?.addr_info ?? []).filter((a) => a.prefixlen === 32 && a.local.startsWith('10.'));
  if (mine.length !== VIPS) throw new Error(`${who}: ip shows ${mine.length} VIPs, expected ${VIPS}`);
  if (lifetimes && mine.some((a) => (a.valid_life_time ?? Infinity) > LIFETIME)) throw new Error(`${who}: a lifetime was not refreshed`);
}

/** This file as a cold process in a fresh netns, in `role`; its result, checked with `ip`. */
function runRole<T>(role: 'ours' | 'sequential', who: string, lifetimes: boolean): T {
  const ns = freshNetns();
  const r = run(['ip', 'netns', 'exec', ns, process.execPath, '--no-warnings', import.meta.filename], undefined, { ...process.env, BENCH_ROLE: role });
  check(ns, who, lifetimes);
  run(['ip', 'netns', 'del', ns]);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as T;
}
const runOurs = (): OursResult => runRole<OursResult>('ours', 'RtNetif', true);
const runSequential = (): SequentialResult => runRole<SequentialResult>('sequential', 'addVip one by one', false);
function runIproute2(): OursResult {
  const ns = freshNetns();
  const ip = (args: string[], input?: string): number => run(['ip', 'netns', 'exec', ns, 'ip', ...args], input).ms;
  const addMs = ip(['-b', '-'], vips.map((v) => `addr add ${v}/32 dev ${DEV}\n`).join(''));
  const listMs = ip(['-j', 'addr', 'show', 'dev', DEV]);
  const refreshMs = ip(['-b', '-'], vips.map((v) => `addr change ${v}/32 dev ${DEV} valid_lft ${LIFETIME} preferred_lft ${LIFETIME}\n`).join(''));
  check(ns, 'iproute2', true);
  run(['ip', 'netns', 'del', ns]);
  return { addMs, listMs, refreshMs };
}

interface Round {
  oursFirst: boolean;
  ours: OursResult;
  iproute2: OursResult;
  sequential: SequentialResult;
}
const rounds: Round[] = [];
log(`${VIPS} VIPs on a dummy, ${ROUNDS} rounds, fresh netns per measurement`);
for (let r = 0; r < ROUNDS; r++) {
  const oursFirst = r % 2 === 0;
  const first = oursFirst ? runOurs() : runIproute2();
  const second = oursFirst ? runIproute2() : runOurs();
  const round: Round = { oursFirst, ours: oursFirst ? first : second, iproute2: oursFirst ? second : first, sequential: runSequential() };
  rounds.push(round);
  const s = (ms: number): string => (ms / 1000).toFixed(2);
  log(`round ${r + 1}: ours add ${s(round.ours.addMs)} s, list ${s(round.ours.listMs)} s, refresh ${s(round.ours.refreshMs)} s | ip add ${s(round.iproute2.addMs)} s, list ${s(round.iproute2.listMs)} s, change ${s(round.iproute2.refreshMs)} s | addVip one by one ${s(round.sequential.addMs)} s`);
}

const med = {
  ours: { addMs: median(rounds.map((r) => r.ours.addMs)), listMs: median(rounds.map((r) => r.ours.listMs)), refreshMs: median(rounds.map((r) => r.ours.refreshMs)) },
  iproute2: { addMs: median(rounds.map((r) => r.iproute2.addMs)), listMs: median(rounds.map((r) => r.iproute2.listMs)), refreshMs: median(rounds.map((r) => r.iproute2.refreshMs)) },
  sequentialAddMs: median(rounds.map((r) => r.sequential.addMs)),
};
const ratio = {
  add: med.ours.addMs / med.iproute2.addMs,
  list: med.ours.listMs / med.iproute2.listMs,
  refresh: med.ours.refreshMs / med.iproute2.refreshMs,
  sequentialAdd: med.sequentialAddMs / med.iproute2.addMs,
};
const kernel = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
const iproute2 = spawnSync('ip', ['-V'], { encoding: 'utf8' }).stdout.trim();
const result = {
  benchmark: 'vip-bind',
  date: new Date().toISOString(),
  environment: { kernel, iproute2, node: process.version, cpus: os.cpus().length, vm: 'QEMU TCG (lab VM, test/vm/lab.ts)' },
  vips: VIPS,
  rounds,
  median: med,
  ratio,
  targets: { add: 1.0, list: 1.0, refresh: 1.0 },
  pass: { add: ratio.add <= 1.0, list: ratio.list <= 1.0, refresh: ratio.refresh <= 1.0 },
};
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'vip-bind.json'), `${JSON.stringify(result, null, 2)}\n`);
const s = (ms: number): string => (ms / 1000).toFixed(2);
const mark = (ok: boolean): string => (ok ? '✓' : '✗');
const md = `# VIP binding: RtNetif vs iproute2

${result.date} — kernel ${kernel}, ${iproute2}, Node ${process.version}, ${os.cpus().length} vCPU QEMU TCG lab VM (emulated CPU: absolute times are slow, ratios are what counts).

${VIPS.toLocaleString('en')} /32 VIPs on one dummy interface, in a fresh network namespace per measurement.

| | RtNetif | iproute2 | ours / iproute2 | target |
|---|---:|---:|---:|---:|
| bind all (\`addVips\` vs \`ip -b\` addr add) | ${s(med.ours.addMs)} s | ${s(med.iproute2.addMs)} s | **${ratio.add.toFixed(2)}** | ≤ 1.0 ${mark(result.pass.add)} |
| list (\`listAddresses\` vs \`ip -j addr show\`) | ${s(med.ours.listMs)} s | ${s(med.iproute2.listMs)} s | **${ratio.list.toFixed(2)}** | ≤ 1.0 ${mark(result.pass.list)} |
| restart every lifetime (\`setVipLifetimes\` vs \`ip -b\` addr change) | ${s(med.ours.refreshMs)} s | ${s(med.iproute2.refreshMs)} s | **${ratio.refresh.toFixed(2)}** | ≤ 1.0 ${mark(result.pass.refresh)} |
| bind all, one \`addVip\` round trip each (before pipelining) | ${s(med.sequentialAddMs)} s | ${s(med.iproute2.addMs)} s | ${ratio.sequentialAdd.toFixed(2)} | |

Medians of ${ROUNDS} rounds (RtNetif and iproute2 alternate who goes first; one by one runs last):

| round | first | add | list | refresh | ip add | ip list | ip change | addVip one by one |
|---:|---|---:|---:|---:|---:|---:|---:|---:|
${rounds.map((r, i) => `| ${i + 1} | ${r.oursFirst ? 'ours' : 'iproute2'} | ${s(r.ours.addMs)} s | ${s(r.ours.listMs)} s | ${s(r.ours.refreshMs)} s | ${s(r.iproute2.addMs)} s | ${s(r.iproute2.listMs)} s | ${s(r.iproute2.refreshMs)} s | ${s(r.sequential.addMs)} s |`).join('\n')}

Ours is a cold Node process in the round's netns (\`ip netns exec ns node bench/vip-bind.ts\`, BENCH_ROLE=ours) timing each call; iproute2 is timed around \`ip netns exec ns ip ...\`, so each of its rows includes starting \`ip\`. Every run is checked with \`ip -j addr show\`: all ${VIPS.toLocaleString('en')} bound as /32, lifetimes restarted.

How: \`addVips\` frames RTM_NEWADDR itself (src/netif/addrwrite.ts) and sends it through the IPVS client's netlink transport on a NETLINK_ROUTE socket, up to 128 requests per sendmsg with an ACK asked only of the last (the kernel reports every failure by seq); \`setVipLifetimes\` reads the interface's addresses with one dump (src/netif/addrdump.ts) and sends NLM_F_REPLACE requests the same way. \`addVip\` is one netlink@0.3.0 request (and an interface lookup) per address, the agent's way before.
`;
fs.writeFileSync(path.join(out, 'vip-bind.md'), md);
log(`add ratio ${ratio.add.toFixed(2)}, list ${ratio.list.toFixed(2)}, refresh ${ratio.refresh.toFixed(2)}; wrote ${path.join(out, 'vip-bind.json')} and .md`);
