// Two agents wired as lvs-agent --cluster --vip-election wires them (src/agent/main.ts): the plan reaches the
// elections through Agent's onPlan, the reconciler asks the election, a hold/release reconciles its services.
// Both program the same IPVS table; only the Lease holder binds and announces the VIP and runs the sync
// master; a dead holder is replaced (VIP bound + gratuitous ARP on the new one); a graceful stop hands over.
import { FakeClock } from '../../../src/kube/clock.ts';
import { DirectorFailover, SyncDaemons, directorVipsBound, vipLeaseName } from '../../../src/agent/failover/index.ts';
import type { SyncDaemonOps } from '../../../src/agent/failover/index.ts';
import { FakeIpvs } from '../../../src/ipvs/fake.ts';
import { FakeNetif, FakeArpAnnouncer } from '../../../src/netif/fake.ts';
import { FakeSysctl, defaultSysctls } from '../../../src/sysctl/fake.ts';
import { MemoryStateStore } from '../../../src/agent/state.ts';
import { DirectorReconciler } from '../../../src/agent/director/reconciler.ts';
import { RealServerReconciler } from '../../../src/agent/realserver/reconciler.ts';
import { HealthChecker } from '../../../src/agent/health/checker.ts';
import { Agent } from '../../../src/agent/agent.ts';
import { yieldTakenOverVips } from '../../../src/agent/failover/startup.ts';
import type { SyncDaemon, SyncDaemonConfig, SyncDaemonRole } from '../../../src/ipvs/types.ts';
import type { NodePlan, PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeLeaseStore } from '../kube/fake-lease-api.ts';

const log = createLogger('test', 'silent');
const VIP = '192.168.56.40';

const planned = (holdVip: boolean, standbyDirectors?: number): PlannedService => ({
  id: 'lab/web', generation: 1, vip: VIP, port: 80, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip, ...(standbyDirectors !== undefined ? { standbyDirectors } : {}), healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: [{ realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 }],
});

/** Health timers never fire: health is not what this test is about. */
const stillClock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => undefined };

class Daemons implements SyncDaemonOps {
  readonly running = new Map<SyncDaemonRole, SyncDaemon>();
  async startSyncDaemon(cfg: SyncDaemonConfig): Promise<void> {
    this.running.set(cfg.role, { maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1, ...cfg } as SyncDaemon);
  }
  async stopSyncDaemon(role: SyncDaemonRole): Promise<void> {
    this.running.delete(role);
  }
  async listSyncDaemons(): Promise<SyncDaemon[]> {
    return [...this.running.values()];
  }
  roles(): string[] {
    return [...this.running.keys()].sort();
  }
}

interface Kernel {
  ipvs: FakeIpvs;
  netif: FakeNetif;
  sysctl: FakeSysctl;
  state: MemoryStateStore;
  arp: FakeArpAnnouncer;
  daemons: Daemons;
}

function kernel(): Kernel {
  const netif = new FakeNetif();
  netif.addLink('eth0', { up: true });
  return { ipvs: new FakeIpvs(), netif, sysctl: new FakeSysctl(defaultSysctls(['eth0'])), state: new MemoryStateStore(), arp: new FakeArpAnnouncer(), daemons: new Daemons() };
}

/** `k`: the node's kernel and state file, kept across an agent restart. */
function agentNode(name: string, store: FakeLeaseStore, clock: FakeClock, k: Kernel = kernel(), givenUp: ReadonlySet<string> = new Set()) {
  const { ipvs, netif, sysctl, state, arp, daemons } = k;
  // As main.ts does: VIPs bound before a (re)start, less those yieldTakenOverVips gave up.
  const boundAtStart = directorVipsBound(state.load().vips);
  for (const vip of givenUp) boundAtStart.delete(vip);
  const api = store.view(name);
  const pending: Promise<unknown>[] = [];
  const ref: { failover?: DirectorFailover } = {};
  const agent: Agent = new Agent({
    node: name, log,
    health: new HealthChecker({ clock: stillClock, probe: async () => ({ ok: true, reason: 'connected' }), log }),
    director: new DirectorReconciler({
      ipvs, netif, sysctl, arp, state, log, defaultInterface: async () => 'eth0',
      holdsVip: (s) => (ref.failover ? ref.failover.holdsVip(s) : s.holdVip),
      vipLifetimeSeconds: (s) => ref.failover?.vipLifetimeSeconds(s),
    }),
    realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
    onPlan: (plan) => {
      pending.push(ref.failover!.setPlan(plan.director));
    },
  });
  const failover = (ref.failover = new DirectorFailover({
    api, namespace: 'lvs-system', node: name, settings: { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 }, clock, random: () => 0, log,
    syncDaemons: new SyncDaemons({ ops: daemons, interface: async () => 'eth0', log }),
    heldAtStart: (vip) => boundAtStart.delete(vip),
    onChange: (ev) => pending.push(agent.touch(ev.services)),
    refreshVipLifetimes: async (vips, lifetimeSeconds) => void (await netif.setVipLifetimes('eth0', vips, lifetimeSeconds)),
  }));
  const settle = async (): Promise<void> => {
    while (pending.length) await Promise.all(pending.splice(0));
    await agent.reconcile();
    await failover.settled();
  };
  const vips = async (): Promise<string[]> => (await netif.listAddresses('eth0')).map((a) => a.address);
  return { name, agent, failover, ipvs, arp, daemons, api, settle, vips, kernel: k };
}

