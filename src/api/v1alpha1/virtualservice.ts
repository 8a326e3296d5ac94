import type { Condition, LabelSelector, ObjectMeta } from './meta.ts';

/** Every IPVS scheduler of the kernel (ipvsadm -s). */
export type Scheduler = 'rr' | 'wrr' | 'lc' | 'wlc' | 'lblc' | 'lblcr' | 'dh' | 'sh' | 'sed' | 'nq' | 'fo' | 'ovf' | 'mh';
export const SCHEDULERS: readonly Scheduler[] = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'];

/** Flags of the hashing schedulers (ipvsadm -b). */
export type SchedulerFlag = 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port';

/** Transport protocol of a virtual service. */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** How the director forwards packets to realservers (ipvsadm -g, -m, -i). */
export type ForwardingMethod = 'DirectRouting' | 'NAT' | 'Tunnel';

/** Kind of health check. */
export type HealthCheckType = 'TCP' | 'HTTP' | 'HTTPS' | 'None';

/**
 * Client persistence (ipvsadm -p/-M): connections from the same client, or client network, go to the same
 * realserver while a persistence template lives.
 */
export interface Persistence {
  /**
   * How long, in seconds, a client stays bound to its realserver after its last connection ends.
   * @minimum 1
   * @maximum 2147483
   * @default 300
   */
  timeoutSeconds?: number;
  /**
   * Granularity of persistence: clients whose addresses are equal under this mask share one realserver.
   * For an IPv4 VIP a dotted netmask such as 255.255.255.0; for an IPv6 VIP a prefix length such as 64.
   * Defaults to a single client address (255.255.255.255 or 128).
   * @maxLength 15
   * @pattern ^((255\.){3}(255|254|252|248|240|224|192|128|0)|(255\.){2}(254|252|248|240|224|192|128|0)\.0|255\.(254|252|248|240|224|192|128|0)\.0\.0|(254|252|248|240|224|192|128)\.0\.0\.0|[1-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$
   */
  netmask?: string;
}

/** Which nodes act as directors for a virtual service and where they hold the VIP. */
export interface DirectorPlacement {
  /**
   * Labels a node must carry to act as director for this service. Defaults to the operator's director
   * node selector (by default nodes labelled lvs.operator.dev/director=true).
   * @maxProperties 16
   */
  nodeSelector?: Record<string, string>;
  /**
   * Network interface on the director that holds the VIP and faces clients and realservers, e.g. eth0.
   * Defaults to the interface of the node's default route.
   * @maxLength 15
   * @pattern ^[a-zA-Z0-9][a-zA-Z0-9_.:-]*$
   */
  interface?: string;
}

/**
 * Active health checking of realservers by the director, like keepalived's checkers. A realserver that
 * fails `fall` checks in a row is quiesced (weight 0, no new connections); after `rise` good checks in a
 * row it gets its weight back.
 * @cel {"rule":"self.timeoutSeconds <= self.intervalSeconds","message":"healthCheck.timeoutSeconds must not exceed healthCheck.intervalSeconds"}
 * @cel {"rule":"self.type == 'HTTP' || self.type == 'HTTPS' || (!has(self.path) && !has(self.expectedStatuses) && !has(self.host))","message":"healthCheck.path, host and expectedStatuses apply only to HTTP and HTTPS checks"}
 */
export interface HealthCheck {
  /**
   * TCP opens a connection; HTTP and HTTPS send a GET and check the status code (HTTPS does not verify
   * the certificate, as keepalived's SSL_GET); None trusts every realserver.
   * @default "TCP"
   */
  type: HealthCheckType;
  /**
   * Port to check. Defaults to the realserver's port.
   * @minimum 1
   * @maximum 65535
   */
  port?: number;
  /**
   * Request path of HTTP and HTTPS checks. Defaults to /.
   * @maxLength 1024
   * @pattern ^/
   */
  path?: string;
  /**
   * Host header of HTTP and HTTPS checks. Defaults to the VIP.
   * @maxLength 253
   */
  host?: string;
  /**
   * HTTP status codes that count as healthy. Defaults to 200.
   * @maxItems 16
   * @listType set
   * @itemMinimum 100
   * @itemMaximum 599
   */
  expectedStatuses?: number[];
  /**
   * Seconds between two checks of one realserver.
   * @minimum 1
   * @maximum 3600
   * @default 3
   */
  intervalSeconds: number;
  /**
   * Seconds a check may take before it counts as failed.
   * @minimum 1
   * @maximum 3600
   * @default 1
   */
  timeoutSeconds: number;
  /**
   * Consecutive successful checks that bring a failed realserver back.
   * @minimum 1
   * @maximum 100
   * @default 2
   */
  rise: number;
  /**
   * Consecutive failed checks that take a realserver out of rotation.
   * @minimum 1
   * @maximum 100
   * @default 2
   */
  fall: number;
}

/**
 * VirtualServiceSpec is the desired state of one IPVS virtual service: the address clients connect to and
 * how the director spreads their connections over the selected realservers.
 * @cel {"rule":"!has(self.schedulerFlags) || size(self.schedulerFlags) == 0 || (self.scheduler == 'sh' && self.schedulerFlags.all(f, f.startsWith('sh-'))) || (self.scheduler == 'mh' && self.schedulerFlags.all(f, f.startsWith('mh-')))","message":"schedulerFlags sh-fallback/sh-port need scheduler sh, and mh-fallback/mh-port need scheduler mh"}
 * @cel {"rule":"!has(self.persistence) || !has(self.persistence.netmask) || (has(self.vip) ? self.vip.contains(':') : (has(self.ipFamily) && self.ipFamily == 'IPv6')) != self.persistence.netmask.contains('.')","message":"persistence.netmask must be a dotted netmask for an IPv4 VIP and a prefix length for an IPv6 VIP"}
 * @cel {"rule":"!has(self.onePacket) || !self.onePacket || self.protocol == 'UDP'","message":"onePacket scheduling applies only to UDP services"}
 * @cel {"rule":"!has(self.ipFamily) || !has(self.vip) || (self.ipFamily == 'IPv6') == self.vip.contains(':')","message":"ipFamily must be the family of vip"}
 */
