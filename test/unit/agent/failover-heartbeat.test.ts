// Director heartbeats: the monitor's judgement (down only after being heard, grace after its own stall), the
// wire format, and the early takeover they allow: a standby takes the Lease of a holder whose heartbeats and
// renewals both stopped after two renew intervals instead of the lease duration, never from a holder that
// still renews, and never earlier than the Lease alone when the holder was never heard.
import { FakeClock } from '../../../src/kube/clock.ts';
import { DirectorFailover } from '../../../src/agent/failover/index.ts';
import { HeartbeatMonitor, decodeHeartbeat, encodeHeartbeat, parseHeartbeatGroup } from '../../../src/agent/failover/heartbeat.ts';
import type { Heartbeat, HeartbeatTransport } from '../../../src/agent/failover/heartbeat.ts';
import type { TimerHandle } from '../../../src/kube/clock.ts';
import type { FailoverEvent } from '../../../src/agent/failover/index.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeLeaseStore } from '../kube/fake-lease-api.ts';

const log = createLogger('test', 'silent');
const settings = { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 };

/** A shared segment: what one transport sends, every other joined one receives (at once). */
class FakeSegment {
  readonly members = new Set<FakeTransport>();
  readonly clock: FakeClock;
  constructor(clock: FakeClock) {
    this.clock = clock;
  }
  transport(): FakeTransport {
    return new FakeTransport(this);
  }
}

