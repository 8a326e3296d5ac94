// The agent's change-driven path: a plan change reaches the kernel, the health checker and the report in
// proportion to the change; full runs (first run, periodic resync) still repair drift.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeIpvs } from '../../../src/ipvs/fake.ts';
import { FakeNetif } from '../../../src/netif/fake.ts';
import { FakeSysctl, defaultSysctls } from '../../../src/sysctl/fake.ts';
import { MemoryStateStore } from '../../../src/agent/state.ts';
import { DirectorReconciler } from '../../../src/agent/director/reconciler.ts';
import { RealServerReconciler } from '../../../src/agent/realserver/reconciler.ts';
import { HealthChecker } from '../../../src/agent/health/checker.ts';
import type { Clock, HealthTarget, ProbeResult, TimerHandle } from '../../../src/agent/health/types.ts';
import { Agent, type AgentReport, type AgentRun } from '../../../src/agent/agent.ts';
import { createReportSink } from '../../../src/agent/report.ts';
import { registerAgentMetrics } from '../../../src/agent/metrics/agent.ts';
import { deepEqual, planDelta } from '../../../src/agent/plandelta.ts';
import { serviceKey } from '../../../src/ipvs/keys.ts';
import type { NodePlan, PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';
import { Registry } from 'prom-client';

const log = createLogger('test', 'silent');
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const svc = (i: number, over: Partial<PlannedService> = {}): PlannedService => ({
  id: `lab/s${String(i).padStart(4, '0')}`, generation: 1, vip: `10.1.${Math.floor(i / 200)}.${(i % 200) + 1}`, port: 80, protocol: 'TCP', scheduler: 'wlc',
  schedulerFlags: [], onePacket: false, forwarding: 'DirectRouting', holdVip: false,
  healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 1, fall: 1 }, drainTimeoutSeconds: 0,
  destinations: [0, 1, 2].map((j) => ({ realServer: `lab/rs${j}`, address: `10.${2 + Math.floor(i / 250)}.${j}.${(i % 250) + 1}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 })),
  ...over,
});
const planOf = (director: PlannedService[]): NodePlan => ({ node: 'n1', director, realServer: [] });

/** Manual clock for the health checker: fire() runs every due check. */
class ManualClock implements Clock {
  t = 0;
  #seq = 0;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    this.timers.set(++this.#seq, { at: this.t + ms, fn });
    return this.#seq;
  }
  clearTimeout(h: TimerHandle): void {
    this.timers.delete(h as number);
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** Counts what the agent asks of the checker. */
class CountingChecker extends HealthChecker {
  setTargetCalls = 0;
  removeTargetCalls = 0;
  setTargetsCalls = 0;
  override setTarget(t: HealthTarget): void {
    this.setTargetCalls++;
    super.setTarget(t);
  }
  override removeTarget(id: string): void {
    this.removeTargetCalls++;
    super.removeTarget(id);
  }
  override setTargets(ts: readonly HealthTarget[]): void {
    this.setTargetsCalls++;
    super.setTargets(ts);
  }
}

function setup() {
  const ipvs = new FakeIpvs();
  const netif = new FakeNetif();
  netif.addLink('eth0', { up: true });
  const sysctl = new FakeSysctl(defaultSysctls(['eth0']));
  const state = new MemoryStateStore();
  const clock = new ManualClock();
  const down = new Set<string>();
  const probe = async (t: HealthTarget): Promise<ProbeResult> => (down.has(t.address) ? { ok: false, reason: 'refused' } : { ok: true, reason: 'connected' });
  const health = new CountingChecker({ clock, probe, random: () => 0, log });
  const runs: AgentRun[] = [];
  const agent = new Agent({
    node: 'n1', log, health,
    director: new DirectorReconciler({ ipvs, netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
    realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
    onReport: (r) => runs.push(r),
  });
  /** setPlan, then the run it triggered. */
  const apply = async (director: PlannedService[]): Promise<AgentRun> => {
    const before = runs.length;
    agent.setPlan(planOf(director));
    await agent.reconcile();
    return runs[before]!;
  };
  const kernelWeight = async (s: PlannedService, address: string): Promise<number | undefined> =>
    (await ipvs.listDestinations({ af: 'ipv4', protocol: 'tcp', address: s.vip, port: 80 })).find((d) => d.destination.address === address)?.destination.weight;
  const reset = (): void => {
    ipvs.resetCalls();
    health.setTargetCalls = health.removeTargetCalls = health.setTargetsCalls = 0;
  };
  return { ipvs, netif, sysctl, state, clock, down, health, agent, runs, apply, kernelWeight, reset };
}

const totalCalls = (ipvs: FakeIpvs): number => Object.values(ipvs.calls).reduce((a, b) => a + b, 0);

describe('Agent: a plan change touches only the services it changes', () => {
  const N = 300;
  let t: ReturnType<typeof setup>;
  let plan: PlannedService[];
  beforeEach(async () => {
    t = setup();
    plan = Array.from({ length: N }, (_, i) => svc(i));
    const first = await t.apply(plan);
    expect(first.full).toBe(true);
    expect(first.director.failed).toBe(0);
    expect(await t.ipvs.listServices()).toHaveLength(N);
    t.reset();
  });
  afterEach(() => t.agent.stop());

  it('a weight change: one SET_DEST, one service re-checked and reported, no dump', async () => {
    const i = 123;
    const changed = plan.map((s, k) => (k === i ? { ...s, destinations: s.destinations.map((d, j) => (j === 1 ? { ...d, weight: 7 } : d)) } : s));
    const run = await t.apply(changed);
    expect(run.full).toBe(false);
    expect(run.director.changed).toEqual([plan[i]!.id]);
    expect(run.director.ops).toBe(1);
    expect(t.ipvs.calls.updateDestination).toBe(1);
    expect(totalCalls(t.ipvs)).toBe(1);
    expect(await t.kernelWeight(plan[i]!, plan[i]!.destinations[1]!.address)).toBe(7);
    // Health: the service's three targets are looked at, nothing else; the full table is never rebuilt.
    expect(t.health.setTargetCalls).toBe(3);
    expect(t.health.setTargetsCalls).toBe(0);
    expect(run.healthChanged).toEqual([]);
    // The report table still holds every service; only the changed entry was replaced.
    expect(run.director.services.size).toBe(N);
  });

  it('with the swapped entries named (cluster mode), the delta looks at those only; named against another plan, at all', async () => {
    const weight = (s: PlannedService, w: number): PlannedService => ({ ...s, destinations: s.destinations.map((d, j) => (j === 0 ? { ...d, weight: w } : d)) });
    const run = async (p: NodePlan, swapped?: { base: NodePlan; director: readonly PlannedService[] }): Promise<AgentRun> => {
      const before = t.runs.length;
      t.agent.setPlan(p, swapped);
      await t.agent.reconcile();
      return t.runs[before]!;
    };
    const base = planOf(plan);
    await run(base);
    t.reset();
    // 45 and 46 both changed, but only 45 is named: the agent takes the hint as the whole difference (which
    // is how it shows that it did not compare the 300 services).
    const s45 = weight(plan[45]!, 5);
    const next = planOf(plan.map((s, k) => (k === 45 ? s45 : k === 46 ? weight(s, 6) : s)));
    const r1 = await run(next, { base, director: [s45] });
    expect(r1.director.changed).toEqual([plan[45]!.id]);
    expect(await t.kernelWeight(plan[45]!, plan[45]!.destinations[0]!.address)).toBe(5);
    expect(await t.kernelWeight(plan[46]!, plan[46]!.destinations[0]!.address)).toBe(1);
    // Named against a plan that is not the agent's current one: compared in full, 46's change found.
    const later = planOf(plan.map((s, k) => (k === 45 ? s45 : k === 46 ? weight(s, 7) : s)));
    const r2 = await run(later, { base, director: [] });
    expect(r2.director.changed).toEqual([plan[46]!.id]);
    expect(await t.kernelWeight(plan[46]!, plan[46]!.destinations[0]!.address)).toBe(7);
    // An id the agent does not know: compared in full too.
    const s47 = weight(plan[47]!, 8);
    const r3 = await run(planOf(later.director.map((s, k) => (k === 47 ? s47 : s))), { base: later, director: [s47, svc(999)] });
    expect(r3.director.changed).toEqual([plan[47]!.id]);
  });

  it('a new service: four requests for its 1 + 3 objects, its health targets added, its report published', async () => {
    const added = svc(N);
    const run = await t.apply([...plan.slice(0, 150), added, ...plan.slice(150)]);
    expect(run.director.changed).toEqual([added.id]);
    expect(t.ipvs.calls.addService).toBe(1);
    expect(t.ipvs.calls.addDestination).toBe(3);
    expect(totalCalls(t.ipvs)).toBe(4);
    expect(t.ipvs.calls.listServices).toBe(0);
    expect(t.health.setTargetCalls).toBe(3);
    expect([...run.healthChanged].sort()).toEqual(added.destinations.map((d) => `${added.id}|${d.address}|80`).sort());
    expect(run.director.services.get(added.id)).toMatchObject({ ok: true, generation: 1 });
    expect(run.director.services.size).toBe(N + 1);
  });

  it('a removed service: one DEL_SERVICE, its health targets and verdicts dropped', async () => {
    const gone = plan[7]!;
    const run = await t.apply(plan.filter((s) => s !== gone));
    expect(run.director.changed).toEqual([gone.id]);
    expect(t.ipvs.calls.deleteService).toBe(1);
    expect(totalCalls(t.ipvs)).toBe(1);
    expect(t.health.removeTargetCalls).toBe(3);
    expect(t.health.state(`${gone.id}|${gone.destinations[0]!.address}|80`)).toBe('unknown');
    expect(run.health.has(`${gone.id}|${gone.destinations[0]!.address}|80`)).toBe(false);
    expect(run.healthChanged).toHaveLength(3);
    expect(run.director.services.has(gone.id)).toBe(false);
    expect((await t.ipvs.listServices()).map((s) => serviceKey(s.service))).not.toContain(`${gone.vip}:80/TCP`);
  });

  it('a standalone reload (every object new): the one change is found by value', async () => {
    const reloaded = plan.map((s) => structuredClone(s));
    reloaded[42] = { ...reloaded[42]!, scheduler: 'rr' };
    const run = await t.apply(reloaded);
    expect(run.director.changed).toEqual([plan[42]!.id]);
    expect(t.ipvs.calls.updateService).toBe(1);
    expect(totalCalls(t.ipvs)).toBe(1);
    expect(t.health.setTargetCalls).toBe(3);
  });

  it('the same plan again changes nothing', async () => {
    const run = await t.apply([...plan]);
    expect(run.director.changed).toEqual([]);
    expect(totalCalls(t.ipvs)).toBe(0);
  });

  it('a health verdict flip re-derives only its service: one SET_DEST to weight 0, and back', async () => {
    const s = plan[5]!;
    const addr = s.destinations[2]!.address;
    t.down.add(addr);
    const before = t.runs.length;
    await t.clock.advance(3000); // every target is checked once; only one fails (fall = 1)
    await t.agent.reconcile();
    const run = t.runs[t.runs.length - 1]!;
    expect(t.runs.length).toBeGreaterThan(before);
    expect(run.full).toBe(false);
    expect(t.ipvs.calls.updateDestination).toBe(1);
    expect(totalCalls(t.ipvs)).toBe(1);
    expect(await t.kernelWeight(s, addr)).toBe(0);
    expect(run.health.get(`${s.id}|${addr}|80`)).toBe(false);
    t.down.delete(addr);
    await t.clock.advance(3000);
    await t.agent.reconcile();
    expect(await t.kernelWeight(s, addr)).toBe(1);
    expect(t.ipvs.calls.updateDestination).toBe(2);
  });

  it('resync still repairs drift: after `ipvsadm -C` a change-driven run trusts its view, the resync re-creates everything', async () => {
    await t.ipvs.flushAllServices();
    const changed = plan.map((s, k) => (k === 0 ? { ...s, generation: 2 } : s));
    const run = await t.apply(changed);
    expect(run.full).toBe(false);
    expect(t.ipvs.calls.listServices).toBe(0);
    const repaired = await t.agent.resync();
    expect(repaired.full).toBe(true);
    expect(repaired.director.drift).toBe(N);
    expect(repaired.director.changed).toHaveLength(N);
    const table = await t.ipvs.listServices();
    expect(table).toHaveLength(N);
    expect(table.every((s) => s.destinations.length === 3)).toBe(true);
    expect(repaired.director.services.get(plan[0]!.id)!.generation).toBe(2);
  });

  it('a failed operation leaves its service failing and read again; the resync fixes it; other changes stay proportional', async () => {
    t.ipvs.injectError('updateDestination', 'ENOMEM');
    const bad = plan.map((s, k) => (k === 9 ? { ...s, destinations: s.destinations.map((d) => ({ ...d, weight: 3 })) } : s));
    const run = await t.apply(bad);
    expect(run.director.failed).toBe(1);
    expect(run.director.services.get(plan[9]!.id)!.ok).toBe(false);
    t.reset();
    // Another service's change: not held up by the failing one, which is not retried here.
    const next = bad.map((s, k) => (k === 10 ? { ...s, destinations: s.destinations.map((d) => ({ ...d, weight: 4 })) } : s));
    const other = await t.apply(next);
    expect(other.director.changed).toEqual([plan[10]!.id]);
    expect(t.ipvs.calls.updateDestination).toBe(3);
    expect(other.director.failed).toBe(1);
    const fixed = await t.agent.resync();
    expect(fixed.director.failed).toBe(0);
    expect(await t.kernelWeight(plan[9]!, plan[9]!.destinations[0]!.address)).toBe(3);
  });

  it('a changed service that failed before is read again from the kernel before it is diffed', async () => {
    t.ipvs.injectError('updateDestination', 'ENOMEM');
    const bad = plan.map((s, k) => (k === 9 ? { ...s, destinations: s.destinations.map((d) => ({ ...d, weight: 3 })) } : s));
    await t.apply(bad);
    t.reset();
    const again = bad.map((s, k) => (k === 9 ? { ...s, generation: 2 } : s));
    const run = await t.apply(again);
    expect(t.ipvs.calls.getService).toBe(1);
    expect(t.ipvs.calls.listDestinations).toBe(1);
    expect(run.director.services.get(plan[9]!.id)!.ok).toBe(true);
    expect(await t.kernelWeight(plan[9]!, plan[9]!.destinations[0]!.address)).toBe(3);
  });
});

describe('Agent: VIPs and sysctls follow single changes', () => {
  it('binds, moves and releases VIPs per service; a shared VIP stays until its last service goes', async () => {
    const t = setup();
    const a = svc(1, { holdVip: true, vip: '192.168.56.40' });
    const b = svc(2, { holdVip: true, vip: '192.168.56.40', port: 443 });
    const c = svc(3, { holdVip: true, vip: '192.168.56.41' });
    await t.apply([a, b, c]);
    const bound = async (): Promise<string[]> => (await t.netif.listAddresses('eth0')).map((x) => x.address).sort();
    expect(await bound()).toEqual(['192.168.56.40', '192.168.56.41']);
    const c2 = { ...c, vip: '192.168.56.42' };
    const moved = await t.apply([a, b, c2]);
    expect(moved.director.services.get(c.id)!.holdsVip).toBe(true);
    expect(await bound()).toEqual(['192.168.56.40', '192.168.56.42']);
    await t.apply([b, c2]);
    expect(await bound()).toEqual(['192.168.56.40', '192.168.56.42']);
    await t.apply([c2]);
    expect(await bound()).toEqual(['192.168.56.42']);
    expect(t.state.state.vips).toEqual([{ ifname: 'eth0', vip: '192.168.56.42', owners: [`director:${c.id}`] }]);
    // The full pass agrees with what the change-driven runs left.
    const full = await t.agent.resync();
    expect(full.director.failed).toBe(0);
    expect(await bound()).toEqual(['192.168.56.42']);
    t.agent.stop();
  });

  it('the last NAT service leaving releases its sysctl claim (ip_forward restored); teardown restores everything', async () => {
    const t = setup();
    const dr = svc(1);
    const nat = svc(2, { forwarding: 'NAT' });
    await t.apply([dr, nat]);
    expect(await t.sysctl.read('net/ipv4/ip_forward')).toBe('1');
    await t.apply([dr]);
    expect(await t.sysctl.read('net/ipv4/ip_forward')).toBe('0');
    expect((await t.sysctl.owners()).sort()).toEqual(['director:DirectRouting/eth0']);
    await t.agent.teardown();
    expect(await t.ipvs.listServices()).toEqual([]);
    expect(await t.sysctl.owners()).toEqual([]);
    expect(t.state.state).toEqual({ version: 1, services: {}, vips: [], draining: {} });
    t.agent.stop();
  });

  it('never touches a foreign service, on change-driven and full runs alike', async () => {
    const t = setup();
    await t.ipvs.addService({ af: 'ipv4', protocol: 'tcp', address: '10.9.9.9', port: 443, scheduler: 'wlc', flags: 0, timeout: 0, netmask: 0xffffffff });
    const a = svc(1);
    await t.apply([a]);
    const clash = svc(2, { vip: '10.9.9.9', port: 443, holdVip: true });
    const run = await t.apply([a, clash]);
    expect(run.director.services.get(clash.id)!.errors.join()).toMatch(/not owned by lvs-operator/);
    // Its VIP is not bound or reported held: the rules behind it are not ours (change-driven and full runs).
    const vipsBound = async (): Promise<string[]> => (await t.netif.listAddresses('eth0')).map((x) => x.address);
    expect(run.director.services.get(clash.id)!.holdsVip).toBe(false);
    expect(await vipsBound()).not.toContain('10.9.9.9');
    const full = await t.agent.resync();
    expect(full.director.services.get(clash.id)!.holdsVip).toBe(false);
    expect(await vipsBound()).not.toContain('10.9.9.9');
    const foreign = (await t.ipvs.listServices()).find((x) => serviceKey(x.service) === '10.9.9.9:443/TCP')!;
    expect(foreign.service.scheduler).toBe('wlc');
    expect(foreign.destinations).toEqual([]);
    // Once the foreign service is gone, the next full run takes the address and binds the VIP.
    await t.ipvs.deleteService({ af: 'ipv4', protocol: 'tcp', address: '10.9.9.9', port: 443 });
    const freed = await t.agent.resync();
    expect(freed.director.services.get(clash.id)).toMatchObject({ holdsVip: true, ok: true });
    expect(await vipsBound()).toContain('10.9.9.9');
    await t.apply([]);
    await t.agent.resync();
    expect((await t.ipvs.listServices()).map((s) => serviceKey(s.service))).toEqual([]);
    expect(await vipsBound()).toEqual([]);
    t.agent.stop();
  });
});

describe('report sink', () => {
  it('updates health series of changed verdicts only, drops removed ones, and coalesces the status file', async () => {
    const registry = new Registry();
    const metrics = registerAgentMetrics(registry);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sink-')), 'status.json');
    const sink = createReportSink({ metrics, statusFile: file, statusDelayMs: 10_000 });
    const t = setup();
    const a = svc(1);
    const b = svc(2);
    let seen = 0;
    const feed = (): void => {
      for (const run of t.runs.slice(seen)) sink.onReport(run);
      seen = t.runs.length;
    };
    await t.apply([a, b]);
    feed();
    const series = async (): Promise<number> => (await registry.getSingleMetric('lvs_backend_healthy')!.get()).values.length;
    expect(await series()).toBe(6);
    expect(fs.existsSync(file)).toBe(false); // coalesced
    await t.apply([a]);
    feed();
    expect(await series()).toBe(3);
    sink.flush();
    const written = JSON.parse(fs.readFileSync(file, 'utf8')) as AgentReport;
    expect(written.director.services.map((s) => s.id)).toEqual([a.id]);
    expect(Object.keys(written.health)).toHaveLength(3);
    t.agent.stop();
  });
});

describe('planDelta', () => {
  const base = Array.from({ length: 5 }, (_, i) => svc(i));
  const index = (): Map<string, PlannedService> => new Map(base.map((s) => [s.id, s]));

  it('same objects: nothing', () => {
    expect(planDelta(index(), base, [...base])).toEqual({ changed: [], removed: [] });
  });

  it('insertions in the middle, value-equal copies, changes and removals', () => {
    const byId = index();
    const added = svc(99);
    const next = [base[0]!, added, structuredClone(base[1]!), { ...base[2]!, port: 81 }, base[4]!];
    const d = planDelta(byId, base, next);
    expect(d.changed.map((s) => s.id)).toEqual([added.id, base[2]!.id]);
    expect(d.removed).toEqual([base[3]!.id]);
    expect([...byId.keys()].sort()).toEqual(next.map((s) => s.id).sort());
  });

  it('identity mode counts every new object as a change', () => {
    expect(planDelta(index(), base, base.map((s) => structuredClone(s)), 'identity').changed).toHaveLength(5);
  });

  it('deepEqual: absent and undefined optional fields are equal; arrays are ordered', () => {
    expect(deepEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(deepEqual({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(deepEqual({ a: { b: 1 } }, { a: { b: 2 } })).toBe(false);
    expect(deepEqual([], {})).toBe(false);
  });
});
