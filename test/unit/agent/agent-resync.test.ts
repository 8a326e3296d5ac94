// The agent's periodic resync is counted from the end of the last full run: a full run longer than the
// interval (seconds at 5,000 services, more on a starved host) must not make every run a full one, with
// each plan change waiting behind it.
import type { FakeIpvs } from '../../../src/ipvs/fake.ts';
import { DirectorReconciler } from '../../../src/agent/director/reconciler.ts';
import type { Agent, AgentRun } from '../../../src/agent/agent.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { fakeAgent } from '../../support/fake-agent.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const FULL_MS = 120;
const RESYNC_S = 0.05;
const DUTY = 2;

/** A director whose full runs and sweeps take FULL_MS (longer than the resync interval), as a big table's do. */
class SlowFullDirector extends DirectorReconciler {
  override async reconcile(...args: Parameters<DirectorReconciler['reconcile']>): ReturnType<DirectorReconciler['reconcile']> {
    await sleep(FULL_MS);
    return super.reconcile(...args);
  }

  override async finishSweep(...args: Parameters<DirectorReconciler['finishSweep']>): ReturnType<DirectorReconciler['finishSweep']> {
    await sleep(FULL_MS);
    return super.finishSweep(...args);
  }
}

const svc = (weight: number): PlannedService => ({
  id: 'lab/web', generation: weight, vip: '10.1.0.1', port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: false, healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 1, fall: 1 }, drainTimeoutSeconds: 0,
  destinations: [{ realServer: 'lab/rs0', address: '10.2.0.1', port: 80, weight, upperThreshold: 0, lowerThreshold: 0 }],
});

