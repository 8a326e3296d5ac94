// RtNetif and CommandArpAnnouncer against the lab VM's real kernel, with iproute2 as the independent oracle.
// Runs as root in the VM's root netns (dummy interface lvsk0, lo) and, where a separate netns is needed, in a
// child Node process started with `ip netns exec` (a Node process cannot setns itself).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CommandArpAnnouncer, CommandVipConflictProbe, execRunner, outputRunner } from '../../src/netif/arp.ts';
import { NetifError } from '../../src/netif/errors.ts';
import { RtNetif } from '../../src/netif/rtnetlink.ts';
import { NetLab, assertInLabVm, exec, type Netns } from '../vm/netns.ts';

assertInLabVm();
// Under TCG emulation every spawned ip/arping costs up to seconds.
jest.setTimeout(120_000);

const DUMMY = 'lvsk0';
const VIP4 = '198.51.100.40';
const VIP6 = '2001:db8::40';
const repo = path.resolve(import.meta.dirname, '..', '..');

interface IpAddr { family: string; local: string; prefixlen: number; nodad?: boolean; valid_life_time?: number; dynamic?: boolean }
interface IpLink { ifname: string; flags: string[]; addr_info?: IpAddr[]; linkinfo?: { info_kind?: string } }
interface IpRoute { type: string; dst: string; dev: string }

