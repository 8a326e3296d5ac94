/**
 * The node plan: everything one node's agent must do, computed by the planner from the API objects.
 * The controller and the standalone agent both produce it; the agent only consumes it. Plain JSON so it
 * can travel in a per-node object.
 */
import type { ForwardingMethod, Protocol, Scheduler, SchedulerFlag, HealthCheckType } from '../api/v1alpha1/virtualservice.ts';

/** Health check with every default filled in. */
export interface PlannedHealthCheck {
  type: HealthCheckType;
  port?: number;
  path?: string;
  host?: string;
  expectedStatuses?: number[];
  intervalSeconds: number;
  timeoutSeconds: number;
  rise: number;
  fall: number;
}

export interface PlannedDestination {
  /** namespace/name of the RealServer. */
  realServer: string;
  address: string;
  port: number;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
}

/** One IPVS virtual service a director programs. */
export interface PlannedService {
  /** namespace/name of the VirtualService. */
  id: string;
  generation: number;
  vip: string;
  port: number;
  protocol: Protocol;
  scheduler: Scheduler;
  schedulerFlags: SchedulerFlag[];
  onePacket: boolean;
  forwarding: ForwardingMethod;
  /** Present when persistence is on. netmask: dotted IPv4 mask or IPv6 prefix length. */
  persistence?: { timeoutSeconds: number; netmask?: string };
  /** Interface that holds the VIP; undefined means the interface of the default route. */
  interface?: string;
  /** Whether this director holds (binds and announces) the VIP, or stands by with the same table. */
  holdVip: boolean;
  healthCheck: PlannedHealthCheck;
  drainTimeoutSeconds: number;
  destinations: PlannedDestination[];
}

/** A VIP a realserver node must accept without answering ARP for it. */
export interface PlannedRealServerVip {
  /** namespace/name of the VirtualService. */
  service: string;
  vip: string;
  forwarding: 'DirectRouting' | 'Tunnel';
}

export interface NodePlan {
  node: string;
  /** Services this node directs (empty when it is not a director). */
  director: PlannedService[];
  /** VIPs this node serves as a prepared realserver. */
  realServer: PlannedRealServerVip[];
}

export const emptyPlan = (node: string): NodePlan => ({ node, director: [], realServer: [] });
