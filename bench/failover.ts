// `npm run bench:failover`: director failover timing and connection survival, measured in the lab VM on the
// whole stack (test/kernel/cluster-failover.ts: real kube-apiserver on the host, chart, controller, two
// directors running lvs-agent --cluster --vip-election, two DR realservers, a client). 20 rounds alternate a
// SIGKILLed holder agent and a cut holder link (its lab and management switch ports disabled); each round fails over from the
// current holder, then restores the old director as the standby (agent restarted / links up).
// Per round, on the VM clock:
//   - failover: fault -> first successful NEW connection (a probe every 100 ms, each a fresh TCP connection
//     + HTTP GET) started after the client's ARP entry for the VIP pointed at the new holder, i.e. a
//     connection the new director carried (after a killed agent the old kernel still forwards: no outage is
//     visible to clients, so the move itself is what is timed);
//   - lease: fault -> the new holder logged "VIP taken over" (it won the Lease); arp: fault -> client ARP moved;
//   - outage: the longest run of failed probes started after the fault;
//   - survival: long-lived downloads opened before the fault (and synced to the standby, ipvsadm -Lnc) that
//     completed over their one connection.
// Writes bench/results/failover.{json,md}. Environment: BENCH_ROUNDS (20), BENCH_STREAMS (4 per round),
// BENCH_AGENT_ARGS (extra director agent arguments, e.g. "--failover-lease-seconds 1 --failover-renew-ms 300").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// Types only (erased): the lab modules themselves are loaded inside the VM, below.
import type { ClientProbe, Director, Fault, HaStack } from '../test/kernel/cluster-failover.ts';
import { percentile } from '../test/support/percentile.ts';
import { recordHostLoad, resultsDir } from './host.ts';

const repo = path.resolve(import.meta.dirname, '..');

if (process.env.LVS_VM !== '1') {
  // On the host: the apiserver, then this file inside the VM. The VM's vCPUs are host threads, so the host's
  // load (other VMs, builds) shows up in the timings: record it next to the results.
  const [{ runInVm, vmCacheDir }, { startHostApi }] = await Promise.all([import('../test/vm/lab.ts'), import('../test/vm/host-api.ts')]);
  const out = resultsDir();
  const log = (m: string): void => {
    process.stderr.write(`[bench:failover] ${m}\n`);
  };
  const before = os.loadavg();
  const startedAt = Date.now();
  const hostApi = await startHostApi({ log });
  let code = 1;
  try {
    const r = await runInVm({
      command: [process.execPath, '--no-warnings', import.meta.filename],
      cwd: repo,
      // The kernel suites' writable cache share: Node's compile cache (every agent restart loads the whole
      // Kubernetes client under TCG) and the lab's whole logs (lab-logs/).
      env: { ...hostApi.vm.env, NODE_COMPILE_CACHE: '/var/cache/lvs-operator-jest/node-compile-cache', ...Object.fromEntries(['BENCH_ROUNDS', 'BENCH_STREAMS', 'BENCH_AGENT_ARGS', 'LVS_LOG_LEVEL'].flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : []))) },
      outDir: out,
      shares: [...hostApi.vm.shares, { hostPath: (fs.mkdirSync(path.join(vmCacheDir(), 'jest-cache'), { recursive: true }), path.join(vmCacheDir(), 'jest-cache')), guestPath: '/var/cache/lvs-operator-jest' }],
      hostForwards: hostApi.vm.hostForwards,
      timeoutMs: 90 * 60_000,
      stream: true,
      log,
    });
    code = r.exitCode;
  } finally {
    await hostApi.stop();
  }
  const json = path.join(out, 'failover.json');
  // Also after a failed or cut-short run: the rounds written so far are results too.
  if (fs.existsSync(json) && fs.statSync(json).mtimeMs > startedAt) recordHostLoad(out, 'failover', before);
  process.exit(code);
}

const { NetLab } = await import('../test/vm/netns.ts');
const { eventually, sleep } = await import('../test/kernel/agent-lab.ts');
const fo = await import('../test/kernel/cluster-failover.ts');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 4);
const AGENT_ARGS = (process.env.BENCH_AGENT_ARGS ?? '').split(/\s+/).filter(Boolean);
const STREAM_LINES = 100;
const STREAM_MS = 250;
const out = process.env.LVS_VM_OUT ?? path.join(repo, 'bench', 'results');
const say = (m: string): void => {
  process.stderr.write(`[bench:failover] ${m}\n`);
};

