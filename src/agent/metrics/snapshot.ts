/** Adapts the IPVS dump to the metrics snapshot, naming the VirtualService of services the agent owns. */
import type { IpvsInterface } from '../../ipvs/interface.ts';
import { serviceKey } from '../../ipvs/keys.ts';
import type { StateStore } from '../state.ts';
import type { ServiceSnapshot, SnapshotReader } from './types.ts';

export function ipvsSnapshotReader(ipvs: IpvsInterface, state: StateStore): SnapshotReader {
  return async (): Promise<ServiceSnapshot[]> => {
    const owners = state.load().services;
    return (await ipvs.listServices({ interleave: true })).map((s) => {
      const svc = s.service;
      const owner = owners[serviceKey(svc)];
      return {
        ...(owner ? { virtualService: owner } : {}),
        protocol: svc.protocol ?? 'tcp',
        address: svc.address ?? '',
        port: svc.port ?? 0,
        ...(svc.fwmark !== undefined ? { fwmark: svc.fwmark } : {}),
        stats: s.stats,
        destinations: s.destinations.map((d) => ({
          address: d.destination.address,
          port: d.destination.port,
          weight: d.destination.weight,
          activeConns: d.counters.activeConns,
          inactiveConns: d.counters.inactiveConns,
          stats: d.stats,
        })),
      };
    });
  };
}
