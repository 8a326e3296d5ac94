// The full VIP pass (drift repair) checks the addresses it believes bound with one address dump per
// interface, instead of re-adding each (thousands of sequential netlink round trips at 5,000 services).
import { rebindMissing, syncVipChanges, syncVips, vipLedgerMatches, boundAddresses, type VipWant } from '../../../src/agent/vips.ts';
import { emptyState } from '../../../src/agent/state.ts';
import { FakeNetif } from '../../../src/netif/fake.ts';
import type { VipAdd, VipOptions } from '../../../src/netif/types.ts';

class CountingNetif extends FakeNetif {
  adds = 0;
  lists = 0;
  /** addVips calls: each is one pipelined netlink exchange in RtNetif. */
  batches = 0;
  override async addVips(items: readonly VipAdd[]): ReturnType<FakeNetif['addVips']> {
    this.batches++;
    return super.addVips(items);
  }
  override async addVip(ifname: string, vip: string, opts?: VipOptions): Promise<boolean> {
    this.adds++;
    return super.addVip(ifname, vip, opts);
  }
  override async listAddresses(ifname: string): ReturnType<FakeNetif['listAddresses']> {
    this.lists++;
    return super.listAddresses(ifname);
  }
}

const mine = (o: string): boolean => o.startsWith('director:');
const wants: VipWant[] = [
  ...Array.from({ length: 100 }, (_, i): VipWant => ({ ifname: 'lo', vip: `10.50.0.${i + 1}`, owner: `director:lab/vs-${i}` })),
  // An IPv6 VIP as a user may write it (not canonical), on another interface.
  { ifname: 'eth0', vip: '2001:DB8:0:0::10', owner: 'director:lab/v6' },
];

/** Every VIP of `wants` bound by a first full pass. */
async function allBound(): Promise<{ netif: CountingNetif; state: ReturnType<typeof emptyState> }> {
  const netif = new CountingNetif();
  netif.addLink('eth0', { up: true });
  const state = emptyState();
  const first = await syncVips(netif, state, wants, mine, undefined, true);
  expect(first.added).toHaveLength(101);
  expect(netif.adds).toBe(101);
  expect(netif.batches).toBe(1); // both interfaces' addresses in one pipelined call
  return { netif, state };
}

describe('syncVips: the full pass', () => {
  it('reads each interface once instead of re-adding every VIP it believes bound', async () => {
    const { netif, state } = await allBound();
    netif.adds = 0;
    netif.lists = 0;
    const again = await syncVips(netif, state, wants, mine, undefined, true);
    expect(again).toMatchObject({ added: [], removed: [], changed: false });
    expect(again.failed.size).toBe(0);
    expect(netif.adds).toBe(0);
    expect(netif.lists).toBe(2);
  });

  it('re-adds exactly the addresses removed behind its back', async () => {
    const { netif, state } = await allBound();
    await netif.removeVip('lo', '10.50.0.7');
    await netif.removeVip('eth0', '2001:db8::10');
    netif.adds = 0;
    const repaired = await syncVips(netif, state, wants, mine, undefined, true);
    expect(repaired.added.sort()).toEqual(['eth0|2001:DB8:0:0::10', 'lo|10.50.0.7']);
    expect(netif.adds).toBe(2);
    expect(netif.batches).toBe(2);
    expect((await netif.listAddresses('lo')).map((a) => a.address)).toContain('10.50.0.7');
    expect((await netif.listAddresses('eth0')).map((a) => a.address)).toEqual(['2001:db8::10']);
  });

  it('falls back to re-adding each VIP when an interface cannot be read', async () => {
    const { netif, state } = await allBound();
    await netif.removeVip('lo', '10.50.0.9');
    netif.adds = 0;
    netif.failNext('listAddresses', 'EPERM');
    const r = await syncVips(netif, state, wants, mine, undefined, true);
    expect(r.failed.size).toBe(0);
    expect(r.added).toEqual(['lo|10.50.0.9']);
    expect(netif.adds).toBe(100); // lo's VIPs one by one; eth0's was read
  });

  it('a change-driven pass (verify off) neither reads nor re-adds', async () => {
    const { netif, state } = await allBound();
    netif.adds = 0;
    netif.lists = 0;
    await syncVips(netif, state, wants, mine, undefined, false);
    expect(netif.adds + netif.lists).toBe(0);
  });
});

