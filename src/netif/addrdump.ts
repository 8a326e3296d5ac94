/**
 * The RTM_GETADDR dump, framed and decoded here rather than by netlink@0.3.0: its decoder builds an object
 * for every attribute of every address of the host, and with 5,000 VIPs on lo one listing took 0.4–2.5 s in
 * the lab VM (most of a sweep's read, the event loop held for up to 1.7 s of it). This one reads the header
 * of each message, skips other interfaces' addresses, and keeps only the address, prefix and lifetime.
 */
import { NetifError } from './errors.ts';
import { AF_INET, AF_INET6, formatAddress } from './ip.ts';
import type { InterfaceAddress } from './types.ts';

export const NETLINK_ROUTE = 0;
const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_HDRLEN = 16;
/** struct ifaddrmsg: family, prefixlen, flags, scope (u8 each), index (u32). */
const IFADDRMSG_LEN = 8;
const RTA_HDRLEN = 4;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_CACHEINFO = 6;
/** INFINITY_LIFE_TIME: an address that never expires. */
const FOREVER = 0xffffffff;

const align4 = (n: number): number => (n + 3) & ~3;

/** RTM_GETADDR for every family (seq and port are the transport's to fill in). */
export function addressDumpRequest(): Buffer {
  const buf = Buffer.alloc(NLMSG_HDRLEN + IFADDRMSG_LEN);
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt16LE(RTM_GETADDR, 4);
  buf.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  return buf; // ifaddrmsg all zero: AF_UNSPEC, no filter (the kernel ignores one without NETLINK_GET_STRICT_CHK)
}

/**
 * Appends to `out` the addresses of interface `index` among the netlink messages in `part` (one datagram of an
 * address dump, or one message of it). IPv4: IFA_LOCAL, the interface's own address (IFA_ADDRESS is the peer
 * on point-to-point links); IPv6 carries only IFA_ADDRESS. Throws a NetifError (EBADMSG, naming `object`) for
 * lengths that do not add up.
 */
export function decodeAddressPart(part: Buffer, index: number, out: InterfaceAddress[], object: string): void {
  const bad = (what: string): NetifError => new NetifError('EBADMSG', 'list', object, `undecodable address dump: ${what}`);
  for (let off = 0; part.length - off >= NLMSG_HDRLEN; ) {
    const len = part.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || len > part.length - off) throw bad(`message at offset ${off} of length ${len}`);
    const end = off + len;
    const at = off;
    off += align4(len);
    if (part.readUInt16LE(at + 4) !== RTM_NEWADDR) continue;
    const body = at + NLMSG_HDRLEN;
    if (end - body < IFADDRMSG_LEN) throw bad(`RTM_NEWADDR of length ${len}`);
    if (part.readUInt32LE(body + 4) !== index) continue;
    const af = part[body] ?? 0;
    const family = af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
    if (!family) continue;
    const bytes = family === 4 ? 4 : 16;
    let local: number | undefined;
    let address: number | undefined;
    let valid: number | undefined;
    for (let a = body + IFADDRMSG_LEN; end - a >= RTA_HDRLEN; ) {
      const alen = part.readUInt16LE(a);
      if (alen < RTA_HDRLEN || alen > end - a) throw bad(`attribute at offset ${a - at} of length ${alen}`);
      const type = part.readUInt16LE(a + 2) & 0x3fff;
      const payload = alen - RTA_HDRLEN;
      if ((type === IFA_LOCAL || type === IFA_ADDRESS) && payload === bytes) {
        if (type === IFA_LOCAL) local = a + RTA_HDRLEN;
        else address = a + RTA_HDRLEN;
      } else if (type === IFA_CACHEINFO && payload >= 8) {
        valid = part.readUInt32LE(a + RTA_HDRLEN + 4); // ifa_prefered, ifa_valid, ...
      }
      a += align4(alen);
    }
    const from = family === 4 ? (local ?? address) : address;
    if (from === undefined) continue;
    out.push({
      family,
      address: family === 4 ? `${part[from]}.${part[from + 1]}.${part[from + 2]}.${part[from + 3]}` : formatAddress(part.subarray(from, from + 16)),
      prefixlen: part[body + 1] ?? 0,
      ...(valid !== undefined && valid !== FOREVER ? { validLifetimeSeconds: valid } : {}),
    });
  }
}
