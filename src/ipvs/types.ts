// Value types of the IPVS client: what a service/destination *is*, independent of the wire format.

export type AddressFamily = 'ipv4' | 'ipv6';
export type Protocol = 'tcp' | 'udp' | 'sctp';
/** masq = NAT, local = local node, tunnel = IP-in-IP/GUE/GRE, droute = direct routing (DR). */
export type ForwardingMethod = 'masq' | 'local' | 'tunnel' | 'droute';
export type TunnelType = 'ipip' | 'gue' | 'gre';
export type SyncDaemonRole = 'master' | 'backup';

/** A service keyed by protocol + virtual address + port (port 0 = all ports). */
export interface AddressServiceKey {
  readonly af: AddressFamily;
  readonly protocol: Protocol;
  readonly address: string;
  readonly port: number;
  readonly fwmark?: undefined;
}

/** A service keyed by firewall mark (+ family); the kernel ignores protocol/address/port for these. */
export interface FwmarkServiceKey {
  readonly af: AddressFamily;
  readonly fwmark: number;
  readonly protocol?: undefined;
  readonly address?: undefined;
  readonly port?: undefined;
}

export type ServiceKey = AddressServiceKey | FwmarkServiceKey;

export interface ServiceConfig {
  /** Scheduler module name without the `ip_vs_` prefix (rr, wlc, sh, mh, ...; `none` = no scheduler). */
  readonly scheduler: string;
  /**
   * `SvcFlag` bits (PERSISTENT, ONEPACKET, SCHED1..3). Values read back from the kernel also carry
   * HASHED (0x2); the encoder strips it and comparisons ignore it.
   */
  readonly flags: number;
  /** Persistence timeout in seconds (used when PERSISTENT is set). */
  readonly timeout: number;
  /**
   * Persistence granularity: for IPv4 the mask as an unsigned 32-bit number (0xffffff00 = /24),
   * for IPv6 the prefix length 1..128. Use `netmaskFromPrefix()`.
   */
  readonly netmask: number;
  /** Persistence engine (only `sip` exists in-tree). */
  readonly pe?: string | undefined;
}

export type Service = ServiceKey & ServiceConfig;

export interface DestinationKey {
  readonly address: string;
  readonly port: number;
  /** Destination family; differs from the service's only for tunnelled mixed-family setups. */
  readonly af: AddressFamily;
}

export interface Destination extends DestinationKey {
  readonly forwarding: ForwardingMethod;
  readonly weight: number;
  /** Upper active-connection threshold, 0 = unlimited. */
  readonly upperThreshold: number;
  /** Lower threshold, 0 = 75% of upper. */
  readonly lowerThreshold: number;
  readonly tunnelType: TunnelType;
  /** GUE destination UDP port (0 unless tunnelType is gue). */
  readonly tunnelPort: number;
  /** `TunFlag` bits: 0 = no checksum, CSUM, REMCSUM. */
  readonly tunnelFlags: number;
}

/** Counters since the last ZERO, plus the estimator's rates (bytes/s for *bps). All 64-bit. */
export interface Stats {
  readonly conns: bigint;
  readonly inpkts: bigint;
  readonly outpkts: bigint;
  readonly inbytes: bigint;
  readonly outbytes: bigint;
  readonly cps: bigint;
  readonly inpps: bigint;
  readonly outpps: bigint;
  readonly inbps: bigint;
  readonly outbps: bigint;
}

export interface DestinationCounters {
  readonly activeConns: number;
  readonly inactiveConns: number;
  /** Persistence templates pointing at this destination. */
  readonly persistConns: number;
}

export interface ServiceEntry {
  readonly service: Service;
  readonly stats: Stats;
}

export interface DestinationEntry {
  readonly destination: Destination;
  readonly counters: DestinationCounters;
  readonly stats: Stats;
}

/** A service with its destinations, as the reconcile loop sees the table. */
export interface ServiceState extends ServiceEntry {
  readonly destinations: readonly DestinationEntry[];
}

export interface IpvsInfo {
  /** e.g. "1.2.1" */
  readonly version: string;
  readonly versionCode: number;
  /** Connection hash table size (buckets). */
  readonly connTableSize: number;
}

/** Protocol timeouts in seconds. In setTimeouts, 0 or absent leaves a value unchanged. */
export interface Timeouts {
  readonly tcp: number;
  readonly tcpFin: number;
  readonly udp: number;
}

export interface SyncDaemonConfig {
  readonly role: SyncDaemonRole;
  /** Multicast interface name (must exist in the netns). */
  readonly interface: string;
  /** 0..255; a backup with 0 accepts every sync id. */
  readonly syncId: number;
  readonly maxLen?: number | undefined;
  /** IPv4 or IPv6 multicast group (default 224.0.0.81). */
  readonly group?: string | undefined;
  /** Default 8848. */
  readonly port?: number | undefined;
  /** Default 1. */
  readonly ttl?: number | undefined;
}

/** What GET_DAEMON reports: every field filled with the kernel's effective value. */
export interface SyncDaemon extends SyncDaemonConfig {
  readonly maxLen: number;
  readonly group: string;
  readonly port: number;
  readonly ttl: number;
}

export const ZERO_STATS: Stats = Object.freeze({
  conns: 0n,
  inpkts: 0n,
  outpkts: 0n,
  inbytes: 0n,
  outbytes: 0n,
  cps: 0n,
  inpps: 0n,
  outpps: 0n,
  inbps: 0n,
  outbps: 0n,
});

export const ZERO_COUNTERS: DestinationCounters = Object.freeze({ activeConns: 0, inactiveConns: 0, persistConns: 0 });

/**
 * A destination with ipvsadm's defaults (direct routing, weight 1, no thresholds, IPIP tunnel fields
 * zeroed), the family taken from the address; `rest` overrides any field.
 */
export function destination(address: string, port: number, rest: Partial<Destination> = {}): Destination {
  return {
    address,
    port,
    af: address.includes(':') ? 'ipv6' : 'ipv4',
    forwarding: 'droute',
    weight: 1,
    upperThreshold: 0,
    lowerThreshold: 0,
    tunnelType: 'ipip',
    tunnelPort: 0,
    tunnelFlags: 0,
    ...rest,
  };
}