async function ipJson<T>(ns: Netns, args: string[]): Promise<T> {
  return JSON.parse((await exec(ns, ['ip', '-j', ...args])).stdout) as T;
}
async function oracleAddrs(ns: Netns, dev: string): Promise<string[]> {
  const [link] = await ipJson<IpLink[]>(ns, ['addr', 'show', 'dev', dev]);
  return (link?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`).sort();
}
async function oracleLocalRoutes(ns: Netns): Promise<IpRoute[]> {
  return [...(await ipJson<IpRoute[]>(ns, ['-4', 'route', 'show', 'table', 'local'])), ...(await ipJson<IpRoute[]>(ns, ['-6', 'route', 'show', 'table', 'local']))];
}

describe('RtNetif in the root netns', () => {
  const net = new RtNetif({ timeoutMs: 5000 });

  beforeAll(async () => {
    await exec(null, ['ip', 'link', 'del', DUMMY], { allowFailure: true });
    await exec(null, ['ip', 'link', 'add', DUMMY, 'type', 'dummy']);
  });
  afterAll(async () => {
    net.close();
    await exec(null, ['ip', 'link', 'del', DUMMY], { allowFailure: true });
    for (const a of [`${VIP4}/32`, `${VIP6}/128`]) await exec(null, ['ip', 'addr', 'del', a, 'dev', 'lo'], { allowFailure: true });
  });

  it('looks up interfaces and brings one up', async () => {
    const before = await net.getInterface(DUMMY);
    expect(before).toMatchObject({ name: DUMMY, kind: 'dummy', up: false });
    await net.setUp(DUMMY);
    await net.setUp(DUMMY); // idempotent
    expect((await ipJson<IpLink[]>(null, ['link', 'show', 'dev', DUMMY]))[0]?.flags).toContain('UP');
    expect(await net.getInterface('lo')).toMatchObject({ index: 1, name: 'lo', up: true, kind: undefined });
    const names = (await net.listInterfaces()).map((i) => i.name);
    expect(names).toEqual(expect.arrayContaining(['lo', DUMMY]));
  });

  it('names a missing interface in its error', async () => {
    const err = await net.addVip('nosuch0', VIP4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetifError);
    expect((err as Error).message).toBe('ENODEV: get dev nosuch0 (no such interface)');
    await expect(net.getInterface('nosuch0')).rejects.toThrow('ENODEV: get dev nosuch0');
    await expect(net.getInterface('a-name-far-too-long')).rejects.toThrow('EINVAL: get dev "a-name-far-too-long" (invalid interface name)');
    expect(await net.removeVip('nosuch0', VIP4)).toBe(false);
  });

  it.each([
    [DUMMY, VIP4, 32],
    [DUMMY, VIP6, 128],
    ['lo', VIP4, 32],
    ['lo', VIP6, 128],
  ])('binds and unbinds %s %s/%d idempotently, as iproute2 sees it', async (dev, vip, prefixlen) => {
    const cidr = `${vip}/${prefixlen}`;
    expect(await net.addVip(dev, vip)).toBe(true);
    expect(await net.addVip(dev, vip)).toBe(false);
    expect(await oracleAddrs(null, dev)).toContain(cidr);
    expect(await net.listAddresses(dev)).toContainEqual({ family: prefixlen === 32 ? 4 : 6, address: vip, prefixlen });
    // Our view of the addresses equals iproute2's, whatever else the interface holds.
    expect((await net.listAddresses(dev)).map((a) => `${a.address}/${a.prefixlen}`).sort()).toEqual(await oracleAddrs(null, dev));

    // The kernel installed the host route in table local (no extra route needed).
    const ifindex = (await net.getInterface(dev)).index;
    expect(await oracleLocalRoutes(null)).toContainEqual(expect.objectContaining({ type: 'local', dst: vip, dev }));
    expect(await net.listLocalRoutes()).toContainEqual({ family: prefixlen === 32 ? 4 : 6, address: vip, ifindex });

    if (prefixlen === 128) {
      const [link] = await ipJson<IpLink[]>(null, ['-6', 'addr', 'show', 'dev', dev]);
      expect(link?.addr_info?.find((a) => a.local === vip)?.nodad).toBe(true);
    }

    expect(await net.removeVip(dev, vip)).toBe(true);
    expect(await net.removeVip(dev, vip)).toBe(false);
    expect(await oracleAddrs(null, dev)).not.toContain(cidr);
    expect((await oracleLocalRoutes(null)).some((r) => r.dst === vip)).toBe(false);
  });

  it.each([
    [VIP4, 32],
    [VIP6, 128],
  ])('binds %s with a kernel lifetime, refreshes it, never re-adds it, and the kernel deletes it when it runs out', async (vip, prefixlen) => {
    const lifetime = async (): Promise<number | undefined> => {
      const [link] = await ipJson<IpLink[]>(null, ['addr', 'show', 'dev', DUMMY]);
      return link?.addr_info?.find((a) => a.local === vip)?.valid_life_time;
    };
    expect(await net.addVip(DUMMY, vip, { lifetimeSeconds: 3 })).toBe(true);
    // iproute2 shows the lifetime counting down (seconds left), and so does our listAddresses.
    expect(await lifetime()).toBeLessThanOrEqual(3);
    expect((await net.listAddresses(DUMMY)).find((a) => a.address === vip)?.validLifetimeSeconds).toBeLessThanOrEqual(3);
    // Refreshed every second for 5 s: it outlives its 3 s lifetime.
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      expect(await net.setVipLifetimes(DUMMY, [vip, '198.51.100.99'], 3)).toEqual([vip]);
    }
    expect(await oracleAddrs(null, DUMMY)).toContain(`${vip}/${prefixlen}`);
    expect(await lifetime()).toBeGreaterThanOrEqual(2);
    // The never-bound one was not added by the refresh.
    expect(await oracleAddrs(null, DUMMY)).not.toContain('198.51.100.99/32');
    // Not refreshed any more: gone within the lifetime (+ the kernel's check granularity).
    const t0 = Date.now();
    while ((await oracleAddrs(null, DUMMY)).includes(`${vip}/${prefixlen}`) && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 250));
    expect(await oracleAddrs(null, DUMMY)).not.toContain(`${vip}/${prefixlen}`);
    // The kernel's check runs on a rounded timer (IPv6: addrconf_verify, at least 1 s of fuzz); 6.3 s once here.
    expect(Date.now() - t0).toBeLessThan(8_000);
    // A refresh after expiry does not bring it back; forever clears a lifetime.
    expect(await net.setVipLifetimes(DUMMY, [vip], 3)).toEqual([]);
    expect(await oracleAddrs(null, DUMMY)).not.toContain(`${vip}/${prefixlen}`);
    expect(await net.addVip(DUMMY, vip, { lifetimeSeconds: 3 })).toBe(true);
    expect(await net.setVipLifetimes(DUMMY, [vip], undefined)).toEqual([vip]);
    expect(await lifetime()).toBe(4294967295); // iproute2 prints "forever" as INFINITY_LIFE_TIME in JSON
    expect((await net.listAddresses(DUMMY)).find((a) => a.address === vip)?.validLifetimeSeconds).toBeUndefined();
    expect(await net.removeVip(DUMMY, vip)).toBe(true);
    await expect(net.addVip(DUMMY, vip, { lifetimeSeconds: 0 })).rejects.toThrow(/EINVAL: add .*lifetime must be a whole number/);
  });

  it('does not remove an address bound with another prefix length', async () => {
    await exec(null, ['ip', 'addr', 'add', '203.0.113.5/24', 'dev', DUMMY]);
    expect(await net.removeVip(DUMMY, '203.0.113.5')).toBe(false);
    expect(await oracleAddrs(null, DUMMY)).toContain('203.0.113.5/24');
    await exec(null, ['ip', 'addr', 'del', '203.0.113.5/24', 'dev', DUMMY]);
  });

  it('keeps working after a burst of concurrent calls (requests are serialized)', async () => {
    const vips = Array.from({ length: 20 }, (_, i) => `198.51.100.${100 + i}`);
    expect(await Promise.all(vips.map((v) => net.addVip(DUMMY, v)))).toEqual(vips.map(() => true));
    const [addrs, routes] = await Promise.all([net.listAddresses(DUMMY), net.listLocalRoutes()]);
    expect(addrs.map((a) => a.address)).toEqual(expect.arrayContaining(vips));
    expect(routes.map((r) => r.address)).toEqual(expect.arrayContaining(vips));
    expect(await Promise.all(vips.map((v) => net.removeVip(DUMMY, v)))).toEqual(vips.map(() => true));
  });

  it('lists thousands of addresses as iproute2 does: a dump of many datagrams, partly read through the event loop', async () => {
    // 3,000 on the dummy and 500 on a second one (skipped by the decoder, but in the same dump), a lifetime and an
    // IPv6 address among them. sliceMs 0: after the first datagram the rest goes through the binding's callbacks.
    const other = 'lvsk1';
    await exec(null, ['ip', 'link', 'add', other, 'type', 'dummy']);
    try {
      const ip = (i: number): string => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      const batch = [
        ...Array.from({ length: 3000 }, (_, i) => `address add ${ip(i)}/32 dev ${DUMMY}`),
        ...Array.from({ length: 500 }, (_, i) => `address add ${ip(5000 + i)}/32 dev ${other}`),
        `address add 2001:db8::77/128 dev ${DUMMY} nodad`,
        `address add ${ip(4000)}/32 dev ${DUMMY} valid_lft 100 preferred_lft 100`,
      ].join('\n');
      await exec(null, ['ip', '-b', '-'], { input: `${batch}\n`, timeoutMs: 120_000 });
      const sliced = new RtNetif({ timeoutMs: 5000, sliceMs: 0 });
      try {
        for (const n of [net, sliced]) {
          const got = await n.listAddresses(DUMMY);
          expect(got.length).toBeGreaterThanOrEqual(3002); // and the link-local address, if the kernel gave one
          expect(got.map((a) => `${a.address}/${a.prefixlen}`).sort()).toEqual(await oracleAddrs(null, DUMMY));
          expect(got.find((a) => a.address === ip(4000))?.validLifetimeSeconds).toBeLessThanOrEqual(100);
          expect(got.filter((a) => a.validLifetimeSeconds !== undefined)).toHaveLength(1);
          expect((await n.listAddresses(other)).map((a) => `${a.address}/${a.prefixlen}`).sort()).toEqual(await oracleAddrs(null, other));
        }
        // The heartbeat's refresh reads the same dump: only bound ones are refreshed.
        expect(await sliced.setVipLifetimes(DUMMY, [ip(4000), ip(4001)], 50)).toEqual([ip(4000)]);
      } finally {
        sliced.close();
      }
    } finally {
      await exec(null, ['ip', 'link', 'del', other], { allowFailure: true });
      await exec(null, ['ip', 'addr', 'flush', 'dev', DUMMY], { allowFailure: true });
    }
  });

  it('binds thousands of VIPs in one pipelined addVips and refreshes their lifetimes in one go, as iproute2 shows', async () => {
    const ip = (i: number): string => `10.${80 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    await exec(null, ['ip', 'addr', 'add', `${ip(7)}/32`, 'dev', DUMMY]); // bound before us: not ours
    try {
      const items = [
        ...Array.from({ length: 2000 }, (_, i) => ({ ifname: DUMMY, vip: ip(i), ...(i % 10 === 0 ? { lifetimeSeconds: 100 } : {}) })),
        { ifname: DUMMY, vip: '2001:DB8:0::81' }, // not canonical
        { ifname: 'lo', vip: '2001:db8::82', lifetimeSeconds: 100 },
        { ifname: DUMMY, vip: ip(5) }, // twice in one call: the kernel says EEXIST the second time
        { ifname: 'nosuch0', vip: ip(3000) },
        { ifname: DUMMY, vip: 'not-an-ip' },
        { ifname: DUMMY, vip: ip(3001), lifetimeSeconds: 0 },
      ];
      const r = await net.addVips(items);
      expect(r).toHaveLength(items.length);
      expect(r.slice(0, 2000).filter((x) => x !== true)).toEqual([false]); // ip(7), bound before
      expect(r[7]).toBe(false);
      expect(r.slice(2000, 2003)).toEqual([true, true, false]);
      const errs = r.slice(2003).map((e) => (e instanceof NetifError ? `${e.errno} ${e.op} ${e.object}` : String(e)));
      expect(errs).toEqual(['ENODEV get dev nosuch0', 'EINVAL add not-an-ip dev lvsk0', `EINVAL add ${ip(3001)}/32 dev lvsk0`]);

      const [link] = await ipJson<IpLink[]>(null, ['addr', 'show', 'dev', DUMMY]);
      const shown = new Map((link?.addr_info ?? []).map((a) => [`${a.local}/${a.prefixlen}`, a]));
      const want = [...Array.from({ length: 2000 }, (_, i) => `${ip(i)}/32`), '2001:db8::81/128'];
      expect(want.filter((a) => !shown.has(a))).toEqual([]);
      expect(shown.has(`${ip(3001)}/32`)).toBe(false);
      expect(shown.get('2001:db8::81/128')?.nodad).toBe(true);
      // A lifetime where one was asked for (counting down from 100), forever elsewhere.
      for (const i of [0, 10, 1990]) expect(shown.get(`${ip(i)}/32`)?.valid_life_time).toBeLessThanOrEqual(100);
      for (const i of [1, 7, 1999]) expect(shown.get(`${ip(i)}/32`)?.valid_life_time).toBe(4294967295);
      const [lo] = await ipJson<IpLink[]>(null, ['addr', 'show', 'dev', 'lo']);
      expect(lo?.addr_info?.find((a) => a.local === '2001:db8::82')).toMatchObject({ prefixlen: 128, nodad: true });

      // The heartbeat's refresh of all of them (one dump, then pipelined replaces); 2001:db8::99 was never bound.
      const refresh = [...Array.from({ length: 2000 }, (_, i) => ip(i)), '2001:db8::99'];
      expect(await net.setVipLifetimes(DUMMY, refresh, 50)).toEqual(refresh.slice(0, 2000));
      const [after] = await ipJson<IpLink[]>(null, ['addr', 'show', 'dev', DUMMY]);
      const lifetimes = (after?.addr_info ?? []).filter((a) => a.family === 'inet' && a.local.startsWith('10.80.')).map((a) => a.valid_life_time ?? -1);
      expect(lifetimes).toHaveLength(2000);
      expect(lifetimes.filter((t) => t > 50 || t < 40)).toEqual([]);
      expect(await oracleAddrs(null, DUMMY)).not.toContain('2001:db8::99/128');
    } finally {
      await exec(null, ['ip', 'addr', 'flush', 'dev', DUMMY], { allowFailure: true });
      await exec(null, ['ip', 'addr', 'del', '2001:db8::82/128', 'dev', 'lo'], { allowFailure: true });
    }
  });

  it('ensures tunl0 (ipip fallback device) up and binds the VIP on it', async () => {
    const t = await net.ensureTunl0();
    expect(t).toMatchObject({ name: 'tunl0', kind: 'ipip', up: true });
    const [link] = await ipJson<IpLink[]>(null, ['-d', 'link', 'show', 'dev', 'tunl0']);
    expect(link?.linkinfo?.info_kind).toBe('ipip');
    expect(link?.flags).toContain('UP');
    expect(await net.addVip('tunl0', VIP4)).toBe(true);
    expect(await oracleAddrs(null, 'tunl0')).toContain(`${VIP4}/32`);
    expect(await net.removeVip('tunl0', VIP4)).toBe(true);
    expect(await net.ensureTunl0()).toMatchObject({ name: 'tunl0', kind: 'ipip', up: true });
  });

  it('loads ipip on demand when the module is absent (fresh host)', async () => {
    // tunl0 goes away with the module; ensureTunl0's rtnetlink request autoloads it again.
    const unloaded = await exec(null, ['modprobe', '-r', 'ipip'], { allowFailure: true });
    if (unloaded.code !== 0) throw new Error(`cannot unload ipip for this test: ${unloaded.stderr}`);
    // Not `ip link show tunl0`: its SIOCGIFINDEX lookup autoloads ipip again (MODULE_ALIAS_NETDEV("tunl0")).
    expect(existsSync('/sys/class/net/tunl0')).toBe(false);
    expect((await exec(null, ['cat', '/proc/modules'])).stdout).not.toMatch(/^ipip /m);
    expect(await net.ensureTunl0()).toMatchObject({ name: 'tunl0', kind: 'ipip', up: true });
    expect((await exec(null, ['cat', '/proc/modules'])).stdout).toMatch(/^ipip /m);
  });
});

