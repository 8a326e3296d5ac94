/** Maps planned services (API vocabulary) onto IPVS value types (kernel vocabulary). */
import type { PlannedDestination, PlannedService } from '../../model/plan.ts';
import type { Destination, Service, AddressFamily, ForwardingMethod } from '../../ipvs/types.ts';
import { destination } from '../../ipvs/types.ts';
import { SvcFlag } from '../../ipvs/constants.ts';
import { defaultNetmask, netmaskFromPrefix, parseIPv4 } from '../../ipvs/addr.ts';
import { familyOf } from '../../api/ip.ts';

export const afOf = (address: string): AddressFamily => (familyOf(address) === 4 ? 'ipv4' : 'ipv6');

const FORWARDING: Record<PlannedService['forwarding'], ForwardingMethod> = { DirectRouting: 'droute', NAT: 'masq', Tunnel: 'tunnel' };

function netmaskOf(af: AddressFamily, text: string | undefined): number {
  if (text === undefined) return defaultNetmask(af);
  if (af === 'ipv6') return netmaskFromPrefix(af, Number(text));
  const b = parseIPv4(text);
  if (!b) throw new Error(`invalid IPv4 netmask "${text}"`);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

export function ipvsService(p: PlannedService): Service {
  const af = afOf(p.vip);
  let flags = 0;
  if (p.persistence) flags |= SvcFlag.PERSISTENT;
  if (p.onePacket) flags |= SvcFlag.ONEPACKET;
  for (const f of p.schedulerFlags) flags |= f.endsWith('-fallback') ? SvcFlag.SCHED1 : SvcFlag.SCHED2;
  return {
    af,
    protocol: p.protocol === 'TCP' ? 'tcp' : p.protocol === 'UDP' ? 'udp' : 'sctp',
    address: p.vip,
    port: p.port,
    scheduler: p.scheduler,
    flags,
    timeout: p.persistence?.timeoutSeconds ?? 0,
    netmask: netmaskOf(af, p.persistence?.netmask),
  };
}

/** The destination as the kernel should hold it; `weight` is the effective weight (0 when unhealthy). */
export function ipvsDestination(p: PlannedService, d: PlannedDestination, weight: number): Destination {
  return destination(d.address, d.port, {
    af: afOf(d.address),
    forwarding: FORWARDING[p.forwarding],
    weight,
    upperThreshold: d.upperThreshold ?? 0,
    lowerThreshold: d.lowerThreshold ?? 0,
  });
}
