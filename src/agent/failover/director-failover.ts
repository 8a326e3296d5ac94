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
import { VipElections } from './elections.ts';
import type { VipElectionsOptions } from './elections.ts';
import { electionTiming } from './election.ts';
import type { ReleaseReason, TakeoverCause, VipHoldEvent, VipReleaseEvent } from './election.ts';
import type { SyncDaemons } from './syncd.ts';

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

export interface DirectorFailoverOptions extends Omit<VipElectionsOptions, 'onHold' | 'onRelease' | 'logger'> {
  log: Logger;
  /** Optional: sync daemons master while holding a VIP, backup while directing anything. */
  syncDaemons?: SyncDaemons;
  metrics?: FailoverMetrics;
  /** A VIP of this node was taken or given up: reconcile the director part in full. */
  onChange: (ev: FailoverEvent) => void;
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

  constructor(o: DirectorFailoverOptions) {
    electionTiming(o.settings); // reject bad settings at start-up, not at the first plan
    this.#o = o;
    this.#elections = new VipElections({
      ...o,
      logger: o.log,
      onHold: (ev) => this.#changed({ type: 'hold', ...ev }),
      onRelease: (ev) => this.#changed({ type: 'release', ...ev }),
    });
  }

  /** The node's planned director services changed (every NodePlan update). */
  async setPlan(director: readonly PlannedService[]): Promise<void> {
    await this.#elections.sync(director.map((s) => ({ id: s.id, vip: s.vip, holdVip: s.holdVip })));
    this.#updateHolderGauge();
    const directing = director.length > 0;
    if (directing !== this.#directing) {
      this.#directing = directing;
      this.#updateSyncDaemons();
    }
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
    await this.#elections.stop(opts);
    this.#updateHolderGauge();
    this.#directing = false;
    this.#updateSyncDaemons();
    await this.#syncd;
  }

  #changed(ev: FailoverEvent): void {
    this.#o.log.info({ vip: ev.vip, services: ev.services, ...(ev.type === 'release' ? { cause: ev.cause, newHolder: ev.newHolder } : { previousHolder: ev.previousHolder, cause: ev.cause }) }, ev.type === 'hold' ? 'VIP taken over' : 'VIP released');
    const m = this.#o.metrics;
    if (ev.type === 'hold') m?.countTakeover(ev.vip, ev.cause);
    else m?.countRelease(ev.vip, ev.reason);
    this.#updateHolderGauge();
    this.#updateSyncDaemons();
    try {
      this.#o.onChange(ev);
    } catch (e) {
      this.#o.log.error({ err: (e as Error).message }, 'failover onChange threw');
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
