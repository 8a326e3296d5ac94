// The lab-VM half of `npm run bench:controller` (bench/controller.ts starts it with runInVm). In the VM's root
// netns it builds the lab: a director netns with eth0 (192.168.60.2/24) and a mgmt0 link to the management
// network whose relay reaches the host's kube-apiserver; it connects to the bench on the host through the VM's
// second forward and does what the host asks: start lvs-agent (cluster mode, node "director"), count the
// kernel's table, and hand everything kernel-side to a probe process running in the director's netns (its
// own IPVS netlink socket): wait for a change to show up in the kernel, run kubectl or `ipvsadm -e` there.
// Both processes talk JSON lines: host <-> this process over TCP, this process <-> probe over stdio.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chartMemoryLimit, memoryLimit, type MemoryLimit } from './memory-limit.ts';

/** Guest port of the forward to the bench's channel on the host. */
export const DRIVER_GUEST_PORT = 7001;
export const DIRECTOR = 'director';
export const DIRECTOR_IP = '192.168.60.2';

/** What the kernel must show for one destination of one service: a weight, being there, or being gone/draining. */
export interface Expect {
  vip: string;
  port: number;
  address: string;
  want: { weight: number } | 'present' | 'absent';
}

export type HostMessage =
  | { op: 'ping'; id: number }
  | { op: 'start-agent' }
  | { op: 'kernel-count' }
  | { op: 'expect'; id: number; expect: Expect }
  /** kubectl (on the host) has exited for change `id`: the probe polls fast from now on. */
  | { op: 'kubectl-exited'; id: number }
  | { op: 'vm-kubectl'; id: number; args: string[]; input: string; expect: Expect }
  | { op: 'ipvsadm'; targets: Array<{ vip: string; address: string; weight: number }> }
  | { op: 'probe-stats' }
  | { op: 'arping' }
  | { op: 'agent-memory' }
  | { op: 'done' };

export type GuestMessage =
  | { op: 'hello' }
  | { op: 'log'; text: string }
  /** `guestNow`: the guest's wall clock (Date.now()) when it answered, to estimate its offset from the host's. */
  | { op: 'pong'; id: number; guestNow: number }
  | { op: 'agent-started' }
  | { op: 'kernel-count'; services: number; destinations: number }
  | { op: 'ready'; id: number }
  /** `seenAt`: when the probe saw it, the guest's wall clock (to line up with the agent's log). */
  | { op: 'seen'; id: number; polls: number; seenAt: string; /** Of `polls`, those made while kubectl still ran (slow). */ slowPolls: number }
  | { op: 'vm-kubectl-done'; id: number; kubectlMs: number; totalMs: number }
  | { op: 'ipvsadm-done'; ms: number[] }
  | { op: 'probe-stats'; polls: number[] }
  | { op: 'arping-done'; ms: number }
  /**
   * The agent process's peak (VmHWM) and current (VmRSS) resident memory, MiB, and the memory limit it ran
   * under (the chart's, as a memory cgroup in the VM) with V8's heap limit there and the cgroup's OOM kills.
   */
  | { op: 'agent-memory'; hwmMiB: number; rssMiB: number; limit?: { quantity: string; how: string; heapLimitMiB: number; oomKills: number } }
  | { op: 'failed'; text: string };

