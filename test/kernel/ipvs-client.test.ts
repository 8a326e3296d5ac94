// IpvsClient against the lab VM's real 6.1 kernel, with ipvsadm 1.31 (an independent netlink
// implementation) as the oracle for every state. Runs in the VM's root netns (the jest process
// cannot setns); the table there belongs to these suites: each test starts from a flushed table.
import { jest } from '@jest/globals';
import { assertInLabVm, exec } from '../vm/netns.ts';
import { IpvsClient } from '../../src/ipvs/client.ts';
import { SvcFlag, TunFlag } from '../../src/ipvs/constants.ts';
import { IpvsError } from '../../src/ipvs/errors.ts';
import type { IpvsOp } from '../../src/ipvs/interface.ts';
import { expectedIpvsadmList, formatIpvsadmRules, parseIpvsadmList, parseIpvsadmTimeouts, type ListingMode, type ListingRow } from '../../src/ipvs/ipvsadm.ts';
import type { Destination, Service, ServiceKey, Timeouts } from '../../src/ipvs/types.ts';
import { destination } from '../../src/ipvs/types.ts';
import { openGenericNetlinkSocket } from '../../src/ipvs/transport.ts';

assertInLabVm();
jest.setTimeout(300_000);

const ipvsadm = async (...args: string[]): Promise<string> => (await exec(null, ['ipvsadm', ...args])).stdout;
const lines = (s: string): string[] => s.split('\n').map((l) => l.trim()).filter(Boolean);

const svc: Service = { af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff };
const dest = (address: string, port = 80, rest: Partial<Destination> = {}): Destination => destination(address, port, rest);

const normalizeRows = (rows: ListingRow[]): ListingRow[] =>
  rows
    .map((r) => ({ ...r, destinations: [...r.destinations].sort((a, b) => a.destination.localeCompare(b.destination)) }))
    .sort((a, b) => a.service.localeCompare(b.service));

/** Our dump must equal ipvsadm's view: the -S rules and every -L listing that shows other fields. */
async function expectIpvsadmAgrees(client: IpvsClient): Promise<void> {
  const states = await client.listServices();
  expect(lines(await ipvsadm('-S', '-n')).sort()).toEqual(formatIpvsadmRules(states).sort());
  const modes: Array<[ListingMode, string[]]> = [
    ['plain', []],
    ['thresholds', ['--thresholds']],
    ['persistent-conn', ['--persistent-conn']],
    ['tun-info', ['--tun-info']],
    ['stats', ['--stats', '--exact']],
  ];
  for (const [mode, args] of modes) {
    expect(normalizeRows(parseIpvsadmList(await ipvsadm('-L', '-n', ...args)))).toEqual(normalizeRows(expectedIpvsadmList(states, mode)));
  }
}

async function errorOf(p: Promise<unknown>): Promise<IpvsError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IpvsError) return e;
    throw e;
  }
  throw new Error('expected an IpvsError, the call succeeded');
}

