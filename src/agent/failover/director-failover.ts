/**
 * Director failover for one node: the VIP elections of its planned director services (one per VIP), the
 * connection-sync daemons that follow them, and the hook into the agent. The director reconciler asks
 * `holdsVip`; every hold or release calls `onChange` so the agent runs a full reconcile (binds the VIP and
 * sends gratuitous ARP / unsolicited NA through the reconciler's announcer, or unbinds it).
 */
import type { PlannedService } from '../../model/plan.ts';
import { canonicalAddress } from '../../api/ip.ts';
import { DIRECTOR_OWNER_PREFIX } from '../director/reconciler.ts';
import type { OwnedVip } from '../state.ts';
import type { Logger } from '../../util/log.ts';
import { VipElections, vipKey } from './elections.ts';
import type { VipElectionsOptions } from './elections.ts';
import { electionTiming, vipLifetimeSeconds } from './election.ts';
import { realClock } from '../../kube/clock.ts';
import type { Clock, TimerHandle } from '../../kube/clock.ts';
import type { ReleaseReason, TakeoverCause, VipHoldEvent, VipReleaseEvent } from './election.ts';
import type { SyncDaemons } from './syncd.ts';
import { HeartbeatMonitor } from './heartbeat.ts';
import type { HeartbeatTransport } from './heartbeat.ts';

export type FailoverEvent = ({ type: 'hold' } & VipHoldEvent) | ({ type: 'release' } & VipReleaseEvent);

/** What the agent's metrics (src/agent/metrics) record of the elections. */
export interface FailoverMetrics {
  /** lvs_vip_holder{vip, virtual_service}: 1 while this node has the VIP bound (holding or retained). */
  setVipHolder(vip: string, service: string, holds: boolean): void;
  deleteVipHolder(vip: string, service: string): void;
  /** lvs_vip_failovers_total{vip, cause}: this node took the VIP (from another director unless 'initial'). */
  countTakeover(vip: string, cause: TakeoverCause): void;
  /** lvs_vip_releases_total{vip, reason}: this node gave the VIP up. */
  countRelease(vip: string, reason: ReleaseReason): void;
}

export interface DirectorFailoverOptions extends Omit<VipElectionsOptions, 'onHold' | 'onRelease' | 'logger' | 'holderDown' | 'holderAlive'> {
  log: Logger;
  /** Optional: sync daemons master while holding a VIP, backup while directing anything. */
  syncDaemons?: SyncDaemons;
  metrics?: FailoverMetrics;
  /**
   * A VIP of this node was taken or given up: reconcile its services (bind + announce, or unbind). The sync
   * daemons follow once the returned promise settles, so their netlink requests do not queue before the VIP's.
   */
  onChange: (ev: FailoverEvent) => unknown;
  /**
   * Restart the kernel lifetime of these bound VIPs (every renew interval, while held). Optional: without
   * it VIPs are bound forever, as without standbys.
   */
  refreshVipLifetimes?: (vips: readonly string[], lifetimeSeconds: number | undefined) => Promise<void>;
  /**
   * Director heartbeats (heartbeat.ts) on the interfaces of the planned VIPs: a standby takes the Lease of a
   * holder whose heartbeats stopped after two renew intervals instead of the lease duration. Optional.
   */
  heartbeat?: {
    transport: HeartbeatTransport;
    /** Default 100 ms. */
    intervalMs?: number;
    /** The interface a planned service's VIP is bound on. */
    interfaceOf: (s: PlannedService) => Promise<string>;
  };
}

/**
 * The VIPs this node had bound as a director when the agent started (its state file), canonical: their
 * elections start 'retained' (a restarted or upgraded holder neither drops its VIP nor hands it over).
 * State files from agents with per-service Leases give the same answer: the address is what counts.
 */
export function directorVipsBound(vips: readonly OwnedVip[]): Set<string> {
  return new Set(vips.filter((v) => v.owners.some((o) => o.startsWith(DIRECTOR_OWNER_PREFIX))).map((v) => canonicalAddress(v.vip)));
}

export class DirectorFailover {
  readonly #o: DirectorFailoverOptions;
  readonly #elections: VipElections;
  #directing = false;
  #syncd: Promise<unknown> = Promise.resolve();
  /** The holder gauge's series: "vip|service". */
  #series = new Set<string>();
  /** Planned standby directors per VIP (canonical): a VIP with any gets a kernel lifetime. */
  #standbys = new Map<string, number>();
  #refreshTimer: TimerHandle | undefined;
  #refreshing = false;
  /** When the last refresh of limited VIPs went through (clock ms), to warn when one comes late. */
  #refreshedAt: number | undefined;
  /** Held VIPs given a lifetime: when their last standby leaves the plan they are made permanent again. */
  #limited = new Set<string>();
  #stopped = false;
  readonly #heartbeat: HeartbeatMonitor | undefined;
  /** The interfaces heartbeats last went out on (sorted, joined). */
  #heartbeatOn = '';

