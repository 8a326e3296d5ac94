/**
 * RTM_NEWADDR requests framed here rather than by netlink@0.3.0, so that many VIPs can be bound (or their
 * lifetimes refreshed) pipelined through our transport: one sendmsg and one ACK per batch
 * (NetlinkTransport.pipeline) instead of a library round trip each. Binding 5,000 VIPs one at a time took
 * ~30 s of a director's ~38 s first full run in the lab VM.
 */
import { afOf, type HostAddress } from './ip.ts';

const RTM_NEWADDR = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLMSG_HDRLEN = 16;
/** struct ifaddrmsg: family, prefixlen, flags, scope (u8 each), index (u32). */
const IFADDRMSG_LEN = 8;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_CACHEINFO = 6;
/** struct ifa_cacheinfo: ifa_prefered, ifa_valid, cstamp, tstamp (u32 each). */
const CACHEINFO_LEN = 16;
/** IFA_F_NODAD: a VIP must be usable at once, and on realservers DAD would announce it on the LAN. */
const IFA_F_NODAD = 0x02;

/**
 * `create`: bind the address, EEXIST when it is bound already (NLM_F_CREATE | NLM_F_EXCL, as `ip addr add`).
 * `replace`: change a bound address's lifetime (NLM_F_REPLACE; for IPv4 devinet.c adds a missing one too, so
 * callers replace only addresses they have just seen bound).
 */
export type AddressWrite = 'create' | 'replace';

/**
 * One RTM_NEWADDR for host address `a` on interface `index` (seq and port are the transport's to fill in).
 * IPv4 carries IFA_LOCAL (the address) and IFA_ADDRESS (the same: not point-to-point), IPv6 only IFA_ADDRESS
 * and nodad. `lifetimeSeconds` (valid = preferred) adds IFA_CACHEINFO; without it the kernel binds forever.
 */
export function newAddressRequest(a: HostAddress, index: number, mode: AddressWrite, lifetimeSeconds?: number): Buffer {
  const attr = (payload: number): number => 4 + payload; // every payload here is a multiple of 4
  const attrs = (a.family === 4 ? 2 * attr(4) : attr(16)) + (lifetimeSeconds !== undefined ? attr(CACHEINFO_LEN) : 0);
  const buf = Buffer.alloc(NLMSG_HDRLEN + IFADDRMSG_LEN + attrs);
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt16LE(RTM_NEWADDR, 4);
  buf.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | (mode === 'create' ? NLM_F_CREATE | NLM_F_EXCL : NLM_F_REPLACE), 6);
  let off = NLMSG_HDRLEN;
  buf[off] = afOf(a.family);
  buf[off + 1] = a.prefixlen;
  buf[off + 2] = a.family === 6 ? IFA_F_NODAD : 0;
  buf[off + 3] = 0; // RT_SCOPE_UNIVERSE, as the library sends
  buf.writeUInt32LE(index, off + 4);
  off += IFADDRMSG_LEN;
  const put = (type: number, payload: Buffer): void => {
    buf.writeUInt16LE(attr(payload.length), off);
    buf.writeUInt16LE(type, off + 2);
    payload.copy(buf, off + 4);
    off += attr(payload.length);
  };
  if (a.family === 4) put(IFA_LOCAL, a.bytes);
  put(IFA_ADDRESS, a.bytes);
  if (lifetimeSeconds !== undefined) {
    const ci = Buffer.alloc(CACHEINFO_LEN);
    ci.writeUInt32LE(lifetimeSeconds, 0);
    ci.writeUInt32LE(lifetimeSeconds, 4);
    put(IFA_CACHEINFO, ci);
  }
  return buf;
}
