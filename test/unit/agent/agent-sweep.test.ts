// The periodic resync as a sweep: the kernel read ahead, then compared slice by slice, each slice a run of
// its own, with plan changes going first. It must repair exactly what a full run repairs, and a change that
// meets it must wait for one slice, not for all of them.
import { DirectorReconciler } from '../../../src/agent/director/reconciler.ts';
import { fakeAgent } from '../../support/fake-agent.ts';
import { serviceKey } from '../../../src/ipvs/keys.ts';
import type { ServiceKey } from '../../../src/ipvs/types.ts';
import type { NodePlan, PlannedService } from '../../../src/model/plan.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const svc = (i: number, over: Partial<PlannedService> = {}): PlannedService => ({
  id: `lab/s${String(i).padStart(3, '0')}`, generation: 1, vip: `10.1.0.${i + 1}`, port: 80, protocol: 'TCP', scheduler: 'wlc',
  schedulerFlags: [], onePacket: false, forwarding: i % 5 === 0 ? 'NAT' : 'DirectRouting', holdVip: i % 3 === 0,
  healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 1, fall: 1 }, drainTimeoutSeconds: i === 4 ? 30 : 0,
  destinations: [0, 1, 2].map((j) => ({ realServer: `lab/rs${j}`, address: `10.2.${j}.${i + 1}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 })),
  ...over,
});
const planOf = (director: PlannedService[]): NodePlan => ({ node: 'n1', director, realServer: [] });
const keyOf = (s: PlannedService): ServiceKey => ({ af: 'ipv4', protocol: 'tcp', address: s.vip, port: s.port });

/** A director whose sweep slices take `sliceMs` (plus `perServiceMs` each) and are logged, as thousands of services' slices would. */
class LoggingDirector extends DirectorReconciler {
  sliceMs = 0;
  perServiceMs = 0;
  onSlice: (() => void) | undefined;
  readonly events: string[] = [];
  override async sweepSlice(...args: Parameters<DirectorReconciler['sweepSlice']>): ReturnType<DirectorReconciler['sweepSlice']> {
    this.events.push(`slice ${args[0].length}`);
    this.onSlice?.();
    if (this.sliceMs || this.perServiceMs) await sleep(this.sliceMs + this.perServiceMs * args[0].length);
    return super.sweepSlice(...args);
  }

  override async finishSweep(...args: Parameters<DirectorReconciler['finishSweep']>): ReturnType<DirectorReconciler['finishSweep']> {
    this.events.push('finish');
    return super.finishSweep(...args);
  }

  override async reconcileChanges(...args: Parameters<DirectorReconciler['reconcileChanges']>): ReturnType<DirectorReconciler['reconcileChanges']> {
    this.events.push(`change ${args[0].upsert.map((s) => s.id).join(',')}`);
    return super.reconcileChanges(...args);
  }
}

// Slices of a fixed size (sweepSliceMs 0), so that the tests can count them; the sizing has its own test.
const world = (sweepSlice = 7, sweepSliceMs = 0) => fakeAgent({ director: (deps) => new LoggingDirector(deps), agent: { sweepSlice, sweepSliceMs } });
type World = ReturnType<typeof world>;
/** A world whose agent has programmed PLAN. */
async function programmed(sweepSlice: number, sweepSliceMs = 0): Promise<World> {
  const w = world(sweepSlice, sweepSliceMs);
  w.agent.setPlan(planOf(PLAN));
  await w.agent.reconcile();
  return w;
}

const PLAN = Array.from({ length: 40 }, (_, i) => svc(i));

/** Programs PLAN, then changes the kernel behind the agent's back in every way a full run repairs. */
async function drifted(w: World): Promise<void> {
  w.agent.setPlan(planOf(PLAN));
  await w.agent.reconcile();
  // An owned service left behind: its delete failed, so the ledger still has it and no planned service does.
  w.ipvs.injectError('deleteService', 'ENOMEM');
  w.agent.setPlan(planOf(PLAN.filter((s) => s.id !== PLAN[11]!.id)));
  await w.agent.reconcile();
  const [s5, s6, s7, s8, s9, s4, s12] = [PLAN[5]!, PLAN[6]!, PLAN[7]!, PLAN[8]!, PLAN[9]!, PLAN[4]!, PLAN[12]!];
  await w.ipvs.deleteService(keyOf(s5));
  await w.ipvs.updateService({ ...(await w.ipvs.getService(keyOf(s6)))!.service, scheduler: 'rr' });
  await w.ipvs.deleteDestination(keyOf(s7), (await w.ipvs.listDestinations(keyOf(s7)))[1]!.destination);
  await w.ipvs.updateDestination(keyOf(s8), { ...(await w.ipvs.listDestinations(keyOf(s8)))[0]!.destination, weight: 9 });
  const extra = { ...(await w.ipvs.listDestinations(keyOf(s9)))[0]!.destination, address: '10.3.0.9' };
  await w.ipvs.addDestination(keyOf(s9), extra);
  // A destination someone added to a service that drains: it has connections, so it is drained, not deleted.
  await w.ipvs.addDestination(keyOf(s4), { ...extra, address: '10.3.0.4' });
  w.ipvs.setDestinationState(keyOf(s4), { ...extra, address: '10.3.0.4' }, { counters: { activeConns: 3 } });
  // A foreign service: never touched.
  await w.ipvs.addService({ af: 'ipv4', protocol: 'tcp', address: '10.9.9.9', port: 443, scheduler: 'wlc', flags: 0, timeout: 0, netmask: 0xffffffff });
  await w.netif.removeVip('eth0', s12.vip);
  w.sysctl.kernel.values.set('net/ipv4/ip_forward', '0');
}

/** Everything a full run makes right, in comparable form. */
async function snapshot(w: World): Promise<unknown> {
  const table = (await w.ipvs.listServices()).map((s) => ({
    key: serviceKey(s.service), scheduler: s.service.scheduler,
    destinations: s.destinations.map((d) => `${d.destination.address}:${d.destination.port}/${d.destination.weight}`).sort(),
  })).sort((a, b) => a.key.localeCompare(b.key));
  const report = [...(w.agent.lastReport?.director.services.values() ?? [])].map((r) => ({ id: r.id, ok: r.ok, errors: r.errors, holdsVip: r.holdsVip }));
  const { services, vips, draining } = w.state.state;
  return {
    table, report,
    addresses: (await w.netif.listAddresses('eth0')).map((a) => a.address).sort(),
    ipForward: w.sysctl.value('net/ipv4/ip_forward'),
    owners: (await w.sysctl.owners()).sort(),
    ledger: Object.keys(services).sort(),
    vips: vips.map((v) => `${v.vip}=${v.owners.join(',')}`).sort(),
    draining: Object.keys(draining).sort(),
  };
}

describe('Agent: the periodic resync in slices (a sweep)', () => {
  it('repairs exactly what a full run repairs: services, destinations, drains, orphans, VIPs and sysctls; foreign services untouched', async () => {
    const swept = world();
    const locked = world();
    try {
      await drifted(swept);
      await drifted(locked);
      const before = swept.runs.length;
      const last = await swept.agent.periodicResync();
      await locked.agent.resync();
      expect(last?.full).toBe(true);
      // 39 planned services in slices of 7, then the end.
      expect(swept.director.events.filter((e) => e.startsWith('slice'))).toHaveLength(6);
      expect(swept.director.events.at(-1)).toBe('finish');
      const after = await snapshot(swept);
      expect(after).toEqual(await snapshot(locked));
      // ... and that is the plan, with the foreign service as it was.
      const s = after as { table: Array<{ key: string; scheduler: string; destinations: string[] }>; addresses: string[]; ipForward: string; ledger: string[]; draining: string[] };
      expect(s.table.map((t) => t.key)).toEqual([...PLAN.filter((x) => x !== PLAN[11]).map((x) => `${x.vip}:80/TCP`), '10.9.9.9:443/TCP'].sort((a, b) => a.localeCompare(b)));
      expect(s.table.find((t) => t.key === '10.1.0.7:80/TCP')?.scheduler).toBe('wlc');
      expect(s.table.find((t) => t.key === '10.1.0.5:80/TCP')?.destinations).toContain('10.3.0.4:80/0');
      expect(s.draining).toHaveLength(1);
      expect(s.addresses).toContain(PLAN[12]!.vip);
      expect(s.ipForward).toBe('1');
      expect(s.ledger).not.toContain(`${PLAN[11]!.vip}:80/TCP`);
      const repaired = swept.runs.slice(before);
      expect(repaired.reduce((n, r) => n + r.director.ops, 0)).toBe(1 + 3 + 1 + 1 + 1 + 1 + 1 + 1); // s5 (1 + 3), s6, s7, s8, s9, s4, orphan
      // A full run after the sweep finds nothing left to do.
      const check = await swept.agent.resync();
      expect(check.director.ops).toBe(0);
      expect(check.director.failed).toBe(0);
    } finally {
      swept.agent.stop();
      locked.agent.stop();
    }
  });

  it('publishes only the reports a slice changed, and reports the end as a full run', async () => {
    const w = await programmed(10);
    try {
      await w.ipvs.deleteService(keyOf(PLAN[23]!));
      const before = w.runs.length;
      await w.agent.periodicResync();
      const runs = w.runs.slice(before);
      expect(runs.map((r) => r.full)).toEqual([false, false, false, false, true]);
      expect(runs.flatMap((r) => r.director.changed)).toEqual([]);
      expect(runs[2]!.director.ops).toBe(4);
      expect(runs.at(-1)!.realServerChanged).toBe(true);
    } finally {
      w.agent.stop();
    }
  });

  it('a slice derives the desired state again when a destination\'s health changed without a plan change', async () => {
    // Slices reuse the desired objects of services whose planned object is the same: health is the other input.
    const w = fakeAgent();
    const plan = PLAN.slice(0, 6);
    let down = '';
    const healthy = (id: string, address: string): boolean | undefined => (down === `${id}|${address}` ? false : true);
    await w.director.reconcile(plan, healthy);
    const s2 = plan[2]!;
    down = `${s2.id}|${s2.destinations[1]!.address}`;
    expect(await w.director.beginSweep()).toBe(true);
    await w.director.sweepSlice(plan, healthy);
    await w.director.finishSweep(() => true, healthy);
    const weights = async (s: PlannedService): Promise<number[]> => (await w.ipvs.listDestinations(keyOf(s))).map((d) => d.destination.weight);
    expect(await weights(s2)).toEqual([1, 0, 1]);
    expect(await weights(plan[3]!)).toEqual([1, 1, 1]);
    // Healthy again: the next sweep restores its weight.
    down = '';
    expect(await w.director.beginSweep()).toBe(true);
    await w.director.sweepSlice(plan, healthy);
    await w.director.finishSweep(() => true, healthy);
    expect(await weights(s2)).toEqual([1, 1, 1]);
  });

  it('a plan change during a sweep runs before the next slice: it waits for one slice at most', async () => {
    const w = await programmed(5);
    try {
      w.director.sliceMs = 20;
      w.director.events.length = 0;
      const before = w.runs.length;
      const sweep = w.agent.periodicResync();
      while (!w.director.events.includes('slice 5')) await sleep(1);
      const changed = { ...PLAN[30]!, destinations: PLAN[30]!.destinations.map((d) => ({ ...d, weight: 7 })) };
      w.agent.setPlan(planOf(PLAN.map((s) => (s === PLAN[30] ? changed : s))));
      const run = await w.agent.reconcile();
      expect(run.director.changed).toEqual([changed.id]);
      expect((await w.ipvs.listDestinations(keyOf(changed))).map((d) => d.destination.weight)).toEqual([7, 7, 7]);
      // The change ran right after the slice in flight when it came, with the other seven still to go.
      expect(w.director.events.slice(0, 2)).toEqual(['slice 5', `change ${changed.id}`]);
      const last = await sweep;
      expect(last?.full).toBe(true);
      expect(w.director.events.filter((e) => e.startsWith('slice'))).toHaveLength(8);
      // The sweep took the changed service from its view: nothing to redo.
      expect(w.runs.slice(before).filter((r) => !r.director.changed.length || r.full).reduce((n, r) => n + r.director.ops, 0)).toBe(0);
    } finally {
      w.agent.stop();
    }
  });

  it('lets the event loop run between steps: a change arriving as I/O meanwhile goes first, even when slices never wait', async () => {
    const w = await programmed(2);
    try {
      w.director.events.length = 0;
      const changed = { ...PLAN[7]!, destinations: PLAN[7]!.destinations.map((d) => ({ ...d, weight: 3 })) };
      // A watch event, say: I/O, ready as soon as the first slice has begun.
      w.director.onSlice = () => {
        w.director.onSlice = undefined;
        setImmediate(() => w.agent.setPlan(planOf(PLAN.map((s) => (s === PLAN[7] ? changed : s)))));
      };
      await w.agent.periodicResync();
      const at = w.director.events.indexOf(`change ${changed.id}`);
      expect(at).toBeGreaterThanOrEqual(0);
      // Slices in the fake finish without waiting for anything; the change still came right after the first.
      expect(w.director.events.slice(0, at)).toEqual(['slice 2']);
      expect(w.director.events.at(-1)).toBe('finish');
    } finally {
      w.agent.stop();
    }
  });

  it('sizes slices to take sweepSliceMs: from 10 services, at most twice the last slice and sweepSlice, smaller where services are slow', async () => {
    const w = await programmed(30, 100);
    try {
      // Nothing measured yet: the first slice takes 10 services; fast ones let the next take twice as many.
      w.director.events.length = 0;
      await w.agent.periodicResync();
      expect(w.director.events).toEqual(['slice 10', 'slice 20', 'slice 10', 'finish']);
      // The next sweep goes on from the last slice (10 services, fast): 20, then at most sweepSlice (30).
      w.director.events.length = 0;
      await w.agent.periodicResync();
      expect(w.director.events).toEqual(['slice 20', 'slice 20', 'finish']);
      // 10 ms per service: a slice of 30 takes 300 ms, three times the aim, so the next takes 10.
      w.director.perServiceMs = 10;
      w.director.events.length = 0;
      await w.agent.periodicResync();
      expect(w.director.events).toEqual(['slice 30', 'slice 10', 'finish']);
    } finally {
      w.agent.stop();
    }
  });

  it('reads the kernel service by service: one service dump, then each slice the destinations of its own services', async () => {
    const w = await programmed(7);
    try {
      const last = PLAN[39]!;
      const [d] = await w.ipvs.listDestinations(keyOf(last));
      // Drift after the service dump, before the slice of PLAN[39]: that slice reads the destinations then,
      // so this sweep repairs it (a table read ahead would have shown the old weight, and left it to the next).
      w.director.onSlice = () => {
        w.director.onSlice = undefined;
        void w.ipvs.updateDestination(keyOf(last), { ...d!.destination, weight: 42 });
      };
      w.ipvs.resetCalls();
      const run = await w.agent.periodicResync();
      expect(run?.full).toBe(true);
      expect(w.ipvs.calls.listServices).toBe(0);
      expect(w.ipvs.calls.dumpServices).toBe(1);
      expect(w.ipvs.calls.listDestinations).toBe(PLAN.length);
      expect(w.ipvs.calls.updateDestination).toBe(2); // the drift, and its repair
      expect((await w.ipvs.listDestinations(keyOf(last)))[0]!.destination.weight).toBe(1);
    } finally {
      w.agent.stop();
    }
  });

  it('paces itself: after each slice it waits sweepPause times as long; a change meanwhile runs at once; stop() ends the pause', async () => {
    const w = fakeAgent({ director: (deps) => new LoggingDirector(deps), agent: { sweepSlice: 5, sweepSliceMs: 0, sweepPause: 2 } });
    w.agent.setPlan(planOf(PLAN));
    await w.agent.reconcile();
    try {
      w.director.sliceMs = 20;
      const starts: number[] = [];
      w.director.onSlice = () => void starts.push(performance.now());
      await w.agent.periodicResync();
      expect(starts).toHaveLength(8);
      // A slice of 20 ms (and a little), then a pause of twice that: 60 ms from one slice's start to the next.
      // Node's timers count whole milliseconds of loop time, so each may fire up to ~1 ms early by
      // performance.now() (a CI run measured 57.7 ms); without the pause, or with a pause of 1×, it would be 20
      // or 40.
      const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(55);

      // A change that comes during a pause does not wait for it.
      w.director.events.length = 0;
      let changeRan = 0;
      const sweep = w.agent.periodicResync();
      while (!w.director.events.includes('slice 5')) await sleep(1);
      await sleep(25); // the first slice is done (20 ms): its pause of 40 ms has begun
      const changed = { ...PLAN[30]!, destinations: PLAN[30]!.destinations.map((d) => ({ ...d, weight: 4 })) };
      const asked = performance.now();
      w.agent.setPlan(planOf(PLAN.map((s) => (s === PLAN[30] ? changed : s))));
      await w.agent.reconcile();
      changeRan = performance.now() - asked;
      expect(w.director.events.slice(0, 2)).toEqual(['slice 5', `change ${changed.id}`]);
      expect(changeRan).toBeLessThan(30);
      expect((await w.ipvs.listDestinations(keyOf(changed))).map((d) => d.destination.weight)).toEqual([4, 4, 4]);

      expect((await sweep)?.full).toBe(true);

      // stop() during a pause: the sweep ends now, not after the pause.
      w.director.events.length = 0;
      w.director.sliceMs = 200; // a pause of 400 ms
      const third = w.agent.periodicResync();
      while (!w.director.events.includes('slice 5')) await sleep(1);
      await sleep(210);
      const stopped = performance.now();
      w.agent.stop();
      await expect(third).resolves.toBeUndefined();
      expect(performance.now() - stopped).toBeLessThan(100);
      expect(w.director.events.filter((e) => e.startsWith('slice'))).toEqual(['slice 5']);
    } finally {
      w.agent.stop();
    }
  });

  it('ends at stop(): no further slices, the waiter gets no run', async () => {
    const w = await programmed(5);
    w.director.sliceMs = 10;
    w.director.events.length = 0;
    const sweep = w.agent.periodicResync();
    while (!w.director.events.length) await sleep(1);
    w.agent.stop();
    await expect(sweep).resolves.toBeUndefined();
    await sleep(50);
    expect(w.director.events.filter((e) => e.startsWith('slice')).length).toBeLessThanOrEqual(2);
    expect(w.director.events).not.toContain('finish');
  });

  it('a failed slice ends the sweep with a full run, which the waiter gets', async () => {
    const w = await programmed(5);
    try {
      const failing = new Promise<Error>((resolve) => {
        const orig = w.director.sweepSlice.bind(w.director);
        let once = true;
        w.director.sweepSlice = async (...args) => {
          if (!once) return orig(...args);
          once = false;
          const e = new Error('netlink socket closed');
          resolve(e);
          throw e;
        };
      });
      const before = w.runs.length;
      const last = await w.agent.periodicResync();
      await failing;
      expect(last?.full).toBe(true);
      expect(w.runs.slice(before).map((r) => r.full)).toEqual([true]);
    } finally {
      w.agent.stop();
    }
  });
});