describe('binding in one addVips call', () => {
  it('syncVipChanges binds the new addresses together, an address named by two owners once', async () => {
    const { netif, state } = await allBound();
    netif.batches = 0;
    netif.adds = 0;
    const r = await syncVipChanges(netif, state, {
      add: [
        { ifname: 'lo', vip: '10.60.0.1', owner: 'director:lab/a' },
        { ifname: 'lo', vip: '10.60.0.1', owner: 'director:lab/b' },
        { ifname: 'lo', vip: '10.60.0.2', owner: 'director:lab/c' },
        { ifname: 'lo', vip: '10.50.0.1', owner: 'director:lab/d' }, // held already: d joins its owners
        { ifname: 'eth9', vip: '10.60.0.3', owner: 'director:lab/e' }, // no such interface
      ],
      remove: [],
    });
    expect(netif.batches).toBe(1);
    expect(netif.adds).toBe(3);
    expect(r.added).toEqual(['lo|10.60.0.1', 'lo|10.60.0.2']);
    expect([...r.failed]).toEqual([['director:lab/e', 'ENODEV: get dev eth9 (no such interface)']]);
    expect(r.changed).toBe(true);
    const owners = (vip: string): string[] | undefined => state.vips.find((v) => v.vip === vip)?.owners;
    expect(owners('10.60.0.1')).toEqual(['director:lab/a', 'director:lab/b']);
    expect(owners('10.50.0.1')).toEqual(['director:lab/d', 'director:lab/vs-0']);
  });

  it('an address bound before the agent is not taken into the ledger', async () => {
    const { netif, state } = await allBound();
    await netif.addVip('lo', '10.60.0.9'); // an administrator's
    const r = await syncVipChanges(netif, state, { add: [{ ifname: 'lo', vip: '10.60.0.9', owner: 'director:lab/x' }], remove: [] });
    expect(r).toMatchObject({ added: [], changed: false });
    expect(state.vips.some((v) => v.vip === '10.60.0.9')).toBe(false);
  });

  it('rebindMissing re-adds what the dump lacks in one call and reports per owner', async () => {
    const { netif } = await allBound();
    await netif.removeVip('lo', '10.50.0.3');
    await netif.removeVip('lo', '10.50.0.4');
    const bound = await boundAddresses(netif, ['lo']);
    netif.batches = 0;
    netif.failNext('addVip', 'EPERM'); // the first re-add fails, the second goes on
    const r = await rebindMissing(netif, wants.slice(0, 10), bound);
    expect(netif.batches).toBe(1);
    expect(r.added).toEqual(['lo|10.50.0.4']);
    expect([...r.failed]).toEqual([['director:lab/vs-2', 'EPERM: add 10.50.0.3/32 dev lo (injected)']]);
  });
});

describe('vipLedgerMatches: the end of a sweep skips the exact-set pass when it has nothing to do', () => {
  it('is true exactly when syncVips (verify off) would leave the ledger as it is', async () => {
    const { netif, state } = await allBound();
    // Another scope's owner on one of the addresses: not ours to judge.
    state.vips[3]!.owners = [...state.vips[3]!.owners, 'realserver:lab/vs-3'].sort();
    expect(vipLedgerMatches(state, wants, mine)).toBe(true);
    const unchanged = JSON.stringify(state.vips);
    await syncVips(netif, state, wants, mine, undefined, false);
    expect(JSON.stringify(state.vips)).toBe(unchanged);

    // Each way the ledger can differ, and what syncVips then changes.
    const cases: Array<[string, (s: typeof state, n: CountingNetif) => Promise<void> | void, VipWant[]]> = [
      // (Still bound but not in the ledger, it is not ours: syncVips leaves it, and the check stays false.)
      ['a wanted VIP missing from the ledger and the interface', async (s, n) => {
        const [v] = s.vips.splice(5, 1);
        await n.removeVip(v!.ifname, v!.vip);
      }, wants],
      ['an owner no longer wanted', (s) => void s.vips.push({ ifname: 'lo', vip: '10.50.9.9', owners: ['director:lab/gone'] }), wants],
      ['an owner under another address', (s) => void (s.vips[7]!.owners = ['director:lab/vs-8']), wants],
      ['an address with no owner left (an unbind to retry)', (s) => void s.vips.push({ ifname: 'lo', vip: '10.50.9.8', owners: [] }), wants],
      ['a wanted owner gone from the plan', () => undefined, wants.slice(1)],
    ];
    for (const [what, drift, want] of cases) {
      const w = await allBound();
      await drift(w.state, w.netif);
      expect([what, vipLedgerMatches(w.state, want, mine)]).toEqual([what, false]);
      const before = JSON.stringify(w.state.vips);
      await syncVips(w.netif, w.state, want, mine, undefined, false);
      expect([what, JSON.stringify(w.state.vips) !== before]).toEqual([what, true]);
      expect([what, vipLedgerMatches(w.state, want, mine)]).toEqual([what, true]);
    }
  });
});
