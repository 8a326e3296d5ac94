import type { DestinationSnapshot, ServiceSnapshot } from './types.ts';

/** node_exporter's IPVS backend labels, plus ours. */
export const SERVICE_LABELS = ['virtual_service', 'local_address', 'local_port', 'proto', 'local_mark'] as const;
export const BACKEND_LABELS = [...SERVICE_LABELS, 'remote_address', 'remote_port'] as const;
export const HEALTH_LABELS = ['virtual_service', 'remote_address', 'remote_port'] as const;

export type ServiceLabel = (typeof SERVICE_LABELS)[number];
export type BackendLabel = (typeof BACKEND_LABELS)[number];
export type HealthLabel = (typeof HEALTH_LABELS)[number];

/**
 * Labels of a service the way node_exporter derives them from /proc/net/ip_vs, so the two can be joined:
 * proto is upper case; a fwmark service has proto "FWM", no address, port 0 and its mark as the kernel
 * prints it (%08X). virtual_service is left out when unknown (absent and empty are the same to Prometheus).
 */
export function serviceLabels(svc: ServiceSnapshot): Partial<Record<ServiceLabel, string>> {
  const vs = svc.virtualService === undefined ? {} : { virtual_service: svc.virtualService };
  return svc.fwmark
    ? { ...vs, local_address: '', local_port: '0', proto: 'FWM', local_mark: svc.fwmark.toString(16).toUpperCase().padStart(8, '0') }
    : { ...vs, local_address: svc.address, local_port: String(svc.port), proto: svc.protocol.toUpperCase(), local_mark: '' };
}

export function backendLabels(svc: ServiceSnapshot, dest: DestinationSnapshot): Partial<Record<BackendLabel, string>> {
  return { ...serviceLabels(svc), remote_address: dest.address, remote_port: String(dest.port) };
}

/**
 * Counters are exported as float64, which is what Prometheus stores anyway: exact up to 2^53, above that
 * rounded to the nearest double (relative error below 1.2e-16, e.g. 2^64-1 renders as 18446744073709552000).
 */
export function toFloat(v: bigint | number): number {
  return Number(v);
}
