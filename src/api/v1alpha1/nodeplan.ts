import type { Condition, ObjectMeta } from './meta.ts';
import type { ForwardingMethod, HealthCheckType, Protocol, Scheduler, SchedulerFlag } from './virtualservice.ts';

/** A health check with every default filled in. */
export interface PlannedHealthCheck {
  /** TCP, HTTP, HTTPS or None. */
  type: HealthCheckType;
  /**
   * Port to check; the realserver's port when absent.
   * @minimum 1
   * @maximum 65535
   */
  port?: number;
  /**
   * HTTP request path.
   * @maxLength 1024
   */
  path?: string;
  /**
   * HTTP Host header.
   * @maxLength 253
   */
  host?: string;
  /**
   * HTTP status codes that count as healthy.
   * @maxItems 16
   */
  expectedStatuses?: number[];
  /**
   * Seconds between checks.
   * @minimum 1
   */
  intervalSeconds: number;
  /**
   * Seconds a check may take.
   * @minimum 1
   */
  timeoutSeconds: number;
  /**
   * Good checks in a row that bring a realserver back.
   * @minimum 1
   */
  rise: number;
  /**
   * Failed checks in a row that take a realserver out.
   * @minimum 1
   */
  fall: number;
}

/** One realserver of a planned service. */
export interface PlannedDestination {
  /**
   * namespace/name of the RealServer.
   * @maxLength 317
   */
  realServer: string;
  /**
   * Resolved IP address.
   * @maxLength 45
   */
  address: string;
  /**
   * Port on the realserver.
   * @minimum 1
   * @maximum 65535
   */
  port: number;
  /**
   * Configured weight (the director sets 0 while the health check fails).
   * @minimum 0
   * @maximum 65535
   */
  weight: number;
  // The controller leaves zero thresholds out: every field of a shard costs the API server on each write
  // and on each of its periodic reads of all shards from etcd (its watch-cache consistency check).
  /**
   * Upper connection threshold; none when absent or 0.
   * @minimum 0
   */
  upperThreshold?: number;
  /**
   * Lower connection threshold; the kernel default when absent or 0.
   * @minimum 0
   */
  lowerThreshold?: number;
}

/** One IPVS virtual service a director programs. */
export interface PlannedService {
  /**
   * namespace/name of the VirtualService.
   * @maxLength 317
   */
  id: string;
  /**
   * metadata.generation of the VirtualService this entry was planned from.
   * @minimum 0
   */
  generation: number;
  /**
   * The virtual IP address.
   * @maxLength 45
   */
  vip: string;
  /**
   * The virtual port.
   * @minimum 1
   * @maximum 65535
   */
  port: number;
  /** Transport protocol. */
  protocol: Protocol;
  /** IPVS scheduler. */
  scheduler: Scheduler;
  /**
   * Scheduler flags.
   * @maxItems 2
   */
  schedulerFlags: SchedulerFlag[];
  /** One-packet scheduling (UDP). */
  onePacket: boolean;
  /** Forwarding method. */
  forwarding: ForwardingMethod;
  /** Persistence; off when absent. */
  persistence?: PlannedPersistence;
  /**
   * Interface that holds the VIP; the default route's interface when absent.
   * @maxLength 15
   */
  interface?: string;
  /** Whether this director binds and announces the VIP (the others keep the same table as hot standbys). */
  holdVip: boolean;
  /**
   * How many other directors are planned for this service (hot standbys). With VIP election and at least
   * one standby, the holder binds the VIP with a kernel lifetime it keeps refreshing, so the address leaves
   * a director whose agent died; with none, a dead agent's VIP stays (the kernel keeps serving). Absent: 0.
   * @minimum 0
   */
  standbyDirectors?: number;
  /**
   * The VIPPool that admitted the VIP. A cluster agent refuses a service without one (defence in depth:
   * only the controller's admission may put a VIP on a node).
   * @maxLength 253
   */
  pool?: string;
  /** Health check of the realservers. */
  healthCheck: PlannedHealthCheck;
  /**
   * Seconds a removed TCP realserver keeps its connections before it is deleted.
   * @minimum 0
   */
  drainTimeoutSeconds: number;
  /**
   * The realservers.
   * @maxItems 1000
   */
  destinations: PlannedDestination[];
}

