/**
 * The VIP elections of one node: one per VirtualService it directs, kept in step with the NodePlan's
 * director services. The director reconciler asks `holdsVip(service)` instead of reading plan.holdVip
 * (which becomes the election preference), and subscribes to hold/release to bind, announce and unbind.
 */
import type { LeaseApi } from '../../kube/leader.ts';
import type { Clock } from '../../kube/clock.ts';
import type { Logger } from '../../util/log.ts';
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
  /** Asked once per new election: did this node have the service's VIP bound at start-up (agent restart)? */
  heldAtStart?: (service: string) => boolean;
  clock?: Clock;
  random?: () => number;
  logger?: Logger;
  onHold?: (ev: VipHoldEvent) => void;
  onRelease?: (ev: VipReleaseEvent) => void;
}

export class VipElections {
  private readonly o: VipElectionsOptions;
  private readonly byService = new Map<string, VipElection>();

  constructor(o: VipElectionsOptions) {
    this.o = o;
  }

  /**
   * Start elections for new services and stop (releasing VIP and Lease) those no longer planned here. A
   * service whose VIP changed gets a fresh election. Preference changes do not restart a running election:
   * they only matter for who campaigns first.
   */
  async sync(services: readonly ElectedService[]): Promise<void> {
    const want = new Map(services.map((s) => [s.id, s]));
    const stops: Promise<void>[] = [];
    for (const [id, e] of this.byService) {
      const s = want.get(id);
      if (!s || s.vip !== e.vip) {
        this.byService.delete(id);
        stops.push(e.stop({ release: true }));
      }
    }
    await Promise.all(stops);
    for (const s of want.values()) {
      if (this.byService.has(s.id)) continue;
      const e = new LeaseVipElection({
        api: this.o.api, namespace: this.o.namespace, service: s.id, vip: s.vip, node: this.o.node, preferred: s.holdVip, settings: this.o.settings,
        ...(this.o.keepVipWhenUnreachable !== undefined ? { keepVipWhenUnreachable: this.o.keepVipWhenUnreachable } : {}),
        heldAtStart: this.o.heldAtStart?.(s.id) ?? false,
        ...(this.o.clock ? { clock: this.o.clock } : {}),
        ...(this.o.random ? { random: this.o.random } : {}),
        ...(this.o.logger ? { logger: this.o.logger } : {}),
      });
      if (this.o.onHold) e.onHold(this.o.onHold);
      if (this.o.onRelease) e.onRelease(this.o.onRelease);
      this.byService.set(s.id, e);
      e.start();
    }
  }

  /** Whether this node should have the service's VIP bound now. */
  holdsVip(service: string): boolean {
    return this.byService.get(service)?.holdsVip() ?? false;
  }

  /** The active director (Lease holder) last observed for the service, for NodePlan status. */
  activeDirector(service: string): string | undefined {
    const h = this.byService.get(service)?.holder();
    return h || undefined;
  }

  get(service: string): VipElection | undefined {
    return this.byService.get(service);
  }

  services(): string[] {
    return [...this.byService.keys()].sort();
  }

  /** Stop everything; with `release` (default) hand every Lease over at once (graceful shutdown). */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    const all = [...this.byService.values()];
    this.byService.clear();
    await Promise.all(all.map((e) => e.stop(opts)));
  }
}