describe('IpvsClient on the lab kernel (root netns, ipvsadm as oracle)', () => {
  const client = new IpvsClient();
  let initialTimeouts: Timeouts;

  beforeAll(async () => {
    initialTimeouts = await client.getTimeouts();
  });
  beforeEach(async () => {
    await client.flushAllServices();
  });
  afterAll(async () => {
    await client.flushAllServices();
    await client.setTimeouts(initialTimeouts);
    client.close();
  });

  it('info: version and connection table size as ipvsadm prints them', async () => {
    const info = await client.info();
    expect(info.version).toBe('1.2.1');
    expect((await ipvsadm('-L', '-n')).split('\n')[0]).toBe(`IP Virtual Server version ${info.version} (size=${info.connTableSize})`);
  });

  it('service lifecycle: add, get one, dump, update, delete', async () => {
    await client.addService(svc);
    expect(await client.getService(svc)).toMatchObject({ service: { ...svc, flags: SvcFlag.HASHED } });
    expect(lines(await ipvsadm('-S', '-n'))).toEqual(['-A -t 192.168.56.40:80 -s rr']);
    await client.updateService({ ...svc, scheduler: 'wlc', flags: SvcFlag.PERSISTENT, timeout: 600, netmask: 0xffffff00 });
    expect(lines(await ipvsadm('-S', '-n'))).toEqual(['-A -t 192.168.56.40:80 -s wlc -p 600 -M 255.255.255.0']);
    expect((await client.dumpServices()).map((e) => e.service)).toEqual([
      { ...svc, scheduler: 'wlc', flags: SvcFlag.PERSISTENT | SvcFlag.HASHED, timeout: 600, netmask: 0xffffff00 },
    ]);
    await expectIpvsadmAgrees(client);
    await client.deleteService(svc);
    expect(await client.getService(svc)).toBeUndefined();
    expect(await ipvsadm('-S', '-n')).toBe('');
  });

  it('destination lifecycle: add, dump, set (weight, thresholds), delete', async () => {
    await client.addService(svc);
    await client.addDestination(svc, dest('10.0.0.1'));
    await client.addDestination(svc, dest('10.0.0.2', 8080, { forwarding: 'masq', weight: 5 }));
    await expectIpvsadmAgrees(client);
    await client.updateDestination(svc, dest('10.0.0.1', 80, { weight: 0, upperThreshold: 100, lowerThreshold: 50 }));
    const dests = await client.listDestinations(svc);
    // The kernel lists the newest destination first.
    expect(dests.map((d) => d.destination.address)).toEqual(['10.0.0.2', '10.0.0.1']);
    expect(dests[1]?.destination).toEqual(dest('10.0.0.1', 80, { weight: 0, upperThreshold: 100, lowerThreshold: 50 }));
    await expectIpvsadmAgrees(client);
    await client.deleteDestination(svc, dest('10.0.0.2', 8080));
    expect(lines(await ipvsadm('-S', '-n'))).toEqual(['-A -t 192.168.56.40:80 -s rr', '-a -t 192.168.56.40:80 -r 10.0.0.1:80 -g -w 0']);
  });

  it('errno for duplicate and missing objects', async () => {
    const missing: ServiceKey = { ...svc, port: 81 };
    await client.addService(svc);
    await client.addDestination(svc, dest('10.0.0.1'));
    const cases: Array<[Promise<unknown>, string, string]> = [
      [client.addService(svc), 'EEXIST', 'EEXIST: NEW_SERVICE 192.168.56.40:80/TCP: service already exists'],
      [client.updateService({ ...svc, port: 81 }), 'ESRCH', 'ESRCH: SET_SERVICE 192.168.56.40:81/TCP: service does not exist'],
      [client.deleteService(missing), 'ESRCH', 'ESRCH: DEL_SERVICE 192.168.56.40:81/TCP: service does not exist'],
      [client.addDestination(missing, dest('10.0.0.1')), 'ESRCH', 'ESRCH: NEW_DEST 192.168.56.40:81/TCP -> 10.0.0.1:80: service does not exist'],
      [client.addDestination(svc, dest('10.0.0.1')), 'EEXIST', 'EEXIST: NEW_DEST 192.168.56.40:80/TCP -> 10.0.0.1:80: destination already exists'],
      [client.updateDestination(svc, dest('10.0.0.9')), 'ENOENT', 'ENOENT: SET_DEST 192.168.56.40:80/TCP -> 10.0.0.9:80: destination does not exist'],
      [client.deleteDestination(svc, dest('10.0.0.9')), 'ENOENT', 'ENOENT: DEL_DEST 192.168.56.40:80/TCP -> 10.0.0.9:80: destination does not exist'],
      [client.addService({ ...svc, port: 82, scheduler: 'nosuch' }), 'ENOENT', 'ENOENT: NEW_SERVICE 192.168.56.40:82/TCP: unknown scheduler or persistence engine'],
      [client.addService({ ...svc, port: 83, protocol: 'udp', pe: 'nosuch' }), 'ENOENT', 'ENOENT: NEW_SERVICE 192.168.56.40:83/UDP: unknown scheduler or persistence engine'],
      [client.zero(missing), 'ESRCH', 'ESRCH: ZERO 192.168.56.40:81/TCP: service does not exist'],
    ];
    for (const [p, code, message] of cases) {
      const e = await errorOf(p);
      expect(e.code).toBe(code);
      expect(e.message).toBe(message);
    }
    // GET_SERVICE doit of a missing service is ESRCH (getService maps it to undefined); GET_DEST of one is an empty dump.
    expect(await client.getService(missing)).toBeUndefined();
    expect(await client.listDestinations(missing)).toEqual([]);
    expect(lines(await ipvsadm('-S', '-n'))).toEqual(['-A -t 192.168.56.40:80 -s rr', '-a -t 192.168.56.40:80 -r 10.0.0.1:80 -g -w 1']);
  });

  it('kernel validation errnos (EINVAL / ERANGE) the fake mimics', async () => {
    await client.addService(svc);
    const v6: Service = { af: 'ipv6', protocol: 'tcp', address: '2001:db8::1', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0 };
    const cases: Array<[string, Promise<unknown>, string]> = [
      ['IPv6 netmask 0', client.addService(v6), 'EINVAL'],
      ['IPv6 netmask 129', client.addService({ ...v6, netmask: 129 }), 'EINVAL'],
      ['weight 2^31', client.addDestination(svc, dest('10.0.0.2', 80, { weight: 2 ** 31 })), 'ERANGE'],
      ['lower > upper threshold', client.addDestination(svc, dest('10.0.0.3', 80, { upperThreshold: 5, lowerThreshold: 6 })), 'ERANGE'],
      ['GUE without port', client.addDestination(svc, dest('10.0.0.4', 80, { forwarding: 'tunnel', tunnelType: 'gue' })), 'EINVAL'],
      ['mixed family without tunnel', client.addDestination(svc, dest('2001:db8::9', 80)), 'EINVAL'],
      ['unspecified address', client.addDestination(svc, dest('0.0.0.0', 80)), 'EINVAL'],
      ['multicast address', client.addDestination(svc, dest('224.0.0.1', 80)), 'EINVAL'],
    ];
    for (const [what, p, code] of cases) {
      const e = await errorOf(p);
      expect(`${what}: ${e.code}`).toBe(`${what}: ${code}`);
    }
    // Upper threshold above INT_MAX (the fake mimics this).
    expect((await errorOf(client.addDestination(svc, dest('10.0.0.5', 80, { upperThreshold: 2 ** 31 })))).code).toBe('EINVAL');
    await expectIpvsadmAgrees(client);
  });

  it('all 13 schedulers (+ none), sh and mh flags', async () => {
    const scheds = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'none'];
    const services: Service[] = scheds.map((s, i) => ({ ...svc, port: 1000 + i, scheduler: s }));
    services.push({ ...svc, port: 2000, scheduler: 'sh', flags: SvcFlag.SH_FALLBACK | SvcFlag.SH_PORT });
    services.push({ ...svc, port: 2001, scheduler: 'sh', flags: SvcFlag.SH_PORT });
    services.push({ ...svc, port: 2002, scheduler: 'mh', flags: SvcFlag.MH_FALLBACK | SvcFlag.MH_PORT });
    services.push({ ...svc, port: 2003, scheduler: 'mh', flags: SvcFlag.MH_FALLBACK });
    for (const s of services) {
      await client.addService(s);
      await client.addDestination(s, dest('10.0.1.1', s.port));
    }
    const got = await client.dumpServices();
    expect(got.map((e) => `${e.service.port} ${e.service.scheduler} ${e.service.flags}`).sort()).toEqual(
      services.map((s) => `${s.port} ${s.scheduler} ${s.flags | SvcFlag.HASHED}`).sort(),
    );
    await expectIpvsadmAgrees(client);
    // Change scheduler and flags in place.
    await client.updateService({ ...svc, port: 2000, scheduler: 'mh', flags: SvcFlag.MH_PORT });
    expect(lines(await ipvsadm('-S', '-n'))).toContain('-A -t 192.168.56.40:2000 -s mh -b mh-port');
  });

  it('IPv6 services and destinations, fwmark services (v4 and v6), persistence with netmask, UDP one-packet, SCTP, port 0, PE sip', async () => {
    const services: Array<[Service, Destination[]]> = [
      [{ af: 'ipv6', protocol: 'tcp', address: '2001:db8::40', port: 80, scheduler: 'wrr', flags: SvcFlag.PERSISTENT, timeout: 100, netmask: 64 }, [
        dest('2001:db8::37', 80, { weight: 3 }),
        dest('2001:db8:0:0:1:0:0:38', 80, { forwarding: 'masq', weight: 2 }),
      ]],
      [{ af: 'ipv6', protocol: 'udp', address: '2001:db8::40', port: 53, scheduler: 'rr', flags: SvcFlag.ONEPACKET, timeout: 0, netmask: 128 }, [dest('2001:db8::53', 53)]],
      [{ af: 'ipv4', fwmark: 1, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff }, [dest('10.0.0.9', 0), dest('10.0.0.10', 0, { weight: 4 })]],
      [{ af: 'ipv6', fwmark: 2, scheduler: 'lc', flags: SvcFlag.PERSISTENT, timeout: 60, netmask: 48 }, [dest('2001:db8::7', 0, { forwarding: 'masq' })]],
      [{ ...svc, port: 443, flags: SvcFlag.PERSISTENT, timeout: 3600, netmask: 0xffffff00 }, [dest('10.0.0.1', 443)]],
      [{ ...svc, protocol: 'udp', port: 5060, scheduler: 'sh', flags: SvcFlag.PERSISTENT | SvcFlag.ONEPACKET | SvcFlag.SH_PORT, timeout: 30, pe: 'sip' }, []],
      [{ ...svc, protocol: 'sctp', port: 5000, scheduler: 'mh', flags: SvcFlag.MH_PORT }, [dest('10.0.0.1', 5000)]],
      [{ ...svc, port: 0, flags: SvcFlag.PERSISTENT, timeout: 360 }, [dest('10.0.0.1', 0)]],
    ];
    for (const [s, ds] of services) {
      await client.addService(s);
      for (const d of ds) await client.addDestination(s, d);
    }
    const states = await client.listServices();
    expect(states).toHaveLength(services.length);
    const v6 = states.find((s) => s.service.af === 'ipv6' && s.service.protocol === 'tcp');
    expect(v6?.service).toMatchObject({ address: '2001:db8::40', netmask: 64, timeout: 100 });
    expect(v6?.destinations.map((d) => d.destination.address).sort()).toEqual(['2001:db8::1:0:0:38', '2001:db8::37']);
    const fw6 = states.find((s) => s.service.fwmark === 2);
    expect(fw6?.service).toEqual({ af: 'ipv6', fwmark: 2, scheduler: 'lc', flags: SvcFlag.PERSISTENT | SvcFlag.HASHED, timeout: 60, netmask: 48 });
    expect(states.find((s) => s.service.pe === 'sip')?.service.port).toBe(5060);
    await expectIpvsadmAgrees(client);
    for (const [s] of services) await client.deleteService(s);
    expect(await ipvsadm('-S', '-n')).toBe('');
  });

  it('forwarding methods: masq, local, droute, tunnel ipip/gue/gre with ports and checksum flags, mixed-family tunnel dest', async () => {
    await client.addService(svc);
    const ds = [
      dest('10.0.0.1', 8080, { forwarding: 'masq', weight: 2 }),
      dest('10.0.0.2', 80, { forwarding: 'local' }),
      dest('10.0.0.3', 80, { forwarding: 'droute', weight: 7, upperThreshold: 1000, lowerThreshold: 10 }),
      dest('10.0.0.4', 80, { forwarding: 'tunnel' }),
      dest('10.0.0.5', 80, { forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: TunFlag.CSUM }),
      dest('10.0.0.6', 80, { forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 5555, tunnelFlags: TunFlag.REMCSUM }),
      dest('10.0.0.7', 80, { forwarding: 'tunnel', tunnelType: 'gre', tunnelFlags: TunFlag.CSUM }),
      dest('2001:db8::8', 80, { forwarding: 'tunnel' }),
    ];
    for (const d of ds) await client.addDestination(svc, d);
    const got = (await client.listDestinations(svc)).map((e) => e.destination);
    expect([...got].sort((a, b) => a.address.localeCompare(b.address))).toEqual([...ds].sort((a, b) => a.address.localeCompare(b.address)));
    await expectIpvsadmAgrees(client);
    // Mixed-family destinations must be deleted with their own family.
    await client.deleteDestination(svc, { address: '2001:db8::8', port: 80, af: 'ipv6' });
    expect(lines(await ipvsadm('-S', '-n'))).not.toContain('-a -t 192.168.56.40:80 -r [2001:db8::8]:80 -i -w 1 --tun-type ipip');
  });

  it('SET_DEST rewrites the tunnel fields: switching GUE to DR and back keeps exactly what was sent', async () => {
    await client.addService(svc);
    const gue = dest('10.0.0.5', 80, { forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: TunFlag.CSUM });
    await client.addDestination(svc, gue);
    await client.updateDestination(svc, { ...gue, weight: 3 });
    expect((await client.listDestinations(svc))[0]?.destination).toEqual({ ...gue, weight: 3 });
    await client.updateDestination(svc, dest('10.0.0.5', 80, { forwarding: 'droute' }));
    expect((await client.listDestinations(svc))[0]?.destination).toEqual(dest('10.0.0.5', 80));
    await client.updateDestination(svc, gue);
    expect(lines(await ipvsadm('-S', '-n'))).toContain('-a -t 192.168.56.40:80 -r 10.0.0.5:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum');
  });

  it('timeouts: get and set (0/absent = unchanged), as ipvsadm -L --timeout shows them', async () => {
    expect(parseIpvsadmTimeouts(await ipvsadm('-L', '--timeout'))).toEqual(await client.getTimeouts());
    await client.setTimeouts({ tcp: 100, tcpFin: 20, udp: 30 });
    expect(await client.getTimeouts()).toEqual({ tcp: 100, tcpFin: 20, udp: 30 });
    expect(await ipvsadm('-L', '--timeout')).toBe('Timeout (tcp tcpfin udp): 100 20 30\n');
    await client.setTimeouts({ udp: 60 });
    await client.setTimeouts({ tcp: 0 });
    expect(parseIpvsadmTimeouts(await ipvsadm('-L', '--timeout'))).toEqual({ tcp: 100, tcpFin: 20, udp: 60 });
    await client.setTimeouts(initialTimeouts);
    expect(parseIpvsadmTimeouts(await ipvsadm('-L', '--timeout'))).toEqual(initialTimeouts);
  });

  it('zero: all services and one service', async () => {
    await client.addService(svc);
    await client.zero();
    await client.zero(svc);
    await expectIpvsadmAgrees(client);
  });

  it('apply pipelines 1,000 services × 4 destinations; failures are reported per op, the rest lands', async () => {
    const ops: IpvsOp[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const s: Service = { ...svc, address: `10.${10 + (i >> 8)}.${i & 255}.1`, port: 80 };
      ops.push({ op: 'addService', service: s });
      expected.push(`-A -t ${s.address}:80 -s rr`);
      for (let j = 1; j <= 4; j++) {
        ops.push({ op: 'addDestination', service: s, destination: dest(`172.16.${j}.${(i % 250) + 1}`, 80, { weight: j }) });
        expected.push(`-a -t ${s.address}:80 -r 172.16.${j}.${(i % 250) + 1}:80 -g -w ${j}`);
      }
    }
    // Two that must fail in the middle of a batch, and a delete that depends on an earlier add.
    ops.splice(300, 0, { op: 'addService', service: ops[0]?.service as Service });
    ops.splice(700, 0, { op: 'deleteDestination', service: svc, destination: dest('10.0.0.1') });
    const before = client.requestCount;
    const results = await client.apply(ops);
    expect(client.requestCount - before).toBe(ops.length);
    expect(results.map((r, i) => (r ? `${i} ${r.code}` : '')).filter(Boolean)).toEqual(['300 EEXIST', '700 ESRCH']);
    expect(lines(await ipvsadm('-S', '-n')).sort()).toEqual(expected.sort());
    await expectIpvsadmAgrees(client);
  });

  it('apply where every op fails: one errno per op, no lost replies (ENOBUFS) even with error replies queueing up', async () => {
    const missing: ServiceKey = { ...svc, port: 9 };
    const ops: IpvsOp[] = Array.from({ length: 3000 }, (_, i) => ({ op: 'addDestination', service: missing, destination: dest(`10.1.${i >> 7}.${(i & 127) + 1}`) }));
    const results = await client.apply(ops);
    const codes: Record<string, number> = {};
    for (const r of results) codes[r?.code ?? 'ok'] = (codes[r?.code ?? 'ok'] ?? 0) + 1;
    expect(codes).toEqual({ ESRCH: 3000 });
    expect(await client.info()).toMatchObject({ version: '1.2.1' });
  });

  it('dumps read synchronously on the binding socket\'s descriptor and through the binding agree, across many datagrams', async () => {
    // In the VM /proc is there: the real socket offers SyncIo (non-blocking descriptor found by port).
    const probe = openGenericNetlinkSocket();
    expect(probe.sync).toBeDefined();
    probe.close();
    expect(probe.sync).toBeUndefined();
    // 400 services (several 32 KiB service datagrams) x 3, and one service with 150 destinations
    // (its destination dump spans ~14 datagrams of at most 4 KiB).
    const ops: IpvsOp[] = [];
    for (let i = 0; i < 400; i++) {
      const s: Service = { ...svc, address: `10.20.${i >> 8}.${i & 255}` };
      ops.push({ op: 'addService', service: s });
      for (let j = 1; j <= 3; j++) ops.push({ op: 'addDestination', service: s, destination: dest(`172.17.${j}.${(i % 250) + 1}`, 80, { weight: j }) });
    }
    ops.push({ op: 'addService', service: svc });
    for (let k = 0; k < 150; k++) ops.push({ op: 'addDestination', service: svc, destination: dest(`10.9.${k >> 8}.${(k & 255) + 1}`, 8080, { weight: k }) });
    expect((await client.apply(ops)).filter(Boolean)).toEqual([]);
    const viaBinding = new IpvsClient({
      socketFactory: () => {
        const s = openGenericNetlinkSocket();
        return { port: s.port, send: s.send, onMessage: s.onMessage, onError: s.onError, ref: s.ref, unref: s.unref, close: s.close };
      },
    });
    try {
      const sync = await client.listServices();
      const async = await viaBinding.listServices();
      expect(sync).toHaveLength(401);
      expect(sync.find((s) => s.service.address === svc.address)?.destinations).toHaveLength(150);
      expect(async).toEqual(sync);
      expect(await viaBinding.listDestinations(svc)).toEqual(await client.listDestinations(svc));
      expect(viaBinding.requestCounts).toMatchObject({ GET_SERVICE: 1, GET_DEST: 402 });
      await expectIpvsadmAgrees(client);
      // Service by service (the agent's sweep): the service dump, then the destinations of any keys, in one
      // turn of the queue, with and without synchronous reads; a service that does not exist has none.
      const gone: Service = { ...svc, port: 81 };
      for (const c of [client, viaBinding]) {
        const entries = await c.dumpServices();
        const dests = await c.listDestinationsOf([...entries.map((e) => e.service), gone]);
        expect(dests.at(-1)).toEqual([]);
        expect(entries.map((e, i) => ({ ...e, destinations: dests[i] }))).toEqual(sync);
      }
      // Interleaved (the agent's read ahead of a full run, metrics): a change queued after the read began
      // lands before it ends; the services nobody changed read as in one piece.
      const slicing = new IpvsClient({ sliceMs: 0 });
      try {
        const order: string[] = [];
        const list = slicing.listServices({ interleave: true }).then((x) => { order.push('read'); return x; });
        const change = slicing.updateDestination(svc, dest('10.9.0.1', 8080, { weight: 777 })).then(() => order.push('change'));
        const [read] = await Promise.all([list, change]);
        expect(order).toEqual(['change', 'read']);
        const others = (xs: typeof sync): typeof sync => xs.filter((s) => s.service.address !== svc.address);
        expect(others(read)).toEqual(others(sync));
        expect([0, 777]).toContain(read.find((s) => s.service.address === svc.address)?.destinations.find((d) => d.destination.address === '10.9.0.1')?.destination.weight);
        expect(slicing.requestCounts).toMatchObject({ GET_SERVICE: 1, GET_DEST: 401, SET_DEST: 1 });
        expect(lines(await ipvsadm('-S', '-n'))).toContain('-a -t 192.168.56.40:80 -r 10.9.0.1:8080 -g -w 777');
        // A budget of 0: one datagram read directly, the rest through the binding, handed on turn by turn.
        expect(await slicing.dumpServices()).toEqual(await client.dumpServices());

      } finally {
        slicing.close();
      }
    } finally {
      viaBinding.close();
    }
  });

  it('a weight change costs exactly one netlink request', async () => {
    await client.addService(svc);
    await client.addDestination(svc, dest('10.0.0.1'));
    const before = client.requestCount;
    await client.updateDestination(svc, dest('10.0.0.1', 80, { weight: 42 }));
    expect(client.requestCount - before).toBe(1);
    expect(lines(await ipvsadm('-S', '-n'))).toContain('-a -t 192.168.56.40:80 -r 10.0.0.1:80 -g -w 42');
  });

  it('concurrent callers are serialised (no EBUSY from overlapping dumps)', async () => {
    const ss = Array.from({ length: 12 }, (_, i): Service => ({ ...svc, port: 3000 + i }));
    await Promise.all(ss.map((s) => client.addService(s)));
    const work: Array<Promise<unknown>> = [];
    for (const s of ss) {
      work.push(client.addDestination(s, dest('10.0.0.1', s.port)), client.listServices(), client.listDestinations(s), client.dumpServices(), client.info());
    }
    await Promise.all(work);
    expect((await client.listServices()).every((s) => s.destinations.length === 1)).toBe(true);
  });

  it('flushAllServices empties the table', async () => {
    await client.addService(svc);
    await client.addService({ af: 'ipv4', fwmark: 5, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
    await client.flushAllServices();
    expect(await ipvsadm('-S', '-n')).toBe('');
    expect(await client.listServices()).toEqual([]);
  });
});
