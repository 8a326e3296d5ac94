/**
 * VIP election for one VirtualService among its planned directors, on a coordination.k8s.io Lease (as
 * kube-vip does). Holder identity = the node name.
 *
 * - The controller's ranking is a preference only: the preferred director campaigns at once, the others
 *   start one lease duration later, so on a cold start the preferred one wins. There is no preemption: a
 *   preferred director that comes back finds the Lease held and stays standby (no flapping).
 * - A standby never binds the VIP without holding the Lease (onHold fires only from the elector's
 *   onStartedLeading, i.e. after a successful write of the Lease with our identity).
 * - Split brain, by choice: a holder that can no longer renew (apiserver unreachable, or slow beyond the
 *   renew deadline) stops being the Lease leader but KEEPS the VIP ("retained"), because a control-plane
 *   outage must not take the data plane down: when the apiserver is down for everyone, nobody can win and
 *   the VIP stays where it is. The price: when only the holder is cut off from the apiserver, a standby
 *   that still reaches it takes the Lease after the lease duration and binds the VIP too; its gratuitous
 *   ARP moves clients and switches to it, and the old holder releases the VIP as soon as it reaches the
 *   apiserver again and reads the new holder. Set `keepVipWhenUnreachable: false` for the other choice
 *   (release at the renew deadline, so never two binders, but an apiserver outage drops every VIP).
 * - On losing (another holder observed) the VIP is released at once.
 */
import { LeaderElector } from '../../kube/leader.ts';
import type { LeaseApi } from '../../kube/leader.ts';
import { realClock } from '../../kube/clock.ts';
import type { Clock, TimerHandle } from '../../kube/clock.ts';
import { createLogger } from '../../util/log.ts';
import type { Logger } from '../../util/log.ts';
import { vipLeaseName } from './lease-name.ts';

/** standby: VIP not bound; holding: Lease held and VIP bound; retained: Lease not renewable, VIP kept. */
export type VipState = 'standby' | 'holding' | 'retained';

export interface VipHoldEvent {
  service: string;
  vip: string;
  /** The Lease holder before us ('' released or new Lease, undefined never observed). */
  previousHolder: string | undefined;
}

export interface VipReleaseEvent {
  service: string;
  vip: string;
  /** Why: 'lease taken by <node>', 'renew deadline passed', 'stopped'. */
  cause: string;
  /** The holder we observed when we released, if another node. */
  newHolder: string | undefined;
}

/** What the director reconciler asks instead of plan.holdVip. */
export interface VipElection {
  readonly service: string;
  readonly vip: string;
  readonly leaseName: string;
  /** Whether this node should have the VIP bound now (holding or retained). */
  holdsVip(): boolean;
  state(): VipState;
  /** The last observed Lease holder ('' nobody, undefined not observed yet). */
  holder(): string | undefined;
  /** Bind the VIP and announce it (gratuitous ARP / unsolicited NA). Returns an unsubscribe function. */
  onHold(cb: (ev: VipHoldEvent) => void): () => void;
  /** Unbind the VIP. Returns an unsubscribe function. */
  onRelease(cb: (ev: VipReleaseEvent) => void): () => void;
  start(): void;
  /** Stop campaigning; a holder releases the VIP, and with `release` (default) the Lease too. */
  stop(opts?: { release?: boolean }): Promise<void>;
}

/** The chart's `failover` values (also the controller config's). */
export interface FailoverSettings {
  leaseDurationSeconds: number;
  renewIntervalMilliseconds: number;
}

export interface ElectionTiming {
  leaseDurationSeconds: number;
  retryPeriodMs: number;
  renewDeadlineMs: number;
  retryJitter: number;
}

/**
 * Elector timing from the failover settings: renew every renewInterval, step down when no renew succeeded
 * for leaseDuration − renewInterval (so the holder stops leading at least one interval before a standby
 * may take over), small jitter so standbys retry about every interval.
 */
export function electionTiming(s: FailoverSettings): ElectionTiming {
  const leaseMs = s.leaseDurationSeconds * 1000;
  const retry = s.renewIntervalMilliseconds;
  if (!Number.isInteger(s.leaseDurationSeconds) || s.leaseDurationSeconds < 1) throw new Error('failover.leaseDurationSeconds must be a whole number ≥ 1');
  if (!(retry > 0) || !(leaseMs > 2 * retry)) {
    throw new Error(`failover.renewIntervalMilliseconds (${retry}) must be positive and less than half of leaseDurationSeconds (${leaseMs} ms)`);
  }
  return { leaseDurationSeconds: s.leaseDurationSeconds, retryPeriodMs: retry, renewDeadlineMs: leaseMs - retry, retryJitter: 0.2 };
}

export interface LeaseVipElectionOptions {
  api: LeaseApi;
  /** The operator namespace. */
  namespace: string;
  /** VirtualService id, "namespace/name". */
  service: string;
  vip: string;
  /** This node's name: the Lease holder identity. */
  node: string;
  /** The controller ranked us first (planned holdVip). */
  preferred: boolean;
  settings: FailoverSettings;
  /** A non-preferred director waits this long before campaigning (default one lease duration). */
  standbyDelayMs?: number;
  /** See the module comment (default true). */
  keepVipWhenUnreachable?: boolean;
  /**
   * This node had the VIP bound when the agent (re)started: start 'retained' (keep it) and campaign at once,
   * so a restarted holder neither drops its VIP until the first Lease round nor hands it over; the first
   * read of another holder releases it as usual. Never set it for a VIP this node has not bound.
   */
  heldAtStart?: boolean;
  clock?: Clock;
  random?: () => number;
  logger?: Logger;
}