/** Persistence of a planned service. */
export interface PlannedPersistence {
  /**
   * Persistence timeout in seconds.
   * @minimum 1
   */
  timeoutSeconds: number;
  /**
   * Dotted IPv4 netmask or IPv6 prefix length.
   * @maxLength 15
   */
  netmask?: string;
}

/** A VIP a realserver node must accept without answering ARP for it. */
export interface PlannedRealServerVip {
  /**
   * namespace/name of the VirtualService.
   * @maxLength 317
   */
  service: string;
  /**
   * The virtual IP address.
   * @maxLength 45
   */
  vip: string;
  /** DirectRouting (VIP on lo) or Tunnel (VIP on tunl0). */
  forwarding: 'DirectRouting' | 'Tunnel';
  /**
   * The VIPPool that admitted the VIP; a cluster agent refuses to bind a VIP without one.
   * @maxLength 253
   */
  pool?: string;
}

/**
 * NodePlanSpec is what one node's agent must do, written by the controller. A node's plan is split over
 * several NodePlan objects (shards) so that none approaches the etcd object size limit.
 */
export interface NodePlanSpec {
  /**
   * Name of the Node this plan is for.
   * @maxLength 253
   */
  node: string;
  /**
   * Index of this shard among the node's NodePlans.
   * @minimum 0
   * @maximum 4095
   */
  shard: number;
  /**
   * Services this node directs (in this shard).
   * @maxItems 2000
   */
  director: PlannedService[];
  /**
   * VIPs this node serves as a prepared realserver (in this shard).
   * @maxItems 2000
   */
  realServer: PlannedRealServerVip[];
}

/** A realserver of a planned service, by address and port. */
export interface DestinationRef {
  /**
   * Realserver address.
   * @maxLength 45
   */
  address: string;
  /**
   * Realserver port.
   * @minimum 1
   * @maximum 65535
   */
  port: number;
}

/** What the agent did with one planned service. */
export interface ServiceReport {
  /**
   * namespace/name of the VirtualService.
   * @maxLength 317
   */
  id: string;
  /**
   * The generation the agent applied.
   * @minimum 0
   */
  generation: number;
  /** Whether the service is fully programmed. */
  programmed: boolean;
  /** Whether this node holds the VIP. */
  holdsVip: boolean;
  /**
   * Since when this node holds the VIP without interruption (RFC 3339), while holdsVip. The controller
   * shows the most recent holder as the active director: a director that died keeps its last report.
   * @format date-time
   */
  vipHeldSince?: string;
  /**
   * Why the service is not fully programmed (errno and object).
   * @maxItems 16
   * @itemMaxLength 1024
   */
  errors?: string[];
  // Only the failing ones: an entry for every realserver took 30 of the 36 fields of a service's report at 10
  // realservers, fields the API server walks on every write and on its periodic reads of all shards from etcd.
  /**
   * Its realservers whose health check fails. The others pass, or have not been checked yet: a director
   * counts a realserver healthy until its checks say otherwise.
   * @maxItems 1000
   */
  unhealthy?: DestinationRef[];
}

/** What the agent did with one realserver VIP. */
export interface RealServerVipReport {
  /**
   * namespace/name of the VirtualService.
   * @maxLength 317
   */
  service: string;
  /**
   * The VIP.
   * @maxLength 45
   */
  vip: string;
  /** Whether the VIP is bound and the sysctls are set. */
  prepared: boolean;
  /**
   * Why not.
   * @maxItems 16
   * @itemMaxLength 1024
   */
  errors?: string[];
}

/** NodePlanStatus is what the node's agent reports. */
export interface NodePlanStatus {
  /**
   * The metadata.generation of this NodePlan the agent applied.
   * @minimum 0
   */
  observedGeneration?: number;
  /**
   * Programmed: every entry of this shard is applied.
   * @listType map
   * @listMapKey type
   * @maxItems 8
   */
  conditions?: Condition[];
  /**
   * Per planned service.
   * @maxItems 2000
   */
  services?: ServiceReport[];
  /**
   * Per realserver VIP.
   * @maxItems 2000
   */
  realServer?: RealServerVipReport[];
}

/** NodePlan is a shard of what one node's lvs-operator agent must do, and what it did. */
export interface NodePlan {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  /** Desired state for the node, written by the controller. */
  spec: NodePlanSpec;
  /** Observed state, written by the node's agent. */
  status?: NodePlanStatus;
}