interface Round {
  round: number;
  fault: Fault;
  from: string;
  to: string;
  /** fault -> first new connection through the new holder (ms). */
  failoverMs: number;
  /** fault -> the new holder logged the takeover (Lease won). */
  leaseMs: number | null;
  /** fault -> the new holder's kernel had the VIP (ip monitor address). */
  bindMs: number | null;
  /** fault -> the client's ARP entry pointed at the new holder. */
  arpMs: number;
  /** Longest run of failed probes started after the fault (first failure -> next success start). */
  outageMs: number;
  /** Downloads opened before the fault that were still running after the client moved to the new holder. */
  streams: number;
  survived: number;
  /** How long the standby needed to list the streams (backup sync daemon) before the fault. */
  syncMs: number;
  /** fault -> the old director no longer had the VIP bound (its kernel dropped it: lifetime, or the agent released it). */
  oldHeldMs: number;
  /** How long both directors had the VIP bound: the new holder's bind to the old director's unbind (kernel events). */
  bothBoundMs: number;
}

const lab = new NetLab();
const rounds: Round[] = [];
const flaps: string[] = [];
let failure: string | undefined;
let stack: HaStack;
let probe: ClientProbe;
try {
  say('starting the stack (chart, controller, two directors, two realservers)');
  const t0 = Date.now();
  stack = await fo.startHaStack(lab, { directorArgs: AGENT_ARGS, log: say });
  probe = await fo.ClientProbe.start(stack, 100, 1000);
  say(`stack serving after ${Math.round((Date.now() - t0) / 1000)} s; ${ROUNDS} rounds`);
} catch (e) {
  // Record why there are no numbers (e.g. no director ever won the Lease on a starved host).
  failure = `setup: ${e instanceof Error ? e.message : String(e)}`;
  await lab.destroy().catch(() => undefined);
  writeResults();
  process.exit(1);
}

/** The agent log time of the first "VIP taken over" at or after `since`. */
const takeoverLogged = (d: Director, since: number): number | undefined => {
  for (const line of (d.agent.proc?.output ?? '').split('\n')) {
    if (!line.includes('"VIP taken over"')) continue;
    const t = Date.parse((JSON.parse(line) as { time: string }).time);
    if (t >= since) return t;
  }
  return undefined;
};

const outage = (since: number): number => {
  let longest = 0;
  let failingFrom: number | undefined;
  for (const p of probe.probes().filter((x) => x.t0 >= since)) {
    if (!p.ok) failingFrom ??= p.t0;
    else if (failingFrom !== undefined) {
      longest = Math.max(longest, p.t0 - failingFrom);
      failingFrom = undefined;
    }
  }
  return longest;
};

