/**
 * The VIP elections of one node: one per VIP it directs (several VirtualServices may share a VIP on other
 * ports or protocols; they share the election, since the address is bound per VIP), kept in step with the
 * NodePlan's director services. The director reconciler asks `holdsVip(service)` instead of reading
 * plan.holdVip (which becomes the election preference), and subscribes to hold/release to bind, announce
 * and unbind.
 */
import type { LeaseApi, LeaseObject } from '../../kube/leader.ts';
import type { Clock } from '../../kube/clock.ts';
import type { Logger } from '../../util/log.ts';
import { canonicalAddress } from '../../api/ip.ts';
import { LeaseVipElection } from './election.ts';
import type { FailoverSettings, VipElection, VipHoldEvent, VipReleaseEvent } from './election.ts';

/** The part of a planned director service the election needs. */
export interface ElectedService {
  /** VirtualService id, "namespace/name". */
  id: string;
  vip: string;
  /** The controller's preference (planned holdVip). */
  holdVip: boolean;
}

export interface VipElectionsOptions {
  api: LeaseApi;
  namespace: string;
  node: string;
  settings: FailoverSettings;
  keepVipWhenUnreachable?: boolean;
  /** Asked once per new election: did this node have the VIP bound at start-up (agent restart)? */
  heldAtStart?: (vip: string) => boolean;
  /** See LeaseVipElectionOptions.conflictProbe. */
  conflictProbe?: (vip: string, signal: AbortSignal) => Promise<string[]>;
  /** See LeaseVipElectionOptions.holderDown and holderAlive. */
  holderDown?: (node: string) => boolean;
  holderAlive?: (node: string) => boolean;
  clock?: Clock;
  random?: () => number;
  logger?: Logger;
  onHold?: (ev: VipHoldEvent) => void;
  onRelease?: (ev: VipReleaseEvent) => void;
}

/** The canonical text of a VIP, the key of its election (2001:DB8::1 and 2001:db8::1 are one VIP). */
export const vipKey = (vip: string): string => {
  try {
    return canonicalAddress(vip);
  } catch {
    return vip;
  }
};

export class VipElections {
  private readonly o: VipElectionsOptions;
  /** By canonical VIP. */
  private readonly byVip = new Map<string, VipElection>();
  /** Lease name → VIP key (stale entries are harmless: observe() checks the election's Lease name). */
  private readonly vipOfLease = new Map<string, string>();
  /** Service id → canonical VIP. */
  private readonly vipOf = new Map<string, string>();

  constructor(o: VipElectionsOptions) {
    this.o = o;
  }

  /**
   * Start elections for new VIPs and stop (releasing VIP and Lease) those no longer planned here; a VIP
   * whose services changed keeps its election (a service moving to another VIP leaves the old one's).
   * Preference changes do not restart a running election: they only matter for who campaigns first.
   */
  async sync(services: readonly ElectedService[]): Promise<void> {
    const want = new Map<string, { vip: string; services: string[]; preferred: boolean }>();
    this.vipOf.clear();
    for (const s of services) {
      const key = vipKey(s.vip);
      this.vipOf.set(s.id, key);
      const w = want.get(key) ?? { vip: s.vip, services: [], preferred: false };
      w.services.push(s.id);
      w.preferred ||= s.holdVip;
      want.set(key, w);
    }
    const stops: Promise<void>[] = [];
    for (const [key, e] of this.byVip) {
      const w = want.get(key);
      if (!w) {
        this.byVip.delete(key);
        this.vipOfLease.delete(e.leaseName);
        stops.push(e.stop({ release: true }));
      } else {
        e.setServices(w.services);
      }
    }
    await Promise.all(stops);
    for (const [key, w] of want) {
      if (this.byVip.has(key)) continue;
      const e = new LeaseVipElection({
        api: this.o.api, namespace: this.o.namespace, vip: w.vip, services: w.services, node: this.o.node, preferred: w.preferred, settings: this.o.settings,
        ...(this.o.keepVipWhenUnreachable !== undefined ? { keepVipWhenUnreachable: this.o.keepVipWhenUnreachable } : {}),
        heldAtStart: this.o.heldAtStart?.(key) ?? false,
        ...(this.o.conflictProbe ? { conflictProbe: this.o.conflictProbe } : {}),
        ...(this.o.holderDown ? { holderDown: this.o.holderDown } : {}),
        ...(this.o.holderAlive ? { holderAlive: this.o.holderAlive } : {}),
        ...(this.o.clock ? { clock: this.o.clock } : {}),
        ...(this.o.random ? { random: this.o.random } : {}),
        ...(this.o.logger ? { logger: this.o.logger } : {}),
      });
      if (this.o.onHold) e.onHold(this.o.onHold);
      if (this.o.onRelease) e.onRelease(this.o.onRelease);
      this.byVip.set(key, e);
      this.vipOfLease.set(e.leaseName, key);
      e.start();
    }
  }

  /** The election of a planned service's VIP. */
  ofService(service: string): VipElection | undefined {
    const key = this.vipOf.get(service);
    return key === undefined ? undefined : this.byVip.get(key);
  }

  /** Whether this node should have the service's VIP bound now. */
  holdsVip(service: string): boolean {
    return this.ofService(service)?.holdsVip() ?? false;
  }

  /** The active director (Lease holder) last observed for the service's VIP, for NodePlan status. */
  activeDirector(service: string): string | undefined {
    return this.ofService(service)?.holder() || undefined;
  }

  /** The election of a VIP (any spelling). */
  get(vip: string): VipElection | undefined {
    return this.byVip.get(vipKey(vip));
  }

  /** The planned services with an election, sorted. */
  services(): string[] {
    return [...this.vipOf.keys()].filter((id) => this.byVip.has(this.vipOf.get(id)!)).sort();
  }

  /** A director's heartbeats stopped: every election judges its holder's Lease again (early expiry). */
  recheck(): void {
    for (const e of this.byVip.values()) e.recheck();
  }

  /** A Lease seen by the agent's watch: handed to the election campaigning on it (others are ignored). */
  observe(leaseName: string, l: LeaseObject): void {
    const e = this.byVip.get(this.vipOfLease.get(leaseName) ?? '');
    if (e?.leaseName === leaseName) e.observe(l);
  }

  /** The elections, one per VIP. */
  elections(): VipElection[] {
    return [...this.byVip.values()];
  }

  /** Stop everything; with `release` (default) hand every Lease over at once (graceful shutdown). */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    const all = [...this.byVip.values()];
    this.byVip.clear();
    this.vipOfLease.clear();
    this.vipOf.clear();
    await Promise.all(all.map((e) => e.stop(opts)));
  }
}