  constructor(o: DirectorFailoverOptions) {
    electionTiming(o.settings); // reject bad settings at start-up, not at the first plan
    this.#o = o;
    const hb = o.heartbeat;
    const monitor = hb
      ? new HeartbeatMonitor({
        node: o.node, transport: hb.transport, log: o.log.child({ component: 'heartbeat' }),
        ...(hb.intervalMs !== undefined ? { intervalMs: hb.intervalMs } : {}),
        ...(o.clock ? { clock: o.clock } : {}),
        onDown: () => this.#elections.recheck(),
      })
      : undefined;
    this.#heartbeat = monitor;
    const probe = o.conflictProbe;
    this.#elections = new VipElections({
      ...o,
      // A retained holder releases only for a LIVE director answering ARP (see liveDirectorMacs): a standby that
      // took over while this node was starved must not be confused with a dead agent's kernel, which answers
      // until its VIP's lifetime runs out.
      ...(probe && monitor ? { conflictProbe: async (vip: string, signal: AbortSignal) => monitor.liveDirectorMacs(await probe(vip, signal)) } : {}),
      ...(monitor ? { holderDown: (node: string) => monitor.isDown(node), holderAlive: (node: string) => monitor.isAlive(node) } : {}),
      logger: o.log,
      onHold: (ev) => this.#changed({ type: 'hold', ...ev }),
      onRelease: (ev) => this.#changed({ type: 'release', ...ev }),
    });
  }

  /** The node's planned director services changed (every NodePlan update). */
  async setPlan(director: readonly PlannedService[]): Promise<void> {
    const standbys = new Map<string, number>();
    for (const s of director) {
      const k = vipKey(s.vip);
      standbys.set(k, Math.max(standbys.get(k) ?? 0, s.standbyDirectors ?? 0));
    }
    this.#standbys = standbys;
    this.#armRefresh();
    await this.#elections.sync(director.map((s) => ({ id: s.id, vip: s.vip, holdVip: s.holdVip })));
    this.#updateHolderGauge();
    await this.#updateHeartbeat(director);
    const directing = director.length > 0;
    if (directing !== this.#directing) {
      this.#directing = directing;
      this.#updateSyncDaemons();
    }
  }

  /** For DirectorDeps.vipLifetimeSeconds: with standbys planned, the VIP is bound with a kernel lifetime. */
  vipLifetimeSeconds(s: Pick<PlannedService, 'vip' | 'standbyDirectors'>): number | undefined {
    if (!this.#o.refreshVipLifetimes || !((s.standbyDirectors ?? 0) > 0)) return undefined;
    return vipLifetimeSeconds(this.#o.settings);
  }

  /** For DirectorDeps.holdsVip. */
  holdsVip(s: Pick<PlannedService, 'id'>): boolean {
    return this.#elections.holdsVip(s.id);
  }

  /** Active director (Lease holder of its VIP) per planned service, as last observed; for status. */
  activeDirectors(): Map<string, string | undefined> {
    return new Map(this.#elections.services().map((id) => [id, this.#elections.activeDirector(id)]));
  }

  get elections(): VipElections {
    return this.#elections;
  }

  /** Resolves when the sync daemons match the latest state. */
  settled(): Promise<unknown> {
    return this.#syncd;
  }

  /** Stop campaigning; with `release` (default) hand the Leases over at once. Sync daemons stop too. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    await this.#elections.stop(opts);
    this.#heartbeat?.close();
    this.#updateHolderGauge();
    this.#directing = false;
    this.#updateSyncDaemons();
    await this.#syncd;
  }

  /** Heartbeats on the interfaces of the planned VIPs (none when directing nothing). */
  async #updateHeartbeat(director: readonly PlannedService[]): Promise<void> {
    const hb = this.#o.heartbeat;
    if (!hb || !this.#heartbeat || this.#stopped) return;
    try {
      const ifnames = [...new Set(await Promise.all(director.map((s) => hb.interfaceOf(s))))].sort();
      const key = ifnames.join(',');
      if (key === this.#heartbeatOn) return;
      await this.#heartbeat.setInterfaces(ifnames);
      this.#heartbeatOn = key;
      this.#o.log.info({ interfaces: ifnames, intervalMs: this.#heartbeat.intervalMs }, ifnames.length ? 'director heartbeats on' : 'director heartbeats off');
    } catch (e) {
      this.#o.log.warn({ err: (e as Error).message }, 'director heartbeats not updated: standbys judge this node by the Lease duration');
    }
  }

  get #clock(): Clock {
    return this.#o.clock ?? realClock;
  }

  /** Every renew interval: restart the lifetime of the VIPs held with standbys planned. */
  #armRefresh(): void {
    if (!this.#o.refreshVipLifetimes || this.#refreshTimer !== undefined || this.#stopped) return;
    this.#refreshTimer = this.#clock.setTimeout(() => {
      this.#refreshTimer = undefined;
      void this.#refresh().finally(() => this.#armRefresh());
    }, this.#o.settings.renewIntervalMilliseconds);
  }

  async #refresh(): Promise<void> {
    const refresh = this.#o.refreshVipLifetimes;
    if (!refresh || this.#refreshing) return;
    const held = this.#elections.elections().filter((e) => e.holdsVip());
    const hasStandby = (vip: string): boolean => (this.#standbys.get(vipKey(vip)) ?? 0) > 0;
    const limit = held.filter((e) => hasStandby(e.vip)).map((e) => e.vip);
    const heldKeys = new Set(held.map((e) => vipKey(e.vip)));
    for (const k of this.#limited) if (!heldKeys.has(k)) this.#limited.delete(k);
    const unlimit = held.filter((e) => this.#limited.has(vipKey(e.vip)) && !hasStandby(e.vip)).map((e) => e.vip);
    if (limit.length === 0) this.#refreshedAt = undefined;
    if (limit.length === 0 && unlimit.length === 0) return;
    this.#refreshing = true;
    const lifetimeSeconds = vipLifetimeSeconds(this.#o.settings);
    const lifetimeMs = lifetimeSeconds * 1000;
    const since = this.#refreshedAt === undefined ? 0 : this.#clock.now() - this.#refreshedAt;
    // A stalled agent (a slow kernel request holding the event loop, a starved node) nears the point where the
    // kernel drops a VIP it still holds: say so, it explains a VIP that vanished on a live holder.
    if (limit.length && since > lifetimeMs / 2) this.#o.log.warn({ vips: limit, sinceLastRefreshMs: Math.round(since), lifetimeMs }, 'VIP lifetime refresh is late');
    try {
      if (limit.length) {
        await refresh(limit, lifetimeSeconds);
        this.#refreshedAt = this.#clock.now();
      }
      for (const vip of limit) this.#limited.add(vipKey(vip));
      // The last standby left the plan: nobody would take over, so a dead agent's VIP must stay.
      if (unlimit.length) await refresh(unlimit, undefined);
      for (const vip of unlimit) this.#limited.delete(vipKey(vip));
    } catch (e) {
      this.#o.log.warn({ vips: [...limit, ...unlimit], err: (e as Error).message }, 'VIP lifetimes not refreshed: the kernel drops them unless a later refresh succeeds');
    } finally {
      this.#refreshing = false;
    }
  }

  #changed(ev: FailoverEvent): void {
    this.#o.log.info({ vip: ev.vip, services: ev.services, ...(ev.type === 'release' ? { cause: ev.cause, newHolder: ev.newHolder } : { previousHolder: ev.previousHolder, cause: ev.cause }) }, ev.type === 'hold' ? 'VIP taken over' : 'VIP released');
    const m = this.#o.metrics;
    if (ev.type === 'hold') m?.countTakeover(ev.vip, ev.cause);
    else m?.countRelease(ev.vip, ev.reason);
    this.#updateHolderGauge();
    // The VIP first: the sync daemons' netlink requests would otherwise queue before its bind.
    let done: unknown;
    try {
      done = this.#o.onChange(ev);
    } catch (e) {
      this.#o.log.error({ err: (e as Error).message }, 'failover onChange threw');
    }
    if (done instanceof Promise) {
      this.#syncd = done.catch(() => undefined).then(() => {
        this.#updateSyncDaemons();
        return this.#syncd;
      });
    } else {
      this.#updateSyncDaemons();
    }
  }

  /** One series per planned (VIP, service): 1 bound here, 0 standby; series of services gone are removed. */
  #updateHolderGauge(): void {
    const m = this.#o.metrics;
    if (!m) return;
    const now = new Set<string>();
    for (const e of this.#elections.elections()) {
      for (const service of e.services()) {
        now.add(`${e.vip}|${service}`);
        m.setVipHolder(e.vip, service, e.holdsVip());
      }
    }
    for (const k of this.#series) {
      if (now.has(k)) continue;
      const bar = k.indexOf('|');
      m.deleteVipHolder(k.slice(0, bar), k.slice(bar + 1));
    }
    this.#series = now;
  }

  #updateSyncDaemons(): void {
    const sd = this.#o.syncDaemons;
    if (!sd) return;
    const master = this.#elections.elections().some((e) => e.holdsVip());
    this.#syncd = sd.apply({ master, backup: this.#directing }).catch((e: unknown) => {
      this.#o.log.warn({ err: (e as Error).message }, 'sync daemons not updated');
    });
  }
}