export interface VirtualServiceSpec {
  /**
   * The virtual IP address (IPv4 or IPv6) that clients connect to. Directors hold it; in DirectRouting and
   * Tunnel mode realservers hold it too, hidden from ARP. It must lie in a VIPPool that allows this
   * namespace. When absent, the controller allocates the lowest free address of an allowed pool and
   * records it in status.vip.
   * @maxLength 45
   * @cel {"rule":"isIP(self)","message":"vip must be a valid IPv4 or IPv6 address"}
   * @cel {"rule":"!isIP(self) || ip(self).isGlobalUnicast()","message":"vip must be a unicast address (not loopback, link-local, multicast or unspecified)"}
   */
  vip?: string;
  /**
   * Name of the VIPPool the VIP must come from (allocation included, even from a pool that does not
   * auto-assign). Any pool that allows this namespace when absent.
   * @maxLength 253
   * @pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$
   */
  vipPool?: string;
  /**
   * Address family of an allocated VIP (without spec.vip). Defaults to the family a persistence netmask
   * implies, else to the first free address in pool order.
   */
  ipFamily?: 'IPv4' | 'IPv6';
  /**
   * The port clients connect to.
   * @minimum 1
   * @maximum 65535
   */
  port: number;
  /**
   * Transport protocol.
   * @default "TCP"
   */
  protocol: Protocol;
  /**
   * IPVS scheduling algorithm: rr round robin, wrr weighted round robin, lc least connections, wlc weighted
   * least connections, lblc/lblcr locality-based least connections (with replication), dh destination hash,
   * sh source hash, sed shortest expected delay, nq never queue, fo weighted failover, ovf weighted overflow,
   * mh Maglev hash. Defaults to wlc, as ipvsadm.
   * @default "wlc"
   */
  scheduler: Scheduler;
  /**
   * Flags of the hashing schedulers: sh-fallback/mh-fallback skip unavailable realservers, sh-port/mh-port
   * also hash the client's source port. Only with scheduler sh (sh-*) or mh (mh-*).
   * @maxItems 2
   * @listType set
   */
  schedulerFlags?: SchedulerFlag[];
  /**
   * One-packet scheduling: schedule every UDP datagram on its own (ipvsadm -o). UDP only.
   */
  onePacket?: boolean;
  /**
   * Forwarding method: DirectRouting (the director rewrites only the MAC; realservers share its L2 segment
   * and hold the VIP on lo), NAT (the director rewrites addresses and must be the realservers' gateway) or
   * Tunnel (IP-in-IP to realservers that hold the VIP on tunl0).
   * @default "DirectRouting"
   */
  forwarding: ForwardingMethod;
  /** Client persistence (session affinity). Off when absent. */
  persistence?: Persistence;
  /**
   * Selects the RealServers, in this namespace, that serve this virtual service. An empty selector selects
   * every RealServer in the namespace.
   */
  realServerSelector: LabelSelector;
  /** Which nodes direct traffic for this service, and on which interface they hold the VIP. */
  directors?: DirectorPlacement;
  /** Health checking of the realservers. Defaults to a TCP connect check. */
  healthCheck?: HealthCheck;
  /**
   * Seconds a removed realserver keeps its established connections (weight 0) before it is deleted from
   * the kernel table. UDP and SCTP realservers are removed at once.
   * @minimum 0
   * @maximum 86400
   * @default 60
   */
  drainTimeoutSeconds?: number;
}

/** Counts of the realservers behind a virtual service. */
export interface RealServerSummary {
  /**
   * Realservers selected.
   * @minimum 0
   */
  total: number;
  /**
   * Selected realservers that pass their health check and have a non-zero weight.
   * @minimum 0
   */
  healthy: number;
  /**
   * healthy/total, for kubectl get.
   * @maxLength 32
   */
  ready: string;
}

/** VirtualServiceStatus is the observed state of a virtual service, written by the controller. */
export interface VirtualServiceStatus {
  /**
   * The metadata.generation this status describes.
   * @minimum 0
   */
  observedGeneration?: number;
  /**
   * Accepted (the spec is valid and may be served), Programmed (every director applied this generation)
   * and Ready (the VIP is held and at least one realserver is healthy).
   * @listType map
   * @listMapKey type
   * @maxItems 8
   */
  conditions?: Condition[];
  /** The realservers behind the service. */
  realServers?: RealServerSummary;
  /**
   * Node that currently holds the VIP.
   * @maxLength 253
   */
  activeDirector?: string;
  /**
   * The VIP in use: spec.vip, or the address allocated from a pool. Absent while the service is not
   * accepted. An allocation stays with the service across controller restarts.
   * @maxLength 45
   */
  vip?: string;
  /**
   * The VIPPool that admitted the VIP.
   * @maxLength 253
   */
  vipPool?: string;
}

/**
 * VirtualService is an IPVS virtual service (ipvsadm -A): a VIP, port and protocol balanced over the
 * RealServers its selector picks.
 */
export interface VirtualService {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  /** Desired state of the virtual service. */
  spec: VirtualServiceSpec;
  /** Observed state of the virtual service. */
  status?: VirtualServiceStatus;
}