describe('RtNetif in a netns without fallback tunnels', () => {
  const lab = new NetLab('nft');
  let saved = '';
  beforeAll(async () => {
    saved = (await exec(null, ['cat', '/proc/sys/net/core/fb_tunnels_only_for_init_net'])).stdout.trim();
    await exec(null, ['sh', '-c', 'echo 1 > /proc/sys/net/core/fb_tunnels_only_for_init_net']);
  });
  afterAll(async () => {
    await exec(null, ['sh', '-c', `echo ${saved} > /proc/sys/net/core/fb_tunnels_only_for_init_net`]);
    await lab.destroy();
  });

  it('creates tunl0 itself and binds the VIP on it', async () => {
    const ns = await lab.addNetns('rs');
    expect((await exec(ns, ['ip', 'link', 'show', 'dev', 'tunl0'], { allowFailure: true })).code).not.toBe(0);
    const out = await runInNetns(ns, `
      const net = new RtNetif();
      const t = await net.ensureTunl0();
      const added = await net.addVip('tunl0', '${VIP4}');
      const again = await net.ensureTunl0();
      console.log(JSON.stringify({ t, added, again: again.index === t.index }));
      net.close();`);
    expect(JSON.parse(out)).toMatchObject({ t: { name: 'tunl0', kind: 'ipip', up: true }, added: true, again: true });
    const [link] = await ipJson<IpLink[]>(ns, ['-d', 'addr', 'show', 'dev', 'tunl0']);
    expect(link?.linkinfo?.info_kind).toBe('ipip');
    expect(link?.flags).toContain('UP');
    expect(link?.addr_info?.map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${VIP4}/32`]);
  }, 60_000);

  it('refuses a tunl0 of another kind', async () => {
    const ns = await lab.addNetns('dm');
    await exec(ns, ['ip', 'link', 'add', 'tunl0', 'type', 'dummy']);
    const out = await runInNetns(ns, `
      const net = new RtNetif();
      try { await net.ensureTunl0(); console.log('no error'); } catch (e) { console.log(e.message); }
      net.close();`);
    expect(out.trim()).toBe('EEXIST: create dev tunl0 type ipip (tunl0 exists with kind dummy)');
  }, 60_000);
});

describe('CommandArpAnnouncer (arping / na6) between two netns', () => {
  const lab = new NetLab('arp');
  let speaker = '';
  let listener = '';
  let mac = '';
  // Run the announcer's real commands inside the speaker's netns.
  const announcer = new CommandArpAnnouncer({
    runner: (cmd, t) => execRunner({ file: 'ip', args: ['netns', 'exec', speaker, cmd.file, ...cmd.args] }, t),
    defaultCount: 1,
  });

  beforeAll(async () => {
    const br = await lab.addBridge('arpbr');
    speaker = await lab.addNetns('spk');
    listener = await lab.addNetns('lst');
    await lab.connect(speaker, br, { addresses: ['203.0.113.1/24', '2001:db8:1::1/64'] });
    await lab.connect(listener, br, { addresses: ['203.0.113.2/24', '2001:db8:1::2/64'] });
    for (const a of [`${VIP4}/32`, `${VIP6}/128`]) await exec(speaker, ['ip', 'addr', 'add', a, 'dev', 'lo', 'nodad']);
    const [link] = await ipJson<(IpLink & { address: string })[]>(speaker, ['link', 'show', 'dev', 'eth0']);
    mac = link?.address ?? '';
  }, 60_000);
  afterAll(() => lab.destroy());

  // The listener holds a stale entry for the VIP with a wrong MAC; the announcement must override it.
  it.each([VIP4, VIP6])('re-points the neighbour entry for %s', async (vip) => {
    await exec(listener, ['ip', 'neigh', 'replace', vip, 'lladdr', '02:00:00:00:00:01', 'dev', 'eth0', 'nud', 'stale']);
    await announcer.announce('eth0', vip);
    const [entry] = await ipJson<{ dst: string; lladdr: string }[]>(listener, ['neigh', 'show', 'to', vip, 'dev', 'eth0']);
    expect(entry?.lladdr).toBe(mac);
  }, 30_000);

  it('fails with the tool\'s message for an interface that does not exist', async () => {
    await expect(announcer.announce('nosuch0', VIP4)).rejects.toThrow(/^EIO: announce 198\.51\.100\.40 dev nosuch0 \(arping exited 2/);
  });

  // The conflict probe (arping -D) from the listener: who answers ARP for an address on the segment.
  it('CommandVipConflictProbe: the MAC of the host that has the address on the link, nobody for one it holds on lo with arp_ignore=1', async () => {
    const probe = new CommandVipConflictProbe({ runner: (cmd, t, sig) => outputRunner({ file: 'ip', args: ['netns', 'exec', listener, cmd.file, ...cmd.args] }, t, sig) });
    expect(await probe.answeredBy('eth0', '203.0.113.1')).toEqual([mac]);
    expect(await probe.answeredBy('eth0', '203.0.113.77')).toEqual([]);
    // The speaker holds VIP4 on lo; with arp_ignore=1 (a DR realserver) it does not answer for it.
    await exec(speaker, ['sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=1']);
    expect(await probe.answeredBy('eth0', VIP4)).toEqual([]);
    await exec(speaker, ['sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=0']);
    expect(await probe.answeredBy('eth0', VIP4)).toEqual([mac]);
    await expect(probe.answeredBy('nosuch0', VIP4)).rejects.toThrow(/^EIO: probe 198\.51\.100\.40 dev nosuch0 \(arping exited 2/);
  }, 60_000);
});

/** Runs an async snippet (with RtNetif in scope) in a child Node inside `ns`; returns its stdout. */
async function runInNetns(ns: string, body: string): Promise<string> {
  const file = path.join(tmpdir(), `netif-child-${process.pid}-${Date.now()}.mts`);
  writeFileSync(file, `import { RtNetif } from ${JSON.stringify(path.join(repo, 'src/netif/rtnetlink.ts'))};\n${body}\n`);
  const r = await exec(ns, [process.execPath, '--disable-warning=ExperimentalWarning', file], { timeoutMs: 60_000 });
  return r.stdout;
}
