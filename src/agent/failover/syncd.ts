/**
 * The IPVS connection-sync daemons of a director, as keepalived's lvs_sync_daemon runs them, so that
 * established connections survive a failover: master while this node holds at least one VIP (it multicasts
 * its connection table), backup on every director with planned services (it receives the holders' tables,
 * so a standby that takes over already knows the connections). With one election per VirtualService a node
 * can hold some VIPs and stand by for others, so a holder runs both (the kernel allows one of each).
 *
 * Ownership: daemons are recognised as ours by role, interface and sync id. A daemon of a role with another
 * configuration (keepalived on the same host, say) is left alone and reported, never replaced.
 */
import type { SyncDaemon, SyncDaemonConfig, SyncDaemonRole } from '../../ipvs/types.ts';
import type { Logger } from '../../util/log.ts';

/** What IpvsClient offers for sync daemons. */
export interface SyncDaemonOps {
  startSyncDaemon(cfg: SyncDaemonConfig): Promise<void>;
  stopSyncDaemon(role: SyncDaemonRole): Promise<void>;
  listSyncDaemons(): Promise<SyncDaemon[]>;
}

export interface SyncDaemonWant {
  /** This node holds at least one VIP. */
  master: boolean;
  /** This node directs at least one service. */
  backup: boolean;
}

export interface SyncDaemonsOptions {
  ops: SyncDaemonOps;
  /** The multicast interface (the VIP interface by default). */
  interface: () => Promise<string>;
  /** 1..255; the master sends it, the backup accepts only it (default 1). */
  syncId?: number;
  log: Logger;
}

export interface SyncDaemonsResult {
  running: SyncDaemonRole[];
  /** Roles held by a daemon we do not own. */
  foreign: SyncDaemonRole[];
  errors: string[];
}

export class SyncDaemons {
  readonly #o: SyncDaemonsOptions;
  readonly #syncId: number;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(o: SyncDaemonsOptions) {
    const id = o.syncId ?? 1;
    if (!Number.isInteger(id) || id < 1 || id > 255) throw new Error('sync id must be 1..255');
    this.#o = o;
    this.#syncId = id;
  }

  /** Start and stop our daemons to match `want`. Calls are serialised, in order. */
  apply(want: SyncDaemonWant): Promise<SyncDaemonsResult> {
    const run = this.#chain.then(() => this.#apply(want));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #apply(want: SyncDaemonWant): Promise<SyncDaemonsResult> {
    const { ops, log } = this.#o;
    const res: SyncDaemonsResult = { running: [], foreign: [], errors: [] };
    const ifname = await this.#o.interface();
    const current = new Map((await ops.listSyncDaemons()).map((d) => [d.role, d]));
    for (const role of ['master', 'backup'] as const) {
      const d = current.get(role);
      const ours = d !== undefined && d.interface === ifname && d.syncId === this.#syncId;
      if (d && !ours) {
        res.foreign.push(role);
        if (want[role]) log.warn({ role, interface: d.interface, syncId: d.syncId }, 'a sync daemon we do not own runs in this role; leaving it');
        continue;
      }
      try {
        if (want[role] && !d) {
          await ops.startSyncDaemon({ role, interface: ifname, syncId: this.#syncId });
          log.info({ role, interface: ifname, syncId: this.#syncId }, 'started IPVS sync daemon');
        } else if (!want[role] && d) {
          await ops.stopSyncDaemon(role);
          log.info({ role }, 'stopped IPVS sync daemon');
        }
        if (want[role]) res.running.push(role);
      } catch (e) {
        res.errors.push(`${role}: ${(e as Error).message}`);
        log.warn({ role, err: (e as Error).message }, 'IPVS sync daemon change failed');
      }
    }
    return res;
  }
}
