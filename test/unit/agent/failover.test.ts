// VIP election state machine (src/agent/failover) under a fake clock and an in-memory Lease store with the
// API server's optimistic concurrency: preference, takeover timing, the holder-keeps-the-VIP split-brain
// choice, no flapping, and the per-node set of elections.
import { FakeClock } from '../../../src/kube/clock.ts';
import { LeaderElector } from '../../../src/kube/leader.ts';
import { LeaseVipElection, VipElections, electionTiming, serviceLeaseName, vipLeaseName } from '../../../src/agent/failover/index.ts';
import type { LeaseVipElectionOptions, VipState } from '../../../src/agent/failover/index.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeLeaseStore } from '../kube/fake-lease-api.ts';

const logger = createLogger('test', 'silent');
const NS = 'lvs-system';
const SVC = 'web/frontend';
const VIP = '192.0.2.10';
const settings = { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 };

interface Node {
  name: string;
  el: LeaseVipElection;
  api: ReturnType<FakeLeaseStore['view']>;
  /** "<ms since t0> hold|release:<cause>" */
  events: string[];
  heldAt: number[];
}

function setup() {
  const clock = new FakeClock();
  const store = new FakeLeaseStore();
  const t0 = clock.now();
  const nodes: Node[] = [];
  const node = (name: string, preferred: boolean, o: Partial<LeaseVipElectionOptions> = {}): Node => {
    const api = store.view(name);
    const el = new LeaseVipElection({ api, namespace: NS, services: [SVC], vip: VIP, node: name, preferred, settings, clock, random: () => 0, logger, ...o });
    const n: Node = { name, el, api, events: [], heldAt: [] };
    el.onHold((ev) => {
      n.events.push(`${clock.now() - t0} hold prev=${ev.previousHolder ?? '-'}`);
      n.heldAt.push(clock.now() - t0);
    });
    el.onRelease((ev) => n.events.push(`${clock.now() - t0} release:${ev.cause}`));
    nodes.push(n);
    return n;
  };
  /** Advance in 50 ms steps, asserting that no two nodes are ever 'holding' (Lease leaders with the VIP). */
  const run = async (ms: number, onStep?: () => void): Promise<void> => {
    for (let t = 0; t < ms; t += 50) {
      await clock.advance(50);
      const holding = nodes.filter((n) => n.el.state() === 'holding').map((n) => n.name);
      expect(holding.length).toBeLessThanOrEqual(1);
      onStep?.();
    }
  };
  const lease = () => store.read(NS, vipLeaseName(VIP));
  return { clock, store, node, run, lease, t0, nodes };
}

const states = (...ns: Node[]): VipState[] => ns.map((n) => n.el.state());

describe('vipLeaseName', () => {
  it('is DNS-1123, at most 63 characters, readable and unique per VIP, whatever its spelling', () => {
    expect(vipLeaseName('192.0.2.10')).toMatch(/^lvs-vip-192-0-2-10-[0-9a-f]{10}$/);
    expect(vipLeaseName('2001:db8::1')).toMatch(/^lvs-vip-2001-db8-1-[0-9a-f]{10}$/);
    // One VIP, one Lease: the canonical address is what counts.
    expect(vipLeaseName('2001:DB8:0::1')).toBe(vipLeaseName('2001:db8::1'));
    // Squeezing maps these to the same text; the hash keeps them apart.
    expect(vipLeaseName('2001:db8::1:0')).not.toBe(vipLeaseName('2001:db8:1::'));
    for (const vip of ['10.0.0.1', '255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::1', '2001:db8::ffff:192.0.2.1']) {
      expect(vipLeaseName(vip)).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(vipLeaseName(vip).length).toBeLessThanOrEqual(63);
    }
    expect(() => vipLeaseName('web/frontend')).toThrow(/not an IP address/);
  });

  it('the per-service Lease name of earlier agents is kept, and never collides with a VIP Lease', () => {
    const a = serviceLeaseName('web/frontend');
    expect(a).toMatch(/^lvs-vip-web-frontend-[0-9a-f]{10}$/);
    expect(serviceLeaseName('web-a/b')).not.toBe(serviceLeaseName('web/a-b'));
    const long = serviceLeaseName(`${'n'.repeat(63)}/${'x.y'.repeat(80)}`);
    expect(long.length).toBeLessThanOrEqual(63);
    for (const id of ['a/b', 'Ns/Name.With.Dots', '-/-']) expect(serviceLeaseName(id)).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    // A service named like an address still gets another Lease than the address.
    expect(serviceLeaseName('192/0.2.10')).not.toBe(vipLeaseName('192.0.2.10'));
  });
});

