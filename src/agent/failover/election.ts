/**
 * VIP election for one VIP among its planned directors, on a coordination.k8s.io Lease (as kube-vip does).
 * Holder identity = the node name. One Lease per VIP, not per VirtualService: the address is bound per VIP,
 * so every VirtualService on it (other ports, other protocols) must follow the same director.
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
 * - On losing (another holder observed) the VIP is released at once. A retained VIP is also released as soon
 *   as another host answers ARP for it (conflictProbe, every second from one lease duration into
 *   'retained' on; at once for a restarted holder): a director back from a
 *   partition, or restarted after being killed, yields to the one that took over without waiting for the
 *   apiserver, so two directors answer for the VIP for at most one probe.
 * - After an apiserver outage that hit everyone nobody fails over: the holder ('retained') renews its own
 *   Lease at its first successful request, while a standby whose requests failed counts the Lease's age
 *   again from its first successful read (kube/leader.ts), so it sees the holder's renewal first.
 *
 * Migration from per-VirtualService Leases (agents before 0.2): during a rolling upgrade old agents campaign
 * on `lvs-vip-<namespace>-<name>-<hash>`, new ones on `lvs-vip-<address>-<hash>`. A new agent therefore
 * takes (or creates) a VIP's Lease only when no old Lease of one of its services is held by another node
 * and still renewed (judged on our clock like the VIP Lease itself), unless that node is the VIP Lease's
 * holder; and a new holder keeps renewing the old Leases it held, so old standbys do not take the VIP from it. An upgraded holder keeps its VIP
 * (heldAtStart: the VIP is in its state file) and takes the new Lease at once. Old Leases nobody renews
 * any more are left to expire; they are only read.
 */
import { LeaderElector, formatMicroTime } from '../../kube/leader.ts';
import type { LeaseApi, LeaseObject } from '../../kube/leader.ts';
import { describeError, isConflict, isNotFound } from '../../kube/errors.ts';
import { realClock } from '../../kube/clock.ts';
import type { Clock, TimerHandle } from '../../kube/clock.ts';
import { createLogger } from '../../util/log.ts';
import type { Logger } from '../../util/log.ts';
import { serviceLeaseName, vipLeaseName } from './lease-name.ts';

/** standby: VIP not bound; holding: Lease held and VIP bound; retained: Lease not renewable, VIP kept. */
export type VipState = 'standby' | 'holding' | 'retained';

export interface VipHoldEvent {
  vip: string;
  /** The VirtualServices on the VIP (ids "namespace/name"), for their Events. */
  services: readonly string[];
  /** The Lease holder before us ('' released or new Lease, undefined never observed). */
  previousHolder: string | undefined;
  /**
   * Why we could take it: 'initial' (no other holder seen: a new Lease or our first round), 'expired' (the
   * holder stopped renewing: dead, or cut off), 'released' (the holder handed it over: shutdown, plan change).
   */
  cause: TakeoverCause;
}

export type TakeoverCause = 'initial' | 'expired' | 'released';
/**
 * 'lost': another node holds the Lease; 'conflict': a retained VIP another director answers ARP for;
 * 'renew-deadline': keepVipWhenUnreachable false; 'stopped': no longer planned, or shutdown.
 */
export type ReleaseReason = 'lost' | 'conflict' | 'renew-deadline' | 'stopped';

export interface VipReleaseEvent {
  vip: string;
  services: readonly string[];
  /** Why: 'lease taken by <node>', 'renew deadline passed', 'stopped'. */
  cause: string;
  /** The cause as a fixed word (a metric label). */
  reason: ReleaseReason;
  /** The holder we observed when we released, if another node. */
  newHolder: string | undefined;
}

