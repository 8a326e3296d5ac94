import { isIP, isGlobalUnicast, familyOf, ipv6Bytes } from '../../../src/api/ip.ts';

describe('ip helpers', () => {
  it.each([
    ['192.168.56.40', true], ['2001:db8::1', true], ['::ffff:10.0.0.1', true], ['192.168.056.040', false],
    ['10.0.0', false], ['fe80::1%eth0', false], ['', false], ['lb.example.com', false],
  ])('isIP(%s) = %s', (s, ok) => expect(isIP(s)).toBe(ok));

  it.each([
    ['192.168.56.40', true], ['10.0.0.1', true], ['127.0.0.1', false], ['0.0.0.0', false], ['224.0.0.81', false],
    ['169.254.1.1', false], ['255.255.255.255', false], ['2001:db8::1', true], ['::1', false], ['::', false],
    ['ff02::1', false], ['fe80::1', false], ['fd00::1', true],
  ])('isGlobalUnicast(%s) = %s', (s, ok) => expect(isGlobalUnicast(s)).toBe(ok));

  it('families and bytes', () => {
    expect(familyOf('1.2.3.4')).toBe(4);
    expect(familyOf('2001:db8::1')).toBe(6);
    expect(() => familyOf('x')).toThrow('not an IP address: "x"');
    expect(ipv6Bytes('2001:db8::1')).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  });
});
