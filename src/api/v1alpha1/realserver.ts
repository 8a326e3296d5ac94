import type { Condition, ObjectMeta } from './meta.ts';

/**
 * RealServerSpec is one backend (ipvsadm -a): an address, or a node whose InternalIP is used and whose
 * agent prepares it (VIP on lo with ARP suppression for DirectRouting, tunl0 for Tunnel).
 * @cel {"rule":"has(self.address) != has(self.nodeName)","message":"exactly one of address or nodeName must be set"}
 * @cel {"rule":"!has(self.lowerThreshold) || (has(self.upperThreshold) && self.lowerThreshold <= self.upperThreshold)","message":"lowerThreshold needs an upperThreshold and must not exceed it"}
 */
export interface RealServerSpec {
  /**
   * IP address (IPv4 or IPv6) of a realserver outside the cluster, or not managed by lvs-operator.
   * Such a realserver must be prepared by hand for DirectRouting and Tunnel.
   * @maxLength 45
   * @cel {"rule":"isIP(self)","message":"address must be a valid IPv4 or IPv6 address"}
   * @cel {"rule":"!isIP(self) || ip(self).isGlobalUnicast()","message":"address must be a unicast address (not loopback, link-local, multicast or unspecified)"}
   */
  address?: string;
  /**
   * Name of the Kubernetes Node that serves: its InternalIP is the realserver address, and the lvs-operator
   * agent on it binds the VIP and sets the sysctls the forwarding method needs.
   * @maxLength 253
   * @pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$
   */
  nodeName?: string;
  /**
   * Port on the realserver. Defaults to the virtual service's port; DirectRouting and Tunnel cannot
   * change the port, so there it must equal the virtual service's port.
   * @minimum 1
   * @maximum 65535
   */
  port?: number;
  /**
   * Relative share of new connections for weighted schedulers. 0 quiesces the realserver: it keeps its
   * connections but gets no new ones.
   * @minimum 0
   * @maximum 65535
   * @default 1
   */
  weight: number;
  /**
   * Upper connection threshold (ipvsadm -x): no new connections while this many are active. 0 or absent
   * means unlimited.
   * @minimum 0
   * @maximum 2147483647
   */
  upperThreshold?: number;
  /**
   * Lower connection threshold (ipvsadm -y): new connections resume when active ones drop below it.
   * Defaults to three quarters of upperThreshold.
   * @minimum 0
   * @maximum 2147483647
   */
  lowerThreshold?: number;
}

/** A virtual service that selects this realserver. */
export interface RealServerBinding {
  /**
   * Name of the VirtualService (same namespace).
   * @maxLength 253
   */
  virtualService: string;
  /** Whether the director's health check currently passes for this realserver. */
  healthy: boolean;
}

/** RealServerStatus is the observed state of a realserver, written by the controller. */
export interface RealServerStatus {
  /**
   * The metadata.generation this status describes.
   * @minimum 0
   */
  observedGeneration?: number;
  /**
   * Accepted (address resolved, the spec fits its virtual services), Prepared (the node agent holds the
   * VIP and sysctls) and Healthy.
   * @listType map
   * @listMapKey type
   * @maxItems 8
   */
  conditions?: Condition[];
  /**
   * The address in use: spec.address, or the node's InternalIP.
   * @maxLength 45
   */
  address?: string;
  /**
   * Virtual services that select this realserver.
   * @maxItems 256
   * @listType map
   * @listMapKey virtualService
   */
  virtualServices?: RealServerBinding[];
}

/** RealServer is a backend that VirtualServices select by label. */
export interface RealServer {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  /** Desired state of the realserver. */
  spec: RealServerSpec;
  /** Observed state of the realserver. */
  status?: RealServerStatus;
}