/** What the director reconciler asks instead of plan.holdVip. */
export interface VipElection {
  readonly vip: string;
  readonly leaseName: string;
  /** The VirtualServices on the VIP this node directs. */
  services(): readonly string[];
  /** The planned services on the VIP changed (same VIP): Events and the migration check follow. */
  setServices(services: readonly string[]): void;
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
  /** The VIP's Lease as a watch saw it (see LeaderElector.observe). */
  observe(l: LeaseObject): void;
  /** The heartbeats say a director went down: judge the holder's Lease again now (early expiry). */
  recheck(): void;
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
 * Kernel lifetime of a VIP bound by an election with standbys, refreshed every renew interval while the agent
 * lives: a director whose agent died loses the address this long after its last refresh, a few seconds after
 * a standby has taken over (one lease duration after the last renewal at the latest), so the dead node stops
 * answering ARP for it (meanwhile it still forwards correctly: same table, synced connections). The 6 s
 * margin keeps a live but starved agent from losing it: in the lab VM a holder's event loop got no CPU for
 * over 4 s right after a takeover, and a holder whose heartbeats arrive is not replaced, so a VIP lost
 * there would be an outage until the next resync.
 */
export function vipLifetimeSeconds(s: FailoverSettings): number {
  return s.leaseDurationSeconds + 6;
}

/**
 * How long after its last observed renewal the Lease of a holder whose heartbeats stopped is taken over: two
 * renew intervals, so a live holder has missed at least one renewal (and its heartbeats) before.
 */
export function earlyExpiryMs(s: FailoverSettings): number {
  return 2 * s.renewIntervalMilliseconds;
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
  vip: string;
  /** The VirtualServices on the VIP, ids "namespace/name" (at least one). */
  services: readonly string[];
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
  /**
   * While retained: the MACs of other hosts that answer ARP for the VIP ([] none). Someone answering means
   * another director has bound it (it won the Lease meanwhile): release. Optional (no probing without).
   */
  conflictProbe?: (vip: string, signal: AbortSignal) => Promise<string[]>;
  /**
   * Probe interval while retained (default: the renew interval, at least 1 s). Probing starts one lease
   * duration into 'retained': no standby can have won the Lease earlier, and a holder that misses a renewal
   * on a busy node must not add a probe process per renew interval to the load that made it miss.
   */
  conflictProbeIntervalMs?: number;
  /**
   * Director heartbeats (heartbeat.ts): while this says the Lease holder is down, its Lease expires
   * `earlyExpiryMs` after its last observed renewal instead of the lease duration.
   */
  holderDown?: (node: string) => boolean;
  /** Default: 2 renew intervals (less than the lease duration, by electionTiming's rule). */
  earlyExpiryMs?: number;
  /** Director heartbeats: while the holder's arrive, its Lease does not expire (see LeaderElector.holderAlive). */
  holderAlive?: (node: string) => boolean;
  clock?: Clock;
  random?: () => number;
  logger?: Logger;
}

let moduleLogger: Logger | undefined;

/** An old per-service Lease as last read: holder and renewTime, and when (our clock) they last changed. */
interface LegacyObservation {
  key: string;
  at: number;
}

export class LeaseVipElection implements VipElection {
  readonly vip: string;
  readonly leaseName: string;
  private readonly node: string;
  private readonly api: LeaseApi;
  private readonly namespace: string;
  private readonly leaseDurationMs: number;
  private svcs: readonly string[];
  private readonly elector: LeaderElector;
  private readonly legacySeen = new Map<string, LegacyObservation>();
  /** Old per-service Leases that name us as holder: renewed with ours while we hold (see Migration). */
  private readonly legacyMine = new Map<string, LeaseObject>();
  private legacyRenewing = false;
  /**
   * No old per-service Lease of our services existed at the last check: the upgrade is over for this VIP
   * (old agents create theirs as soon as they run), so takeovers need no extra reads. Reset by new services.
   */
  private legacyNone = false;
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
  /** The holder last observed before ours ('' released), to tell an expired Lease from a handed-over one. */
  private lastObserved: string | undefined;
  private startTimer: TimerHandle | undefined;
  private started = false;
  private stopping = false;
  private readonly conflictProbe: ((vip: string, signal: AbortSignal) => Promise<string[]>) | undefined;
  private readonly conflictProbeIntervalMs: number;
  private probing = false;

