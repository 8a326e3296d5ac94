/**
 * The Lease that elects a VirtualService's VIP holder: one per service, in the operator namespace. The name
 * is readable (`lvs-vip-<namespace>-<name>`, squeezed to DNS-1123 label characters and truncated) and made
 * unique by a hash of the full service id, since squeezing and truncation can map two ids to the same text.
 */
import { createHash } from 'node:crypto';

const PREFIX = 'lvs-vip-';
/** Fits a DNS-1123 label (63) too, so the name can also be used as a label value. */
const MAX = 63;
const HASH_LEN = 10;

/** `service` is the VirtualService id, "namespace/name". */
export function vipLeaseName(service: string): string {
  const hash = createHash('sha256').update(service).digest('hex').slice(0, HASH_LEN);
  const readable = service
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const room = MAX - PREFIX.length - 1 - HASH_LEN;
  const body = readable.slice(0, room).replace(/-+$/, '');
  return `${PREFIX}${body ? `${body}-` : ''}${hash}`;
}
