import type { LabelSelector, ObjectMeta } from './meta.ts';

/** Which directors serve the VIPs of a pool, and where they hold them. */
export interface PoolDirectors {
  /**
   * Labels a node must carry, on top of the VirtualService's own director selector (or the operator's
   * default), to direct a VIP of this pool: a VirtualService cannot move the pool's VIPs to other nodes.
   * @maxProperties 16
   */
  nodeSelector?: Record<string, string>;
  /**
   * Interface that holds the pool's VIPs on its directors, e.g. eth1, unless the VirtualService names one.
   * @maxLength 15
   * @pattern ^[a-zA-Z0-9][a-zA-Z0-9_.:-]*$
   */
  interface?: string;
}

/**
 * VIPPoolSpec says which addresses VirtualServices may use as VIPs, and in which namespaces. VIPs are
 * default-deny: a VirtualService is accepted only when its VIP lies in a pool that selects its namespace.
 */
export interface VIPPoolSpec {
  /**
   * The pool's addresses: CIDRs (192.168.56.40/29, 2001:db8:0:56::/120) and inclusive ranges
   * (192.168.56.40-192.168.56.47, 2001:db8::10-2001:db8::1f), IPv4 and IPv6, that must not overlap.
   * Allocation takes the lowest free address, entries in the order listed.
   * @minItems 1
   * @maxItems 16
   * @listType set
   * @itemMaxLength 91
   * @itemCelRule poolAddressForm
   * @itemCelRule poolAddressHex
   * @itemCelRule poolAddressMasked
   * @itemCelRule poolAddressUnicast
   * @itemCelRule poolRangeFamily
   * @itemCelRule poolRangeOrder
   * @celRule poolAddressesDisjoint
   */
  addresses: string[];
  /**
   * Namespaces whose VirtualServices may use the pool's addresses. An empty selector ({}) selects every
   * namespace; select one namespace by its kubernetes.io/metadata.name label.
   */
  namespaceSelector: LabelSelector;
  /**
   * Whether VirtualServices without spec.vip get addresses from this pool. When false, only those that
   * name the pool in spec.vipPool do; explicit VIPs in the pool are allowed either way.
   * @default true
   */
  autoAssign: boolean;
  /** Restricts which directors serve the pool's VIPs and where they hold them. */
  directors?: PoolDirectors;
}

/** VIPPoolStatus is the pool's usage, written by the controller. */
export interface VIPPoolStatus {
  /**
   * The metadata.generation this status describes.
   * @minimum 0
   */
  observedGeneration?: number;
  /**
   * VirtualServices accepted with a VIP of this pool.
   * @minimum 0
   */
  virtualServices?: number;
  /**
   * Distinct addresses of this pool in use as VIPs.
   * @minimum 0
   */
  addressesInUse?: number;
  /**
   * Of those, addresses allocated to VirtualServices without spec.vip.
   * @minimum 0
   */
  allocated?: number;
  /**
   * Addresses still free for allocation (not in use, not reserved). Saturates at 2147483647 (IPv6 pools).
   * @minimum 0
   */
  available?: number;
}

/**
 * VIPPool is a set of addresses that VirtualServices in selected namespaces may claim or be given as
 * VIPs. Without any pool no VirtualService is accepted.
 */
export interface VIPPool {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  /** Addresses and who may use them. */
  spec: VIPPoolSpec;
  /** Usage of the pool. */
  status?: VIPPoolStatus;
}