describe('Agent: periodic resync', () => {
  it('counts the interval from the end of a full run, so a plan change runs at once and incrementally', async () => {
    const { ipvs, agent, runs } = fakeAgent({ director: (deps) => new SlowFullDirector(deps), agent: { resyncSeconds: RESYNC_S, resyncDutyFactor: DUTY } });
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
      // (FULL_MS - 1: a timer may fire up to ~1 ms early by performance.now().)
      expect(agent.nextResyncMs).toBeGreaterThanOrEqual(DUTY * (FULL_MS - 1));
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
  const agentWith = (opts: { resyncSeconds?: number; resyncDutyFactor?: number }): Agent =>
    fakeAgent({ director: (deps) => new SlowFullDirector(deps), agent: opts }).agent;

  it('is the interval while full runs are short, and ten times the last full run when that is longer', async () => {
    const slow = agentWith({ resyncSeconds: 0.5 });
    expect(slow.nextResyncMs).toBe(500);
    slow.setPlan({ node: 'n1', director: [svc(1)], realServer: [] });
    const run = await slow.resync(); // takes FULL_MS (120 ms) or more: 10 x 120 > 500
    expect(slow.nextResyncMs).toBeGreaterThanOrEqual(10 * FULL_MS);
    // Ten times what it took (a loaded worker's first run has been 280 ms), not a fixed bound.
    expect(slow.nextResyncMs).toBeLessThan(10 * (run.durationMs + 20));
    const fast = agentWith({ resyncSeconds: 10 });
    fast.setPlan({ node: 'n1', director: [svc(1)], realServer: [] });
    await fast.resync();
    expect(fast.nextResyncMs).toBe(10_000); // the default interval wins over 10 x 120 ms
  });
});

describe('Agent: the periodic resync reads the kernel ahead', () => {
  const key = { af: 'ipv4', protocol: 'tcp', address: '10.1.0.1', port: 80 } as const;
  const setup = () => fakeAgent({ agent: { resyncSeconds: 0.05, resyncDutyFactor: 1 } });
  /** An agent (not started) that has programmed svc(weight). */
  const programmed = async (weight: number): Promise<ReturnType<typeof setup>> => {
    const x = setup();
    x.agent.setPlan({ node: 'n1', director: [svc(weight)], realServer: [] });
    await x.agent.reconcile();
    return x;
  };
  /**
   * Starts the agent with its first periodic resync's read held: the read returns the table as it was when
   * it began. Resolves once the read began, with the function that lets it return.
   */
  const startWithReadHeld = async (ipvs: FakeIpvs, agent: Agent): Promise<() => void> => {
    let began!: () => void;
    let release!: () => void;
    const reading = new Promise<void>((r) => { began = r; });
    const gate = new Promise<void>((r) => { release = r; });
    ipvs.serviceDumpGate = () => {
      ipvs.serviceDumpGate = undefined;
      began();
      return gate;
    };
    agent.start();
    await reading;
    return release;
  };
  const weightNow = async (ipvs: FakeIpvs): Promise<number | undefined> => (await ipvs.listDestinations(key))[0]?.destination.weight;

  it('a plan change during the read runs at once, and the full run after it does not take the change for drift', async () => {
    const { ipvs, agent, runs } = await programmed(1);
    try {
      const release = await startWithReadHeld(ipvs, agent); // the periodic resync's read has weight 1
      const before = runs.length;
      agent.setPlan({ node: 'n1', director: [svc(5)], realServer: [] });
      await agent.reconcile();
      expect(runs.length).toBeGreaterThan(before);
      expect(runs.slice(before).some((r) => r.full)).toBe(false);
      expect(await weightNow(ipvs)).toBe(5);
      ipvs.resetCalls();
      const mark = runs.length;
      release();
      const { full, ops } = await sweepDone(runs, mark);
      // The read showed weight 1 for a service changed meanwhile: the sweep took it from its view instead
      // (else it would have set weight 5 again).
      expect(ops).toBe(0);
      expect(full.director.failed).toBe(0);
      expect(ipvs.calls.updateDestination + ipvs.calls.listServices).toBe(0);
      expect(await weightNow(ipvs)).toBe(5);
    } finally {
      agent.stop();
    }
  });

  it('still repairs drift in the services nobody changed during the read', async () => {
    const { ipvs, agent, runs } = await programmed(3);
    try {
      await ipvs.updateDestination(key, { ...(await ipvs.listDestinations(key))[0]!.destination, weight: 77 }); // someone else's change
      const before = runs.length;
      agent.start();
      const { ops } = await sweepDone(runs, before);
      expect(ops).toBe(1);
      expect(await weightNow(ipvs)).toBe(3);
    } finally {
      agent.stop();
    }
  });

  it('reads a service again (alone) when an operation on it failed during the read: the view is unsure of it', async () => {
    const { ipvs, agent, runs } = await programmed(1);
    try {
      const release = await startWithReadHeld(ipvs, agent);
      ipvs.injectError('updateDestination', 'ENOMEM');
      const before = runs.length;
      agent.setPlan({ node: 'n1', director: [svc(5)], realServer: [] });
      await expect(agent.reconcile()).resolves.toMatchObject({ full: false });
      expect(runs[before]!.director.failed).toBe(1);
      ipvs.resetCalls();
      const mark = runs.length;
      release();
      const { full } = await sweepDone(runs, mark);
      expect(ipvs.calls.listServices).toBe(0); // no second read of the whole table
      expect(ipvs.calls.getService).toBe(1); // that service alone, from the kernel
      expect(full.director.failed).toBe(0);
      expect(await weightNow(ipvs)).toBe(5);
    } finally {
      agent.stop();
    }
  });
});

/** The first full run from `from` on (a sweep's last run), with the IPVS operations and drift of the runs up to it. */
async function sweepDone(runs: AgentRun[], from: number): Promise<{ full: AgentRun; ops: number; drift: number }> {
  for (let i = 0; i < 200; i++) {
    const at = runs.findIndex((x, k) => k >= from && x.full);
    if (at >= 0) {
      const upTo = runs.slice(from, at + 1);
      return { full: runs[at]!, ops: upTo.reduce((n, r) => n + r.director.ops, 0), drift: upTo.reduce((n, r) => n + r.director.drift, 0) };
    }
    await sleep(10);
  }
  throw new Error('no full run');
}
