import { describe, expect, it } from '@jest/globals';
import { cidr, formatAddress, hostAddress } from '../../../src/netif/ip.ts';

describe('hostAddress', () => {
  it.each([
    ['192.168.56.40', 4, '192.168.56.40', 32, 'c0a83828'],
    ['2001:DB8:0:0::40', 6, '2001:db8::40', 128, '20010db8000000000000000000000040'],
    ['::ffff:198.51.100.40', 6, '::ffff:198.51.100.40', 128, '00000000000000000000ffffc6336428'],
    ['fe80::1', 6, 'fe80::1', 128, 'fe800000000000000000000000000001'],
  ])('%s', (text, family, address, prefixlen, hex) => {
    const a = hostAddress(text);
    expect(a).toMatchObject({ family, address, prefixlen });
    expect(a.bytes.toString('hex')).toBe(hex);
    expect(cidr(a)).toBe(`${address}/${prefixlen}`);
  });

  it.each(['', 'eth0', '192.168.56.400', '192.168.56.40/32', '2001:db8::/64'])('rejects %j', (text) => {
    expect(() => hostAddress(text)).toThrow('not an IP address');
  });
});

describe('formatAddress', () => {
  it.each([
    ['c6336428', '198.51.100.40'],
    ['20010db8000000000000000000000040', '2001:db8::40'],
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['00000000000000000000000000000001', '::1'],
    ['00000000000000000000000000000000', '::'],
  ])('%s → %s (inet_ntop form)', (hex, text) => {
    expect(formatAddress(Buffer.from(hex, 'hex'))).toBe(text);
  });

  it('rejects other lengths', () => {
    expect(() => formatAddress(Buffer.alloc(6))).toThrow('address of 6 bytes');
  });
});
