/**
 * Start-up check of a director that runs VIP elections: the VIPs its state file says it had bound may have
 * been taken over while it was down (a killed holder comes back with the address still on its NIC). Before
 * the Kubernetes client has even loaded, each such VIP is probed on the segment (ARP duplicate address
 * detection); one another host answers for is unbound at once, so it starts as a standby instead of
 * 'retained' and never answers ARP next to the new holder until its first Lease read. One the kernel no
 * longer has (its lifetime ran out while the agent was down: a standby has taken over) starts as a standby too.
 */
import { canonicalAddress } from '../../api/ip.ts';
import { DIRECTOR_OWNER_PREFIX } from '../director/reconciler.ts';
import type { NetInterfaceOps, VipConflictProbe } from '../../netif/types.ts';
import type { OwnedVip } from '../state.ts';
import type { Logger } from '../../util/log.ts';
// No Kubernetes client here (not even kube/errors.ts): this runs while that loads.

export interface YieldTakenOverVipsOptions {
  /** The state file's bound addresses. */
  vips: readonly OwnedVip[];
  probe: VipConflictProbe;
  netif: Pick<NetInterfaceOps, 'removeVip' | 'listAddresses'>;
  log: Logger;
  /** Per probe (default 15 s: the node may be busy starting the agent's siblings too). */
  timeoutMs?: number;
}

/** Probes and unbinds; resolves with the VIPs given up (canonical text). Never rejects: a failed probe keeps the VIP. */
export async function yieldTakenOverVips(o: YieldTakenOverVipsOptions): Promise<Set<string>> {
  // Only addresses bound for director services alone: a realserver's VIP on lo is not answered for anyway.
  const candidates = o.vips.filter((v) => v.owners.length > 0 && v.owners.every((w) => w.startsWith(DIRECTOR_OWNER_PREFIX)));
  const given = new Set<string>();
  const bound = new Map<string, Set<string> | undefined>();
  for (const ifname of new Set(candidates.map((v) => v.ifname))) {
    bound.set(ifname, await o.netif.listAddresses(ifname).then((l) => new Set(l.map((a) => canonicalAddress(a.address))), () => undefined));
  }
  await Promise.all(candidates.map(async (v) => {
    const present = bound.get(v.ifname);
    if (present && !present.has(canonicalAddress(v.vip))) {
      given.add(canonicalAddress(v.vip));
      o.log.info({ vip: v.vip, interface: v.ifname }, 'VIP held before the restart is no longer bound (its lifetime ran out): starting as a standby');
      return;
    }
    try {
      const macs = await o.probe.answeredBy(v.ifname, v.vip, AbortSignal.timeout(o.timeoutMs ?? 15_000));
      if (macs.length === 0) return;
      await o.netif.removeVip(v.ifname, v.vip);
      given.add(canonicalAddress(v.vip));
      o.log.info({ vip: v.vip, interface: v.ifname, answeredBy: macs }, 'VIP held before the restart is answered by another director: unbound it, starting as a standby');
    } catch (e) {
      o.log.warn({ vip: v.vip, interface: v.ifname, err: e instanceof Error ? e.message : String(e) }, 'start-up VIP conflict probe failed; keeping the VIP until the Lease decides');
    }
  }));
  return given;
}