  constructor(o: LeaseVipElectionOptions) {
    const timing = electionTiming(o.settings);
    if (o.services.length === 0) throw new Error(`VIP election for ${o.vip}: no VirtualService`);
    this.vip = o.vip;
    this.svcs = [...o.services].sort();
    this.node = o.node;
    this.api = o.api;
    this.namespace = o.namespace;
    this.leaseDurationMs = timing.leaseDurationSeconds * 1000;
    this.leaseName = vipLeaseName(o.vip);
    this.clock = o.clock ?? realClock;
    this.preferred = o.preferred;
    this.heldAtStart = o.heldAtStart ?? false;
    if (this.heldAtStart) this.st = 'retained';
    this.keepVip = o.keepVipWhenUnreachable ?? true;
    this.conflictProbe = o.conflictProbe;
    this.conflictProbeIntervalMs = o.conflictProbeIntervalMs ?? Math.max(1_000, timing.retryPeriodMs);
    this.standbyDelayMs = o.standbyDelayMs ?? timing.leaseDurationSeconds * 1000;
    this.log = (o.logger ?? (moduleLogger ??= createLogger('agent.failover'))).child({ vip: o.vip, lease: this.leaseName });
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
      mayAcquire: (signal) => this.noLiveLegacyHolder(signal),
      onRenewed: () => this.renewLegacy(),
      ...(o.holderDown ? { holderDown: o.holderDown, earlyExpiryMs: o.earlyExpiryMs ?? earlyExpiryMs(o.settings) } : {}),
      ...(o.holderAlive ? { holderAlive: o.holderAlive } : {}),
    });
  }

  services(): readonly string[] {
    return this.svcs;
  }

  setServices(services: readonly string[]): void {
    if (services.length === 0) return;
    if (services.some((s) => !this.svcs.includes(s))) this.legacyNone = false;
    this.svcs = [...services].sort();
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
    // Start the clock on old per-service Leases now, so that one nobody renews is expired by our first try.
    void this.noLiveLegacyHolder(AbortSignal.timeout(this.leaseDurationMs)).catch(() => undefined);
    // A restarted holder probes at once: it may have been down for any time.
    if (this.st === 'retained') this.probeWhileRetained(0);
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

  observe(l: LeaseObject): void {
    this.elector.observe(l);
  }

  recheck(): void {
    this.elector.recheck();
  }

  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.clock.clearTimeout(this.startTimer);
    this.startTimer = undefined;
    await this.elector.stop(opts);
    // A retained VIP (or a holding one whose stepDown did not run) goes too: we stop acting for this service.
    if (this.st !== 'standby') this.release('stopped', 'stopped', undefined);
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
    const cause: TakeoverCause = this.lastOther === undefined ? 'initial' : this.lastObserved === '' ? 'released' : 'expired';
    const ev: VipHoldEvent = { vip: this.vip, services: this.svcs, previousHolder: this.lastOther, cause };
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
      this.release('stopped', 'stopped', undefined);
    } else if (observed !== undefined && observed !== '' && observed !== this.node) {
      this.release(`lease taken by ${observed}`, 'lost', observed);
    } else if (this.keepVip) {
      // Could not renew, and nobody else is known to hold the Lease: keep the VIP (module comment).
      this.st = 'retained';
      this.log.warn('cannot renew the lease; keeping the VIP until another holder is observed');
      this.probeWhileRetained(this.leaseDurationMs);
    } else {
      this.release('renew deadline passed', 'renew-deadline', undefined);
    }
  }

  private onNewLeader(id: string): void {
    if (id !== this.node) this.lastObserved = id;
    if (id && id !== this.node) this.lastOther = id;
    // A retained VIP goes as soon as we read that someone else won.
    if (this.st === 'retained' && id && id !== this.node) this.release(`lease taken by ${id}`, 'lost', id);
  }

  /** While retained, ask the segment whether someone else answers for the VIP; release if so. */
  private probeWhileRetained(delayMs: number): void {
    const probe = this.conflictProbe;
    if (!probe || this.probing) return;
    this.probing = true;
    void (async () => {
      if (delayMs > 0) await new Promise<void>((r) => this.clock.setTimeout(r, delayMs));
      if (this.st === 'retained' && !this.stopping) this.log.info({ everyMs: this.conflictProbeIntervalMs }, 'VIP kept without a Lease: probing the segment for another director answering ARP for it');
      while (this.st === 'retained' && !this.stopping) {
        let macs: string[] = [];
        try {
          macs = await probe(this.vip, AbortSignal.timeout(Math.max(10_000, this.leaseDurationMs)));
          this.log.debug({ answeredBy: macs }, 'VIP conflict probe');
        } catch (e) {
          this.log.warn({ err: describeError(e) }, 'VIP conflict probe failed');
        }
        if (this.st !== 'retained' || this.stopping) break;
        if (macs.length > 0) {
          this.release(`another director answers ARP for the VIP (${macs.join(', ')})`, 'conflict', undefined);
          break;
        }
        await new Promise<void>((r) => this.clock.setTimeout(r, this.conflictProbeIntervalMs));
      }
    })().finally(() => {
      this.probing = false;
    });
  }

  private release(cause: string, reason: ReleaseReason, newHolder: string | undefined): void {
    if (this.st === 'standby') return;
    this.st = 'standby';
    this.legacyMine.clear();
    const ev: VipReleaseEvent = { vip: this.vip, services: this.svcs, cause, reason, newHolder };
    this.log.info({ cause }, 'releasing the VIP');
    for (const cb of this.releaseCbs) {
      try {
        cb(ev);
      } catch (e) {
        this.log.error({ err: String(e) }, 'onRelease callback threw');
      }
    }
  }

  /**
   * Migration guard (module comment): false while an old per-service Lease of one of our services is held
   * by another node that renewed it within a lease duration of our observation. Also records the old
   * Leases held by us, to keep renewing them.
   */
  private async noLiveLegacyHolder(signal: AbortSignal): Promise<boolean> {
    if (this.legacyNone) return true;
    const now = (): number => this.clock.now();
    let found = false;
    for (const service of this.svcs) {
      const name = serviceLeaseName(service);
      const l = await this.api.get(this.namespace, name, signal);
      if (!l) {
        this.legacySeen.delete(name);
        continue;
      }
      found = true;
      const rec = l.record;
      const key = `${rec.holderIdentity}\u0000${rec.renewTime ?? ''}`;
      const seen = this.legacySeen.get(name);
      if (!seen || seen.key !== key) this.legacySeen.set(name, { key, at: now() });
      if (rec.holderIdentity === this.node) {
        this.legacyMine.set(name, l);
        continue;
      }
      this.legacyMine.delete(name);
      // Renewed by the VIP Lease's holder, whose expiry the elector has just judged: an upgraded agent
      // keeping its old Lease for old standbys (below), not an old agent.
      if (rec.holderIdentity === this.elector.leader()) continue;
      const since = this.legacySeen.get(name)!.at;
      if (rec.holderIdentity !== '' && since + Math.max(rec.leaseDurationSeconds * 1000, this.leaseDurationMs) > now()) {
        this.log.info({ oldLease: name, holder: rec.holderIdentity }, 'not taking the VIP: an agent of the previous version holds it on its per-service Lease');
        return false;
      }
    }
    if (!found) this.legacyNone = true;
    return true;
  }

  /** While holding, renew the old per-service Leases we hold, one round at a time, best effort. */
  private renewLegacy(): void {
    if (this.legacyMine.size === 0 || this.legacyRenewing || this.stopping) return;
    this.legacyRenewing = true;
    const signal = AbortSignal.timeout(this.leaseDurationMs);
    const renewTime = formatMicroTime(this.clock.wallNow());
    void (async () => {
      for (const [name, prev] of [...this.legacyMine]) {
        try {
          const next = await this.api.update(this.namespace, name, { ...prev.record, renewTime }, prev, signal);
          if (this.legacyMine.has(name)) this.legacyMine.set(name, next);
        } catch (e) {
          // Taken, deleted or changed by someone else: stop renewing it (the guard reads it again).
          if (isConflict(e) || isNotFound(e)) this.legacyMine.delete(name);
          else this.log.debug({ oldLease: name, err: describeError(e) }, 'old per-service Lease not renewed');
        }
      }
    })().finally(() => {
      this.legacyRenewing = false;
    });
  }
}
