/**
 * The Lease that elects a VIP's holder: one per VIP (not per VirtualService: the address is bound per VIP,
 * so every service on it must follow the same director), in the operator namespace. The name is readable
 * (`lvs-vip-<address>`, squeezed to DNS-1123 label characters and truncated) and made unique by a hash of
 * the canonical address, since squeezing maps 2001:db8::1:0 and 2001:db8:1:: to the same text.
 *
 * `serviceLeaseName` is the name the agents used before (one Lease per VirtualService): still read during an
 * upgrade, so that an upgraded standby does not take a VIP an old agent holds (election.ts, "Migration").
 */
import { createHash } from 'node:crypto';
import { canonicalAddress } from '../../api/ip.ts';

const PREFIX = 'lvs-vip-';
/** Fits a DNS-1123 label (63) too, so the name can also be used as a label value. */
const MAX = 63;
const HASH_LEN = 10;

function leaseName(key: string, readableFrom: string): string {
  const hash = createHash('sha256').update(key).digest('hex').slice(0, HASH_LEN);
  const readable = readableFrom
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const room = MAX - PREFIX.length - 1 - HASH_LEN;
  const body = readable.slice(0, room).replace(/-+$/, '');
  return `${PREFIX}${body ? `${body}-` : ''}${hash}`;
}

/** `vip` is an IPv4 or IPv6 address, in any spelling (2001:DB8::1 and 2001:db8:0::1 name the same Lease). */
export function vipLeaseName(vip: string): string {
  const canonical = canonicalAddress(vip);
  return leaseName(`vip:${canonical}`, canonical);
}

/** The per-VirtualService Lease of agents before per-VIP Leases; `service` is "namespace/name". */
export function serviceLeaseName(service: string): string {
  return leaseName(service, service);
}