describe('electionTiming', () => {
  it('renews every interval and steps down one interval before a standby may take over', () => {
    expect(electionTiming(settings)).toEqual({ leaseDurationSeconds: 2, retryPeriodMs: 500, renewDeadlineMs: 1_500, retryJitter: 0.2 });
    expect(() => electionTiming({ leaseDurationSeconds: 1, renewIntervalMilliseconds: 500 })).toThrow(/less than half/);
    expect(() => electionTiming({ leaseDurationSeconds: 0, renewIntervalMilliseconds: 100 })).toThrow(/≥ 1/);
    expect(() => electionTiming({ leaseDurationSeconds: 2, renewIntervalMilliseconds: 0 })).toThrow(/positive/);
  });
});

describe('LeaseVipElection', () => {
  it('the preferred director acquires at once; a standby starts a lease duration later and never binds while it renews', async () => {
    const { node, run, lease, store } = setup();
    // The standby starts first: the preference still wins on a cold start.
    const b = node('director-b', false);
    const a = node('director-a', true);
    b.el.start();
    a.el.start();
    await run(50);
    expect(states(a, b)).toEqual(['holding', 'standby']);
    expect(a.events).toEqual(['0 hold prev=-']);
    // Still waiting out the preference delay: b only read (the old per-service Lease, see Migration).
    expect(store.writes.filter((w) => w.by === 'director-b')).toEqual([]);
    expect(b.api.calls).toBe(1);
    await run(10_000);
    expect(states(a, b)).toEqual(['holding', 'standby']);
    expect(b.events).toEqual([]);
    expect(b.el.holder()).toBe('director-a');
    expect(a.el.holdsVip()).toBe(true);
    expect(b.el.holdsVip()).toBe(false);
    expect(lease()?.record).toMatchObject({ holderIdentity: 'director-a', leaseDurationSeconds: 2, leaseTransitions: 0 });
  });

  it('without a preferred director alive, a standby takes the free Lease after its delay', async () => {
    const { node, run } = setup();
    const b = node('director-b', false);
    b.el.start();
    await run(1_950);
    expect(b.el.state()).toBe('standby');
    await run(100);
    expect(b.el.state()).toBe('holding');
    expect(b.heldAt).toEqual([2_000]);
  });

  it('a stopped holder (agent gone, Lease not released) is replaced within lease duration + retry', async () => {
    const { node, run, clock, t0 } = setup();
    const a = node('director-a', true);
    const b = node('director-b', false);
    a.el.start();
    b.el.start();
    await run(5_000);
    const fault = clock.now() - t0;
    await a.el.stop({ release: false });
    expect(a.events.at(-1)).toBe(`${fault} release:stopped`);
    await run(4_000);
    expect(b.el.state()).toBe('holding');
    const took = b.heldAt[0]! - fault;
    // b last saw a renew at most one retry before the fault; it waits 2000 ms of unchanged Lease from then.
    expect(took).toBeGreaterThanOrEqual(2_000 - 500);
    expect(took).toBeLessThanOrEqual(2_000 + 500 + 100);
    expect(b.events).toEqual([`${b.heldAt[0]} hold prev=director-a`]);
  });

  it('a graceful stop releases the Lease: the standby takes over within one retry', async () => {
    const { node, run, clock, t0, lease } = setup();
    const a = node('director-a', true);
    const b = node('director-b', false);
    a.el.start();
    b.el.start();
    await run(5_000);
    const fault = clock.now() - t0;
    await a.el.stop();
    expect(lease()?.record.holderIdentity).toBe('');
    await run(1_000);
    expect(b.el.state()).toBe('holding');
    expect(b.heldAt[0]! - fault).toBeLessThanOrEqual(600 + 50);
  });

  it('a holder cut off from the apiserver keeps the VIP (retained); the standby wins; the old holder releases when it reads that', async () => {
    const { node, run, clock, t0, lease } = setup();
    const a = node('director-a', true);
    const b = node('director-b', false);
    a.el.start();
    b.el.start();
    await run(5_000);
    const cut = clock.now() - t0;
    a.api.partitioned = true;
    let retainedAt = 0;
    await run(5_000, () => {
      if (!retainedAt && a.el.state() === 'retained') retainedAt = clock.now() - t0;
    });
    // Stepped down from the Lease at the renew deadline (1500 ms after its last renew), VIP kept.
    expect(retainedAt - cut).toBeGreaterThan(1_000);
    expect(retainedAt - cut).toBeLessThanOrEqual(1_500);
    expect(a.events).toEqual(['0 hold prev=-']);
    expect(a.el.holdsVip()).toBe(true);
    // The standby won the Lease after the lease duration, and binds the VIP too: the documented split brain.
    expect(b.el.state()).toBe('holding');
    expect(b.heldAt[0]! - cut).toBeGreaterThanOrEqual(2_000 - 500);
    expect(b.heldAt[0]! - cut).toBeLessThanOrEqual(2_000 + 600 + 100);
    expect(lease()?.record.holderIdentity).toBe('director-b');
    // Heal: the old holder reads the new holder within a retry and releases.
    const heal = clock.now() - t0;
    a.api.partitioned = false;
    await run(1_000);
    expect(a.el.state()).toBe('standby');
    const released = a.events.at(-1)!;
    expect(released).toMatch(/ release:lease taken by director-b$/);
    expect(Number(released.split(' ')[0]) - heal).toBeLessThanOrEqual(600 + 50);
    // No flapping afterwards, although a is the preferred director.
    await run(10_000);
    expect(states(a, b)).toEqual(['standby', 'holding']);
    expect(b.events.length).toBe(1);
    expect(a.events.length).toBe(2);
  });

  it('a retained holder that still reaches the segment yields when the new holder answers ARP for the VIP, without the apiserver', async () => {
    const { node, run, clock, t0 } = setup();
    // The segment as seen by a's probe: who has the VIP bound and answers ARP for it.
    const probes: number[] = [];
    let bBound = false;
    const a = node('director-a', true, {
      conflictProbe: async () => {
        probes.push(clock.now() - t0);
        return bBound ? ['02:00:00:00:56:35'] : [];
      },
    });
    const b = node('director-b', false);
    b.el.onHold(() => (bBound = true));
    a.el.start();
    b.el.start();
    await run(5_000);
    expect(probes).toEqual([]); // holding: never probed
    const cut = clock.now() - t0;
    a.api.partitioned = true; // cut off from the apiserver only, and for good
    await run(5_000);
    expect(b.el.state()).toBe('holding');
    expect(a.el.state()).toBe('standby');
    const released = a.events.at(-1)!;
    expect(released).toMatch(/ release:another director answers ARP for the VIP \(02:00:00:00:56:35\)$/);
    // Within one probe interval (1 s) of b's hold; probing started a lease duration after a stopped leading
    // (no standby can win earlier), not at once: a holder that merely missed renewals on a busy node stays quiet.
    expect(Number(released.split(' ')[0]) - b.heldAt[0]!).toBeLessThanOrEqual(1_000 + 50);
    expect(probes[0]! - cut).toBeGreaterThan(1_000 + 2_000);
    const n = probes.length;
    await run(3_000);
    expect(probes.length).toBe(n); // standby: probing stopped
  });

  it('a retained holder nobody else answers for (apiserver down for everyone) keeps the VIP; probe errors keep it too', async () => {
    const { node, run } = setup();
    let calls = 0;
    const a = node('director-a', true, {
      conflictProbe: async () => {
        calls++;
        if (calls % 2) throw new Error('arping exited 2: interface down');
        return [];
      },
    });
    a.el.start();
    await run(3_000);
    a.api.partitioned = true;
    await run(10_000, () => expect(a.el.holdsVip()).toBe(true));
    expect(a.el.state()).toBe('retained');
    expect(calls).toBeGreaterThanOrEqual(6); // every second from 2 s into 'retained'
    // Back: renews its own Lease, stops probing.
    a.api.partitioned = false;
    await run(2_000);
    expect(a.el.state()).toBe('holding');
    const n = calls;
    await run(3_000);
    expect(calls).toBe(n);
    expect(a.events).toEqual(['0 hold prev=-']);
  });

  it('keepVipWhenUnreachable: false releases at the renew deadline, before anyone else may take over', async () => {
    const { node, run, clock, t0 } = setup();
    const a = node('director-a', true, { keepVipWhenUnreachable: false });
    const b = node('director-b', false);
    a.el.start();
    b.el.start();
    await run(5_000);
    const cut = clock.now() - t0;
    a.api.partitioned = true;
    let overlap = false;
    await run(5_000, () => {
      if (a.el.holdsVip() && b.el.holdsVip()) overlap = true;
    });
    expect(overlap).toBe(false);
    expect(a.events.at(-1)).toMatch(/ release:renew deadline passed$/);
    expect(Number(a.events.at(-1)!.split(' ')[0]) - cut).toBeLessThanOrEqual(1_500);
    expect(b.el.state()).toBe('holding');
  });

  it.each([
    ['together', 0],
    ['the standby first, the holder 300 ms later', 300],
    ['the standby first, the holder 1.2 s later', 1_200],
  ])('an apiserver outage for everyone, reconnecting %s: the holder keeps the VIP throughout and renews at once; the standby never takes over', async (_what, holderLagMs) => {
    for (const phase of [0, 50, 150, 250, 350, 450]) {
      const { node, run, clock, t0, lease, store } = setup();
      const a = node('director-a', true);
      const b = node('director-b', false);
      a.el.start();
      b.el.start();
      await run(5_000 + phase);
      a.api.partitioned = true;
      b.api.partitioned = true;
      await run(10_000, () => {
        expect(a.el.holdsVip()).toBe(true);
        expect(b.el.holdsVip()).toBe(false);
      });
      expect(a.el.state()).toBe('retained');
      b.api.partitioned = false;
      await run(holderLagMs);
      const heal = clock.now() - t0;
      a.api.partitioned = false;
      let renewedAfter = -1;
      await run(10_000, () => {
        expect(b.el.holdsVip()).toBe(false);
        if (renewedAfter < 0 && a.el.state() === 'holding') renewedAfter = clock.now() - t0 - heal;
      });
      // The retained holder renews at its first try after the outage (one jittered retry at most).
      expect(renewedAfter).toBeGreaterThanOrEqual(0);
      expect(renewedAfter).toBeLessThanOrEqual(600 + 50);
      expect(a.events).toEqual(['0 hold prev=-']);
      expect(b.events).toEqual([]);
      expect(lease()?.record).toMatchObject({ holderIdentity: 'director-a', leaseTransitions: 0 });
      expect(store.writes.filter((w) => w.by === 'director-b')).toEqual([]);
      await a.el.stop();
      await b.el.stop();
    }
  });

  it('a standby still cut off when the holder is back does not take over; once reconnected, it follows the holder', async () => {
    const { node, run, lease } = setup();
    const a = node('director-a', true);
    const b = node('director-b', false);
    a.el.start();
    b.el.start();
    await run(5_000);
    b.api.partitioned = true;
    await run(5_000);
    b.api.partitioned = false;
    await run(5_000, () => expect(b.el.holdsVip()).toBe(false));
    expect(b.el.holder()).toBe('director-a');
    expect(lease()?.record.leaseTransitions).toBe(0);
  });
});

