// The RTM_GETADDR dump's own framing and decoding (src/netif/addrdump.ts), on messages built here byte by
// byte as the kernel lays them out (include/uapi/linux/if_addr.h). The kernel suite compares it with `ip`.
import { describe, expect, it } from '@jest/globals';
import { addressDumpRequest, decodeAddressPart } from '../../../src/netif/addrdump.ts';
import { NetifError } from '../../../src/netif/errors.ts';
import type { InterfaceAddress } from '../../../src/netif/types.ts';

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const IFA_CACHEINFO = 6;

const attr = (type: number, payload: Buffer): Buffer => {
  const b = Buffer.alloc((4 + payload.length + 3) & ~3);
  b.writeUInt16LE(4 + payload.length, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
};
const v4 = (text: string): Buffer => Buffer.from(text.split('.').map(Number));
const cacheinfo = (valid: number): Buffer => {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(valid, 0); // ifa_prefered
  b.writeUInt32LE(valid, 4); // ifa_valid
  return b;
};

/** One netlink message: nlmsghdr, ifaddrmsg, attributes (each already padded). */
function message(type: number, ifa: { family: number; prefixlen: number; index: number }, attrs: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([ifa.family, ifa.prefixlen, 0, 0, 0, 0, 0, 0]), ...attrs]);
  body.writeUInt32LE(ifa.index, 4);
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32LE(16 + body.length, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(2 /* NLM_F_MULTI */, 6);
  hdr.writeUInt32LE(7, 8);
  return Buffer.concat([hdr, body]);
}
const NEWADDR = 20;

const decode = (part: Buffer, index: number): InterfaceAddress[] => {
  const out: InterfaceAddress[] = [];
  decodeAddressPart(part, index, out, 'addresses dev lo');
  return out;
};

describe('address dump', () => {
  it('the request: RTM_GETADDR, NLM_F_REQUEST|NLM_F_DUMP, an all-zero ifaddrmsg', () => {
    const r = addressDumpRequest();
    expect(r.length).toBe(24);
    expect([r.readUInt32LE(0), r.readUInt16LE(4), r.readUInt16LE(6)]).toEqual([24, 22, 0x301]);
    expect([...r.subarray(16)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(addressDumpRequest()).not.toBe(r); // the transport writes seq and port into it: one per request
  });

  it('keeps the addresses of the one interface, in order, with the lifetime of those that expire', () => {
    const part = Buffer.concat([
      message(NEWADDR, { family: 2, prefixlen: 8, index: 1 }, [attr(IFA_ADDRESS, v4('127.0.0.1')), attr(IFA_LOCAL, v4('127.0.0.1')), attr(IFA_LABEL, Buffer.from('lo\0')), attr(IFA_CACHEINFO, cacheinfo(0xffffffff))]),
      message(NEWADDR, { family: 2, prefixlen: 24, index: 2 }, [attr(IFA_LOCAL, v4('192.168.56.34')), attr(IFA_ADDRESS, v4('192.168.56.34'))]),
      message(NEWADDR, { family: 2, prefixlen: 32, index: 1 }, [attr(IFA_LOCAL, v4('192.168.56.40')), attr(IFA_ADDRESS, v4('192.168.56.40')), attr(IFA_CACHEINFO, cacheinfo(7))]),
      message(NEWADDR, { family: 10, prefixlen: 128, index: 1 }, [attr(IFA_ADDRESS, Buffer.from('20010db8000000000000000000000001', 'hex')), attr(IFA_CACHEINFO, cacheinfo(0xffffffff))]),
    ]);
    expect(decode(part, 1)).toEqual([
      { family: 4, address: '127.0.0.1', prefixlen: 8 },
      { family: 4, address: '192.168.56.40', prefixlen: 32, validLifetimeSeconds: 7 },
      { family: 6, address: '2001:db8::1', prefixlen: 128 },
    ]);
    expect(decode(part, 2)).toEqual([{ family: 4, address: '192.168.56.34', prefixlen: 24 }]);
    expect(decode(part, 3)).toEqual([]);
  });

  it('IPv4 on a point-to-point link: IFA_LOCAL is ours, IFA_ADDRESS the peer; without IFA_LOCAL, IFA_ADDRESS', () => {
    const p2p = message(NEWADDR, { family: 2, prefixlen: 32, index: 4 }, [attr(IFA_ADDRESS, v4('10.0.0.2')), attr(IFA_LOCAL, v4('10.0.0.1'))]);
    const plain = message(NEWADDR, { family: 2, prefixlen: 32, index: 4 }, [attr(IFA_ADDRESS, v4('10.0.0.9'))]);
    expect(decode(Buffer.concat([p2p, plain]), 4).map((a) => a.address)).toEqual(['10.0.0.1', '10.0.0.9']);
  });

  it('skips other message types, other families, and addresses of the wrong size', () => {
    const part = Buffer.concat([
      message(21 /* RTM_DELADDR */, { family: 2, prefixlen: 32, index: 1 }, [attr(IFA_LOCAL, v4('10.0.0.1'))]),
      message(NEWADDR, { family: 17 /* AF_PACKET */, prefixlen: 0, index: 1 }, [attr(IFA_ADDRESS, Buffer.alloc(6))]),
      message(NEWADDR, { family: 2, prefixlen: 32, index: 1 }, [attr(IFA_LOCAL, Buffer.alloc(16))]),
    ]);
    expect(decode(part, 1)).toEqual([]);
  });

  it('lengths that do not add up are EBADMSG naming the object, not a wrong answer', () => {
    const m = message(NEWADDR, { family: 2, prefixlen: 32, index: 1 }, [attr(IFA_LOCAL, v4('10.0.0.1'))]);
    const long = Buffer.from(m);
    long.writeUInt32LE(m.length + 4, 0);
    const badAttr = Buffer.from(m);
    badAttr.writeUInt16LE(200, 24);
    const short = message(NEWADDR, { family: 2, prefixlen: 32, index: 1 }, []).subarray(0, 20);
    short.writeUInt32LE(20, 0);
    for (const part of [long, badAttr, short]) {
      let err: unknown;
      try {
        decode(part, 1);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NetifError);
      expect((err as NetifError).errno).toBe('EBADMSG');
      expect((err as NetifError).message).toMatch(/^EBADMSG: list addresses dev lo \(undecodable address dump: /);
    }
  });
});
