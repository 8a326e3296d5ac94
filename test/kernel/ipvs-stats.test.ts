// Real traffic through a DR setup programmed by IpvsClient shows up in the 64-bit counters, and
// they agree with `ipvsadm -Ln --stats --exact`. The VM's root netns is the director (the jest
// process cannot enter another netns): its bridge carries the DIP and the VIP; client and two
// realservers are namespaces on that bridge, the realservers with the VIP on lo and ARP suppressed.
import { jest } from '@jest/globals';
import { NetLab, assertInLabVm, exec } from '../vm/netns.ts';
import { IpvsClient } from '../../src/ipvs/client.ts';
import { expectedIpvsadmList, parseIpvsadmList } from '../../src/ipvs/ipvsadm.ts';
import type { Destination, Service, ServiceState } from '../../src/ipvs/types.ts';
import { destination } from '../../src/ipvs/types.ts';

assertInLabVm();
jest.setTimeout(300_000);

const VIP = '192.168.56.40';
const REQUESTS = 20;
const svc: Service = { af: 'ipv4', protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff };
const rs = (address: string): Destination => destination(address, 80);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The counters (not the decaying rate estimates) of a service and its destinations, as text. */
const counters = (s: ServiceState | undefined): string =>
  JSON.stringify([s?.stats, ...(s?.destinations ?? []).map((d) => d.stats)].map((x) => x && [x.conns, x.inpkts, x.outpkts, x.inbytes, x.outbytes].map(String)));

/** Our view of the one service, once the estimator has folded the per-CPU counters (two equal reads). */
async function settled(client: IpvsClient, done: (s: ServiceState) => boolean): Promise<ServiceState> {
  const deadline = Date.now() + 60_000;
  let prev = '';
  for (;;) {
    const [s] = await client.listServices();
    const now = counters(s);
    if (s && done(s) && now === prev) return s;
    if (Date.now() > deadline) throw new Error(`counters did not settle: ${now}`);
    prev = now;
    await sleep(2500); // the estimator folds per-CPU counters every 2 s
  }
}

describe('64-bit stats from real DR traffic', () => {
  const lab = new NetLab();
  const client = new IpvsClient();
  let clientNs: string;

  beforeAll(async () => {
    await client.flushAllServices();
    const br = await lab.addBridge('ipvsbr0', { addresses: ['192.168.56.34/24', `${VIP}/32`] });
    clientNs = await lab.addNetns('client');
    await lab.connect(clientNs, br, { addresses: ['192.168.56.10/24'] });
    for (const [name, ip] of [['web1', '192.168.56.37'], ['web2', '192.168.56.38']] as const) {
      const ns = await lab.addNetns(name);
      // ARP suppression before the VIP exists, or the realserver answers ARP for it.
      for (const k of ['all', 'default', 'lo']) {
        await lab.sysctl(ns, `net/ipv4/conf/${k}/arp_ignore`, 1);
        await lab.sysctl(ns, `net/ipv4/conf/${k}/arp_announce`, 2);
      }
      await lab.connect(ns, br, { addresses: [`${ip}/24`] });
      await lab.sysctl(ns, 'net/ipv4/conf/eth0/arp_ignore', 1);
      await lab.sysctl(ns, 'net/ipv4/conf/eth0/arp_announce', 2);
      await lab.addAddress(ns, 'lo', `${VIP}/32`);
      await lab.startHttpServer(ns, { name });
    }
    await client.addService(svc);
    await client.addDestination(svc, rs('192.168.56.37'));
    await client.addDestination(svc, rs('192.168.56.38'));
  });

  afterAll(async () => {
    await client.flushAllServices().catch(() => undefined);
    client.close();
    await lab.destroy();
  });

  it('connections, packets and bytes are counted per service and per destination, as ipvsadm sees them', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < REQUESTS; i++) bodies.push((await lab.httpGet(clientNs, `http://${VIP}/`)).trim());
    expect(new Set(bodies)).toEqual(new Set(['web1', 'web2']));

    const s = await settled(client, (x) => x.stats.conns >= BigInt(REQUESTS));
    expect(typeof s.stats.conns).toBe('bigint');
    expect(s.stats.conns).toBe(BigInt(REQUESTS));
    expect(s.stats.inpkts).toBeGreaterThanOrEqual(BigInt(REQUESTS * 3));
    expect(s.stats.inbytes).toBeGreaterThan(s.stats.inpkts * 40n);
    // DR: replies go straight from the realservers to the client, never through the director.
    expect(s.stats.outpkts).toBe(0n);
    expect(s.stats.outbytes).toBe(0n);
    const perDest = s.destinations.map((d) => d.stats);
    expect(perDest.every((d) => d.conns > 0n)).toBe(true);
    expect(perDest.reduce((a, d) => a + d.conns, 0n)).toBe(s.stats.conns);
    expect(perDest.reduce((a, d) => a + d.inbytes, 0n)).toBe(s.stats.inbytes);

    const oracle = parseIpvsadmList((await exec(null, ['ipvsadm', '-L', '-n', '--stats', '--exact'])).stdout);
    const [again] = await client.listServices();
    expect(counters(again)).toEqual(counters(s)); // no counter moved while ipvsadm read
    const sortDests = (rows: ReturnType<typeof parseIpvsadmList>) =>
      rows.map((r) => ({ ...r, destinations: [...r.destinations].sort((a, b) => a.destination.localeCompare(b.destination)) }));
    expect(sortDests(oracle)).toEqual(sortDests(expectedIpvsadmList([s], 'stats')));
  });

  it('a weight-0 destination gets no new connections', async () => {
    await client.updateDestination(svc, { ...rs('192.168.56.38'), weight: 0 });
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) bodies.push((await lab.httpGet(clientNs, `http://${VIP}/`)).trim());
    expect(new Set(bodies)).toEqual(new Set(['web1']));
    await client.updateDestination(svc, rs('192.168.56.38'));
  });

  it('ZERO resets the counters of the service and its destinations', async () => {
    // ZERO takes the last estimator fold as the new baseline: traffic still in per-CPU counters would
    // reappear afterwards. Let the estimator (2 s period) fold everything first.
    await settled(client, () => true);
    await sleep(2500);
    await client.zero(svc);
    const s = await settled(client, (x) => x.stats.conns === 0n);
    expect(s.destinations.every((d) => d.stats.conns === 0n && d.stats.inbytes === 0n)).toBe(true);
    const oracle = parseIpvsadmList((await exec(null, ['ipvsadm', '-L', '-n', '--stats', '--exact'])).stdout);
    expect(oracle[0]?.fields).toEqual(['0', '0', '0', '0', '0']);
  });
});