/** Writes bench/results/failover.{json,md} from the rounds so far (after every round: a slow run still leaves numbers). */
function writeResults(): Record<string, unknown> {
  // (hoisted: also called when the setup failed)
  const stats = (xs: number[]): { p50: number; max: number; min: number } => ({ p50: percentile(xs, 50), max: Math.max(...xs), min: Math.min(...xs) });
  const of = (f?: Fault): Round[] => rounds.filter((r) => !f || r.fault === f);
  const streamsTotal = rounds.reduce((a, r) => a + r.streams, 0);
  const survivedTotal = rounds.reduce((a, r) => a + r.survived, 0);
  const argValue = (flag: string, dflt: number): number => {
    const i = AGENT_ARGS.indexOf(flag);
    return i >= 0 ? Number(AGENT_ARGS[i + 1]) : dflt;
  };
  const settings = { leaseDurationSeconds: argValue('--failover-lease-seconds', 2), renewIntervalMilliseconds: argValue('--failover-renew-ms', 500) };
  const summary = {
    rounds: rounds.length,
    settings,
    failoverMs: { all: stats(of().map((r) => r.failoverMs)), kill: stats(of('kill').map((r) => r.failoverMs)), link: stats(of('link').map((r) => r.failoverMs)) },
    leaseMs: stats(of().flatMap((r) => (r.leaseMs === null ? [] : [r.leaseMs]))),
    bindMs: stats(of().flatMap((r) => (r.bindMs === null ? [] : [r.bindMs]))),
    arpMs: stats(of().map((r) => r.arpMs)),
    outageMs: { kill: stats(of('kill').map((r) => r.outageMs)), link: stats(of('link').map((r) => r.outageMs)) },
    streams: { total: streamsTotal, survived: survivedTotal, share: streamsTotal ? survivedTotal / streamsTotal : Number.NaN },
    flaps,
    ...(failure ? { failure } : {}),
    target: { p50Ms: 2000, maxMs: 3000 },
    keepalivedReference: 'VRRP defaults: advert_int 1 s; a backup declares the master down after 3 x advert_int + skew_time ((256 - priority)/256 s, 0.61 s at priority 100) = ~3.6 s, then sends gratuitous ARP: ~3-4 s to the first new connection',
    vmLoadAverage: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
    at: new Date().toISOString(),
  };
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'failover.json'), JSON.stringify({ summary, rounds }, null, 2) + '\n');
  const met = (x: { p50: number; max: number }): string => (x.p50 < 2000 && x.max < 3000 ? 'met' : 'missed');
  const s = (x: { p50: number; max: number; min: number }): string => `${x.p50} / ${x.max} (min ${x.min})`;
  const md = [
    '# bench:failover — director failover in the lab VM',
    '',
    `${rounds.length} failovers on the whole stack (real kube-apiserver on the host, chart, controller, two directors with \`lvs-agent --cluster --vip-election\`, `
    + `Lease ${settings.leaseDurationSeconds} s / renew ${settings.renewIntervalMilliseconds} ms), alternating a SIGKILLed holder agent and a cut holder link `
    + '(its lab and management bridge ports disabled: no frame in or out); each round restores the old director as the standby. Times in ms from the fault, on the VM clock (QEMU TCG, 2 vCPU).',
    '',
    '| measure | p50 / max (min) |',
    '|---|---|',
    `| **fault → first new connection through the new holder**, all | **${s(summary.failoverMs.all)}** — target p50 < 2000, max < 3000: **${met(summary.failoverMs.all)}** |`,
    `| … agent killed | ${s(summary.failoverMs.kill)} |`,
    `| … link cut | ${s(summary.failoverMs.link)} |`,
    `| fault → new holder won the Lease ("VIP taken over" in its log) | ${s(summary.leaseMs)} |`,
    `| fault → the new holder's kernel has the VIP (\`ip monitor address\`) | ${s(summary.bindMs)} |`,
    `| fault → client ARP entry points at the new holder | ${s(summary.arpMs)} |`,
    `| longest run of failed new connections, agent killed | ${s(summary.outageMs.kill)} |`,
    `| longest run of failed new connections, link cut | ${s(summary.outageMs.link)} |`,
    '',
    `Long-lived connections (${STREAMS} downloads per round, ${STREAM_LINES} lines every ${STREAM_MS} ms, opened before the fault and listed by the standby's `
    + `\`ipvsadm -Lnc\` — its backup sync daemon — before it): **${survivedTotal} / ${streamsTotal} survived** (${(100 * summary.streams.share).toFixed(1)} %).`,
    `Flapping (VIP not on the new holder 3 s after the old director was back): ${flaps.length ? flaps.join('; ') : 'none'}.`,
    ...(failure ? ['', `**The run stopped early** (${rounds.length} of ${ROUNDS} rounds): ${failure.split('\n')[0]}`] : []),
    '',
    `Reference: ${summary.keepalivedReference}.`,
    '',
    'A killed agent leaves its kernel state (VIP, IPVS table, sync daemon) in place, so clients see no outage until the new holder\'s gratuitous ARP moves them; '
    + 'with a standby planned, the holder binds the VIP with a kernel lifetime (lease duration + 6 s) its agent refreshes, so the killed agent\'s node drops it by '
    + 'itself ("old director had the VIP until", from the fault; "both bound": how long both kernels had it, from kernel address events). After a cut link the old director keeps the VIP '
    + '("retained", by design) until the new holder answers its ARP probe or it reads the new holder from the apiserver.',
    '',
    '| round | fault | from → to | failover | lease | bind | arp | outage | streams survived | sync before fault | old director had the VIP until | both bound |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rounds.map((r) => `| ${r.round} | ${r.fault} | ${r.from} → ${r.to} | ${r.failoverMs} | ${r.leaseMs ?? '–'} | ${r.bindMs ?? '–'} | ${r.arpMs} | ${r.outageMs} | ${r.survived}/${r.streams} | ${r.syncMs} | ${r.oldHeldMs} | ${r.bothBoundMs} |`),
    '',
    `VM load average at the end: ${summary.vmLoadAverage}.`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(out, 'failover.md'), md);
  return summary;
}

