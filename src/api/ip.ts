/** IP address helpers shared by validation, the controller and the agent. */
import net from 'node:net';

export type AddressFamily = 4 | 6;

/** Like Kubernetes' CEL isIP(): a canonical-enough IPv4/IPv6 literal, no zone, no leading zeros. */
export function isIP(s: string): boolean {
  if (s.includes('%')) return false;
  const family = net.isIP(s);
  if (family === 4) return s.split('.').every((o) => o === '0' || !o.startsWith('0'));
  return family === 6;
}

export function familyOf(s: string): AddressFamily {
  const f = net.isIP(s);
  if (f !== 4 && f !== 6) throw new Error(`not an IP address: "${s}"`);
  return f;
}

/** Go's netip.Addr.IsGlobalUnicast(): not unspecified, loopback, multicast, link-local or broadcast. */
export function isGlobalUnicast(s: string): boolean {
  const f = net.isIP(s);
  if (f === 4) {
    const [a = 0, b = 0] = s.split('.').map(Number);
    if (s === '0.0.0.0' || s === '255.255.255.255') return false;
    if (a === 127 || a >= 224) return false;
    if (a === 169 && b === 254) return false;
    return true;
  }
  if (f === 6) {
    const bytes = ipv6Bytes(s);
    if (bytes.every((x) => x === 0)) return false; // ::
    if (bytes.slice(0, 15).every((x) => x === 0) && bytes[15] === 1) return false; // ::1
    if (bytes[0] === 0xff) return false; // multicast
    if (bytes[0] === 0xfe && ((bytes[1] ?? 0) & 0xc0) === 0x80) return false; // fe80::/10
    return true;
  }
  return false;
}

/** The 16 bytes of an IPv6 address (IPv4-suffixed forms included). */
export function ipv6Bytes(s: string): number[] {
  const sock = new net.SocketAddress({ address: s, family: 'ipv6' });
  // SocketAddress normalises; expand "::" manually from its canonical text.
  const text = sock.address;
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').flatMap((g) => {
    if (g.includes('.')) return g.split('.').map(Number);
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  }));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  return [...h, ...new Array<number>(16 - h.length - t.length).fill(0), ...t];
}

/** An address as an unsigned integer (32 bits for IPv4, 128 for IPv6). */
export function ipToBigInt(s: string): bigint {
  if (familyOf(s) === 4) return BigInt(s.split('.').reduce((n, o) => n * 256 + Number(o), 0));
  return ipv6Bytes(s).reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

/** The canonical text of an address given as an integer (RFC 5952 for IPv6, as Go's netip prints it). */
export function bigIntToIp(n: bigint, family: AddressFamily): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((n >> shift) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

/** The canonical text of an address (2001:DB8:0::1 → 2001:db8::1). */
export const canonicalAddress = (s: string): string => bigIntToIp(ipToBigInt(s), familyOf(s));

export interface ParsedCidr {
  family: AddressFamily;
  /** The address as written (host bits kept). */
  address: bigint;
  bits: number;
}

/**
 * Like Kubernetes' CEL isCIDR()/cidr() (Go's netip.ParsePrefix): an address without zone, a decimal
 * prefix length without leading zeros; IPv4-mapped IPv6 addresses are refused.
 */
export function parseCidr(s: string): ParsedCidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0 || slash !== s.lastIndexOf('/')) return undefined;
  const addr = s.slice(0, slash);
  const bitsText = s.slice(slash + 1);
  if (!isIP(addr) || !/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) return undefined;
  const family = familyOf(addr);
  const bits = Number(bitsText);
  if (bits > (family === 4 ? 32 : 128)) return undefined;
  if (family === 6 && isIPv4Mapped(addr)) return undefined;
  return { family, address: ipToBigInt(addr), bits };
}

/** ::ffff:a.b.c.d, which Kubernetes' CEL ip() and cidr() refuse. */
export function isIPv4Mapped(s: string): boolean {
  if (net.isIP(s) !== 6) return false;
  const b = ipv6Bytes(s);
  return b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

/** First and last address of a CIDR (host bits of the written address ignored). */
export function cidrBounds(c: ParsedCidr): { first: bigint; last: bigint } {
  const width = c.family === 4 ? 32n : 128n;
  const hostBits = width - BigInt(c.bits);
  const first = (c.address >> hostBits) << hostBits;
  return { first, last: first + (1n << hostBits) - 1n };
}