/** Sends on the fake clock, as UdpHeartbeatTransport's worker does on its own timer. */
class FakeTransport implements HeartbeatTransport {
  ifnames: readonly string[] = [];
  /** Cut: neither sends nor receives (a pulled cable, a dead node). */
  cut = false;
  sent = 0;
  /** The MAC its heartbeats carry. */
  mac: string | undefined;
  #cb: ((b: Buffer) => void) | undefined;
  #timer: TimerHandle | undefined;
  #seq = 0;
  readonly seg: FakeSegment;
  constructor(seg: FakeSegment) {
    this.seg = seg;
    seg.members.add(this);
  }
  async setInterfaces(ifnames: readonly string[], hb: Omit<Heartbeat, 'seq'>): Promise<void> {
    this.ifnames = [...ifnames];
    this.seg.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const send = (): void => {
      if (!this.cut) {
        this.sent++;
        const b = encodeHeartbeat({ ...hb, seq: this.#seq++, ...(this.mac ? { macs: [this.mac] } : {}) });
        for (const m of this.seg.members) if (m !== this && !m.cut && m.ifnames.length) m.#cb?.(b);
      }
      this.#timer = this.seg.clock.setTimeout(send, hb.intervalMs);
    };
    if (ifnames.length) send();
  }
  onMessage(cb: (b: Buffer) => void): void {
    this.#cb = cb;
  }
  onSendError(): void {}
  close(): void {
    this.seg.clock.clearTimeout(this.#timer);
    this.seg.members.delete(this);
  }
}

const svc = (holdVip: boolean): PlannedService => ({
  id: 'lab/web', generation: 1, vip: '192.0.2.40', port: 80, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip, standbyDirectors: 1, healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: [{ realServer: 'lab/web1', address: '192.0.2.37', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 }],
});

describe('heartbeat wire format and settings', () => {
  it('round-trips a heartbeat and rejects anything else', () => {
    const h = { node: 'director-a', intervalMs: 100, seq: 7 };
    expect(decodeHeartbeat(encodeHeartbeat(h))).toEqual(h);
    expect(decodeHeartbeat(encodeHeartbeat({ ...h, macs: ['02:00:00:00:56:34'] }))).toEqual({ ...h, macs: ['02:00:00:00:56:34'] });
    expect(decodeHeartbeat(Buffer.from('{"node":"x","intervalMs":100,"seq":1}'))).toBeUndefined(); // no magic
    expect(decodeHeartbeat(Buffer.from('\u0000\u0001garbage'))).toBeUndefined();
    expect(decodeHeartbeat(Buffer.from(JSON.stringify({ t: 'lvs-operator.heartbeat.v1', node: '', intervalMs: 100, seq: 1 })))).toBeUndefined();
    expect(decodeHeartbeat(Buffer.from(JSON.stringify({ t: 'lvs-operator.heartbeat.v1', node: 'a', intervalMs: -1, seq: 1 })))).toBeUndefined();
    expect(decodeHeartbeat(Buffer.alloc(2000, 0x20))).toBeUndefined();
  });

  it('parses the group setting and says what is wrong with a bad one', () => {
    expect(parseHeartbeatGroup('224.0.0.83:7838')).toEqual({ group: '224.0.0.83', port: 7838 });
    expect(parseHeartbeatGroup(' 239.1.2.3:1 ')).toEqual({ group: '239.1.2.3', port: 1 });
    for (const bad of ['10.0.0.1:7838', '224.0.0.83', '224.0.0.300:7838', '224.0.0.83:0', '224.0.0.83:70000', 'ff02::12:7838']) {
      expect(() => parseHeartbeatGroup(bad)).toThrow(/IPv4 multicast group and a UDP port, like 224\.0\.0\.83:7838; got/);
    }
  });
});

describe('HeartbeatMonitor', () => {
  const pair = () => {
    const clock = new FakeClock();
    const seg = new FakeSegment(clock);
    const downs: string[] = [];
    const mk = (node: string) => new HeartbeatMonitor({ node, transport: seg.transport(), clock, log, intervalMs: 100, missed: 5, onDown: (n) => downs.push(`${node} saw ${n} down`) });
    return { clock, seg, downs, a: mk('a'), b: mk('b') };
  };

  it('judges a peer down only after hearing it, after `missed` silent intervals, once; heard again, it is up', async () => {
    const { clock, downs, a, b } = pair();
    expect(b.isDown('a')).toBe(false); // never heard: the Lease alone judges it
    await a.setInterfaces(['eth0']);
    await b.setInterfaces(['eth0']);
    await clock.advance(1_000);
    expect(b.peers().get('a')).toBeLessThanOrEqual(100);
    expect(b.isDown('a')).toBe(false);
    expect(b.isAlive('a')).toBe(true);
    expect(a.isDown('b')).toBe(false);
    a.close();
    await clock.advance(500);
    expect(b.isDown('a')).toBe(false); // 5 × 100 ms not yet passed since the last one
    await clock.advance(200);
    expect(b.isDown('a')).toBe(true);
    expect(b.isAlive('a')).toBe(false);
    await clock.advance(2_000);
    expect(downs).toEqual(['b saw a down']);
    expect(b.isDown('nobody')).toBe(false);
    expect(b.isAlive('nobody')).toBe(false);
    b.close();
  });

  it('counts an ARP answer as another director only from a live director\'s MAC (all of them while nobody was heard)', async () => {
    const { clock, seg, a, b } = pair();
    const [ta] = [...seg.members];
    expect(b.liveDirectorMacs(['02:00:00:00:00:0a', '02:00:00:00:00:99'])).toEqual(['02:00:00:00:00:0a', '02:00:00:00:00:99']);
    ta!.mac = '02:00:00:00:00:0a';
    await a.setInterfaces(['eth0']);
    await b.setInterfaces(['eth0']);
    await clock.advance(300);
    // a is alive: its MAC counts (any case); an unknown MAC (a dead agent's kernel, a foreign host) does not.
    expect(b.liveDirectorMacs(['02:00:00:00:00:0A', '02:00:00:00:00:99'])).toEqual(['02:00:00:00:00:0A']);
    ta!.cut = true;
    await clock.advance(1_000);
    expect(b.liveDirectorMacs(['02:00:00:00:00:0a'])).toEqual([]);
    a.close();
    b.close();
  });

  it('judges no one right after its own stall, before its next check has run (an election asking first)', async () => {
    // A clock whose timers never fire: the stall is a jump of now() with the check still pending.
    let t = 0;
    const clock = { now: () => t, wallNow: () => new Date(t), setTimeout: () => ({ id: 0 }), clearTimeout: () => undefined };
    let deliver: ((b: Buffer) => void) | undefined;
    const transport: HeartbeatTransport = { setInterfaces: async () => undefined, onMessage: (cb) => void (deliver = cb), onSendError: () => undefined, close: () => undefined };
    const m = new HeartbeatMonitor({ node: 'b', transport, clock, log, intervalMs: 100, missed: 5 });
    await m.setInterfaces(['eth0']);
    deliver!(encodeHeartbeat({ node: 'a', intervalMs: 100, seq: 1 }));
    t = 2_000;
    expect(m.isDown('a')).toBe(false);
    expect(m.isAlive('a')).toBe(true);
    m.close();
  });

  it('a node that directs nothing sends nothing (setInterfaces([]))', async () => {
    const { clock, seg, a, b } = pair();
    await a.setInterfaces(['eth0']);
    await b.setInterfaces(['eth0']);
    await clock.advance(300);
    const ta = [...seg.members][0]!;
    await a.setInterfaces([]);
    const sent = ta.sent;
    await clock.advance(1_000);
    expect(ta.sent).toBe(sent);
    expect(b.isDown('a')).toBe(true);
    a.close();
    b.close();
  });

  it('after its own stall (its check ran late) every peer gets a fresh grace period before it is judged down', async () => {
    const { clock, seg, downs, a, b } = pair();
    await a.setInterfaces(['eth0']);
    await b.setInterfaces(['eth0']);
    await clock.advance(300);
    // a falls silent while b's process stalls for 2 s: b's next check runs 2 s late.
    const [ta] = [...seg.members];
    ta!.cut = true;
    await clock.stall(2_000);
    // The first (late) check gave a grace period: a is not down yet, although silent for 2 s.
    expect(downs).toEqual([]);
    expect(b.isDown('a')).toBe(false);
    await clock.advance(600);
    // (a, cut off, hears nothing either)
    expect(downs.sort()).toEqual(['a saw b down', 'b saw a down']);
    a.close();
    b.close();
  });
  it('a stall gives no grace to a peer already down: a dead director\'s MAC stays out of liveDirectorMacs', async () => {
    const { clock, seg, downs, a, b } = pair();
    await a.setInterfaces(['eth0']);
    await b.setInterfaces(['eth0']);
    await clock.advance(300);
    const [ta] = [...seg.members];
    ta!.mac = '02:00:00:00:00:0a';
    await clock.advance(300);
    expect(b.liveDirectorMacs(['02:00:00:00:00:0a'])).toEqual(['02:00:00:00:00:0a']);
    // a dies; b judges it down at its next checks.
    ta!.cut = true;
    await clock.advance(1_000);
    expect(downs).toContain('b saw a down');
    // Then b's own process stalls (a bind, a netlink call): its late check must not bring a back to life.
    await clock.stall(2_000);
    expect(b.isAlive('a')).toBe(false);
    expect(b.isDown('a')).toBe(true);
    expect(b.liveDirectorMacs(['02:00:00:00:00:0a'])).toEqual([]);
    // Heard again: alive again.
    ta!.cut = false;
    await clock.advance(200);
    expect(b.isAlive('a')).toBe(true);
    a.close();
    b.close();
  });
});

describe('early takeover on director heartbeats (DirectorFailover, fake Lease store and segment)', () => {
  const cluster = (heartbeats: boolean) => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const seg = new FakeSegment(clock);
    const node = (name: string) => {
      const api = store.view(name);
      const events: Array<{ t: number; ev: FailoverEvent }> = [];
      const transport = seg.transport();
      const f = new DirectorFailover({
        api, namespace: 'lvs-system', node: name, settings, clock, random: () => 0, log,
        onChange: (ev) => events.push({ t: clock.now(), ev }),
        ...(heartbeats ? { heartbeat: { transport, intervalMs: 100, interfaceOf: async () => 'eth0' } } : {}),
      });
      // The agent's Lease watch: every write is observed by the other director.
      store.watchers.push((leaseName, l) => f.elections.observe(leaseName, l));
      return { f, api, events, transport };
    };
    return { clock, store, a: node('director-a'), b: node('director-b') };
  };

  /** Both directors planned, a preferred; after 5 s a holds the VIP and b is its standby. */
  const settled = async (heartbeats: boolean) => {
    const c = cluster(heartbeats);
    await c.a.f.setPlan([svc(true)]);
    await c.b.f.setPlan([svc(false)]);
    await c.clock.advance(5_000);
    return c;
  };
  /** Stop as a crash would (no release): what is asserted must not change while stopping. */
  const stopBoth = async (...nodes: Array<{ f: DirectorFailover }>): Promise<void> => {
    for (const n of nodes) await n.f.stop({ release: false });
  };

  /** a holds; then a dies (no renewals, no heartbeats): when does b take over, counted from the death? */
  const takeoverAfterDeath = async (heartbeats: boolean): Promise<number> => {
    const { clock, a, b } = await settled(heartbeats);
    expect(a.f.elections.get('192.0.2.40')?.state()).toBe('holding');
    expect(b.f.elections.get('192.0.2.40')?.state()).toBe('standby');
    // Die just after a renewal (the worst case for the standby: a whole renew interval of the holder's credit).
    const dead = clock.now();
    a.api.partitioned = true;
    a.transport.cut = true;
    await clock.advance(5_000);
    const took = b.events.find((e) => e.ev.type === 'hold');
    expect(took?.ev).toMatchObject({ type: 'hold', cause: 'expired', previousHolder: 'director-a' });
    await stopBoth(a, b);
    return took!.t - dead;
  };

  it('takes a silent, unrenewed holder\'s Lease after 2 renew intervals instead of the lease duration', async () => {
    const withHeartbeats = await takeoverAfterDeath(true);
    const leaseOnly = await takeoverAfterDeath(false);
    expect(leaseOnly).toBeGreaterThanOrEqual(1_500); // 2 s from the last observed renewal
    expect(withHeartbeats).toBeLessThanOrEqual(1_000); // 1 s from it, and 500 ms of silence
    expect(withHeartbeats).toBeGreaterThanOrEqual(500);
  });

  it('never takes the Lease from a holder that still renews, although its heartbeats stopped', async () => {
    const { clock, a, b } = await settled(true);
    a.transport.cut = true; // multicast blocked, apiserver fine
    await clock.advance(30_000);
    expect(b.events).toEqual([]);
    expect(a.f.elections.get('192.0.2.40')?.state()).toBe('holding');
    await stopBoth(a, b);
  });

  it('a holder whose heartbeats still arrive but that cannot renew keeps the VIP for 10 lease durations, then the Lease expires', async () => {
    const { clock, a, b } = await settled(true);
    const cut = clock.now();
    a.api.partitioned = true; // apiserver unreachable (or too slow), segment fine
    await clock.advance(15_000);
    // No takeover while the holder is heard: it keeps serving ('retained'), nobody else binds.
    expect(b.events).toEqual([]);
    expect(a.f.elections.get('192.0.2.40')?.state()).toBe('retained');
    await clock.advance(10_000);
    const took = b.events.find((e) => e.ev.type === 'hold');
    expect(took).toBeDefined();
    expect(took!.t - cut).toBeGreaterThanOrEqual(19_500);
    expect(took!.t - cut).toBeLessThanOrEqual(21_000);
    await stopBoth(a, b);
  });

  it('a holder that released its Lease is replaced at once, although its heartbeats still arrive', async () => {
    const { clock, a, b } = await settled(true);
    const t = clock.now();
    await a.f.setPlan([]); // no longer planned here: releases the Lease (heartbeats stop with the plan)
    await clock.advance(1_000);
    const took = b.events.find((e) => e.ev.type === 'hold');
    expect(took?.ev).toMatchObject({ cause: 'released' });
    expect(took!.t - t).toBeLessThanOrEqual(600);
    await stopBoth(a, b);
  });

  it('a stall of the whole node (both directors paused 2.5 s) moves nothing: the standby judges no one before it has read what arrived', async () => {
    const { clock, a, b } = await settled(true);
    await clock.stall(2_500);
    await clock.advance(5_000);
    expect(b.events).toEqual([]);
    expect(a.f.elections.get('192.0.2.40')?.state()).toBe('holding');
    await stopBoth(a, b);
  });

  it('sends heartbeats on the planned VIPs\' interfaces only while directing', async () => {
    const { clock, a, b } = cluster(true);
    await a.f.setPlan([svc(true)]);
    expect(a.transport.ifnames).toEqual(['eth0']);
    await clock.advance(1_000);
    expect(a.transport.sent).toBeGreaterThanOrEqual(9);
    await a.f.setPlan([]);
    expect(a.transport.ifnames).toEqual([]);
    const sent = a.transport.sent;
    await clock.advance(1_000);
    expect(a.transport.sent).toBe(sent);
    await a.f.stop();
    await b.f.stop();
  });
});
