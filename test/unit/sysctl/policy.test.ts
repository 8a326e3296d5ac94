import { describe, expect, it } from '@jest/globals';
import { sysctlsFor } from '../../../src/sysctl/policy.ts';

const kv = (role: 'director' | 'realserver', mode: 'DirectRouting' | 'NAT' | 'Tunnel', nic: string, opts = {}) =>
  sysctlsFor(role, mode, nic, opts).map((s) => `${s.key}=${s.value}`);

const VS = ['net/ipv4/vs/expire_nodest_conn=1', 'net/ipv4/vs/expire_quiescent_template=1'];
const REDIRECTS = (nic: string) => ['all', 'default', nic].map((i) => `net/ipv4/conf/${i}/send_redirects=0`);

describe('sysctlsFor', () => {
  it('director NAT: vs expiry, ip_forward, send_redirects=0 on all/default/nic', () => {
    expect(kv('director', 'NAT', 'eth1')).toEqual([...VS, 'net/ipv4/ip_forward=1', ...REDIRECTS('eth1')]);
  });

  it('director NAT with IPv6 and conntrack', () => {
    expect(kv('director', 'NAT', 'eth1', { ipv6: true, conntrack: true })).toEqual([
      ...VS,
      'net/ipv4/vs/conntrack=1',
      'net/ipv4/ip_forward=1',
      'net/ipv6/conf/all/forwarding=1',
      ...REDIRECTS('eth1'),
    ]);
  });

  it('director DR: vs expiry and send_redirects=0, no ip_forward', () => {
    expect(kv('director', 'DirectRouting', 'eth0')).toEqual([...VS, ...REDIRECTS('eth0')]);
  });

  it('director Tunnel: only the vs expiry', () => {
    expect(kv('director', 'Tunnel', 'eth0')).toEqual(VS);
  });

  it('realserver DR: arp_ignore=1 and arp_announce=2 on all/default/lo/nic, VLAN names literal', () => {
    const ifs = ['all', 'default', 'lo', 'eth0.100'];
    expect(kv('realserver', 'DirectRouting', 'eth0.100')).toEqual([
      ...ifs.map((i) => `net/ipv4/conf/${i}/arp_ignore=1`),
      ...ifs.map((i) => `net/ipv4/conf/${i}/arp_announce=2`),
    ]);
  });

  it('realserver DR with nic lo: no duplicate keys', () => {
    const keys = sysctlsFor('realserver', 'DirectRouting', 'lo').map((s) => s.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toHaveLength(6);
  });

  it('realserver Tunnel: rp_filter=0 on all and tunl0, ARP rules on all and nic', () => {
    expect(kv('realserver', 'Tunnel', 'ens3')).toEqual([
      'net/ipv4/conf/all/rp_filter=0',
      'net/ipv4/conf/tunl0/rp_filter=0',
      'net/ipv4/conf/all/arp_ignore=1',
      'net/ipv4/conf/ens3/arp_ignore=1',
      'net/ipv4/conf/all/arp_announce=2',
      'net/ipv4/conf/ens3/arp_announce=2',
    ]);
  });

  it('realserver NAT: nothing', () => {
    expect(kv('realserver', 'NAT', 'eth0')).toEqual([]);
  });

  it('every setting says why', () => {
    for (const role of ['director', 'realserver'] as const) {
      for (const mode of ['DirectRouting', 'NAT', 'Tunnel'] as const) {
        for (const s of sysctlsFor(role, mode, 'eth0', { ipv6: true, conntrack: true })) expect(s.reason.length).toBeGreaterThan(10);
      }
    }
  });
});
