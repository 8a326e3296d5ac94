import { diffDirector, drainKey, type DesiredService } from '../../../src/agent/director/diff.ts';
import { ipvsService, ipvsDestination } from '../../../src/agent/director/desired.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import type { Destination, ServiceState } from '../../../src/ipvs/types.ts';
import { serviceKey } from '../../../src/ipvs/keys.ts';
import { SvcFlag } from '../../../src/ipvs/constants.ts';

const ZERO = { conns: 0n, inpkts: 0n, outpkts: 0n, inbytes: 0n, outbytes: 0n, cps: 0n, inpps: 0n, outpps: 0n, inbps: 0n, outbps: 0n };

const planned = (over: Partial<PlannedService> = {}): PlannedService => ({
  id: 'lab/web', generation: 1, vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: true, healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: [
    { realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    { realServer: 'lab/web2', address: '192.168.56.38', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
  ],
  ...over,
});

const desiredOf = (p: PlannedService, weights: Record<string, number> = {}): DesiredService => ({
  owner: p.id,
  service: ipvsService(p),
  destinations: p.destinations.map((d) => ipvsDestination(p, d, weights[d.address] ?? d.weight)),
  drainTimeoutSeconds: p.drainTimeoutSeconds,
});

/** The kernel state after applying a desired service exactly (what a dump returns). */
const kernelOf = (d: DesiredService, conns: Record<string, number> = {}): ServiceState => ({
  service: { ...d.service, flags: d.service.flags | SvcFlag.HASHED },
  stats: ZERO,
  destinations: d.destinations.map((destination: Destination) => ({ destination: { ...destination }, stats: ZERO, counters: { activeConns: conns[destination.address] ?? 0, inactiveConns: 0, persistConns: 0 } })),
});

describe('mapping to IPVS', () => {
  it('DR service and destinations', () => {
    const d = desiredOf(planned());
    expect(d.service).toEqual({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
    expect(d.destinations[0]).toEqual({ address: '192.168.56.37', port: 80, af: 'ipv4', forwarding: 'droute', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 });
  });
  it('connection thresholds: absent in the plan means 0', () => {
    const d = desiredOf(planned({ destinations: [
      { realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1 },
      { realServer: 'lab/web2', address: '192.168.56.38', port: 80, weight: 1, upperThreshold: 100, lowerThreshold: 10 },
    ] }));
    expect(d.destinations.map((x) => [x.upperThreshold, x.lowerThreshold])).toEqual([[0, 0], [100, 10]]);
  });
  it('persistence with netmask, one-packet UDP, sh flags, IPv6, NAT and Tunnel', () => {
    expect(ipvsService(planned({ persistence: { timeoutSeconds: 600, netmask: '255.255.255.0' } }))).toMatchObject({ flags: SvcFlag.PERSISTENT, timeout: 600, netmask: 0xffffff00 });
    expect(ipvsService(planned({ protocol: 'UDP', onePacket: true, scheduler: 'sh', schedulerFlags: ['sh-fallback', 'sh-port'] })).flags).toBe(SvcFlag.ONEPACKET | SvcFlag.SCHED1 | SvcFlag.SCHED2);
    expect(ipvsService(planned({ vip: '2001:db8::40', persistence: { timeoutSeconds: 60, netmask: '64' } }))).toMatchObject({ af: 'ipv6', netmask: 64 });
    expect(ipvsService(planned({ vip: '2001:db8::40' })).netmask).toBe(128);
    const nat = planned({ forwarding: 'NAT' });
    expect(ipvsDestination(nat, nat.destinations[0]!, 5)).toMatchObject({ forwarding: 'masq', weight: 5 });
    const tun = planned({ forwarding: 'Tunnel' });
    expect(ipvsDestination(tun, tun.destinations[0]!, 1).forwarding).toBe('tunnel');
  });
});

describe('diffDirector', () => {
  const want = desiredOf(planned());
  const key = serviceKey(want.service);
  const owned = new Map([[key, 'lab/web']]);

  it('the same operations whatever order the kernel lists destinations in, and however it writes their addresses', () => {
    const v6 = planned({ vip: '2001:db8::40', destinations: [
      { realServer: 'lab/web1', address: '2001:db8::37', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
      { realServer: 'lab/web2', address: '2001:db8::38', port: 8080, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
      { realServer: 'lab/web3', address: '2001:db8::39', port: 80, weight: 2, upperThreshold: 0, lowerThreshold: 0 },
    ] });
    const cases: Array<[string, DesiredService, (k: ServiceState) => ServiceState]> = [
      ['as desired', desiredOf(planned()), (k) => k],
      ['reversed', desiredOf(planned()), (k) => ({ ...k, destinations: [...k.destinations].reverse() })],
      ['a weight changed behind our back', desiredOf(planned()), (k) => ({ ...k, destinations: k.destinations.map((d, i) => (i === 1 ? { ...d, destination: { ...d.destination, weight: 7 } } : d)) })],
      ['a weight changed, reversed', desiredOf(planned()), (k) => ({ ...k, destinations: k.destinations.map((d, i) => (i === 1 ? { ...d, destination: { ...d.destination, weight: 7 } } : d)).reverse() })],
      ['a foreign one appended', desiredOf(planned()), (k) => ({ ...k, destinations: [...k.destinations, { ...k.destinations[0]!, destination: { ...k.destinations[0]!.destination, address: '192.168.56.99' } }] })],
      ['one missing, one foreign', desiredOf(planned()), (k) => ({ ...k, destinations: [k.destinations[0]!, { ...k.destinations[1]!, destination: { ...k.destinations[1]!.destination, address: '192.168.56.99' } }] })],
      ['IPv6 written in full by the kernel', desiredOf(v6), (k) => ({ ...k, destinations: k.destinations.map((d) => ({ ...d, destination: { ...d.destination, address: d.destination.address.replace('2001:db8::', '2001:0db8:0000:0000:0000:0000:0000:00') } })) })],
      ['IPv6, a port changed', desiredOf(v6), (k) => ({ ...k, destinations: k.destinations.map((d, i) => (i === 2 ? { ...d, destination: { ...d.destination, port: 81 } } : d)) })],
    ];
    for (const [name, d, kernel] of cases) {
      const k = serviceKey(d.service);
      const base = { owned: new Map([[k, d.owner]]), draining: new Map<string, number>(), now: 0 };
      const got = diffDirector({ ...base, desired: [d], actual: [kernel(kernelOf(d))] });
      // What the keyed comparison alone gives: the same kernel, its destinations in an order the fast path never takes.
      const shuffled = kernel(kernelOf(d));
      const keyed = diffDirector({ ...base, desired: [d], actual: [{ ...shuffled, destinations: [...shuffled.destinations.slice(1), shuffled.destinations[0]!] }] });
      const norm = (ops: typeof got.ops): string[] => ops.map((o) => `${o.op} ${'destination' in o ? `${o.destination.address}:${o.destination.port}/${o.destination.weight}` : ''}`).sort();
      expect({ name, ops: norm(got.ops) }).toEqual({ name, ops: norm(keyed.ops) });
      expect({ name, draining: [...got.draining] }).toEqual({ name, draining: [...keyed.draining] });
    }
    expect(diffDirector({ owned, draining: new Map(), now: 0, desired: [want], actual: [kernelOf(want)] }).ops).toEqual([]);
  });

  it('empty table: one service and two destinations', () => {
    const r = diffDirector({ desired: [want], actual: [], owned: new Map(), draining: new Map(), now: 0 });
    expect(r.ops.map((o) => o.op)).toEqual(['addService', 'addDestination', 'addDestination']);
    expect(r.drift).toBe(0);
  });

  it('in sync (HASHED ignored): nothing to do', () => {
    expect(diffDirector({ desired: [want], actual: [kernelOf(want)], owned, draining: new Map(), now: 0 }).ops).toEqual([]);
  });

  it('a weight change is exactly one updateDestination', () => {
    const next = desiredOf(planned(), { '192.168.56.38': 5 });
    const r = diffDirector({ desired: [next], actual: [kernelOf(want)], owned, draining: new Map(), now: 0 });
    expect(r.ops).toEqual([{ op: 'updateDestination', owner: 'lab/web', service: next.service, destination: next.destinations[1], reason: 'changed' }]);
  });

  it('a scheduler change is one updateService', () => {
    const next = desiredOf(planned({ scheduler: 'wlc' }));
    expect(diffDirector({ desired: [next], actual: [kernelOf(want)], owned, draining: new Map(), now: 0 }).ops.map((o) => o.op)).toEqual(['updateService']);
  });

  it('foreign services are never touched, even when they collide with a desired one', () => {
    const foreign = kernelOf(desiredOf(planned({ vip: '10.9.9.9' })));
    const r = diffDirector({ desired: [want], actual: [kernelOf(want), foreign], owned: new Map(), draining: new Map(), now: 0 });
    expect(r.ops).toEqual([]);
    expect(r.conflicts).toEqual([{ owner: 'lab/web', service: '192.168.56.40:80/TCP' }]);
  });

  it('owned services no longer desired are deleted; foreign ones stay', () => {
    const foreign = kernelOf(desiredOf(planned({ vip: '10.9.9.9' })));
    const r = diffDirector({ desired: [], actual: [kernelOf(want), foreign], owned, draining: new Map(), now: 0 });
    expect(r.ops).toEqual([{ op: 'deleteService', owner: 'lab/web', service: kernelOf(want).service }]);
  });

  it('drift: an owned service flushed by someone is re-created and counted', () => {
    const r = diffDirector({ desired: [want], actual: [], owned, draining: new Map(), now: 0 });
    expect(r.drift).toBe(1);
    expect(r.ops[0]!.op).toBe('addService');
  });

  describe('change-driven runs (`removed` given)', () => {
    const other = desiredOf(planned({ id: 'lab/other', vip: '192.168.56.41' }));
    const otherKey = serviceKey(other.service);
    const both = new Map([[key, 'lab/web'], [otherKey, 'lab/other']]);

    it('only the named keys are candidates for deletion: owned services not diffed stay', () => {
      const r = diffDirector({ desired: [], actual: [kernelOf(want), kernelOf(other)], owned: both, draining: new Map(), now: 0, removed: [otherKey] });
      expect(r.ops).toEqual([{ op: 'deleteService', owner: 'lab/other', service: kernelOf(other).service }]);
    });

    it('a named key that is foreign, or desired again, is not deleted', () => {
      const foreign = kernelOf(desiredOf(planned({ vip: '10.9.9.9' })));
      const r = diffDirector({ desired: [want], actual: [kernelOf(want), foreign], owned, draining: new Map(), now: 0, removed: [key, serviceKey(foreign.service)] });
      expect(r.ops).toEqual([]);
    });

    it('drain state of services not diffed is carried over; that of deleted ones is dropped', () => {
      const dOther = drainKey(other.service, other.destinations[0]!);
      const dWeb = drainKey(want.service, want.destinations[1]!);
      const draining = new Map([[dOther, 500], [dWeb, 700]]);
      const kept = diffDirector({ desired: [], actual: [kernelOf(want), kernelOf(other)], owned: both, draining, now: 1000, removed: [] });
      expect([...kept.draining]).toEqual([[dOther, 500], [dWeb, 700]]);
      const gone = diffDirector({ desired: [], actual: [kernelOf(want), kernelOf(other)], owned: both, draining, now: 1000, removed: [otherKey] });
      expect([...gone.draining]).toEqual([[dWeb, 700]]);
    });
  });

  describe('graceful drain of a removed TCP realserver', () => {
    const fewer = desiredOf(planned({ destinations: planned().destinations.slice(0, 1) }));
    const dk = drainKey(want.service, want.destinations[1]!);

    it('with live connections: weight 0 first, remembered as draining', () => {
      const r = diffDirector({ desired: [fewer], actual: [kernelOf(want, { '192.168.56.38': 3 })], owned, draining: new Map(), now: 1000 });
      expect(r.ops).toEqual([{ op: 'updateDestination', owner: 'lab/web', service: fewer.service, destination: { ...want.destinations[1], weight: 0 }, reason: 'drain' }]);
      expect(r.draining.get(dk)).toBe(1000);
    });
    it('still connected, within the timeout: nothing more', () => {
      const drained = kernelOf(want, { '192.168.56.38': 3 });
      (drained.destinations[1]!.destination as { weight: number }).weight = 0;
      const r = diffDirector({ desired: [fewer], actual: [drained], owned, draining: new Map([[dk, 1000]]), now: 30_000 });
      expect(r.ops).toEqual([]);
      expect(r.draining.get(dk)).toBe(1000);
    });
    it('deleted once its connections reach zero', () => {
      const r = diffDirector({ desired: [fewer], actual: [kernelOf(want)], owned, draining: new Map([[dk, 1000]]), now: 2000 });
      expect(r.ops.map((o) => o.op)).toEqual(['deleteDestination']);
      expect(r.draining.size).toBe(0);
    });
    it('deleted when the drain timeout passes', () => {
      const r = diffDirector({ desired: [fewer], actual: [kernelOf(want, { '192.168.56.38': 3 })], owned, draining: new Map([[dk, 1000]]), now: 61_000 });
      expect(r.ops.map((o) => o.op)).toEqual(['deleteDestination']);
    });
    it('UDP realservers are removed at once', () => {
      const udp = desiredOf(planned({ protocol: 'UDP' }));
      const udpFewer = desiredOf(planned({ protocol: 'UDP', destinations: planned().destinations.slice(0, 1) }));
      const r = diffDirector({ desired: [udpFewer], actual: [kernelOf(udp, { '192.168.56.38': 3 })], owned: new Map([[serviceKey(udp.service), 'lab/web']]), draining: new Map(), now: 0 });
      expect(r.ops.map((o) => o.op)).toEqual(['deleteDestination']);
    });
    it('a draining realserver that comes back gets its weight back', () => {
      const drained = kernelOf(want, { '192.168.56.38': 3 });
      (drained.destinations[1]!.destination as { weight: number }).weight = 0;
      const r = diffDirector({ desired: [want], actual: [drained], owned, draining: new Map([[dk, 1000]]), now: 2000 });
      expect(r.ops).toEqual([expect.objectContaining({ op: 'updateDestination', reason: 'changed', destination: want.destinations[1] })]);
      expect(r.draining.size).toBe(0);
    });
  });
});
