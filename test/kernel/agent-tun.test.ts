// End to end in the lab VM: LVS-TUN. The director encapsulates in IP-in-IP; lvs-agent on each realserver
// brings up tunl0 with the VIP and relaxes rp_filter, and the realservers answer the client directly.
import { jest } from '@jest/globals';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetLab, assertInLabVm } from '../vm/netns.ts';
import { AgentProc, REPO, addresses, ipvsadmSave, readSysctls, writeConfig } from './agent-lab.ts';

assertInLabVm();
jest.setTimeout(300_000);

const VIP = '192.168.56.50';

async function tunl0RxPackets(lab: NetLab, ns: string): Promise<number> {
  const r = await lab.exec(ns, ['ip', '-j', '-s', 'link', 'show', 'tunl0']);
  return (JSON.parse(r.stdout) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets;
}

describe('Tunnel lab with lvs-agent', () => {
  const lab = new NetLab();
  let client: string, director: string, web1: string, web2: string;
  let agents: AgentProc[];
  let before: Record<string, Record<string, string>>;
  const keys = ['net/ipv4/conf/all/rp_filter', 'net/ipv4/conf/tunl0/rp_filter', 'net/ipv4/conf/all/arp_ignore', 'net/ipv4/conf/all/arp_announce'];

  beforeAll(async () => {
    const br = await lab.addBridge('br56t');
    client = await lab.addNetns('client');
    director = await lab.addNetns('director');
    web1 = await lab.addNetns('web1');
    web2 = await lab.addNetns('web2');
    await lab.connect(client, br, { addresses: ['192.168.56.10/24'] });
    await lab.connect(director, br, { addresses: ['192.168.56.34/24'] });
    await lab.connect(web1, br, { addresses: ['192.168.56.37/24'] });
    await lab.connect(web2, br, { addresses: ['192.168.56.38/24'] });
    // Distributions often ship strict reverse-path filtering, which drops decapsulated packets.
    for (const ns of [web1, web2]) await lab.sysctl(ns, 'net/ipv4/conf/all/rp_filter', 1);
    await lab.startHttpServer(web1, { name: 'web1' });
    await lab.startHttpServer(web2, { name: 'web2' });
    before = { web1: await readSysctls(lab, web1, keys), web2: await readSysctls(lab, web2, keys) };
    const config = writeConfig([
      { name: 'director', ip: '192.168.56.34', director: true },
      { name: 'web1', ip: '192.168.56.37' },
      { name: 'web2', ip: '192.168.56.38' },
    ], fs.readFileSync(path.join(REPO, 'deploy/examples/tunnel-lab.yaml'), 'utf8'));
    agents = [new AgentProc(lab, director, 'director', config), new AgentProc(lab, web1, 'web1', config), new AgentProc(lab, web2, 'web2', config)];
    for (const a of agents) a.start();
    await Promise.all(agents.map((a) => a.waitReady()));
  });

  afterAll(async () => {
    for (const a of agents ?? []) await a.stop().catch(() => undefined);
    await lab.destroy();
  });

  it('programs tunnel forwarding with weights and persistence', async () => {
    expect(await ipvsadmSave(lab, director)).toEqual([
      `-A -t ${VIP}:80 -s wlc -p 600`,
      `-a -t ${VIP}:80 -r 192.168.56.37:80 -i -w 2 --tun-type ipip`,
      `-a -t ${VIP}:80 -r 192.168.56.38:80 -i -w 1 --tun-type ipip`,
    ]);
  });

  it('realservers hold the VIP on tunl0 with rp_filter relaxed', async () => {
    for (const ns of [web1, web2]) {
      expect(await addresses(lab, ns, 'tunl0')).toContain(`${VIP}/32`);
      const s = await readSysctls(lab, ns, keys);
      expect(s['net/ipv4/conf/all/rp_filter']).toBe('0');
      expect(s['net/ipv4/conf/tunl0/rp_filter']).toBe('0');
    }
  });

  it('requests arrive encapsulated and persistence keeps the client on one realserver', async () => {
    const rx = [await tunl0RxPackets(lab, web1), await tunl0RxPackets(lab, web2)];
    const bodies: string[] = [];
    for (let i = 0; i < 5; i++) bodies.push((await lab.httpGet(client, `http://${VIP}/`)).trim());
    expect(new Set(bodies).size).toBe(1);
    const chosen = bodies[0] === 'web1' ? 0 : 1;
    const after = [await tunl0RxPackets(lab, web1), await tunl0RxPackets(lab, web2)];
    expect(after[chosen]! - rx[chosen]!).toBeGreaterThanOrEqual(5);
  });

  it('teardown removes tunl0 addresses and restores rp_filter', async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all(agents.map((a) => a.teardown()));
    expect(await ipvsadmSave(lab, director)).toEqual([]);
    expect(await addresses(lab, web1, 'tunl0')).not.toContain(`${VIP}/32`);
    expect(await readSysctls(lab, web1, keys)).toEqual(before.web1);
    expect(await readSysctls(lab, web2, keys)).toEqual(before.web2);
  });
});
