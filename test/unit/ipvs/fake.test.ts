import { beforeEach, describe, expect, it } from '@jest/globals';
import { SvcFlag } from '../../../src/ipvs/constants.ts';
import { IpvsError } from '../../../src/ipvs/errors.ts';
import { FakeIpvs } from '../../../src/ipvs/fake.ts';
import type { IpvsInterface } from '../../../src/ipvs/interface.ts';
import type { Destination, Service } from '../../../src/ipvs/types.ts';
import { destination } from '../../../src/ipvs/types.ts';

const svc: Service = { af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff };
const d1: Destination = destination('192.168.56.37', 80);
const d2: Destination = { ...d1, address: '192.168.56.38' };

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IpvsError) return `${e.code} ${e.command} ${e.target ?? ''}`.trim();
    throw e;
  }
  return 'ok';
}

describe('FakeIpvs mimics the kernel', () => {
  let ipvs: FakeIpvs;
  beforeEach(() => {
    ipvs = new FakeIpvs();
  });

  it('is an IpvsInterface', () => {
    const i: IpvsInterface = ipvs;
    expect(typeof i.apply).toBe('function');
  });

  it('services: EEXIST on duplicate NEW, ESRCH on SET/DEL/dest ops of a missing one, HASHED on read-back', async () => {
    await ipvs.addService(svc);
    expect(await code(ipvs.addService(svc))).toBe('EEXIST NEW_SERVICE 192.168.56.40:80/TCP');
    const missing = { ...svc, port: 81 };
    expect(await code(ipvs.updateService(missing))).toBe('ESRCH SET_SERVICE 192.168.56.40:81/TCP');
    expect(await code(ipvs.deleteService(missing))).toBe('ESRCH DEL_SERVICE 192.168.56.40:81/TCP');
    expect(await code(ipvs.addDestination(missing, d1))).toBe('ESRCH NEW_DEST 192.168.56.40:81/TCP -> 192.168.56.37:80');
    expect(await ipvs.getService(missing)).toBeUndefined();
    const got = await ipvs.getService(svc);
    expect(got?.service.flags).toBe(SvcFlag.HASHED);
    await ipvs.updateService({ ...svc, flags: SvcFlag.PERSISTENT, timeout: 300 });
    expect((await ipvs.getService(svc))?.service).toMatchObject({ flags: SvcFlag.PERSISTENT | SvcFlag.HASHED, timeout: 300 });
  });

  it('unknown scheduler / PE → ENOENT, IPv6 netmask outside 1..128 → EINVAL', async () => {
    expect(await code(ipvs.addService({ ...svc, scheduler: 'nope' }))).toMatch(/^ENOENT NEW_SERVICE/);
    expect(await code(ipvs.addService({ ...svc, pe: 'xyz' }))).toMatch(/^ENOENT/);
    expect(await code(ipvs.addService({ af: 'ipv6', fwmark: 1, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0 }))).toMatch(/^EINVAL/);
    const all = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'none'];
    for (const [i, s] of all.entries()) await ipvs.addService({ ...svc, port: 1000 + i, scheduler: s });
  });

  it('destinations: EEXIST, ENOENT on SET/DEL of a missing one, ERANGE, EINVAL', async () => {
    await ipvs.addService(svc);
    await ipvs.addDestination(svc, d1);
    expect(await code(ipvs.addDestination(svc, d1))).toBe('EEXIST NEW_DEST 192.168.56.40:80/TCP -> 192.168.56.37:80');
    expect(await code(ipvs.updateDestination(svc, d2))).toBe('ENOENT SET_DEST 192.168.56.40:80/TCP -> 192.168.56.38:80');
    expect(await code(ipvs.deleteDestination(svc, d2))).toBe('ENOENT DEL_DEST 192.168.56.40:80/TCP -> 192.168.56.38:80');
    expect(await code(ipvs.addDestination(svc, { ...d2, weight: 2 ** 31 }))).toMatch(/^ERANGE/);
    expect(await code(ipvs.addDestination(svc, { ...d2, upperThreshold: 5, lowerThreshold: 6 }))).toMatch(/^ERANGE/);
    expect(await code(ipvs.addDestination(svc, { ...d2, forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 0 }))).toMatch(/^EINVAL/);
    expect(await code(ipvs.addDestination(svc, { ...d2, address: '0.0.0.0' }))).toMatch(/^EINVAL/);
    expect(await code(ipvs.addDestination(svc, { ...d2, address: '2001:db8::1', af: 'ipv6' }))).toMatch(/^EINVAL/); // mixed AF without tunnel
    await ipvs.addDestination(svc, { ...d2, address: '2001:db8::1', af: 'ipv6', forwarding: 'tunnel' });
  });

  it('SET_DEST replaces every field, tunnel ones included (absent = zero)', async () => {
    await ipvs.addService(svc);
    await ipvs.addDestination(svc, { ...d1, forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 1 });
    const partial = { address: d1.address, port: 80, af: 'ipv4', forwarding: 'tunnel', weight: 3 } as unknown as Destination;
    await ipvs.updateDestination(svc, partial);
    const [e] = await ipvs.listDestinations(svc);
    expect(e?.destination).toEqual({ ...d1, forwarding: 'tunnel', weight: 3 });
  });

  it('lists newest destination first, address-normalised; GET_DEST of a missing service is empty', async () => {
    await ipvs.addService(svc);
    await ipvs.addDestination(svc, d1);
    await ipvs.addDestination(svc, d2);
    expect((await ipvs.listDestinations(svc)).map((d) => d.destination.address)).toEqual(['192.168.56.38', '192.168.56.37']);
    expect(await ipvs.listDestinations({ ...svc, port: 9 })).toEqual([]);
    await ipvs.addService({ af: 'ipv6', protocol: 'tcp', address: '2001:DB8:0::1', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 128 });
    const all = await ipvs.listServices();
    expect(all.map((s) => s.service.address)).toEqual(['192.168.56.40', '2001:db8::1']);
    expect(all[0]?.destinations).toHaveLength(2);
  });

  it('counts kernel round trips: a weight change costs exactly one request', async () => {
    await ipvs.addService(svc);
    await ipvs.addDestination(svc, d1);
    await ipvs.addDestination(svc, d2);
    ipvs.resetCalls();
    await ipvs.updateDestination(svc, { ...d1, weight: 7 });
    expect(ipvs.requestCount).toBe(1);
    expect(ipvs.calls.updateDestination).toBe(1);
    await ipvs.listServices();
    expect(ipvs.requestCount).toBe(1 + 2); // service dump + one dest dump
  });

  it('apply runs ops in order, one result per op, and counts each op', async () => {
    const res = await ipvs.apply([
      { op: 'addService', service: svc },
      { op: 'addDestination', service: svc, destination: d1 },
      { op: 'addDestination', service: svc, destination: d1 },
      { op: 'deleteService', service: { ...svc, port: 1 } },
    ]);
    expect(res.map((r) => r?.code)).toEqual([undefined, undefined, 'EEXIST', 'ESRCH']);
    expect(ipvs.calls.addDestination).toBe(2);
  });

  it('injected errors, synthetic counters/stats, zero and flush', async () => {
    await ipvs.addService(svc);
    await ipvs.addDestination(svc, d1);
    ipvs.injectError('updateDestination', 'EPERM');
    expect(await code(ipvs.updateDestination(svc, d1))).toMatch(/^EPERM/);
    await ipvs.updateDestination(svc, d1);
    ipvs.setDestinationState(svc, d1, { counters: { activeConns: 4 }, stats: { conns: 9n } });
    ipvs.setServiceStats(svc, { inbytes: 100n });
    let [st] = await ipvs.listServices();
    expect(st?.destinations[0]?.counters.activeConns).toBe(4);
    expect(st?.destinations[0]?.stats.conns).toBe(9n);
    expect(st?.stats.inbytes).toBe(100n);
    await ipvs.zero(svc);
    [st] = await ipvs.listServices();
    expect(st?.destinations[0]?.stats.conns).toBe(0n);
    expect(await code(ipvs.zero({ ...svc, port: 2 }))).toMatch(/^ESRCH ZERO/);
    await ipvs.flushAllServices();
    expect(await ipvs.listServices()).toEqual([]);
  });

  it('returned objects are copies', async () => {
    await ipvs.addService(svc);
    const got = await ipvs.getService(svc);
    (got?.service as { scheduler: string }).scheduler = 'wrr';
    expect((await ipvs.getService(svc))?.service.scheduler).toBe('rr');
  });
});
