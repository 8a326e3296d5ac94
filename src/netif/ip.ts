/** Address conversions between text and the byte form rtnetlink carries. */
import net from 'node:net';
import { familyOf, ipv6Bytes, type AddressFamily } from '../api/ip.ts';

export type { AddressFamily };

/** A VIP as bound on an interface: a host prefix, /32 or /128. */
export interface HostAddress {
  readonly family: AddressFamily;
  /** Canonical text (RFC 5952 for IPv6), as `ip -j addr` prints it. */
  readonly address: string;
  readonly bytes: Buffer;
  readonly prefixlen: 32 | 128;
}

/** AF_INET / AF_INET6 as the kernel numbers them. */
export const AF_INET = 2;
export const AF_INET6 = 10;

export function afOf(family: AddressFamily): number {
  return family === 4 ? AF_INET : AF_INET6;
}

/** Parses a VIP literal; throws a plain Error for anything that is not an IP address. */
export function hostAddress(text: string): HostAddress {
  const family = familyOf(text);
  const bytes = family === 4 ? Buffer.from(text.split('.').map(Number)) : Buffer.from(ipv6Bytes(text));
  return { family, address: formatAddress(bytes), bytes, prefixlen: family === 4 ? 32 : 128 };
}

/** Text of a 4- or 16-byte address. */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new Error(`address of ${bytes.length} bytes`);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // SocketAddress applies the same compression rules as inet_ntop (longest zero run, embedded IPv4).
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

/** `192.168.56.40/32` — how addresses are named in errors and logs. */
export function cidr(a: HostAddress): string {
  return `${a.address}/${a.prefixlen}`;
}
