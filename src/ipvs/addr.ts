// IP address text <-> bytes. Hand-written because Node has no inet_pton, and formatting must match
// glibc's inet_ntop (what ipvsadm prints) so keys and oracle comparisons line up.

import type { AddressFamily } from './types.ts';

export function familyOf(address: string): AddressFamily | undefined {
  if (parseIPv4(address)) return 'ipv4';
  if (parseIPv6(address)) return 'ipv6';
  return undefined;
}

/** 4 bytes in network order, or undefined when `text` is not dotted-quad IPv4 (no leading '+', no spaces). */
export function parseIPv4(text: string): Uint8Array | undefined {
  // Hand-rolled: this runs for every request in bulk syncs.
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return undefined;
    } else if (c === 46 && digits > 0 && part < 3) {
      out[part++] = value;
      value = 0;
      digits = 0;
    } else {
      return undefined;
    }
  }
  if (part !== 3 || digits === 0) return undefined;
  out[3] = value;
  return out;
}

/** 16 bytes, or undefined when `text` is not IPv6 (accepts `::` compression and a dotted-quad tail). */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length === 0 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const groups: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p);
        if (!v4) return undefined;
        groups.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        groups.push(parseInt(p, 16));
      }
    }
    return groups;
  };
  const head = parseGroups(halves[0] as string);
  const tail = halves.length === 2 ? parseGroups(halves[1] as string) : [];
  if (!head || !tail) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** Address bytes for the given family; throws TypeError on a mismatch (caller bug, not kernel data). */
export function addressBytes(af: AddressFamily, address: string): Uint8Array {
  const bytes = af === 'ipv4' ? parseIPv4(address) : parseIPv6(address);
  if (!bytes) throw new TypeError(`not an ${af === 'ipv4' ? 'IPv4' : 'IPv6'} address: ${JSON.stringify(address)}`);
  return bytes;
}

export function formatIPv4(b: Uint8Array, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** glibc inet_ntop: longest run (>= 2) of zero groups becomes `::`, v4-mapped/compatible keep a dotted tail. */
export function formatIPv6(b: Uint8Array, offset = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(((b[offset + i * 2] as number) << 8) | (b[offset + i * 2 + 1] as number));
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase === -1) {
        curBase = i;
        curLen = 1;
      } else curLen++;
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += formatIPv4(b, offset + 12);
      break;
    }
    out += (words[i] as number).toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/**
 * Canonical forms already computed, per family: keys are built for every service and destination on every
 * full run (a few per destination), and the same few thousand addresses come back each time. Bounded.
 */
const canonical = { ipv4: new Map<string, string>(), ipv6: new Map<string, string>() };
const CANONICAL_MAX = 1 << 16;

/** Canonical text of an address of the given family (as the kernel would report it back). */
export function normalizeAddress(af: AddressFamily, address: string): string {
  const cache = canonical[af];
  let out = cache.get(address);
  if (out !== undefined) return out;
  const bytes = addressBytes(af, address);
  out = af === 'ipv4' ? formatIPv4(bytes) : formatIPv6(bytes);
  if (cache.size >= CANONICAL_MAX) cache.clear();
  cache.set(address, out);
  return out;
}

/** IPv4 netmask (unsigned 32-bit) for a prefix length, or the IPv6 prefix itself. */
export function netmaskFromPrefix(af: AddressFamily, prefix: number): number {
  if (af === 'ipv6') return prefix;
  if (prefix <= 0) return 0;
  return (0xffffffff << (32 - Math.min(prefix, 32))) >>> 0;
}

export function defaultNetmask(af: AddressFamily): number {
  return af === 'ipv4' ? 0xffffffff : 128;
}

/** Dotted form of an IPv4 netmask value (0xffffff00 -> 255.255.255.0). */
export function formatIPv4Netmask(mask: number): string {
  return [24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.');
}

export function isMulticast(address: string): boolean {
  const v4 = parseIPv4(address);
  if (v4) return ((v4[0] as number) & 0xf0) === 0xe0;
  const v6 = parseIPv6(address);
  return v6 !== undefined && v6[0] === 0xff;
}