describe('one Lease per VIP', () => {
  const WEB = 'web/http';
  const TLS = 'web/https';
  const DNS = 'web/dns-udp';

  it('VirtualServices on the same VIP share one election and one holder; each gets the Events', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const holds: string[] = [];
    const mk = (node: string) =>
      new VipElections({
        api: store.view(node), namespace: NS, node, settings, clock, random: () => 0, logger,
        onHold: (ev) => holds.push(`${node} ${ev.vip} ${ev.services.join(',')}`),
      });
    const a = mk('director-a');
    const b = mk('director-b');
    // The planner ranks directors by VIP, so the services of a VIP have the same preferred director; a
    // preference on one of them is enough.
    const plan = (preferred: boolean) => [
      { id: WEB, vip: VIP, holdVip: preferred },
      { id: TLS, vip: VIP, holdVip: false },
      { id: 'web/other', vip: '192.0.2.99', holdVip: !preferred },
    ];
    await a.sync(plan(true));
    await b.sync(plan(false));
    await clock.advance(5_000);
    expect(a.elections().map((e) => e.vip).sort()).toEqual(['192.0.2.10', '192.0.2.99']);
    expect([a.holdsVip(WEB), a.holdsVip(TLS), b.holdsVip(WEB), b.holdsVip(TLS)]).toEqual([true, true, false, false]);
    expect([b.activeDirector(WEB), b.activeDirector(TLS)]).toEqual(['director-a', 'director-a']);
    expect(store.read(NS, vipLeaseName(VIP))?.record.holderIdentity).toBe('director-a');
    expect(store.read(NS, serviceLeaseName(WEB))).toBeUndefined();
    expect(holds.sort()).toEqual([`director-a ${VIP} ${WEB},${TLS}`, 'director-b 192.0.2.99 web/other']);

    // A third service joins the VIP: same election, same holder; it is named in later Events.
    await a.sync([...plan(true), { id: DNS, vip: VIP, holdVip: true }]);
    await b.sync([...plan(false), { id: DNS, vip: VIP, holdVip: false }]);
    expect(a.holdsVip(DNS)).toBe(true);
    expect(a.get(VIP)?.services()).toEqual([DNS, WEB, TLS]);
    // a's agent dies: b takes the VIP for all three at once.
    await a.stop({ release: false });
    await clock.advance(3_000);
    expect([b.holdsVip(WEB), b.holdsVip(TLS), b.holdsVip(DNS)]).toEqual([true, true, true]);
    expect(holds.at(-1)).toBe(`director-b ${VIP} ${DNS},${WEB},${TLS}`);
    // One service leaves the VIP: the election stays (no release); the last one leaving releases it.
    const released: string[] = [];
    b.get(VIP)!.onRelease((ev) => released.push(ev.services.join(',')));
    await b.sync([{ id: WEB, vip: VIP, holdVip: false }]);
    expect(b.holdsVip(WEB)).toBe(true);
    expect(b.holdsVip(TLS)).toBe(false);
    expect(released).toEqual([]);
    await b.sync([]);
    expect(released).toEqual([WEB]);
    expect(store.read(NS, vipLeaseName(VIP))?.record.holderIdentity).toBe('');
  });

  it('an IPv6 VIP spelled two ways is one VIP', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = new VipElections({ api: store.view('director-a'), namespace: NS, node: 'director-a', settings, clock, random: () => 0, logger });
    await a.sync([{ id: WEB, vip: '2001:db8::a', holdVip: true }, { id: TLS, vip: '2001:DB8:0::A', holdVip: true }]);
    await clock.advance(100);
    expect(a.elections()).toHaveLength(1);
    expect([a.holdsVip(WEB), a.holdsVip(TLS)]).toEqual([true, true]);
    await a.stop();
  });
});

