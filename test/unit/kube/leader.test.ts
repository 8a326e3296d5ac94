import { FakeClock } from '../../../src/kube/clock.ts';
import type { Clock } from '../../../src/kube/clock.ts';
import { LeaderElector, formatMicroTime, newerResourceVersion } from '../../../src/kube/leader.ts';
import type { LeaderElectorOptions } from '../../../src/kube/leader.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeLeaseStore } from './fake-lease-api.ts';

const logger = createLogger('test', 'silent');
const NS = 'lvs-system';
const NAME = 'lvs-controller';

/** Same time source, different wall clock (clock skew between machines). */
const skewed = (c: FakeClock, offsetMs: number): Clock => ({
  now: () => c.now(),
  wallNow: () => new Date(c.wallNow().getTime() + offsetMs),
  setTimeout: (cb, ms) => c.setTimeout(cb, ms),
  clearTimeout: (h) => c.clearTimeout(h),
});

interface Candidate {
  el: LeaderElector;
  api: ReturnType<FakeLeaseStore['view']>;
  log: string[];
  signals: AbortSignal[];
}

function candidate(store: FakeLeaseStore, clock: Clock, identity: string, o: Partial<LeaderElectorOptions> = {}): Candidate {
  const api = store.view(identity);
  const log: string[] = [];
  const signals: AbortSignal[] = [];
  const el = new LeaderElector({
    api, namespace: NS, name: NAME, identity, clock, logger, random: () => 0,
    leaseDurationSeconds: 15, renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
    onStartedLeading: (s) => {
      signals.push(s);
      log.push('started');
    },
    onStoppedLeading: () => log.push('stopped'),
    onNewLeader: (id) => log.push(`leader:${id}`),
    ...o,
  });
  return { el, api, log, signals };
}

