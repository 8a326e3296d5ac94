/**
 * Prepares a realserver for the VIPs of DirectRouting and Tunnel services: ARP suppression sysctls
 * first, then the VIP on lo (DR) or on tunl0 (Tunnel), so the node never answers ARP for a VIP.
 */
import type { NetInterfaceOps } from '../../netif/types.ts';
import { TUNL0 } from '../../netif/types.ts';
import type { SysctlOps } from '../../sysctl/types.ts';
import { sysctlsFor } from '../../sysctl/policy.ts';
import type { PlannedRealServerVip } from '../../model/plan.ts';
import type { Logger } from '../../util/log.ts';
import type { StateStore } from '../state.ts';
import { syncVips } from '../vips.ts';

export const REALSERVER_OWNER_PREFIX = 'realserver:';

export interface RealServerDeps {
  netif: NetInterfaceOps;
  sysctl: SysctlOps;
  state: StateStore;
  log: Logger;
  /** The interface facing clients and the director (for per-interface ARP sysctls). */
  defaultInterface: () => Promise<string>;
}

export interface RealServerVipReport {
  service: string;
  vip: string;
  ok: boolean;
  errors: string[];
}

export class RealServerReconciler {
  readonly #d: RealServerDeps;
  constructor(deps: RealServerDeps) {
    this.#d = deps;
  }

  async reconcile(vips: PlannedRealServerVip[]): Promise<RealServerVipReport[]> {
    const { netif, sysctl } = this.#d;
    const state = this.#d.state.load();
    const reports = vips.map((v) => ({ service: v.service, vip: v.vip, ok: true, errors: [] as string[] }));
    const fail = (i: number, msg: string): void => {
      reports[i]!.ok = false;
      reports[i]!.errors.push(msg);
    };
    let nic: string | undefined;
    try {
      nic = await this.#d.defaultInterface();
    } catch (e) {
      reports.forEach((_, i) => fail(i, `interface: ${(e as Error).message}`));
    }

    // VIPs are owned per service; sysctls depend only on the forwarding method, so one claim per method.
    const owner = (v: PlannedRealServerVip): string => `${REALSERVER_OWNER_PREFIX}${v.service}`;
    const sysctlOwner = (v: PlannedRealServerVip): string => `${REALSERVER_OWNER_PREFIX}${v.forwarding}/${nic ?? ''}`;
    const claimed = new Map<string, string | undefined>();
    const wants: Array<{ ifname: string; vip: string; owner: string }> = [];
    for (const [i, v] of vips.entries()) {
      if (!nic) continue;
      const so = sysctlOwner(v);
      if (!claimed.has(so)) {
        try {
          if (v.forwarding === 'Tunnel') await netif.ensureTunl0();
          await sysctl.claim(so, sysctlsFor('realserver', v.forwarding, nic));
          claimed.set(so, undefined);
        } catch (e) {
          claimed.set(so, (e as Error).message);
        }
      }
      const err = claimed.get(so);
      if (err) fail(i, err);
      else wants.push({ ifname: v.forwarding === 'Tunnel' ? TUNL0 : 'lo', vip: v.vip, owner: owner(v) });
    }
    const result = await syncVips(netif, state, wants, (o) => o.startsWith(REALSERVER_OWNER_PREFIX));
    vips.forEach((v, i) => {
      const err = result.failed.get(owner(v));
      if (err) fail(i, `vip: ${err}`);
    });
    if (result.changed) this.#d.state.save(state, { vips: true });

    // Sysctls are restored only after the VIPs are gone, for the same ARP reason in reverse.
    const current = new Set(claimed.keys());
    for (const o of await sysctl.owners()) {
      if (o.startsWith(REALSERVER_OWNER_PREFIX) && !current.has(o)) await sysctl.release(o);
    }
    return reports;
  }
}