describe('migration from per-VirtualService Leases (rolling upgrade)', () => {
  /** An agent of the previous version: a LeaderElector on the service's Lease; it binds the VIP while it leads. */
  function oldAgent(store: FakeLeaseStore, clock: FakeClock, node: string, service: string) {
    const api = store.view(node);
    let leading = false;
    const el = new LeaderElector({
      api, namespace: NS, name: serviceLeaseName(service), identity: node, ...electionTiming(settings), clock, random: () => 0, logger,
      onStartedLeading: () => {
        leading = true;
      },
      onStoppedLeading: () => {
        leading = false;
      },
    });
    return { el, api, holdsVip: () => leading };
  }

  it('standby upgraded first: it does not take the VIP from an old holder; the upgraded holder keeps its VIP and takes the new Lease', async () => {
    const { node, run, lease, store, clock } = setup();
    const oldA = oldAgent(store, clock, 'director-a', SVC);
    oldA.el.start();
    await run(3_000);
    expect(oldA.holdsVip()).toBe(true);
    // b runs the new version and is even the preferred director: it must not bind while a renews its old Lease.
    const b = node('director-b', true);
    b.el.start();
    await run(10_000, () => expect(b.el.holdsVip()).toBe(false));
    expect(lease()).toBeUndefined();
    // a is upgraded (crash-free restart): its state file says the VIP is bound.
    await oldA.el.stop({ release: false });
    const a = node('director-a', false, { heldAtStart: true });
    a.el.start();
    await run(5_000, () => {
      expect(a.el.holdsVip()).toBe(true);
      expect(b.el.holdsVip()).toBe(false);
    });
    expect(states(a, b)).toEqual(['holding', 'standby']);
    expect(lease()?.record.holderIdentity).toBe('director-a');
    expect(a.events).toEqual([]); // the VIP never moved: no hold
  });

  it('holder upgraded first: it keeps renewing its old Lease, so an old standby never takes the VIP', async () => {
    const { node, run, store, clock, t0 } = setup();
    const oldA = oldAgent(store, clock, 'director-a', SVC);
    const oldB = oldAgent(store, clock, 'director-b', SVC);
    oldA.el.start();
    await run(1_000);
    oldB.el.start();
    await run(3_000);
    await oldA.el.stop({ release: false });
    const a = node('director-a', true, { heldAtStart: true });
    a.el.start();
    await run(10_000, () => {
      expect(a.el.holdsVip()).toBe(true);
      expect(oldB.holdsVip()).toBe(false);
    });
    expect(store.read(NS, serviceLeaseName(SVC))?.record.holderIdentity).toBe('director-a');
    // b is upgraded too: it stands by on the VIP Lease.
    await oldB.el.stop({ release: false });
    const b = node('director-b', false);
    b.el.start();
    await run(5_000);
    expect(states(a, b)).toEqual(['holding', 'standby']);
    // The old Lease is renewed only while a holds the VIP: after a's death, b takes over (the stale old
    // Lease, b's own observation of it started at b's start, does not delay it beyond the lease duration).
    await a.el.stop({ release: false });
    const fault = clock.now() - t0;
    await run(3_000);
    expect(b.el.state()).toBe('holding');
    expect(b.heldAt[0]! - fault).toBeLessThanOrEqual(2_000 + 600 + 100);
  });

  it('without old Leases (a fresh install) they are read once per election, never at a takeover', async () => {
    const { node, run } = setup();
    const a = node('director-a', true);
    const b = node('director-b', false);
    a.el.start();
    b.el.start();
    await run(5_000);
    await a.el.stop({ release: false });
    await run(3_000);
    expect(b.el.state()).toBe('holding');
    for (const n of [a, b]) expect(n.api.reads.filter((r) => r === serviceLeaseName(SVC))).toEqual([serviceLeaseName(SVC)]);
  });

  it('an old per-service Lease nobody renews does not block a takeover', async () => {
    const { node, run, store, clock } = setup();
    const oldA = oldAgent(store, clock, 'director-a', SVC);
    oldA.el.start();
    await run(1_000);
    await oldA.el.stop({ release: false }); // left behind, held by a, never renewed again
    await run(5_000);
    const b = node('director-b', true);
    b.el.start();
    await run(2_100);
    // b's first look at the old Lease starts its clock: it is expired a lease duration later.
    expect(b.el.state()).toBe('holding');
    expect(b.heldAt[0]).toBeLessThanOrEqual(6_000 + 2_000 + 100);
  });
});