describe('agents with VIP election', () => {
  it('hot standby, one VIP holder, takeover with GARP and sync master, graceful hand-over', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = agentNode('director-a', store, clock);
    const b = agentNode('director-b', store, clock);
    const plan = (node: string, holdVip: boolean): NodePlan => ({ node, director: [planned(holdVip)], realServer: [] });
    a.agent.setPlan(plan('director-a', true));
    b.agent.setPlan(plan('director-b', false));
    await a.settle();
    await b.settle();
    await clock.advance(3_000);
    await a.settle();
    await b.settle();

    expect(await a.vips()).toEqual([VIP]);
    expect(await b.vips()).toEqual([]);
    expect((await a.ipvs.listServices()).length).toBe(1);
    expect((await b.ipvs.listServices()).length).toBe(1); // hot standby
    expect(a.arp.announcements.map((x) => x.vip)).toEqual([VIP]);
    expect(a.daemons.roles()).toEqual(['backup', 'master']);
    expect(b.daemons.roles()).toEqual(['backup']);
    expect(a.agent.lastReport?.director.services.get('lab/web')?.holdsVip).toBe(true);
    expect(b.agent.lastReport?.director.services.get('lab/web')?.holdsVip).toBe(false);

    // a's agent restarts after a crash (the old process is gone: cut off, never heard of again). The new one
    // finds the VIP in its state file: it never unbinds it, re-announces nothing, and renews its own Lease
    // before the standby may take over.
    a.api.partitioned = true;
    const a2 = agentNode('director-a', store, clock, a.kernel);
    const removed: string[] = [];
    const removeVip = a.kernel.netif.removeVip.bind(a.kernel.netif);
    a.kernel.netif.removeVip = async (ifname: string, vip: string): Promise<boolean> => {
      removed.push(vip);
      return removeVip(ifname, vip);
    };
    // The apiserver is not reachable for the first 800 ms: the first full runs happen before any Lease read.
    a2.api.partitioned = true;
    a2.agent.setPlan(plan('director-a', true));
    await a2.settle();
    expect(await a2.vips()).toEqual([VIP]);
    for (let t = 0; t < 3_000; t += 100) {
      if (t === 800) a2.api.partitioned = false;
      await clock.advance(100);
      await a2.settle();
      await b.settle();
      expect(await a2.vips()).toEqual([VIP]);
    }
    expect(removed).toEqual([]);
    expect(a2.failover.elections.ofService('lab/web')?.state()).toBe('holding');
    expect(a.arp.announcements.length).toBe(1);
    expect(await b.vips()).toEqual([]);

    // Now a's agent dies for good: its Lease is neither renewed nor released (its kernel state stays, as after a crash).
    a2.api.partitioned = true;
    await a2.failover.elections.ofService('lab/web')!.stop({ release: false }).catch(() => undefined);
    const fault = clock.now();
    let took = -1;
    for (let t = 0; t < 4_000 && took < 0; t += 50) {
      await clock.advance(50);
      await b.settle();
      if ((await b.vips()).includes(VIP)) took = clock.now() - fault;
    }
    expect(took).toBeGreaterThanOrEqual(1_500);
    expect(took).toBeLessThanOrEqual(2_700);
    expect(b.arp.announcements.map((x) => x.vip)).toEqual([VIP]);
    expect(b.daemons.roles()).toEqual(['backup', 'master']);
    expect(b.agent.lastReport?.director.services.get('lab/web')?.holdsVip).toBe(true);

    // b shuts down gracefully: it releases the Lease and unbinds its VIP.
    await b.failover.stop({ release: true });
    await b.settle();
    expect(await b.vips()).toEqual([]);
    expect(b.daemons.roles()).toEqual([]);
    expect(store.read('lvs-system', vipLeaseName(VIP))?.record.holderIdentity).toBe('');
  });

  it('with a standby planned, the holder binds the VIP with a kernel lifetime it refreshes while alive: a dead agent\'s VIP leaves its node', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = agentNode('director-a', store, clock);
    const b = agentNode('director-b', store, clock);
    const plan = (node: string, holdVip: boolean, standbys?: number): NodePlan => ({ node, director: [planned(holdVip, standbys)], realServer: [] });
    a.agent.setPlan(plan('director-a', true, 1));
    b.agent.setPlan(plan('director-b', false, 1));
    for (let t = 0; t < 3_000; t += 100) {
      await clock.advance(100);
      await a.settle();
      await b.settle();
    }
    // Lease 2 s: lifetime 8 s, refreshed every renew interval (500 ms).
    expect(a.kernel.netif.changes).toContain(`add ${VIP}/32 dev eth0 valid_lft 8`);
    expect((await a.kernel.netif.listAddresses('eth0')).map((x) => x.validLifetimeSeconds)).toEqual([8]);
    const before = a.kernel.netif.lifetimeRefreshes;
    for (let t = 0; t < 2_000; t += 100) {
      await clock.advance(100);
      await a.settle();
    }
    expect(a.kernel.netif.lifetimeRefreshes - before).toBeGreaterThanOrEqual(3);
    expect(a.kernel.netif.lifetimeRefreshes - before).toBeLessThanOrEqual(5);
    expect(b.kernel.netif.lifetimeRefreshes).toBe(0); // the standby holds nothing

    // b leaves the plan for a while: a's VIP is made permanent again (nobody would take over), then limited again.
    a.agent.setPlan(plan('director-a', true, 0));
    for (let t = 0; t < 1_000; t += 100) {
      await clock.advance(100);
      await a.settle();
    }
    expect((await a.kernel.netif.listAddresses('eth0')).map((x) => x.validLifetimeSeconds)).toEqual([undefined]);
    a.agent.setPlan(plan('director-a', true, 1));
    for (let t = 0; t < 1_000; t += 100) {
      await clock.advance(100);
      await a.settle();
    }
    expect((await a.kernel.netif.listAddresses('eth0')).map((x) => x.validLifetimeSeconds)).toEqual([8]);

    // a's agent dies (no release, no more refreshes): the kernel drops the VIP when the lifetime runs out,
    // and b takes over. A restarted a finds no VIP: it starts as a standby, nothing to give up.
    a.api.partitioned = true;
    // A dead process changes nothing in the kernel any more: stopping its objects must not either.
    const netif = a.kernel.netif;
    const [removeVip, setVipLifetimes] = [netif.removeVip, netif.setVipLifetimes];
    const stateFile = structuredClone(a.kernel.state.load());
    netif.removeVip = async () => false;
    netif.setVipLifetimes = async () => [];
    await a.failover.stop({ release: false }).catch(() => undefined);
    a.agent.stop();
    await clock.advance(100);
    netif.removeVip = removeVip;
    netif.setVipLifetimes = setVipLifetimes;
    a.kernel.state.save(stateFile);
    const refreshes = a.kernel.netif.lifetimeRefreshes;
    for (let t = 0; t < 4_000; t += 100) {
      await clock.advance(100);
      await b.settle();
    }
    expect(a.kernel.netif.lifetimeRefreshes).toBe(refreshes);
    expect(a.kernel.netif.expire('eth0', VIP)).toBe(true); // what the kernel does 8 s after the last refresh
    expect(await b.vips()).toEqual([VIP]);
    const adds = a.kernel.netif.changes.filter((c) => c.startsWith('add ')).length;
    const given = await yieldTakenOverVips({ vips: a.kernel.state.load().vips, probe: { answeredBy: async () => [] }, netif: a.kernel.netif, log });
    expect([...given]).toEqual([VIP]);
    const a2 = agentNode('director-a', store, clock, a.kernel, given);
    a2.agent.setPlan(plan('director-a', true, 1));
    for (let t = 0; t < 3_000; t += 100) {
      await clock.advance(100);
      await a2.settle();
      await b.settle();
    }
    expect(await a2.vips()).toEqual([]);
    expect(a.kernel.netif.changes.filter((c) => c.startsWith('add ')).length).toBe(adds); // never bound again
    expect(await b.vips()).toEqual([VIP]);

    // Without standbys (one director) the VIP is bound forever: a dead agent leaves the data plane serving.
    const c = agentNode('director-c', new FakeLeaseStore(), clock);
    c.agent.setPlan(plan('director-c', true));
    for (let t = 0; t < 2_000; t += 100) {
      await clock.advance(100);
      await c.settle();
    }
    expect(await c.vips()).toEqual([VIP]);
    expect((await c.kernel.netif.listAddresses('eth0'))[0]!.validLifetimeSeconds).toBeUndefined();
    expect(c.kernel.netif.lifetimeRefreshes).toBe(0);
    await c.failover.stop({ release: false });
    await b.failover.stop({ release: false });
    await a2.failover.stop({ release: false });
  });
});
