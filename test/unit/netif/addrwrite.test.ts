// RTM_NEWADDR framed by src/netif/addrwrite.ts (for pipelined binds), checked against netlink@0.3.0's own
// formatter of the same ifaddrmsg and attributes (what RtNetif.addVip sent through the library before it
// became a batch of one). The kernel suite binds with it.
import { describe, expect, it } from '@jest/globals';
import { AttrStream, rt } from 'netlink';
import { newAddressRequest } from '../../../src/netif/addrwrite.ts';
import { hostAddress } from '../../../src/netif/ip.ts';

/** The library's body (ifaddrmsg + attributes) for the request RtNetif.addVip made. */
function libraryBody(vip: string, index: number, lifetime: number | undefined): Buffer {
  const a = hostAddress(vip);
  const out = new AttrStream();
  rt.formatAddressMessage(
    {
      kind: 'address',
      data: { family: a.family === 4 ? 2 : 10, prefixlen: a.prefixlen, index, ...(a.family === 6 ? { flags: { nodad: true } } : {}) },
      attrs: {
        ...(a.family === 4 ? { local: a.bytes, address: a.bytes } : { address: a.bytes }),
        ...(lifetime !== undefined ? { cacheInfo: { ifaPrefered: lifetime, ifaValid: lifetime, cstamp: 0, tstamp: 0 } } : {}),
      },
    },
    out,
  );
  return Buffer.concat(out.bufs);
}

describe('newAddressRequest', () => {
  it.each([
    ['192.0.2.7', 3, undefined],
    ['192.0.2.7', 70000, 30],
    ['2001:DB8::7', 1, undefined],
    ['2001:db8::7', 2, 4294967294],
  ] as const)('%s on ifindex %d, lifetime %s: the library’s ifaddrmsg and attributes', (vip, index, lifetime) => {
    const buf = newAddressRequest(hostAddress(vip), index, 'create', lifetime);
    expect(buf.readUInt32LE(0)).toBe(buf.length);
    expect(buf.subarray(16).toString('hex')).toBe(libraryBody(vip, index, lifetime).toString('hex'));
  });

  it('asks to create exclusively, or to replace', () => {
    const a = hostAddress('192.0.2.7');
    const create = newAddressRequest(a, 1, 'create');
    const replace = newAddressRequest(a, 1, 'replace', 30);
    expect(create.readUInt16LE(4)).toBe(20); // RTM_NEWADDR
    expect(create.readUInt16LE(6)).toBe(0x1 | 0x4 | 0x400 | 0x200); // REQUEST ACK CREATE EXCL
    expect(replace.readUInt16LE(6)).toBe(0x1 | 0x4 | 0x100); // REQUEST ACK REPLACE
    expect(replace.readUInt32LE(8)).toBe(0); // seq: the transport's to fill in
  });
});
