// The start-up check of a director with VIP elections (src/agent/failover/startup.ts): VIPs from its state
// file that another director answers ARP for are unbound before the Kubernetes client even loads.
import { describe, expect, it } from '@jest/globals';
import { yieldTakenOverVips } from '../../../src/agent/failover/startup.ts';
import { FakeNetif } from '../../../src/netif/fake.ts';
import { createLogger } from '../../../src/util/log.ts';
import type { VipConflictProbe } from '../../../src/netif/types.ts';

const log = createLogger('test', 'silent');

describe('yieldTakenOverVips', () => {
  it('unbinds exactly the director VIPs someone else answers for; keeps the rest, and a VIP a failed probe could not judge', async () => {
    const netif = new FakeNetif();
    netif.addLink('eth0', { up: true });
    for (const vip of ['192.168.56.40', '192.168.56.41', '192.168.56.42']) await netif.addVip('eth0', vip);
    await netif.addVip('lo', '192.168.56.43');
    const asked: string[] = [];
    const probe: VipConflictProbe = {
      answeredBy: async (ifname, vip) => {
        asked.push(`${vip} ${ifname}`);
        if (vip === '192.168.56.42') throw new Error('arping exited 2');
        return vip === '192.168.56.40' || vip === '192.168.56.43' ? ['02:00:00:00:56:35'] : [];
      },
    };
    const given = await yieldTakenOverVips({
      vips: [
        { ifname: 'eth0', vip: '192.168.56.40', owners: ['director:lab/web'] },
        { ifname: 'eth0', vip: '192.168.56.41', owners: ['director:lab/api'] },
        { ifname: 'eth0', vip: '192.168.56.42', owners: ['director:lab/db'] },
        // A realserver VIP on lo (answered for by the director, by design) is never probed.
        { ifname: 'lo', vip: '192.168.56.43', owners: ['realserver:lab/other'] },
      ],
      probe, netif, log,
    });
    expect([...given]).toEqual(['192.168.56.40']);
    expect(asked.sort()).toEqual(['192.168.56.40 eth0', '192.168.56.41 eth0', '192.168.56.42 eth0']);
    expect((await netif.listAddresses('eth0')).map((a) => a.address).sort()).toEqual(['192.168.56.41', '192.168.56.42']);
    expect((await netif.listAddresses('lo')).map((a) => a.address)).toEqual(['192.168.56.43']);
  });

  it('a VIP the kernel no longer has (its lifetime ran out while the agent was down) is given up without a probe', async () => {
    const netif = new FakeNetif();
    netif.addLink('eth0', { up: true });
    await netif.addVip('eth0', '192.168.56.40', { lifetimeSeconds: 4 });
    await netif.addVip('eth0', '192.168.56.41');
    expect(netif.expire('eth0', '192.168.56.40')).toBe(true);
    const asked: string[] = [];
    const given = await yieldTakenOverVips({
      vips: [
        { ifname: 'eth0', vip: '192.168.56.40', owners: ['director:lab/web'] },
        { ifname: 'eth0', vip: '192.168.56.41', owners: ['director:lab/api'] },
      ],
      probe: { answeredBy: async (_i, vip) => (asked.push(vip), []) },
      netif, log,
    });
    expect([...given]).toEqual(['192.168.56.40']);
    expect(asked).toEqual(['192.168.56.41']);
    expect(netif.changes.filter((c) => c.startsWith('del '))).toEqual([]);
  });
});
