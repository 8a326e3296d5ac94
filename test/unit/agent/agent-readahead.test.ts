// The periodic resync reads the kernel ahead of its full run, on its own IPVS handle: plan changes made while
// that read is in flight go through at once, and the full run after it neither undoes nor re-does them.
import { FakeIpvs } from '../../../src/ipvs/fake.ts';
import type { IpvsInterface } from '../../../src/ipvs/interface.ts';
import type { ServiceState } from '../../../src/ipvs/types.ts';
import { FakeNetif } from '../../../src/netif/fake.ts';
import { FakeSysctl, defaultSysctls } from '../../../src/sysctl/fake.ts';
import { MemoryStateStore } from '../../../src/agent/state.ts';
import { DirectorReconciler } from '../../../src/agent/director/reconciler.ts';
import { RealServerReconciler } from '../../../src/agent/realserver/reconciler.ts';
import { HealthChecker } from '../../../src/agent/health/checker.ts';
import { Agent, type AgentRun } from '../../../src/agent/agent.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';

const log = createLogger('test', 'silent');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

const svc = (i: number, over: Partial<PlannedService> = {}): PlannedService => ({
  id: `lab/s${i}`, generation: 1, vip: `10.1.0.${i + 1}`, port: 80, protocol: 'TCP', scheduler: 'wlc',
  schedulerFlags: [], onePacket: false, forwarding: 'DirectRouting', holdVip: false,
  healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 1, fall: 1 }, drainTimeoutSeconds: 0,
  destinations: [0, 1, 2].map((j) => ({ realServer: `lab/rs${j}`, address: `10.2.${j}.${i + 1}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 })),
  ...over,
});
const key = (s: PlannedService) => ({ af: 'ipv4' as const, protocol: 'tcp' as const, address: s.vip, port: 80 });

/**
 * A second handle on the same fake kernel whose dump is taken when asked, then held until `release()`:
 * like a dump of thousands of services, it describes the kernel as it was when it started.
 */
class HeldReader {
  reading = false;
  reads = 0;
  #release: (() => void) | undefined;
  readonly kernel: FakeIpvs;
  constructor(kernel: FakeIpvs) {
    this.kernel = kernel;
  }
  asIpvs(): IpvsInterface {
    return new Proxy(this.kernel, {
      get: (target, prop, receiver) => (prop === 'listServices' ? () => this.#list() : Reflect.get(target, prop, receiver)),
    });
  }
  async #list(): Promise<ServiceState[]> {
    const snapshot = await this.kernel.listServices();
    this.reads++;
    this.reading = true;
    await new Promise<void>((r) => (this.#release = r));
    this.reading = false;
    return snapshot;
  }
  release(): void {
    this.#release?.();
  }
}

function setup() {
  const ipvs = new FakeIpvs();
  const reader = new HeldReader(ipvs);
  const netif = new FakeNetif();
  netif.addLink('eth0', { up: true });
  const sysctl = new FakeSysctl(defaultSysctls(['eth0']));
  const state = new MemoryStateStore();
  const runs: AgentRun[] = [];
  const health = new HealthChecker({ probe: async () => ({ ok: true, reason: 'ok' }), log });
  const agent = new Agent({
    node: 'n1', log, health, resyncSeconds: 0.02,
    director: new DirectorReconciler({ ipvs, reader: reader.asIpvs(), netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
    realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
    onReport: (r) => runs.push(r),
  });
  const setPlan = (director: PlannedService[]): void => agent.setPlan({ node: 'n1', director, realServer: [] });
  return { ipvs, reader, agent, runs, setPlan };
}

describe('Agent: the periodic resync reads the kernel ahead, without holding changes up', () => {
  it('changes made during the read reach the kernel at once, and the full run after it finds nothing to do', async () => {
    const t = setup();
    const plan = [0, 1, 2, 3].map((i) => svc(i));
    t.setPlan(plan);
    await t.agent.reconcile();
    const first = t.runs[0]!;
    expect(first.full).toBe(true);
    expect(first.director.failed).toBe(0);
    t.agent.start();
    await until('the read ahead', () => t.reader.reading);

    // Weight, a removed destination, a removed service, a new service: each a change-driven run, now.
    const changed = [
      { ...plan[0]!, generation: 2, destinations: plan[0]!.destinations.map((d, j) => (j === 1 ? { ...d, weight: 7 } : d)) },
      { ...plan[1]!, generation: 2, destinations: plan[1]!.destinations.slice(0, 2) },
      plan[3]!,
      svc(9),
    ];
    const before = t.runs.length;
    t.setPlan(changed);
    await until('the change-driven run', () => t.runs.length > before);
    const run = t.runs[before]!;
    expect(run.full).toBe(false);
    expect(t.reader.reading).toBe(true); // the read is still in flight
    expect(run.director.failed).toBe(0);
    expect((await t.ipvs.listDestinations(key(plan[0]!))).find((d) => d.destination.address === '10.2.1.1')?.destination.weight).toBe(7);
    expect(await t.ipvs.listDestinations(key(plan[1]!))).toHaveLength(2);
    expect(await t.ipvs.getService(key(plan[2]!))).toBeUndefined();
    expect(await t.ipvs.listDestinations(key(svc(9)))).toHaveLength(3);

    // The read (of the kernel before those changes) ends: the full run reads again what they touched.
    const n = t.runs.length;
    t.ipvs.resetCalls();
    const reads = t.reader.reads;
    t.reader.release();
    await until('the full run', () => t.runs.slice(n).some((r) => r.full));
    const full = t.runs.slice(n).find((r) => r.full)!;
    t.agent.stop();
    expect(full.director.failed).toBe(0);
    expect(full.director.ops).toBe(0);
    expect(full.director.drift).toBe(0);
    expect(t.ipvs.calls.listServices).toBe(t.reader.reads - reads); // no dump inside the run (later reads ahead aside)
    expect(t.ipvs.calls.getService).toBeGreaterThanOrEqual(4); // the four touched services, read again
    const kernel = await t.ipvs.listServices();
    expect(kernel.map((s) => s.service.address).sort()).toEqual(['10.1.0.1', '10.1.0.10', '10.1.0.2', '10.1.0.4']);
  });

  it('still repairs drift that the read saw', async () => {
    const t = setup();
    const plan = [0, 1, 2].map((i) => svc(i));
    t.setPlan(plan);
    await t.agent.reconcile();
    await t.ipvs.deleteService(key(plan[1]!)); // as `ipvsadm -D` would
    await t.ipvs.updateDestination(key(plan[2]!), { ...(await t.ipvs.listDestinations(key(plan[2]!)))[0]!.destination, weight: 5 });
    const n = t.runs.length;
    t.agent.start();
    await until('the read ahead', () => t.reader.reading);
    t.reader.release();
    await until('the full run', () => t.runs.slice(n).some((r) => r.full));
    t.agent.stop();
    const full = t.runs.slice(n).find((r) => r.full)!;
    expect(full.director.failed).toBe(0);
    expect(full.director.drift).toBeGreaterThanOrEqual(1);
    expect(await t.ipvs.listDestinations(key(plan[1]!))).toHaveLength(3);
    expect((await t.ipvs.listDestinations(key(plan[2]!))).map((d) => d.destination.weight)).toEqual([1, 1, 1]);
  });
});