let moduleLogger: Logger | undefined;

export class LeaseVipElection implements VipElection {
  readonly service: string;
  readonly vip: string;
  readonly leaseName: string;
  private readonly node: string;
  private readonly elector: LeaderElector;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly standbyDelayMs: number;
  private readonly preferred: boolean;
  private readonly heldAtStart: boolean;
  private readonly keepVip: boolean;
  private readonly holdCbs = new Set<(ev: VipHoldEvent) => void>();
  private readonly releaseCbs = new Set<(ev: VipReleaseEvent) => void>();
  private st: VipState = 'standby';
  private lastOther: string | undefined;
  private startTimer: TimerHandle | undefined;
  private started = false;
  private stopping = false;

  constructor(o: LeaseVipElectionOptions) {
    const timing = electionTiming(o.settings);
    this.service = o.service;
    this.vip = o.vip;
    this.node = o.node;
    this.leaseName = vipLeaseName(o.service);
    this.clock = o.clock ?? realClock;
    this.preferred = o.preferred;
    this.heldAtStart = o.heldAtStart ?? false;
    if (this.heldAtStart) this.st = 'retained';
    this.keepVip = o.keepVipWhenUnreachable ?? true;
    this.standbyDelayMs = o.standbyDelayMs ?? timing.leaseDurationSeconds * 1000;
    this.log = (o.logger ?? (moduleLogger ??= createLogger('agent.failover'))).child({ service: o.service, lease: this.leaseName });
    this.elector = new LeaderElector({
      api: o.api,
      namespace: o.namespace,
      name: this.leaseName,
      identity: o.node,
      ...timing,
      clock: this.clock,
      ...(o.random ? { random: o.random } : {}),
      logger: this.log,
      onStartedLeading: () => this.onStartedLeading(),
      onStoppedLeading: () => this.onStoppedLeading(),
      onNewLeader: (id) => this.onNewLeader(id),
    });
  }

  holdsVip(): boolean {
    return this.st !== 'standby';
  }

  state(): VipState {
    return this.st;
  }

  holder(): string | undefined {
    return this.elector.leader();
  }

  onHold(cb: (ev: VipHoldEvent) => void): () => void {
    this.holdCbs.add(cb);
    return () => this.holdCbs.delete(cb);
  }

  onRelease(cb: (ev: VipReleaseEvent) => void): () => void {
    this.releaseCbs.add(cb);
    return () => this.releaseCbs.delete(cb);
  }

  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    if (this.preferred || this.heldAtStart) {
      this.elector.start();
      return;
    }
    // kube-vip style: give the preferred director a lease duration to take the Lease first.
    this.startTimer = this.clock.setTimeout(() => {
      this.startTimer = undefined;
      if (!this.stopping) this.elector.start();
    }, this.standbyDelayMs);
  }

  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.clock.clearTimeout(this.startTimer);
    this.startTimer = undefined;
    await this.elector.stop(opts);
    // A retained VIP (or a holding one whose stepDown did not run) goes too: we stop acting for this service.
    if (this.st !== 'standby') this.release('stopped', undefined);
  }

  // ---------------------------------------------------------------------------------------------------

  private onStartedLeading(): void {
    if (this.stopping) return;
    const prev = this.st;
    this.st = 'holding';
    if (prev === 'retained') {
      // The apiserver is back and the Lease was still ours: the VIP never left, nothing to announce.
      this.log.info('renewed the lease again; VIP kept throughout');
      return;
    }
    const ev: VipHoldEvent = { service: this.service, vip: this.vip, previousHolder: this.lastOther };
    this.log.info({ previous: this.lastOther ?? null }, 'holding the VIP');
    for (const cb of this.holdCbs) {
      try {
        cb(ev);
      } catch (e) {
        this.log.error({ err: String(e) }, 'onHold callback threw');
      }
    }
  }

  private onStoppedLeading(): void {
    if (this.st === 'standby') return;
    const observed = this.elector.leader();
    if (this.stopping) {
      this.release('stopped', undefined);
    } else if (observed !== undefined && observed !== '' && observed !== this.node) {
      this.release(`lease taken by ${observed}`, observed);
    } else if (this.keepVip) {
      // Could not renew, and nobody else is known to hold the Lease: keep the VIP (module comment).
      this.st = 'retained';
      this.log.warn('cannot renew the lease; keeping the VIP until another holder is observed');
    } else {
      this.release('renew deadline passed', undefined);
    }
  }

  private onNewLeader(id: string): void {
    if (id && id !== this.node) this.lastOther = id;
    // A retained VIP goes as soon as we read that someone else won.
    if (this.st === 'retained' && id && id !== this.node) this.release(`lease taken by ${id}`, id);
  }

  private release(cause: string, newHolder: string | undefined): void {
    if (this.st === 'standby') return;
    this.st = 'standby';
    const ev: VipReleaseEvent = { service: this.service, vip: this.vip, cause, newHolder };
    this.log.info({ cause }, 'releasing the VIP');
    for (const cb of this.releaseCbs) {
      try {
        cb(ev);
      } catch (e) {
        this.log.error({ err: String(e) }, 'onRelease callback threw');
      }
    }
  }
}