/** JSON lines from a stream. */
function lines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) fn(line);
    }
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The probe, in the director's netns: reads the kernel, runs kubectl and ipvsadm there. */
async function probe(): Promise<void> {
  const { IpvsClient } = await import('../src/ipvs/client.ts');
  const { kubeconfig } = await import('../test/kernel/cluster-lab.ts');
  const { kubectlPath } = await import('../scripts/tools.ts');
  const ipvs = new IpvsClient({});
  const send = (m: GuestMessage): void => void process.stdout.write(`${JSON.stringify(m)}\n`);
  const polls: number[] = [];
  const shows = async (e: Expect): Promise<boolean> => {
    const dests = await ipvs.listDestinations({ af: 'ipv4', protocol: 'tcp', address: e.vip, port: e.port }).catch(() => []);
    const d = dests.find((x) => x.destination.address === e.address && x.destination.port === e.port);
    if (e.want === 'present') return d !== undefined;
    if (e.want === 'absent') return d === undefined || d.destination.weight === 0;
    return d?.destination.weight === e.want.weight;
  };
  /** Changes being waited for: whether kubectl has exited (fast polling), and what wakes a slow poll's wait. */
  const waits = new Map<number, { fast: boolean; wake?: () => void }>();
  /** A late "kubectl exited", for a change already seen, finds no wait and is dropped. */
  const kubectlExited = (id: number): void => {
    const w = waits.get(id);
    if (!w) return;
    w.fast = true;
    w.wake?.();
  };
  /**
   * Polls one service's destinations (one GET_DEST) until `e` holds: every 50 ms while kubectl still runs, every
   * 5 ms once it has exited. A poll costs about 4 ms of the emulated vCPU, which QEMU takes from the host cores
   * kubectl runs on: polling every 5 ms through kubectl's run slowed kubectl down. The change cannot reach the
   * kernel before kubectl's request is answered (the controller and the agent come after it), so the slow polls
   * can only make a rare total up to 50 ms longer, never shorter.
   */
  const waitFor = async (id: number, e: Expect): Promise<{ polls: number; slowPolls: number }> => {
    const deadline = Date.now() + 120_000;
    let slowPolls = 0;
    const w: { fast: boolean; wake?: () => void } = { fast: false };
    waits.set(id, w);
    try {
      for (let n = 1; ; n++) {
        const fast = w.fast;
        if (!fast) slowPolls++;
        if (await shows(e)) return { polls: n, slowPolls };
        if (Date.now() > deadline) throw new Error(`the kernel did not show ${JSON.stringify(e)} within 120 s`);
        if (fast) await sleep(5);
        else {
          await new Promise<void>((r) => {
            const t = setTimeout(r, 50);
            w.wake = () => {
              clearTimeout(t);
              r();
            };
          });
          w.wake = undefined;
        }
      }
    } finally {
      waits.delete(id);
    }
  };
  const kubectlEnv = { ...process.env, KUBECONFIG: kubeconfig('admin'), KUBECACHEDIR: path.join(os.tmpdir(), 'probe-kube-cache') };
  const runKubectl = (args: string[], input: string): Promise<number> => new Promise((resolve, reject) => {
    const p = spawn(kubectlPath(), args, { env: kubectlEnv, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('error', reject);
    p.once('close', (code) => (code === 0 ? resolve(code) : reject(new Error(`kubectl ${args.join(' ')}: exit ${code}: ${err}`))));
    p.stdin.end(input);
  });
  const handle = async (m: HostMessage): Promise<void> => {
    switch (m.op) {
      case 'ping':
        send({ op: 'pong', id: m.id, guestNow: Date.now() });
        return;
      case 'expect': {
        send({ op: 'ready', id: m.id });
        const n = await waitFor(m.id, m.expect);
        polls.push(n.polls);
        send({ op: 'seen', id: m.id, polls: n.polls, slowPolls: n.slowPolls, seenAt: new Date().toISOString() });
        return;
      }
      case 'kubectl-exited':
        kubectlExited(m.id);
        return;
      case 'vm-kubectl': {
        const start = performance.now();
        const seen = waitFor(m.id, m.expect);
        await runKubectl(m.args, m.input);
        const kubectlMs = performance.now() - start;
        kubectlExited(m.id);
        await seen;
        send({ op: 'vm-kubectl-done', id: m.id, kubectlMs, totalMs: performance.now() - start });
        return;
      }
      case 'ipvsadm': {
        const ms: number[] = [];
        for (const t of m.targets) {
          const start = performance.now();
          await new Promise<void>((resolve, reject) => {
            const p = spawn('ipvsadm', ['-e', '-t', `${t.vip}:80`, '-r', `${t.address}:80`, '-g', '-w', String(t.weight)], { stdio: 'ignore' });
            p.once('error', reject);
            p.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ipvsadm -e exit ${code}`))));
          });
          ms.push(performance.now() - start);
          if (!(await shows({ vip: t.vip, port: 80, address: t.address, want: { weight: t.weight } }))) throw new Error('ipvsadm -e: the kernel does not show it');
        }
        send({ op: 'ipvsadm-done', ms });
        return;
      }
      case 'probe-stats':
        send({ op: 'probe-stats', polls });
        return;
      case 'arping': {
        // What the agent runs for each VIP it binds on a non-loopback interface (src/netif/arp.ts).
        const start = performance.now();
        await new Promise<void>((resolve, reject) => {
          const p = spawn('arping', ['-q', '-U', '-c', '3', '-I', 'eth0', '192.168.60.99'], { stdio: 'ignore' });
          p.once('error', reject);
          p.once('close', () => resolve());
        });
        send({ op: 'arping-done', ms: performance.now() - start });
        return;
      }
      default:
        throw new Error(`probe: unexpected ${m.op}`);
    }
  };
  lines(process.stdin, (line) => {
    handle(JSON.parse(line) as HostMessage).catch((e: unknown) => send({ op: 'failed', text: (e as Error).stack ?? String(e) }));
  });
  process.stdin.on('end', () => {
    ipvs.close();
    process.exit(0);
  });
}

/** The VM's root netns: the lab, the agent, the channel to the host. */
async function lab(): Promise<void> {
  const { NetLab, assertInLabVm, inNetns } = await import('../test/vm/netns.ts');
  const { GUEST_FORWARD_ADDRESS } = await import('../test/vm/lab.ts');
  const { ManagementNetwork, kubeconfig } = await import('../test/kernel/cluster-lab.ts');
  assertInLabVm();
  const netlab = new NetLab('bc');
  const conn = net.connect(DRIVER_GUEST_PORT, GUEST_FORWARD_ADDRESS);
  conn.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    conn.once('connect', resolve);
    conn.once('error', reject);
  });
  const send = (m: GuestMessage): void => void conn.write(`${JSON.stringify(m)}\n`);
  let probeProc: ChildProcess | undefined;
  let agent: ReturnType<typeof netlab.spawn> | undefined;
  let agentLimit: MemoryLimit | undefined;
  /** The host said done: the agent is stopped on purpose from now on. */
  let ending = false;
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  try {
    const br = await netlab.addBridge('bcbr', { addresses: ['192.168.60.1/24'] });
    const director = await netlab.addNetns(DIRECTOR);
    await netlab.connect(director, br, { addresses: [`${DIRECTOR_IP}/24`] });
    const mgmt = await ManagementNetwork.create(netlab);
    await mgmt.join(director);
    probeProc = spawn('ip', ['netns', 'exec', director, process.execPath, '--no-warnings', import.meta.filename, 'probe'], { stdio: ['pipe', 'pipe', 'pipe'], env: process.env });
    let probeErr = '';
    probeProc.stderr!.on('data', (d: Buffer) => (probeErr = (probeErr + d.toString()).slice(-4000)));
    lines(probeProc.stdout!, (line) => void conn.write(`${line}\n`));
    probeProc.once('exit', (code, signal) => {
      if (code !== 0) send({ op: 'failed', text: `probe exited (code ${code}, signal ${signal}): ${probeErr}` });
    });
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-agent-'));
    lines(conn, (line) => {
      const m = JSON.parse(line) as HostMessage;
      if (m.op === 'start-agent') {
        // The chart's agent arguments (resync 10 s, metrics on), in cluster mode as node "director".
        const nodeFlags = (process.env.BENCH_AGENT_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
        // Written when the agent stops (SIGTERM at the end of the run), into the host's BENCH_OUT.
        if (process.env.BENCH_AGENT_CPU_PROFILE && process.env.LVS_VM_OUT) {
          nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${process.env.LVS_VM_OUT}`, '--cpu-prof-name=agent-director.cpuprofile', '--cpu-prof-interval=2000');
        }
        const argv = [process.execPath, '--no-warnings', ...nodeFlags, path.resolve(import.meta.dirname, '..', 'src', 'agent', 'main.ts'), '--cluster',
          '--kubeconfig', kubeconfig('agent'), '--node', DIRECTOR, '--state-dir', stateDir, '--interface', 'eth0', '--metrics-address', '127.0.0.1:9120'];
        // Under the memory limit the chart gives the agent (BENCH_AGENT_MEMORY_LIMIT: another quantity, or
        // "none"): a director holds the whole table, and going over the limit is an OOM kill in a cluster.
        const quantity = process.env.BENCH_AGENT_MEMORY_LIMIT ?? chartMemoryLimit(path.resolve(import.meta.dirname, '..', 'charts', 'lvs-operator'), 'agent');
        if (quantity !== 'none') {
          // (Without a cgroup hierarchy memoryLimit falls back to Node's heap flags, and says so.)
          if (!fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) {
            try {
              execFileSync('mount', ['-t', 'cgroup2', 'cgroup2', '/sys/fs/cgroup'], { stdio: 'ignore' });
            } catch {
              /* flags, see above */
            }
          }
          agentLimit = memoryLimit('lvs-bench-agent', quantity);
          send({ op: 'log', text: `lvs-agent under a memory limit of ${quantity} (${agentLimit.how}; V8 heap limit ${agentLimit.heapLimitMiB} MiB)` });
        }
        // The cgroup is entered before the netns: `ip netns exec` mounts a sysfs of its own, without it.
        const inDirector = inNetns(director, argv);
        const [cmd, args] = agentLimit ? agentLimit.wrap(inDirector) : [inDirector[0]!, inDirector.slice(1)];
        agent = netlab.spawn(null, [cmd, ...args],
        { env: { LVS_LOG_LEVEL: process.env.BENCH_AGENT_LOG_LEVEL ?? process.env.LVS_LOG_LEVEL ?? 'warn' }, label: 'lvs-agent' });
        // Before 'done' an exit is a failure: the host's waits (up to an hour for the initial sync) end now.
        void agent.exited.then((code) => send(ending ? { op: 'log', text: `lvs-agent exited (${code})` } : { op: 'failed', text: `lvs-agent exited (${code}${agentLimit ? `; OOM kills under its ${agentLimit.quantity} limit: ${agentLimit.oomKills()}` : ''}):\n${agent?.output.slice(-4000)}` }));
        send({ op: 'agent-started' });
      } else if (m.op === 'kernel-count') {
        void netlab.exec(director, ['ipvsadm', '-S', '-n'], { timeoutMs: 600_000 }).then((r) => {
          const rules = r.stdout.split('\n');
          send({ op: 'kernel-count', services: rules.filter((l) => l.startsWith('-A ')).length, destinations: rules.filter((l) => l.startsWith('-a ')).length });
        }, (e: unknown) => send({ op: 'failed', text: String(e) }));
      } else if (m.op === 'agent-memory') {
        // The agent's own process: its wrappers (the cgroup's sh, `ip netns exec`) exec it in their place.
        const status = agent ? fs.readFileSync(`/proc/${agent.pid}/status`, 'utf8') : '';
        const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
        send({ op: 'agent-memory', hwmMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024,
          limit: agentLimit ? { quantity: agentLimit.quantity, how: agentLimit.how, heapLimitMiB: agentLimit.heapLimitMiB, oomKills: agentLimit.oomKills() } : undefined });
      } else if (m.op === 'done') {
        ending = true;
        finished();
      } else {
        probeProc?.stdin?.write(`${line}\n`);
      }
    });
    conn.once('close', () => finished());
    send({ op: 'hello' });
    await done;
    // The profile is written on the way out, which takes a while here: more than destroy()'s 5 s grace.
    if (process.env.BENCH_AGENT_CPU_PROFILE) await agent?.stop('SIGTERM', 120_000);
    // BENCH_AGENT_LOG_LEVEL (e.g. debug: every run with its duration): the whole log, to time changes against.
    if (agent?.output.trim()) {
      process.stdout.write(process.env.BENCH_AGENT_LOG_LEVEL ? `lvs-agent output:\n${agent.output}\n` : `lvs-agent output (last 2000 characters):\n${agent.output.slice(-2000)}\n`);
    }
  } finally {
    probeProc?.stdin?.end();
    await netlab.destroy().catch((e: unknown) => process.stderr.write(`${String(e)}\n`));
    conn.end();
  }
}

if (process.argv[1] === import.meta.filename) {
  if (process.env.LVS_VM !== '1') throw new Error('bench/controller-vm.ts runs inside the lab VM: use `npm run bench:controller`');
  await (process.argv[2] === 'probe' ? probe() : lab());
}