describe('LeaseVipElection after an agent restart (heldAtStart)', () => {
  it('a restarted holder keeps its VIP throughout and renews its own Lease, without a hold event or a hand-over', async () => {
    const { node, run, lease } = setup();
    const a = node('director-a', false); // not preferred: it had taken the VIP over earlier
    const b = node('director-b', true);
    a.el.start();
    await run(2_100);
    b.el.start();
    await run(3_000);
    expect(states(a, b)).toEqual(['holding', 'standby']);
    // a's agent restarts (crash, no release): a new election for the same node, told the VIP is bound.
    a.api.partitioned = true;
    await a.el.stop({ release: false });
    a.api.partitioned = false;
    await run(300);
    const a2 = node('director-a', false, { heldAtStart: true });
    a2.el.start();
    expect(a2.el.state()).toBe('retained');
    expect(a2.el.holdsVip()).toBe(true);
    await run(6_000, () => expect(a2.el.holdsVip()).toBe(true));
    expect(states(a2, b)).toEqual(['holding', 'standby']);
    expect(a2.events).toEqual([]);
    expect(b.events).toEqual([]);
    // Same holder throughout: the Lease never changed hands.
    expect(lease()?.record).toMatchObject({ holderIdentity: 'director-a', leaseTransitions: 0 });
  });

  it('a restarted holder whose Lease was taken meanwhile releases at its first read, never leading', async () => {
    const { node, run } = setup();
    const b = node('director-b', true);
    b.el.start();
    await run(1_000);
    const a = node('director-a', false, { heldAtStart: true });
    a.el.start();
    let led = false;
    await run(3_000, () => {
      if (a.el.state() === 'holding') led = true;
    });
    expect(led).toBe(false);
    expect(a.events).toEqual([expect.stringMatching(/^\d+ release:lease taken by director-b$/)]);
    expect(Number(a.events[0]!.split(' ')[0])).toBeLessThanOrEqual(1_050); // at its first read, right after start
    expect(states(a, b)).toEqual(['standby', 'holding']);
  });
});

