// The decoder must survive anything the socket could hand it: for thousands of random, truncated,
// bit-flipped and length-corrupted buffers derived from valid replies it either returns a value or
// throws IpvsDecodeError, never another exception, and never hangs (the whole run is time-boxed).

import { describe, expect, it } from '@jest/globals';
import {
  decodeDaemonReply,
  decodeDestDumpPart,
  decodeDestReply,
  decodeFamilyReply,
  decodeInfoReply,
  decodeServiceDumpPart,
  decodeServiceReply,
  decodeStats,
  decodeTimeoutsReply,
} from '../../../src/ipvs/codec.ts';
import { IpvsDecodeError } from '../../../src/ipvs/errors.ts';
import type { Destination, Service } from '../../../src/ipvs/types.ts';
import { parseErrorPayload, parseNetlinkMessages } from '../../../src/ipvs/wire.ts';
import { configReply, daemonReply, datagram, destReply, doneMessage, errorMessage, familyReply, infoReply, serviceReply } from './replies.ts';

/** mulberry32: small, seeded, reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = 0x1f05;
const stats = { conns: 1n, inpkts: 2n, outpkts: 3n, inbytes: 4n, outbytes: 5n, cps: 6n, inpps: 7n, outpps: 8n, inbps: 9n, outbps: 10n };
const svc4: Service = { af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'sh', flags: 0x1b, timeout: 300, netmask: 0xffffff00 };
const svc6: Service = { af: 'ipv6', protocol: 'udp', address: '2001:db8::1', port: 53, scheduler: 'mh', flags: 0x2, timeout: 0, netmask: 128, pe: 'sip' };
const fwm: Service = { af: 'ipv4', fwmark: 9, scheduler: 'rr', flags: 2, timeout: 0, netmask: 0xffffffff };
const dest: Destination = {
  address: '10.0.0.1',
  port: 80,
  af: 'ipv4',
  forwarding: 'tunnel',
  weight: 5,
  upperThreshold: 10,
  lowerThreshold: 5,
  tunnelType: 'gue',
  tunnelPort: 6080,
  tunnelFlags: 1,
};

/** Every decoder entry point a received datagram reaches, applied to each message in it. */
function decodeAll(buf: Buffer): number {
  let decoded = 0;
  // The dump decoders take a whole datagram (as the transport's dump paths hand it over).
  const whole: Array<() => unknown> = [() => decodeServiceDumpPart(buf, []), () => decodeDestDumpPart(buf, 'ipv4', []), () => decodeDestDumpPart(buf, 'ipv6', [])];
  for (const a of whole) {
    try {
      a();
      decoded++;
    } catch (e) {
      if (!(e instanceof IpvsDecodeError)) throw e;
    }
  }
  for (const m of parseNetlinkMessages(buf)) {
    const p = m.payload;
    const attempts: Array<() => unknown> = [
      () => decodeServiceReply(p),
      () => decodeDestReply(p, 'ipv4'),
      () => decodeDestReply(p, 'ipv6'),
      () => decodeDaemonReply(p),
      () => decodeInfoReply(p),
      () => decodeTimeoutsReply(p),
      () => decodeFamilyReply(p),
      () => parseErrorPayload(p),
      () => decodeStats(p),
    ];
    for (const a of attempts) {
      try {
        a();
        decoded++;
      } catch (e) {
        if (!(e instanceof IpvsDecodeError)) throw e;
      }
    }
  }
  return decoded;
}

function expectOnlyDecodeErrors(buf: Buffer): void {
  try {
    decodeAll(buf);
  } catch (e) {
    if (!(e instanceof IpvsDecodeError)) {
      throw new Error(`non-IpvsDecodeError for ${buf.toString('hex')}: ${String(e)}`);
    }
  }
}

const seeds: Buffer[] = [
  serviceReply(svc4, stats),
  serviceReply(svc6, stats),
  serviceReply(fwm, stats, { legacyOnly: true }),
  destReply(dest, { activeConns: 1, inactiveConns: 2, persistConns: 3 }, stats),
  destReply({ ...dest, address: '2001:db8::2', af: 'ipv6' }),
  daemonReply({ role: 'master', interface: 'eth0', syncId: 1, maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 }),
  infoReply(),
  configReply(900, 120, 300),
  familyReply(),
  errorMessage(5, 17),
  doneMessage(5),
  datagram(serviceReply(svc4, stats), serviceReply(fwm), doneMessage(1)),
];

describe('decoder fuzz (seed 0x1f05)', () => {
  it('valid seeds decode', () => {
    for (const s of seeds) expect(decodeAll(s)).toBeGreaterThan(0);
  });

  it('every truncation of every seed', () => {
    let n = 0;
    for (const s of seeds) {
      for (let len = 0; len <= s.length; len++) {
        expectOnlyDecodeErrors(s.subarray(0, len));
        // Truncated payload with a header that still claims the full length, and with a fixed-up one.
        const fixed = Buffer.from(s.subarray(0, len));
        if (len >= 4) fixed.writeUInt32LE(len, 0);
        expectOnlyDecodeErrors(fixed);
        n += 2;
      }
    }
    expect(n).toBeGreaterThan(2000);
  });

  it('8,000 random bit flips, byte overwrites and length corruptions', () => {
    const rnd = prng(SEED);
    const pick = (n: number): number => Math.floor(rnd() * n);
    for (let i = 0; i < 8000; i++) {
      const b = Buffer.from(seeds[pick(seeds.length)] as Buffer);
      const edits = 1 + pick(4);
      for (let e = 0; e < edits; e++) {
        const at = pick(b.length);
        switch (pick(4)) {
          case 0:
            b[at] = (b[at] as number) ^ (1 << pick(8));
            break;
          case 1:
            b[at] = pick(256);
            break;
          case 2: {
            // Attribute/message length fields sit at 4-aligned offsets: make them lie.
            const off = at & ~3;
            if (off + 2 <= b.length) b.writeUInt16LE([0, 1, 3, 4, 5, 0xffff, pick(0x10000)][pick(7)] as number, off);
            break;
          }
          default:
            if (at + 4 <= b.length) b.writeUInt32LE(pick(2) ? 0 : 0xffffffff, at);
        }
      }
      expectOnlyDecodeErrors(b);
    }
  });

  it('4,000 random buffers (0..300 bytes), some with a plausible netlink header', () => {
    const rnd = prng(SEED + 1);
    for (let i = 0; i < 4000; i++) {
      const len = Math.floor(rnd() * 300);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(rnd() * 256);
      if (len >= 20 && i % 2 === 0) {
        b.writeUInt32LE(len, 0);
        b.writeUInt16LE(0x1d, 4);
      }
      expectOnlyDecodeErrors(b);
    }
  });

  it('zero-length attributes and nests pointing past their parent do not loop', () => {
    // nla_len 0 would never advance: must be an error, not a hang.
    const msg = Buffer.alloc(16 + 4 + 8);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(0x1d, 4);
    msg[16] = 1;
    expect(() => decodeServiceReply(msg.subarray(16))).toThrow(IpvsDecodeError);
    // A nest whose length exceeds the message.
    const nest = Buffer.from('0100000000000000', 'hex');
    const m2 = Buffer.concat([Buffer.from('01010000', 'hex'), Buffer.from('ff000100', 'hex'), nest]);
    expect(() => decodeServiceReply(m2)).toThrow(IpvsDecodeError);
  });
});
