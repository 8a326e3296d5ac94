/**
 * Director failover for one node: the VIP elections of its planned director services, the connection-sync
 * daemons that follow them, and the hook into the agent. The director reconciler asks `holdsVip`; every
 * hold or release calls `onChange` so the agent runs a full reconcile (binds the VIP and sends gratuitous
 * ARP / unsolicited NA through the reconciler's announcer, or unbinds it).
 */
import type { PlannedService } from '../../model/plan.ts';
import type { Logger } from '../../util/log.ts';
import { VipElections } from './elections.ts';
import type { VipElectionsOptions } from './elections.ts';
import { electionTiming } from './election.ts';
import type { VipHoldEvent, VipReleaseEvent } from './election.ts';
import type { SyncDaemons } from './syncd.ts';

export type FailoverEvent = ({ type: 'hold' } & VipHoldEvent) | ({ type: 'release' } & VipReleaseEvent);

export interface DirectorFailoverOptions extends Omit<VipElectionsOptions, 'onHold' | 'onRelease' | 'logger'> {
  log: Logger;
  /** Optional: sync daemons master while holding a VIP, backup while directing anything. */
  syncDaemons?: SyncDaemons;
  /** A VIP of this node was taken or given up: reconcile the director part in full. */
  onChange: (ev: FailoverEvent) => void;
}

export class DirectorFailover {
  readonly #o: DirectorFailoverOptions;
  readonly #elections: VipElections;
  #directing = false;
  #syncd: Promise<unknown> = Promise.resolve();

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

  /** Active director (Lease holder) per planned service, as last observed; for status. */
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
    this.#directing = false;
    this.#updateSyncDaemons();
    await this.#syncd;
  }

  #changed(ev: FailoverEvent): void {
    this.#o.log.info({ service: ev.service, vip: ev.vip, ...(ev.type === 'release' ? { cause: ev.cause, newHolder: ev.newHolder } : { previousHolder: ev.previousHolder }) }, ev.type === 'hold' ? 'VIP taken over' : 'VIP released');
    this.#updateSyncDaemons();
    try {
      this.#o.onChange(ev);
    } catch (e) {
      this.#o.log.error({ err: (e as Error).message }, 'failover onChange threw');
    }
  }

  #updateSyncDaemons(): void {
    const sd = this.#o.syncDaemons;
    if (!sd) return;
    const master = this.#elections.services().some((id) => this.#elections.holdsVip(id));
    this.#syncd = sd.apply({ master, backup: this.#directing }).catch((e: unknown) => {
      this.#o.log.warn({ err: (e as Error).message }, 'sync daemons not updated');
    });
  }
}