try {
  for (let i = 0; i < ROUNDS; i++) {
    const fault: Fault = i % 2 === 0 ? 'kill' : 'link';
    const bound = await eventually('exactly one director binds the VIP', async () => {
      const b = await fo.boundOn(stack);
      return b.length === 1 && b;
    }, 120_000, 200);
    const holder = stack.directors[bound[0]!];
    const standby = Object.values(stack.directors).find((d) => d !== holder)!;
    const streams = await fo.Streams.open(stack, STREAMS, STREAM_LINES, STREAM_MS);
    const syncMs = await fo.waitSynced(lab, standby.ns, streams.ports(), 60_000);

    // Kernel address events on both directors (nothing polls during the failover: under TCG every process
    // spawned competes with the agents for the two emulated CPUs).
    const watch = { old: await fo.AddressWatch.start(lab, holder.ns), next: await fo.AddressWatch.start(lab, standby.ns) };
    const tFault = await fo.fail(stack, holder, fault);
    const tMoved = await eventually('client ARP entry moved', async () => probe.movedAt(standby.mac, tFault), 120_000, 50);
    const first = await eventually('a new connection through the new holder', async () => probe.firstOkAfter(tMoved), 120_000, 50);
    // A killed agent is restarted at once (it needs a minute or more to load under TCG): the downloads run
    // through the new holder meanwhile. A cut link comes back only after them.
    const tRestoreKill = fault === 'kill' ? await fo.restore(stack, holder, fault) : undefined;
    // Only downloads still running when the client had moved went through the new director.
    const results = (await streams.done(120_000)).filter((r) => r.t === 0 || r.t > tMoved);
    const survived = results.filter((r) => r.ok).length;
    await sleep(1_000);
    const leaseAt = takeoverLogged(standby, tFault);

    if (tRestoreKill === undefined) await fo.restore(stack, holder, fault);
    const tUnbound = await eventually(`${holder.name} does not have the VIP`, async () => watch.old.first('del', tFault), 240_000, 200);
    if (fault === 'kill') {
      await eventually(`${holder.name}'s agent runs again`, async () => holder.agent.status() !== undefined, 300_000, 1000);
      await holder.agent.renice(0);
    }
    await sleep(3_000);
    // No flapping: the VIP stays with the new holder once the old director is back.
    const after = await fo.boundOn(stack);
    if (after.length !== 1 || after[0] !== standby.name) flaps.push(`round ${i + 1}: bound on [${after.join(', ')}] 3 s after ${holder.name} was back`);
    await watch.old.stop();
    await watch.next.stop();
    const boundAt = watch.next.first('add', tFault);
    const tBound = boundAt ?? tMoved;
    if (watch.old.events().some((e) => e.op === 'add' && e.t > tUnbound)) flaps.push(`round ${i + 1}: ${holder.name} bound the VIP again`);

    const r: Round = {
      round: i + 1, fault, from: holder.name, to: standby.name,
      failoverMs: first.t1 - tFault, leaseMs: leaseAt === undefined ? null : leaseAt - tFault, bindMs: boundAt === undefined ? null : boundAt - tFault, arpMs: tMoved - tFault, outageMs: outage(tFault),
      streams: results.length, survived, syncMs, oldHeldMs: tUnbound - tFault, bothBoundMs: Math.max(0, tUnbound - tBound),
    };
    rounds.push(r);
    say(JSON.stringify(r) + (survived < results.length ? ` streams: ${JSON.stringify(results.filter((x) => !x.ok))}` : ''));
    writeResults();
  }
} catch (e) {
  // Keep the rounds measured so far: the results say how far the run got and why it stopped.
  failure = `round ${rounds.length + 1}: ${e instanceof Error ? e.message : String(e)}`;
  say(`FAILED ${failure}`);
} finally {
  await probe.stop().catch(() => undefined);
  // Whole logs on the cache share every time (where the time went, per process); printed only on failure.
  stack.dumpLogs(rounds.length < ROUNDS);
  await stack.stop().catch(() => undefined);
  await lab.destroy().catch(() => undefined);
}

say(`done: ${JSON.stringify(writeResults())}`);
if (rounds.length < ROUNDS) process.exit(1);