describe('LeaseVipElection after an agent restart: the ARP probe', () => {
  it('a restarted holder that finds another director answering for its VIP releases before any Lease read', async () => {
    const { node, run, store } = setup();
    const b = node('director-b', true);
    b.el.start();
    await run(1_000);
    // a comes back while the apiserver is unreachable for it: only the segment can tell it lost.
    const a = node('director-a', false, { heldAtStart: true, conflictProbe: async () => ['02:00:00:00:56:35'] });
    a.api.partitioned = true;
    a.el.start();
    await run(100);
    expect(a.el.state()).toBe('standby');
    expect(a.events).toEqual([expect.stringMatching(/^\d+ release:another director answers ARP for the VIP \(02:00:00:00:56:35\)$/)]);
    expect(store.read(NS, vipLeaseName(VIP))?.record.holderIdentity).toBe('director-b');
  });
});

describe('VipElections', () => {
  it('keeps one election per planned service, answers holdsVip/activeDirector, and stops removed ones', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const holds: string[] = [];
    const releases: string[] = [];
    const mk = (node: string) =>
      new VipElections({
        api: store.view(node), namespace: NS, node, settings, clock, random: () => 0, logger,
        onHold: (ev) => holds.push(`${node} ${ev.services.join(',')}`),
        onRelease: (ev) => releases.push(`${node} ${ev.services.join(',')} ${ev.cause}`),
      });
    const a = mk('director-a');
    const b = mk('director-b');
    await a.sync([{ id: 'web/one', vip: '192.0.2.1', holdVip: true }, { id: 'web/two', vip: '192.0.2.2', holdVip: false }]);
    await b.sync([{ id: 'web/one', vip: '192.0.2.1', holdVip: false }, { id: 'web/two', vip: '192.0.2.2', holdVip: true }]);
    await clock.advance(5_000);
    expect(a.services()).toEqual(['web/one', 'web/two']);
    expect([a.holdsVip('web/one'), a.holdsVip('web/two'), b.holdsVip('web/one'), b.holdsVip('web/two')]).toEqual([true, false, false, true]);
    expect(a.activeDirector('web/two')).toBe('director-b');
    expect(b.activeDirector('web/one')).toBe('director-a');
    expect(a.holdsVip('web/none')).toBe(false);
    expect(holds.sort()).toEqual(['director-a web/one', 'director-b web/two']);

    // web/one is no longer planned on a: a releases VIP and Lease, b takes it within a retry.
    await a.sync([{ id: 'web/two', vip: '192.0.2.2', holdVip: false }]);
    expect(releases).toEqual(['director-a web/one stopped']);
    expect(a.holdsVip('web/one')).toBe(false);
    await clock.advance(700);
    expect(b.holdsVip('web/one')).toBe(true);
    await a.stop();
    await b.stop();
    expect(releases.sort()).toEqual(['director-a web/one stopped', 'director-b web/one stopped', 'director-b web/two stopped']);
  });
});
