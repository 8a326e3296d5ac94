// VIP election state machine (src/agent/failover) under a fake clock and an in-memory Lease store with the
// API server's optimistic concurrency: preference, takeover timing, the holder-keeps-the-VIP split-brain
// choice, no flapping, and the per-node set of elections.
import { FakeClock } from '../../../src/kube/clock.ts';
import { LeaseVipElection, VipElections, electionTiming, vipLeaseName } from '../../../src/agent/failover/index.ts';
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
    const el = new LeaseVipElection({ api, namespace: NS, service: SVC, vip: VIP, node: name, preferred, settings, clock, random: () => 0, logger, ...o });
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
  const lease = () => store.read(NS, vipLeaseName(SVC));
  return { clock, store, node, run, lease, t0, nodes };
}

const states = (...ns: Node[]): VipState[] => ns.map((n) => n.el.state());

describe('vipLeaseName', () => {
  it('is DNS-1123, at most 63 characters, readable and unique per service id', () => {
    const a = vipLeaseName('web/frontend');
    expect(a).toMatch(/^lvs-vip-web-frontend-[0-9a-f]{10}$/);
    expect(vipLeaseName('web/frontend')).toBe(a);
    // Squeezing maps these to the same text; the hash keeps them apart.
    expect(vipLeaseName('web-a/b')).not.toBe(vipLeaseName('web/a-b'));
    const long = vipLeaseName(`${'n'.repeat(63)}/${'x.y'.repeat(80)}`);
    expect(long.length).toBeLessThanOrEqual(63);
    for (const id of ['a/b', 'Ns/Name.With.Dots', `${'n'.repeat(63)}/${'x'.repeat(253)}`, '-/-']) {
      expect(vipLeaseName(id)).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(vipLeaseName(id).length).toBeLessThanOrEqual(63);
    }
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
    const { node, run, lease } = setup();
    // The standby starts first: the preference still wins on a cold start.
    const b = node('director-b', false);
    const a = node('director-a', true);
    b.el.start();
    a.el.start();
    await run(50);
    expect(states(a, b)).toEqual(['holding', 'standby']);
    expect(a.events).toEqual(['0 hold prev=-']);
    expect(b.api.calls).toBe(0); // still waiting out the preference delay
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

  it('an apiserver outage for everyone: the holder keeps the VIP throughout; no standby binds without winning', async () => {
    const { node, run, clock, t0 } = setup();
    const a = node('director-a', true);
    const b = node('director-b', false);
    a.el.start();
    b.el.start();
    await run(5_000);
    a.api.partitioned = true;
    b.api.partitioned = true;
    await run(10_000, () => {
      expect(a.el.holdsVip()).toBe(true);
      expect(b.el.holdsVip()).toBe(false);
    });
    expect(a.el.state()).toBe('retained');
    const heal = clock.now() - t0;
    a.api.partitioned = false;
    b.api.partitioned = false;
    // After the outage exactly one binds the VIP within a retry, and it stays there.
    let bothAt = -1;
    await run(10_000, () => {
      if (a.el.holdsVip() && b.el.holdsVip() && bothAt < 0) bothAt = clock.now() - t0 - heal;
    });
    const holders = [a, b].filter((n) => n.el.holdsVip());
    expect(holders.length).toBe(1);
    process.stderr.write(`after an apiserver outage: VIP with ${holders[0]!.name}; a: ${a.events.join(', ')}; b: ${b.events.join(', ') || '-'}; both bound from +${bothAt} ms\n`);
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

describe('VipElections', () => {
  it('keeps one election per planned service, answers holdsVip/activeDirector, and stops removed ones', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const holds: string[] = [];
    const releases: string[] = [];
    const mk = (node: string) =>
      new VipElections({
        api: store.view(node), namespace: NS, node, settings, clock, random: () => 0, logger,
        onHold: (ev) => holds.push(`${node} ${ev.service}`),
        onRelease: (ev) => releases.push(`${node} ${ev.service} ${ev.cause}`),
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
