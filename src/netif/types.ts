/** The agent's host-networking hands: small interfaces, one real (rtnetlink) and one fake implementation each. */
import type { NetifError } from './errors.ts';
import type { AddressFamily } from './ip.ts';

/** The IP-in-IP fallback device that receives every ipip packet not matching a configured tunnel. */
export const TUNL0 = 'tunl0';

export interface NetInterface {
  readonly index: number;
  readonly name: string;
  /** IFF_UP (administratively up). */
  readonly up: boolean;
  /** rtnetlink link kind (`dummy`, `veth`, `ipip`, ...); undefined for plain hardware NICs and lo. */
  readonly kind: string | undefined;
}

export interface InterfaceAddress {
  readonly family: AddressFamily;
  readonly address: string;
  readonly prefixlen: number;
  /** Seconds left before the kernel deletes it (a VIP bound with a lifetime); absent: forever. */
  readonly validLifetimeSeconds?: number;
}

/** A `type local` route of table local: what the kernel considers this host's own address. */
export interface LocalRoute {
  readonly family: AddressFamily;
  readonly address: string;
  readonly ifindex: number;
}

export interface NetInterfaceOps {
  /** Throws NetifError ENODEV naming the interface when there is none by that name. */
  getInterface(name: string): Promise<NetInterface>;
  listInterfaces(): Promise<NetInterface[]>;
  /** Every address of the interface, both families. */
  listAddresses(ifname: string): Promise<InterfaceAddress[]>;
  /**
   * Binds `vip` as /32 (IPv4) or /128 nodad (IPv6) on `ifname`. Resolves true when it was added,
   * false when it was already bound (EEXIST).
   */
  addVip(ifname: string, vip: string, opts?: VipOptions): Promise<boolean>;
  /**
   * addVip for many addresses in one go (pipelined: one netlink round trip per batch, not per address).
   * Never rejects: one result per item, in order: true added, false already bound, or the item's NetifError.
   */
  addVips(items: readonly VipAdd[]): Promise<(boolean | NetifError)[]>;
  /**
   * Restarts the lifetime of those of `vips` bound on `ifname` (valid = preferred = `lifetimeSeconds`;
   * undefined: forever) and resolves with them; VIPs not bound are left alone (never added).
   */
  setVipLifetimes(ifname: string, vips: readonly string[], lifetimeSeconds: number | undefined): Promise<string[]>;
  /**
   * Unbinds the /32 or /128; false when it was not bound (EADDRNOTAVAIL) or the interface is gone. An address
   * bound with another prefix length (an administrator's 192.168.56.40/24) is not this VIP and stays.
   */
  removeVip(ifname: string, vip: string): Promise<boolean>;
  /** Sets IFF_UP; no-op when already up. */
  setUp(ifname: string): Promise<void>;
  /**
   * Makes sure the IP-in-IP fallback device `tunl0` exists and is up (Tunnel-mode realservers hold the VIP
   * on it). Throws NetifError when a `tunl0` of another kind exists or ipip is unavailable.
   */
  ensureTunl0(): Promise<NetInterface>;
  /** `type local` host routes of table local (kube-proxy's view of which addresses are bound). */
  listLocalRoutes(): Promise<LocalRoute[]>;
  close(): void;
}

/** One address for addVips. */
export interface VipAdd extends VipOptions {
  readonly ifname: string;
  readonly vip: string;
}

export interface VipOptions {
  /**
   * Valid (and preferred) lifetime: the kernel deletes the address when it runs out unless it is refreshed
   * (setVipLifetimes), so a VIP leaves a node whose agent died. Default: forever.
   */
  lifetimeSeconds?: number;
}

/** Tells the neighbours that `vip` now lives behind `ifname` (gratuitous ARP / unsolicited NA). */
export interface ArpAnnouncer {
  /** `signal` aborts an announcement still running (the VIP was released meanwhile). */
  announce(ifname: string, vip: string, count?: number, signal?: AbortSignal): Promise<void>;
  /**
   * The VIP left `ifname`: an announcement of it that has not finished must stop, or it would point the
   * neighbours back at a node that no longer holds it. Optional: announcers that finish synchronously need none.
   */
  withdraw?(ifname: string, vip: string): void;
}

/**
 * Duplicate-address probe for a VIP this node has bound: which other hosts on `ifname`'s segment answer ARP
 * for it (their MACs, lowercase; [] none). A director that kept a VIP without a renewable Lease (restarted,
 * or back from a partition) gives it up when another director answers for it.
 */
export interface VipConflictProbe {
  answeredBy(ifname: string, vip: string, signal?: AbortSignal): Promise<string[]>;
}

