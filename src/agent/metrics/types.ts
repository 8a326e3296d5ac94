import type { Stats } from '../../ipvs/types.ts';

/**
 * What the metrics collector reads from the kernel at scrape time. Field names follow the IPVS netlink
 * stats (IPVS_STATS_ATTR_*), 64-bit, so the IPVS client's Stats fits as it is.
 */
export type IpvsStats = Stats;

export type SnapshotProtocol = 'tcp' | 'udp' | 'sctp';

export interface DestinationSnapshot {
  /** Canonical textual address (IPv6 compressed, lowercase), as node_exporter prints it. */
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly activeConns: number;
  readonly inactiveConns: number;
  readonly stats: IpvsStats;
}

export interface ServiceSnapshot {
  /** "namespace/name" of the VirtualService, when the service is one the agent manages. */
  readonly virtualService?: string;
  readonly protocol: SnapshotProtocol;
  /** VIP; ignored for fwmark services. */
  readonly address: string;
  readonly port: number;
  /** Set (non-zero) for a firewall-mark service, which has no address or port. */
  readonly fwmark?: number;
  readonly stats: IpvsStats;
  readonly destinations: readonly DestinationSnapshot[];
}

/** Dumps the IPVS table; rejects when the kernel cannot be read. */
export type SnapshotReader = () => Promise<ServiceSnapshot[]>;