describe('LeaderElector', () => {
  it('creates the lease, leads, renews with the cached resourceVersion, and writes MicroTime', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    expect(a.el.isLeader()).toBe(true);
    expect(a.log).toEqual(['leader:a', 'started']);
    const l = store.read(NS, NAME)!;
    expect(l.record).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(l.record.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const calls = a.api.calls;
    await clock.advance(2_000);
    // The renew is a single update (no read): the fast path.
    expect(a.api.calls).toBe(calls + 1);
    expect(store.read(NS, NAME)!.record.renewTime).not.toBe(l.record.renewTime);
    expect(store.read(NS, NAME)!.record.acquireTime).toBe(l.record.acquireTime);
    await clock.advance(60_000);
    expect(a.el.isLeader()).toBe(true);
    expect(a.el.stats()).toMatchObject({ acquisitions: 1, losses: 0, conflicts: 0 });
    await a.el.stop({ release: false });
  });

  it('formats MicroTime with exactly six fractional digits', () => {
    expect(formatMicroTime(new Date(Date.UTC(2025, 4, 6, 7, 8, 9, 123)))).toBe('2025-05-06T07:08:09.123000Z');
    expect(new Date(Date.UTC(2025, 4, 6, 7, 8, 9, 123)).toISOString()).toBe('2025-05-06T07:08:09.123Z'); // what the server rejects
  });

  it('two candidates: exactly one leads, the other follows, for a long time', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    const b = candidate(store, clock, 'b');
    a.el.start();
    b.el.start();
    for (let i = 0; i < 100; i++) {
      await clock.advance(1_000);
      expect(Number(a.el.isLeader()) + Number(b.el.isLeader())).toBe(1);
    }
    const leader = a.el.isLeader() ? a : b;
    const follower = leader === a ? b : a;
    expect(follower.log).toEqual([`leader:${leader.el.identity}`]);
    expect(follower.el.leader()).toBe(leader.el.identity);
    expect(store.read(NS, NAME)!.record.leaseTransitions).toBe(0);
    await a.el.stop({ release: false });
    await b.el.stop({ release: false });
  });

  it('release() hands over at the standby\'s next retry, not after the lease duration', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    const b = candidate(store, clock, 'b');
    b.el.start();
    await clock.advance(5_000);
    expect(b.el.isLeader()).toBe(false);

    await a.el.release();
    expect(a.el.isLeader()).toBe(false);
    expect(a.log).toEqual(['leader:a', 'started', 'leader:', 'stopped']);
    expect(a.signals[0]!.aborted).toBe(true);
    expect(store.read(NS, NAME)!.record).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    await clock.advance(2_000); // one retry period (random() = 0: no jitter)
    expect(b.el.isLeader()).toBe(true);
    expect(store.read(NS, NAME)!.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1, leaseDurationSeconds: 15 });
    await b.el.stop({ release: false });
  });

  it('a killed leader (no release) is replaced only after leaseDuration of locally observed time', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    const b = candidate(store, clock, 'b');
    b.el.start();
    await clock.advance(3_000);
    await a.el.stop({ release: false }); // crash: the lease stays with a
    const killedAt = clock.now();
    expect(store.read(NS, NAME)!.record.holderIdentity).toBe('a');
    let tookOverAt = 0;
    for (let t = 0; t < 25_000 && !tookOverAt; t += 100) {
      await clock.advance(100);
      if (b.el.isLeader()) tookOverAt = clock.now();
    }
    // b last saw a change at most one retry period before the kill and must wait 15 s from then,
    // then takes over at its next retry (random() = 0: retries every 2 s).
    expect(tookOverAt - killedAt).toBeGreaterThanOrEqual(15_000 - 2_000);
    expect(tookOverAt - killedAt).toBeLessThanOrEqual(15_000 + 2_000);
    const tookOver = store.writes.find((w) => w.by === 'b')!;
    expect(tookOver.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.el.stop({ release: false });
  });

  it('a standby fed by a Lease watch takes over one lease duration after the last renewal itself, not after its next poll', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    // The standby polls every 2 s, but a renewal reaches it when it is written (the agent's Lease watch).
    await clock.advance(700); // b's polls come 0.7 s after a's renewals (2 s apart each)
    const b = candidate(store, clock, 'b');
    let lastRenewal = 0;
    store.watchers.push((_name, l) => {
      if (l.record.holderIdentity === 'a') lastRenewal = clock.now();
      b.el.observe(l);
    });
    b.el.start();
    await clock.advance(7_300);
    await a.el.stop({ release: false }); // crash 1.3 s after a renewal
    let tookOverAt = 0;
    for (let t = 0; t < 25_000 && !tookOverAt; t += 10) {
      await clock.advance(10);
      if (b.el.isLeader()) tookOverAt = clock.now();
    }
    expect(tookOverAt - lastRenewal).toBeGreaterThanOrEqual(15_000);
    expect(tookOverAt - lastRenewal).toBeLessThanOrEqual(15_000 + 10);
    await b.el.stop({ release: false });
  });

  it('a release seen by the watch wakes the standby at once; versions older than the one known are ignored', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    const b = candidate(store, clock, 'b');
    const seen: Array<{ name: string; rv: string }> = [];
    store.watchers.push((name, l) => {
      seen.push({ name, rv: l.resourceVersion });
      b.el.observe(l);
    });
    b.el.start();
    await clock.advance(3_000);
    const stale = store.read(NS, NAME);
    await clock.advance(1_100); // past b's last poll: its next one is ~0.9 s away
    await a.el.release();
    await clock.advance(10);
    expect(b.el.isLeader()).toBe(true);
    // A late event with an older version does not bring a back.
    b.el.observe(stale!);
    expect(b.el.leader()).toBe('b');
    expect(seen.at(-1)!.rv > seen[0]!.rv).toBe(true);
    await b.el.stop({ release: false });
  });

  it('newerResourceVersion compares etcd integers as numbers; anything else by difference', () => {
    expect(newerResourceVersion('1000', '999')).toBe(true);
    expect(newerResourceVersion('999', '1000')).toBe(false);
    expect(newerResourceVersion('1000', '1000')).toBe(false);
    expect(newerResourceVersion('123456789012345678901', '123456789012345678900')).toBe(true);
    expect(newerResourceVersion('abc', 'abd')).toBe(true);
  });

  it('judges expiry by local observation, not by the renewTime another machine wrote (clock skew)', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    // a's wall clock is two hours behind: every renewTime it writes looks long expired to b.
    const a = candidate(store, skewed(clock, -2 * 3600_000), 'a');
    a.el.start();
    await clock.advance(0);
    const b = candidate(store, skewed(clock, 0), 'b');
    b.el.start();
    for (let i = 0; i < 30; i++) {
      await clock.advance(2_000);
      expect(a.el.isLeader()).toBe(true);
      expect(b.el.isLeader()).toBe(false);
    }
    await a.el.stop({ release: false });
    await b.el.stop({ release: false });
  });

  it('a lease whose renewTime lies in the future (holder clock ahead) still expires once it stops changing', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const f = candidate(store, skewed(clock, 5 * 3600_000), 'f');
    f.el.start();
    await clock.advance(0);
    const b = candidate(store, clock, 'b');
    b.el.start();
    await clock.advance(4_000);
    await f.el.stop({ release: false });
    expect(Date.parse(store.read(NS, NAME)!.record.renewTime!)).toBeGreaterThan(clock.wallNow().getTime() + 3600_000);
    await clock.advance(12_000);
    expect(b.el.isLeader()).toBe(false);
    await clock.advance(6_000);
    expect(b.el.isLeader()).toBe(true);
    await b.el.stop({ release: false });
  });

  it('a leader that cannot renew steps down after renewDeadline, before anyone may take over', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    const b = candidate(store, clock, 'b');
    b.el.start();
    await clock.advance(4_000);
    a.api.partitioned = true;
    const cut = clock.now();
    let steppedDownAt = 0;
    let bLeadsAt = 0;
    for (let t = 0; t < 30_000; t += 250) {
      await clock.advance(250);
      if (!steppedDownAt && !a.el.isLeader()) steppedDownAt = clock.now();
      if (!bLeadsAt && b.el.isLeader()) bLeadsAt = clock.now();
      if (steppedDownAt && bLeadsAt) expect(a.el.isLeader() && b.el.isLeader()).toBe(false);
    }
    expect(a.log).toEqual(['leader:a', 'started', 'stopped']);
    expect(a.signals[0]!.aborted).toBe(true);
    expect(steppedDownAt - cut).toBeLessThanOrEqual(10_000);
    expect(bLeadsAt).toBeGreaterThan(steppedDownAt);
    expect(b.el.isLeader()).toBe(true);
    expect(a.el.stats().renewFailures).toBeGreaterThan(0);
    // a re-contends after the partition heals, as a follower.
    a.api.partitioned = false;
    await clock.advance(10_000);
    expect(a.el.isLeader()).toBe(false);
    expect(a.el.leader()).toBe('b');
    await a.el.stop();
    await b.el.stop();
  });

  it('a 409 on the fast-path renew re-reads and renews (someone else touched the lease)', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    store.touch(NS, NAME);
    await clock.advance(2_000);
    expect(a.el.isLeader()).toBe(true);
    expect(a.el.stats().conflicts).toBe(1);
    expect(store.read(NS, NAME)!.record.holderIdentity).toBe('a');
    await a.el.stop();
  });

  it('steps down at once when the lease is observed with another holder', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate(store, clock, 'a');
    a.el.start();
    await clock.advance(0);
    // An operator forcibly hands the lease to x (new resourceVersion, other holder).
    const l = store.leases.get(`${NS}/${NAME}`)!;
    l.record = { ...l.record, holderIdentity: 'x', renewTime: formatMicroTime(clock.wallNow()) };
    l.resourceVersion = String(++store.rv);
    await clock.advance(2_000);
    expect(a.el.isLeader()).toBe(false);
    expect(a.log).toEqual(['leader:a', 'started', 'leader:x', 'stopped']);
    await a.el.stop();
  });

  it('per-VIP timing: 500 ms retry, 2 s lease, 1.5 s deadline, 50 elections on one client', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const timing = { leaseDurationSeconds: 2, renewDeadlineMs: 1_500, retryPeriodMs: 500, retryJitter: 0.2 };
    const vips = Array.from({ length: 50 }, (_, i) => `vip-${i}`);
    const a = vips.map((v) => candidate(store, clock, 'director-a', { ...timing, name: v }));
    const b = vips.map((v) => candidate(store, clock, 'director-b', { ...timing, name: v }));
    for (const c of a) c.el.start();
    await clock.advance(0);
    for (const c of b) c.el.start();
    await clock.advance(3_000);
    expect(a.every((c) => c.el.isLeader())).toBe(true);
    expect(b.some((c) => c.el.isLeader())).toBe(false);
    for (const c of a) await c.el.stop({ release: false });
    const killed = clock.now();
    let all = 0;
    for (let t = 0; t < 5_000 && !all; t += 100) {
      await clock.advance(100);
      if (b.every((c) => c.el.isLeader())) all = clock.now();
    }
    expect(all).toBeGreaterThan(0);
    expect(all - killed).toBeLessThanOrEqual(2_000 + 600 + 100);
    for (const c of b) await c.el.stop({ release: false });
  });

  describe('standby timing (agents: lease 2 s, renew deadline 1.5 s, retry 500 ms, jitter 1.2 × 0.5 = 800 ms between tries)', () => {
    const timing = { leaseDurationSeconds: 2, renewDeadlineMs: 1_500, retryPeriodMs: 500 };
    /** a leads from t=0 and renews every 500 ms; b starts at t=250 and tries every 800 ms: 250, 1050, 1850, 2650, … */
    async function pair() {
      const clock = new FakeClock(0);
      const store = new FakeLeaseStore();
      const a = candidate(store, clock, 'a', { ...timing });
      const b = candidate(store, clock, 'b', { ...timing, random: () => 0.5 });
      let bLeadsAt = -1;
      const bStarted: number[] = [];
      b.el = new LeaderElector({
        api: b.api, namespace: NS, name: NAME, identity: 'b', clock, logger, random: () => 0.5, ...timing,
        onStartedLeading: () => {
          bLeadsAt = clock.now();
          bStarted.push(b.api.calls);
        },
      });
      a.el.start();
      await clock.advance(250);
      b.el.start();
      return { clock, store, a, b, leadsAt: () => bLeadsAt, callsWhenLed: () => bStarted[0] };
    }

    it('takes over at the moment the observed lease expires on its own clock, with one request', async () => {
      const { clock, a, b, leadsAt, callsWhenLed } = await pair();
      await clock.advance(1_900 - 250);
      await a.el.stop({ release: false }); // killed at 1900: its last renew was at 1500
      // b read that renew at 1850, so the lease expires for b at 1850 + 2000 = 3850 (its retry ticks are
      // 2650 and 3450, then 4250: the old loop took over only at 4250).
      await clock.advance(3_849 - 1_900);
      expect(b.el.isLeader()).toBe(false);
      const calls = b.api.calls;
      await clock.advance(1);
      expect(leadsAt()).toBe(3_850);
      // The takeover wrote with the resourceVersion read at 1850: one request, no read first.
      expect(callsWhenLed()).toBe(calls + 1);
      expect(b.el.expiresInMs()).toBeUndefined();
      await b.el.stop({ release: false });
    });

    it('a holder that renews is never taken over, even when a try lands exactly at the expected expiry', async () => {
      const { clock, a, b, leadsAt } = await pair();
      await clock.advance(20_000);
      expect(a.el.isLeader()).toBe(true);
      expect(leadsAt()).toBe(-1);
      expect(b.el.stats().conflicts).toBe(0);
      await a.el.stop({ release: false });
      await b.el.stop({ release: false });
    });

    it('after its own requests failed, a standby counts a full lease duration from its first good read again', async () => {
      const { clock, a, b, leadsAt } = await pair();
      await clock.advance(1_900 - 250);
      await a.el.stop({ release: false }); // the holder is gone: last renew 1500, seen by b at 1850
      b.api.partitioned = true; // b's tries at 2650 … 4250 fail: it cannot tell whether a renewed meanwhile
      await clock.advance(4_300 - 1_900);
      expect(b.el.expiresInMs()).toBeUndefined();
      b.api.partitioned = false;
      // First good read at 5050 (the unchanged lease from 1500): the lease expires for b at 7050, not at once.
      await clock.advance(7_049 - 4_300);
      expect(leadsAt()).toBe(-1);
      expect(b.el.expiresInMs()).toBe(1);
      await clock.advance(1);
      expect(leadsAt()).toBe(7_050);
      await b.el.stop({ release: false });
    });
  });

  it('rejects inconsistent timing', () => {
    const api = new FakeLeaseStore().view('x');
    const base = { api, namespace: NS, name: NAME, identity: 'x' };
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 10, renewDeadlineMs: 10_000 })).toThrow(/leaseDuration must be greater/);
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(/renewDeadline must be greater/);
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 1.5 })).toThrow(/whole number/);
    expect(() => new LeaderElector({ ...base, identity: '' })).toThrow(/identity/);
  });
});
