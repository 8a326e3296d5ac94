import { describe, expect, it } from '@jest/globals';
import { SysctlError } from '../../../src/sysctl/errors.ts';
import { confKey, fromSysctlName, normalizeValue, sysctlKey, toSysctlName } from '../../../src/sysctl/keys.ts';

describe('sysctl keys', () => {
  it.each([
    ['net.ipv4.ip_forward', 'net/ipv4/ip_forward'],
    ['net.ipv4.conf.eth0/100.arp_ignore', 'net/ipv4/conf/eth0.100/arp_ignore'],
    ['net.ipv4.vs.expire_nodest_conn', 'net/ipv4/vs/expire_nodest_conn'],
  ])('%s ⇄ %s (sysctl(8) swaps . and / inside names)', (dotted, key) => {
    expect(fromSysctlName(dotted)).toBe(key);
    expect(toSysctlName(key)).toBe(dotted);
  });

  it('builds interface keys with dots kept literally', () => {
    expect(confKey('ipv4', 'eth0.100', 'arp_ignore')).toBe('net/ipv4/conf/eth0.100/arp_ignore');
    expect(confKey('ipv6', 'all', 'forwarding')).toBe('net/ipv6/conf/all/forwarding');
    expect(() => confKey('ipv4', 'a/b', 'rp_filter')).toThrow(SysctlError);
  });

  it.each(['', '/net/ipv4/ip_forward', 'net/ipv4/', 'net//ipv4', 'net/../etc/passwd', 'net/./ipv4', 'net/ipv4/conf/eth 0/x'])('rejects %j', (key) => {
    expect(() => sysctlKey(key)).toThrow(/^EINVAL: parse /);
  });

  it.each([
    ['1\n', '1'],
    ['3\t50\n', '3 50'],
    [' 4096  87380 6291456 ', '4096 87380 6291456'],
    [2, '2'],
  ])('normalizes %j', (raw, v) => {
    expect(normalizeValue(raw)).toBe(v);
  });
});
