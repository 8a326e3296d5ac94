// The agent's periodic resync is counted from the end of the last full run: a full run longer than the
// interval (seconds at 5,000 services, more on a starved host) must not make every run a full one, with
// each plan change waiting behind it.
import { FakeIpvs } from '../../../src/ipvs/fake.ts';
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
const FULL_MS = 120;
const RESYNC_S = 0.05;
const DUTY = 2;

/** A director whose full runs take FULL_MS (longer than the resync interval), as a big table's dump does. */
class SlowFullDirector extends DirectorReconciler {
  override async reconcile(...args: Parameters<DirectorReconciler['reconcile']>): ReturnType<DirectorReconciler['reconcile']> {
    await sleep(FULL_MS);
    return super.reconcile(...args);
  }
}

const svc = (weight: number): PlannedService => ({
  id: 'lab/web', generation: weight, vip: '10.1.0.1', port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: false, healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 1, fall: 1 }, drainTimeoutSeconds: 0,
  destinations: [{ realServer: 'lab/rs0', address: '10.2.0.1', port: 80, weight, upperThreshold: 0, lowerThreshold: 0 }],
});

describe('Agent: periodic resync', () => {
  it('counts the interval from the end of a full run, so a plan change runs at once and incrementally', async () => {
    const ipvs = new FakeIpvs();
    const netif = new FakeNetif();
    netif.addLink('eth0', { up: true });
    const sysctl = new FakeSysctl(defaultSysctls(['eth0']));
    const state = new MemoryStateStore();
    const runs: AgentRun[] = [];
    const agent = new Agent({
      node: 'n1', log, resyncSeconds: RESYNC_S, resyncDutyFactor: DUTY,
      health: new HealthChecker({ probe: async () => ({ ok: true, reason: 'connected' }), log }),
      director: new SlowFullDirector({ ipvs, netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
      realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
      onReport: (r) => runs.push(r),
    });
    try {
      agent.setPlan({ node: 'n1', director: [svc(1)], realServer: [] });
      agent.start();
      await agent.reconcile();
      expect(runs[0]!.full).toBe(true);
      // The interval (50 ms) passed during that 120 ms run; the next resync is 50 ms after its end.
      const t = performance.now();
      const before = runs.length;
      agent.setPlan({ node: 'n1', director: [svc(5)], realServer: [] });
      await agent.reconcile();
      const change = runs.slice(before).find((r) => r.director.changed.includes('lab/web'));
      expect(change?.full).toBe(false);
      expect(performance.now() - t).toBeLessThan(FULL_MS);
      expect((await ipvs.listDestinations({ af: 'ipv4', protocol: 'tcp', address: '10.1.0.1', port: 80 }))[0]?.destination.weight).toBe(5);
      // Drift repair still runs periodically, with room between full runs: here the gap is set by the duty
      // factor (2 x a 120 ms run > the 50 ms interval), so runs end at least 120 + 240 ms apart.
      expect(agent.nextResyncMs).toBeGreaterThanOrEqual(DUTY * FULL_MS);
      await sleep(4 * FULL_MS * (1 + DUTY));
      const full = runs.filter((r) => r.full);
      expect(full.length).toBeGreaterThanOrEqual(3);
      for (let k = 1; k < full.length; k++) {
        const gap = Date.parse(full[k]!.time) - Date.parse(full[k - 1]!.time);
        expect(gap).toBeGreaterThanOrEqual(FULL_MS * (1 + DUTY) - 10);
      }
    } finally {
      agent.stop();
    }
  });
});

describe('Agent: resync gap', () => {
  const agentWith = (opts: { resyncSeconds?: number; resyncDutyFactor?: number }): Agent => {
    const netif = new FakeNetif();
    const sysctl = new FakeSysctl(defaultSysctls(['eth0']));
    const state = new MemoryStateStore();
    return new Agent({
      node: 'n1', log, ...opts,
      health: new HealthChecker({ probe: async () => ({ ok: true, reason: 'connected' }), log }),
      director: new SlowFullDirector({ ipvs: new FakeIpvs(), netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
      realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
    });
  };

  it('is the interval while full runs are short, and ten times the last full run when that is longer', async () => {
    const slow = agentWith({ resyncSeconds: 0.5 });
    expect(slow.nextResyncMs).toBe(500);
    slow.setPlan({ node: 'n1', director: [svc(1)], realServer: [] });
    await slow.resync(); // takes FULL_MS (120 ms): 10 x 120 > 500
    expect(slow.nextResyncMs).toBeGreaterThanOrEqual(10 * FULL_MS);
    expect(slow.nextResyncMs).toBeLessThan(10 * (FULL_MS + 100));
    const fast = agentWith({ resyncSeconds: 10 });
    fast.setPlan({ node: 'n1', director: [svc(1)], realServer: [] });
    await fast.resync();
    expect(fast.nextResyncMs).toBe(10_000); // the default interval wins over 10 x 120 ms
  });
});
