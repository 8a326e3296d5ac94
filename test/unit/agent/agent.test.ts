import { FakeIpvs } from '../../../src/ipvs/fake.ts';
import { FakeNetif, FakeArpAnnouncer } from '../../../src/netif/fake.ts';
import { FakeSysctl, defaultSysctls } from '../../../src/sysctl/fake.ts';
import { confKey } from '../../../src/sysctl/keys.ts';
import { MemoryStateStore } from '../../../src/agent/state.ts';
import { DirectorReconciler, type HealthLookup } from '../../../src/agent/director/reconciler.ts';
import { RealServerReconciler } from '../../../src/agent/realserver/reconciler.ts';
import { serviceKey } from '../../../src/ipvs/keys.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';

const log = createLogger('test', 'silent');

const planned = (over: Partial<PlannedService> = {}): PlannedService => ({
  id: 'lab/web', generation: 1, vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: true, healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: [
    { realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    { realServer: 'lab/web2', address: '192.168.56.38', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
  ],
  ...over,
});

function director() {
  const ipvs = new FakeIpvs();
  const netif = new FakeNetif();
  netif.addLink('eth0', { up: true });
  const sysctl = new FakeSysctl(defaultSysctls(['eth0']));
  const state = new MemoryStateStore();
  const arp = new FakeArpAnnouncer();
  let now = 0;
  const rec = new DirectorReconciler({ ipvs, netif, sysctl, arp, state, log, now: () => now, defaultInterface: async () => 'eth0' });
  return { ipvs, netif, sysctl, state, arp, rec, tick: (ms: number) => (now += ms) };
}

const allHealthy: HealthLookup = () => undefined;

describe('director reconciler', () => {
  it('programs IPVS, binds and announces the VIP, sets DR sysctls', async () => {
    const d = director();
    const r = await d.rec.reconcile([planned()], allHealthy);
    expect([...r.services.values()]).toEqual([{ id: 'lab/web', generation: 1, ok: true, errors: [], holdsVip: true, vipHeldSince: 0 }]);
    const table = await d.ipvs.listServices();
    expect(table).toHaveLength(1);
    expect(table[0]!.destinations.map((x) => `${x.destination.address}:${x.destination.port}/${x.destination.forwarding}/${x.destination.weight}`)).toEqual(
      expect.arrayContaining(['192.168.56.37:80/droute/1', '192.168.56.38:80/droute/1']),
    );
    expect((await d.netif.listAddresses('eth0')).map((a) => a.address)).toEqual(['192.168.56.40']);
    expect(d.arp.announcements).toEqual([expect.objectContaining({ ifname: 'eth0', vip: '192.168.56.40' })]);
    expect(await d.sysctl.read(confKey('ipv4', 'all', 'send_redirects'))).toBe('0');
    expect(await d.sysctl.read(confKey('ipv4', 'eth0', 'send_redirects'))).toBe('0');
    expect(d.state.state.services).toEqual({ '192.168.56.40:80/TCP': 'lab/web' });
  });

  it('vipHeldSince: kept while the VIP stays bound, renewed when it is bound again', async () => {
    const d = director();
    d.tick(1000);
    expect((await d.rec.reconcile([planned()], allHealthy)).services.get('lab/web')!.vipHeldSince).toBe(1000);
    d.tick(5000);
    expect((await d.rec.reconcile([planned()], allHealthy)).services.get('lab/web')!.vipHeldSince).toBe(1000);
    d.tick(1000);
    const released = (await d.rec.reconcile([planned({ holdVip: false })], allHealthy)).services.get('lab/web')!;
    expect(released).toMatchObject({ holdsVip: false });
    expect(released.vipHeldSince).toBeUndefined();
    d.tick(1000);
    expect((await d.rec.reconcile([planned()], allHealthy)).services.get('lab/web')!.vipHeldSince).toBe(8000);
  });

  it('is idempotent: a second reconcile changes nothing', async () => {
    const d = director();
    await d.rec.reconcile([planned()], allHealthy);
    d.ipvs.resetCalls();
    const r = await d.rec.reconcile([planned()], allHealthy);
    expect(r.ops).toBe(0);
    expect(d.ipvs.calls.addService + d.ipvs.calls.addDestination + d.ipvs.calls.updateDestination + d.ipvs.calls.deleteService).toBe(0);
  });

  it('an unhealthy destination gets weight 0 with one SET_DEST, and its weight back on recovery', async () => {
    const d = director();
    await d.rec.reconcile([planned()], allHealthy);
    d.ipvs.resetCalls();
    const down: HealthLookup = (_s, a) => a !== '192.168.56.37';
    await d.rec.reconcile([planned()], down);
    expect(d.ipvs.calls.updateDestination).toBe(1);
    const w = async (): Promise<number | undefined> => (await d.ipvs.listServices())[0]!.destinations.find((x) => x.destination.address === '192.168.56.37')?.destination.weight;
    expect(await w()).toBe(0);
    await d.rec.reconcile([planned()], allHealthy);
    expect(await w()).toBe(1);
  });

  it('never touches foreign services, and reports a collision with one', async () => {
    const d = director();
    await d.ipvs.addService({ af: 'ipv4', protocol: 'tcp', address: '10.9.9.9', port: 443, scheduler: 'wlc', flags: 0, timeout: 0, netmask: 0xffffffff });
    await d.ipvs.addService({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.41', port: 80, scheduler: 'wlc', flags: 0, timeout: 0, netmask: 0xffffffff });
    const r = await d.rec.reconcile([planned(), planned({ id: 'lab/other', vip: '192.168.56.41' })], allHealthy);
    expect([...r.services.values()].find((s) => s.id === 'lab/other')).toMatchObject({ ok: false, errors: [expect.stringContaining('EEXIST: 192.168.56.41:80/TCP exists in the kernel and is not owned')] });
    expect([...r.services.values()].find((s) => s.id === 'lab/web')!.ok).toBe(true);
    await d.rec.reconcile([], allHealthy);
    const left = (await d.ipvs.listServices()).map((s) => serviceKey(s.service)).sort();
    expect(left).toEqual(['10.9.9.9:443/TCP', '192.168.56.41:80/TCP']);
  });

  it('teardown removes its services and VIP and restores sysctls, keeping a VIP it found bound', async () => {
    const d = director();
    await d.netif.addVip('eth0', '192.168.56.99');
    await d.rec.reconcile([planned(), planned({ id: 'lab/pre', vip: '192.168.56.99' })], allHealthy);
    await d.rec.reconcile([], allHealthy);
    expect(await d.ipvs.listServices()).toEqual([]);
    expect((await d.netif.listAddresses('eth0')).map((a) => a.address)).toEqual(['192.168.56.99']);
    expect(await d.sysctl.read(confKey('ipv4', 'all', 'send_redirects'))).toBe('1');
    expect(await d.sysctl.owners()).toEqual([]);
    expect(d.state.state).toEqual({ version: 1, services: {}, vips: [], draining: {} });
  });

  it('a restarted agent adopts its objects without re-creating them', async () => {
    const d = director();
    await d.rec.reconcile([planned()], allHealthy);
    d.ipvs.resetCalls();
    const again = new DirectorReconciler({ ipvs: d.ipvs, netif: d.netif, sysctl: d.sysctl.restarted(), state: d.state, log, defaultInterface: async () => 'eth0' });
    const r = await again.reconcile([planned()], allHealthy);
    expect(r.ops).toBe(0);
    expect(d.ipvs.calls.addService + d.ipvs.calls.deleteService + d.ipvs.calls.addDestination + d.ipvs.calls.deleteDestination).toBe(0);
  });

  it('repairs drift after someone flushed the table', async () => {
    const d = director();
    await d.rec.reconcile([planned()], allHealthy);
    await d.ipvs.deleteService({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80 });
    // A change-driven reconcile trusts its view of the kernel; the periodic resync reads the kernel.
    expect((await d.rec.reconcile([planned()], allHealthy)).drift).toBe(0);
    const r = await d.rec.reconcile([planned()], allHealthy, { resync: true });
    expect(r.drift).toBe(1);
    expect((await d.ipvs.listServices())[0]!.destinations).toHaveLength(2);
  });

  it('bad desired state fails alone: unknown interface, kernel errors', async () => {
    const d = director();
    d.ipvs.injectError('addService', 'ENOENT');
    const r = await d.rec.reconcile([planned({ id: 'lab/a', vip: '10.0.0.1' }), planned({ id: 'lab/b', vip: '10.0.0.2', interface: 'eth9' }), planned({ id: 'lab/c', vip: '10.0.0.3' })], allHealthy);
    const by = Object.fromEntries([...r.services.values()].map((s) => [s.id, s]));
    expect(by['lab/b']!.ok).toBe(false);
    expect(by['lab/b']!.errors.join()).toMatch(/interface: .*eth9/);
    expect([by['lab/a']!.ok, by['lab/c']!.ok].filter((x) => !x)).toHaveLength(1);
    expect([...r.services.values()].filter((s) => s.ok)).toHaveLength(1);
    expect([...r.services.values()].flatMap((s) => s.errors).join()).toMatch(/ENOENT/);
  });

  it('drains a removed TCP realserver: weight 0, then deleted when its connections end', async () => {
    const d = director();
    await d.rec.reconcile([planned()], allHealthy);
    const key = { af: 'ipv4' as const, protocol: 'tcp' as const, address: '192.168.56.40', port: 80 };
    d.ipvs.setDestinationState(key, { af: 'ipv4', address: '192.168.56.38', port: 80 }, { counters: { activeConns: 2 } });
    const one = planned({ destinations: planned().destinations.slice(0, 1) });
    await d.rec.reconcile([one], allHealthy, { resync: true });
    let dests = (await d.ipvs.listServices())[0]!.destinations;
    expect(dests.find((x) => x.destination.address === '192.168.56.38')!.destination.weight).toBe(0);
    d.ipvs.setDestinationState(key, { af: 'ipv4', address: '192.168.56.38', port: 80 }, { counters: { activeConns: 0 } });
    d.tick(1000);
    await d.rec.reconcile([one], allHealthy, { resync: true });
    dests = (await d.ipvs.listServices())[0]!.destinations;
    expect(dests.map((x) => x.destination.address)).toEqual(['192.168.56.37']);
  });

  it('a standby director programs the table but does not bind the VIP', async () => {
    const d = director();
    const r = await d.rec.reconcile([planned({ holdVip: false })], allHealthy);
    expect(r.services.get('lab/web')!.holdsVip).toBe(false);
    expect(await d.ipvs.listServices()).toHaveLength(1);
    expect(await d.netif.listAddresses('eth0')).toEqual([]);
  });
});

describe('realserver reconciler', () => {
  function rsSetup() {
    const netif = new FakeNetif();
    netif.addLink('eth0', { up: true });
    const sysctl = new FakeSysctl(defaultSysctls(['eth0', 'tunl0']));
    const state = new MemoryStateStore();
    const rec = new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' });
    return { netif, sysctl, state, rec };
  }

  it('DR: ARP suppression before the VIP on lo; teardown restores everything', async () => {
    const r = rsSetup();
    const reports = await r.rec.reconcile([{ service: 'lab/web', vip: '192.168.56.40', forwarding: 'DirectRouting' }]);
    expect(reports).toEqual([{ service: 'lab/web', vip: '192.168.56.40', ok: true, errors: [] }]);
    for (const iface of ['all', 'lo', 'eth0']) {
      expect(await r.sysctl.read(confKey('ipv4', iface, 'arp_ignore'))).toBe('1');
      expect(await r.sysctl.read(confKey('ipv4', iface, 'arp_announce'))).toBe('2');
    }
    expect((await r.netif.listAddresses('lo')).map((a) => `${a.address}/${a.prefixlen}`)).toEqual(['192.168.56.40/32']);
    await r.rec.reconcile([]);
    expect(await r.netif.listAddresses('lo')).toEqual([]);
    expect(await r.sysctl.read(confKey('ipv4', 'all', 'arp_ignore'))).toBe('0');
    expect(await r.sysctl.owners()).toEqual([]);
  });

  it('Tunnel: tunl0 with the VIP and relaxed rp_filter', async () => {
    const r = rsSetup();
    await r.rec.reconcile([{ service: 'lab/t', vip: '192.168.56.50', forwarding: 'Tunnel' }]);
    expect((await r.netif.getInterface('tunl0')).up).toBe(true);
    expect((await r.netif.listAddresses('tunl0')).map((a) => a.address)).toEqual(['192.168.56.50']);
    expect(await r.sysctl.read(confKey('ipv4', 'tunl0', 'rp_filter'))).toBe('0');
    expect(await r.sysctl.read(confKey('ipv4', 'all', 'rp_filter'))).toBe('0');
  });

  it('two services on one VIP share the address; it stays until the last goes', async () => {
    const r = rsSetup();
    await r.rec.reconcile([
      { service: 'lab/http', vip: '192.168.56.40', forwarding: 'DirectRouting' },
      { service: 'lab/https', vip: '192.168.56.40', forwarding: 'DirectRouting' },
    ]);
    await r.rec.reconcile([{ service: 'lab/https', vip: '192.168.56.40', forwarding: 'DirectRouting' }]);
    expect((await r.netif.listAddresses('lo')).map((a) => a.address)).toEqual(['192.168.56.40']);
    await r.rec.reconcile([]);
    expect(await r.netif.listAddresses('lo')).toEqual([]);
  });
});

describe('change-driven reconciles cost requests in proportion to the change', () => {
  it('a weight change at a large table is exactly one request and no dump', async () => {
    const d = director();
    const many = Array.from({ length: 300 }, (_, i) => planned({ id: `lab/s${i}`, vip: `10.1.${Math.floor(i / 200)}.${i % 200}`, holdVip: false }));
    await d.rec.reconcile(many, allHealthy);
    d.ipvs.resetCalls();
    const changed = many.map((s, i) => (i === 123 ? { ...s, destinations: s.destinations.map((x, j) => (j === 1 ? { ...x, weight: 7 } : x)) } : s));
    const r = await d.rec.reconcile(changed, allHealthy);
    expect(r.ops).toBe(1);
    const total = Object.values(d.ipvs.calls).reduce((a, b) => a + b, 0);
    expect(d.ipvs.calls.updateDestination).toBe(1);
    expect(total).toBe(1);
  });
});
