import { beforeEach, describe, expect, it } from '@jest/globals';
import { NetifError } from '../../../src/netif/errors.ts';
import { FakeArpAnnouncer, FakeNetif } from '../../../src/netif/fake.ts';

describe('FakeNetif', () => {
  let net: FakeNetif;
  beforeEach(() => {
    net = new FakeNetif();
    net.addLink('eth0', { up: true });
  });

  it('binds /32 and /128 idempotently and lists them', async () => {
    expect(await net.addVip('lo', '192.168.56.40')).toBe(true);
    expect(await net.addVip('lo', '192.168.56.40')).toBe(false);
    expect(await net.addVip('lo', '2001:DB8::40')).toBe(true);
    expect(await net.addVip('lo', '2001:db8::40')).toBe(false);
    expect(await net.listAddresses('lo')).toEqual([
      { family: 4, address: '192.168.56.40', prefixlen: 32 },
      { family: 6, address: '2001:db8::40', prefixlen: 128 },
    ]);
    const lo = await net.getInterface('lo');
    expect(await net.listLocalRoutes()).toEqual([
      { family: 4, address: '192.168.56.40', ifindex: lo.index },
      { family: 6, address: '2001:db8::40', ifindex: lo.index },
    ]);
    expect(await net.removeVip('lo', '192.168.56.40')).toBe(true);
    expect(await net.removeVip('lo', '192.168.56.40')).toBe(false);
    expect(net.changes).toEqual(['add 192.168.56.40/32 dev lo', 'add 2001:db8::40/128 dev lo', 'del 192.168.56.40/32 dev lo']);
  });

  it('names the missing interface', async () => {
    await expect(net.addVip('eth9', '192.168.56.40')).rejects.toThrow('ENODEV: get dev eth9 (no such interface)');
    await expect(net.getInterface('eth9')).rejects.toBeInstanceOf(NetifError);
  });

  it('treats removal from a vanished interface as done', async () => {
    await net.addVip('eth0', '192.168.56.40');
    net.deleteLink('eth0');
    expect(await net.removeVip('eth0', '192.168.56.40')).toBe(false);
  });

  it('creates tunl0 up, once', async () => {
    const t = await net.ensureTunl0();
    expect(t).toMatchObject({ name: 'tunl0', kind: 'ipip', up: true });
    await net.ensureTunl0();
    expect(net.changes).toEqual(['create dev tunl0 type ipip', 'up dev tunl0']);
  });

  it('fails tunl0 without ipip, or when tunl0 is something else', async () => {
    await expect(new FakeNetif({ ipip: false }).ensureTunl0()).rejects.toThrow('ENOTSUP: create dev tunl0 type ipip');
    net.addLink('tunl0', { kind: 'dummy' });
    await expect(net.ensureTunl0()).rejects.toThrow('EEXIST: create dev tunl0 type ipip (tunl0 exists with kind dummy)');
  });

  it('injects a fault once', async () => {
    net.failNext('addVip', 'EPERM');
    await expect(net.addVip('eth0', '192.168.56.40')).rejects.toThrow('EPERM: add 192.168.56.40/32 dev eth0 (injected)');
    expect(await net.addVip('eth0', '192.168.56.40')).toBe(true);
  });

  it('brings interfaces up', async () => {
    net.addLink('dummy0', { kind: 'dummy' });
    await net.setUp('dummy0');
    expect((await net.listInterfaces()).find((i) => i.name === 'dummy0')).toMatchObject({ up: true, kind: 'dummy' });
  });
});

describe('FakeArpAnnouncer', () => {
  it('records canonical announcements', async () => {
    const arp = new FakeArpAnnouncer();
    await arp.announce('eth0', '2001:DB8::40', 2);
    expect(arp.announcements).toEqual([{ ifname: 'eth0', vip: '2001:db8::40', count: 2 }]);
  });
});

describe('FakeNetif.addVips', () => {
  it('answers per item as addVip would, and an injected fault fails the whole call’s items', async () => {
    const net = new FakeNetif();
    net.addLink('eth0', { up: true });
    await net.addVip('lo', '192.168.56.41');
    const r = await net.addVips([
      { ifname: 'lo', vip: '192.168.56.40', lifetimeSeconds: 9 },
      { ifname: 'lo', vip: '192.168.56.41' },
      { ifname: 'eth9', vip: '192.168.56.42' },
      { ifname: 'lo', vip: 'not-an-ip' },
      { ifname: 'eth0', vip: '2001:DB8::40' },
    ]);
    expect(r.slice(0, 2)).toEqual([true, false]);
    expect(r[2]).toEqual(expect.objectContaining({ errno: 'ENODEV', message: 'ENODEV: get dev eth9 (no such interface)' }));
    expect(r[3]).toEqual(expect.objectContaining({ errno: 'EINVAL', op: 'add', object: 'not-an-ip dev lo' }));
    expect(r[4]).toBe(true);
    expect(await net.listAddresses('lo')).toContainEqual({ family: 4, address: '192.168.56.40', prefixlen: 32, validLifetimeSeconds: 9 });
    net.failNext('addVips', 'EPERM');
    const failed = await net.addVips([{ ifname: 'lo', vip: '192.168.56.43' }, { ifname: 'lo', vip: '192.168.56.44' }]);
    expect(failed.map((e) => (e as Error).message)).toEqual(['EPERM: add 192.168.56.43/32 dev lo (injected)', 'EPERM: add 192.168.56.44/32 dev lo (injected)']);
    expect(await net.addVips([{ ifname: 'lo', vip: '192.168.56.43' }])).toEqual([true]);
  });
});
