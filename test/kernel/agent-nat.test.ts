// End to end in the lab VM: the classic LVS-NAT lab. The director (192.168.56.34 outside, 192.168.142.1
// inside) is the realservers' gateway; lvs-agent turns on ip_forward for it and puts it back afterwards.
import { jest } from '@jest/globals';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetLab, assertInLabVm } from '../vm/netns.ts';
import { AgentProc, REPO, addresses, ipvsadmSave, readSysctls, writeConfig } from './agent-lab.ts';

assertInLabVm();
jest.setTimeout(300_000);

const VIP = '192.168.56.34';

describe('NAT lab with lvs-agent', () => {
  const lab = new NetLab();
  let client: string, director: string, web1: string, web2: string;
  let agent: AgentProc;
  let before: Record<string, string>;

  beforeAll(async () => {
    const outside = await lab.addBridge('br56n');
    const inside = await lab.addBridge('br142n');
    client = await lab.addNetns('client');
    director = await lab.addNetns('director');
    web1 = await lab.addNetns('web1');
    web2 = await lab.addNetns('web2');
    await lab.connect(client, outside, { addresses: ['192.168.56.10/24'] });
    await lab.connect(director, outside, { addresses: [`${VIP}/24`] });
    await lab.connect(director, inside, { addresses: ['192.168.142.1/24'] });
    await lab.connect(web1, inside, { addresses: ['192.168.142.137/24'] });
    await lab.connect(web2, inside, { addresses: ['192.168.142.138/24'] });
    for (const ns of [web1, web2]) await lab.addRoute(ns, ['default', 'via', '192.168.142.1']);
    await lab.startHttpServer(web1, { name: 'web1' });
    await lab.startHttpServer(web2, { name: 'web2' });
    before = await readSysctls(lab, director);
    expect(before['net/ipv4/ip_forward']).toBe('0');
    const config = writeConfig([{ name: 'director', ip: VIP, director: true }], fs.readFileSync(path.join(REPO, 'deploy/examples/nat-lab.yaml'), 'utf8'));
    agent = new AgentProc(lab, director, 'director', config);
    agent.start();
    await agent.waitReady();
  });

  afterAll(async () => {
    await agent?.stop().catch(() => undefined);
    await lab.destroy();
  });

  it('programs the NAT rules and enables forwarding on the director', async () => {
    expect(await ipvsadmSave(lab, director)).toEqual([
      `-A -t ${VIP}:80 -s rr`,
      `-a -t ${VIP}:80 -r 192.168.142.137:80 -m -w 1`,
      `-a -t ${VIP}:80 -r 192.168.142.138:80 -m -w 1`,
    ]);
    const s = await readSysctls(lab, director, ['net/ipv4/ip_forward', 'net/ipv4/conf/all/send_redirects', 'net/ipv4/conf/eth0/send_redirects']);
    expect(Object.values(s)).toEqual(['1', '0', '0']);
  });

  it('requests from the client alternate between the realservers behind the director', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) bodies.push((await lab.httpGet(client, `http://${VIP}/`)).trim());
    expect(new Set(bodies)).toEqual(new Set(['web1', 'web2']));
    for (let i = 1; i < bodies.length; i++) expect(bodies[i]).not.toBe(bodies[i - 1]);
  });

  it('teardown removes the rules, keeps the director address it did not add, restores ip_forward', async () => {
    await agent.stop();
    await agent.teardown();
    expect(await ipvsadmSave(lab, director)).toEqual([]);
    expect(await addresses(lab, director, 'eth0')).toContain(`${VIP}/24`);
    expect(await readSysctls(lab, director)).toEqual(before);
  });
});
