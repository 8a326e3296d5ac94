// Identity of services and destinations: canonical keys, ipvsadm-style names, and equality that
// ignores what the kernel adds on its own (HASHED, address spelling).

import { defaultNetmask, formatIPv4Netmask, normalizeAddress } from './addr.ts';
import { SvcFlag } from './constants.ts';
import type { Destination, DestinationKey, Service, ServiceKey } from './types.ts';

const PROTO_NAMES = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' } as const;

function hostPort(af: 'ipv4' | 'ipv6', address: string, port: number): string {
  const a = normalizeAddress(af, address);
  return af === 'ipv6' ? `[${a}]:${port}` : `${a}:${port}`;
}

/**
 * Canonical key and display name of a service, in ipvsadm notation:
 * `192.168.56.40:80/TCP`, `[2001:db8::1]:80/TCP`, `fwmark 1/IPv4`.
 */
export function serviceKey(s: ServiceKey): string {
  if (s.fwmark !== undefined) return `fwmark ${s.fwmark}/${s.af === 'ipv4' ? 'IPv4' : 'IPv6'}`;
  return `${hostPort(s.af, s.address, s.port)}/${PROTO_NAMES[s.protocol]}`;
}

/** Canonical key and display name of a destination within a service: `10.0.0.1:80`, `[2001:db8::2]:80`. */
export function destKey(d: DestinationKey): string {
  return hostPort(d.af, d.address, d.port);
}

export const formatService = serviceKey;
export const formatDestination = destKey;

/** Only the key fields of a service (what DEL/GET/ZERO need). */
export function keyOf(s: ServiceKey): ServiceKey {
  return s.fwmark !== undefined
    ? { af: s.af, fwmark: s.fwmark }
    : { af: s.af, protocol: s.protocol, address: s.address, port: s.port };
}

/** Names of the set flags as ipvsadm spells them (sched flags depend on the scheduler). */
export function serviceFlagNames(scheduler: string, flags: number): string[] {
  const names: string[] = [];
  if (flags & SvcFlag.PERSISTENT) names.push('persistent');
  if (flags & SvcFlag.ONEPACKET) names.push('ops');
  const prefix = scheduler === 'sh' || scheduler === 'mh' ? scheduler : undefined;
  if (flags & SvcFlag.SCHED1) names.push(prefix ? `${prefix}-fallback` : 'flag-1');
  if (flags & SvcFlag.SCHED2) names.push(prefix ? `${prefix}-port` : 'flag-2');
  if (flags & SvcFlag.SCHED3) names.push('flag-3');
  return names;
}

/** Flags as the user means them: without the kernel-internal HASHED bit. */
export function userFlags(flags: number): number {
  return (flags & ~SvcFlag.HASHED) >>> 0;
}

/** True when two services have the same key and configuration (HASHED ignored, addresses normalised). */
export function sameService(a: Service, b: Service): boolean {
  return (
    serviceKey(a) === serviceKey(b) &&
    a.scheduler === b.scheduler &&
    userFlags(a.flags) === userFlags(b.flags) &&
    a.timeout === b.timeout &&
    a.netmask >>> 0 === b.netmask >>> 0 &&
    (a.pe ?? '') === (b.pe ?? '')
  );
}

/** True when two destinations would be programmed identically (tunnel fields included). */
export function sameDestination(a: Destination, b: Destination): boolean {
  return destKey(a) === destKey(b) && sameDestinationSettings(a, b);
}

/** sameDestination for two destinations already known to have the same key. */
export function sameDestinationSettings(a: Destination, b: Destination): boolean {
  return (
    a.forwarding === b.forwarding &&
    a.weight === b.weight &&
    a.upperThreshold === b.upperThreshold &&
    a.lowerThreshold === b.lowerThreshold &&
    a.tunnelType === b.tunnelType &&
    a.tunnelPort === b.tunnelPort &&
    a.tunnelFlags === b.tunnelFlags
  );
}

/** Netmask in ipvsadm notation: dotted for IPv4, prefix length for IPv6; undefined when default. */
export function formatNetmask(s: Service): string | undefined {
  if (s.netmask >>> 0 === defaultNetmask(s.af)) return undefined;
  return s.af === 'ipv4' ? formatIPv4Netmask(s.netmask) : String(s.netmask);
}
