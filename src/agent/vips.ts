/**
 * Binding VIPs with ownership: an address is bound once however many owners need it, unbound when the
 * last owner goes, and never unbound when it was there before the agent (someone else's address).
 */
import type { NetInterfaceOps, ArpAnnouncer, VipAdd } from '../netif/types.ts';
import { hostAddress } from '../netif/ip.ts';
import type { AgentState, OwnedVip } from './state.ts';

export interface VipWant {
  ifname: string;
  vip: string;
  owner: string;
  /** Bind with this kernel lifetime (an elected director VIP with standbys, refreshed while held). */
  lifetimeSeconds?: number;
}

export interface VipResult {
  /** owner → error message for VIPs that could not be bound. */
  failed: Map<string, string>;
  added: string[];
  removed: string[];
  /** Whether state.vips changed (the caller saves the state then). */
  changed: boolean;
}

const keyOf = (ifname: string, vip: string): string => `${ifname}|${vip}`;

const vipAdd = (w: { ifname: string; vip: string; lifetimeSeconds?: number | undefined }): VipAdd => ({
  ifname: w.ifname,
  vip: w.vip,
  ...(w.lifetimeSeconds !== undefined ? { lifetimeSeconds: w.lifetimeSeconds } : {}),
});

/**
 * state.vips by key, for change-driven runs. Keyed by the array object: syncVips (the full pass) drops the
 * index of the array it edits, and syncVipChanges keeps its own edits in step.
 */
const indexes = new WeakMap<OwnedVip[], Map<string, OwnedVip>>();
function indexOf(state: AgentState): Map<string, OwnedVip> {
  let idx = indexes.get(state.vips);
  if (!idx) {
    idx = new Map(state.vips.map((v) => [keyOf(v.ifname, v.vip), v]));
    indexes.set(state.vips, idx);
  }
  return idx;
}

/** The addresses bound on each interface, as `address/prefixlen`; an interface whose dump failed is absent. */
export type BoundAddresses = ReadonlyMap<string, ReadonlySet<string>>;

/**
 * Which addresses we believe bound still are: one address dump per interface. Re-adding each one instead (an
 * add answered EEXIST) took thousands of sequential netlink round trips, most of a full run at 5,000
 * services. Where a dump fails, its interface's VIPs count as missing and are re-added, and the error tells.
 */
export async function boundAddresses(netif: NetInterfaceOps, ifnames: Iterable<string>): Promise<BoundAddresses> {
  const bound = new Map<string, ReadonlySet<string>>();
  for (const ifname of ifnames) {
    try {
      bound.set(ifname, new Set((await netif.listAddresses(ifname)).map((a) => `${a.address}/${a.prefixlen}`)));
    } catch { /* re-add one by one */ }
  }
  return bound;
}

/** Whether `vip` is among the addresses dumped for `ifname`. */
export const boundIn = (bound: BoundAddresses) => (ifname: string, vip: string): boolean => {
  try {
    const a = hostAddress(vip);
    return bound.get(ifname)?.has(`${a.address}/${a.prefixlen}`) ?? false;
  } catch {
    return false;
  }
};

/**
 * Re-adds the addresses of `wants`, all believed bound, that `bound` does not show (someone removed them):
 * the VIP check of one slice of a sliced full run. Owners and state are as they were; only the kernel changes.
 */
export async function rebindMissing(netif: NetInterfaceOps, wants: readonly VipWant[], bound: BoundAddresses): Promise<VipResult> {
  const result: VipResult = { failed: new Map(), added: [], removed: [], changed: false };
  const isBound = boundIn(bound);
  const missing = wants.filter((w) => !isBound(w.ifname, w.vip));
  const added = missing.length ? await netif.addVips(missing.map(vipAdd)) : [];
  for (const [i, w] of missing.entries()) {
    const r = added[i];
    if (r instanceof Error) result.failed.set(w.owner, r.message);
    else if (r) result.added.push(keyOf(w.ifname, w.vip));
  }
  return result;
}

/**
 * Whether the VIP ledger already is what syncVips(…, wants, scope, …, verify off) would make it: every owner
 * in `scope` listed exactly once, under its wanted address, and no address left with no owner at all (an
 * unbind to retry). One pass without writes, where syncVips serialises the ledger twice and rebuilds every
 * owner list: the end of a sweep runs it for 5,000 VIPs in one piece (0.3–0.9 s in the emulated lab VM).
 */
export function vipLedgerMatches(state: AgentState, wants: readonly VipWant[], scope: (owner: string) => boolean): boolean {
  const want = new Map<string, VipWant>();
  for (const w of wants) {
    if (want.has(w.owner)) return false;
    want.set(w.owner, w);
  }
  let seen = 0;
  for (const v of state.vips) {
    if (v.owners.length === 0) return false;
    for (const o of v.owners) {
      if (!scope(o)) continue;
      const w = want.get(o);
      if (!w || w.ifname !== v.ifname || w.vip !== v.vip) return false;
      seen++;
    }
  }
  return seen === want.size;
}

/** Announces an address just bound, unless on lo or tunl0 (nobody on the LAN is to reach it there). */
async function announceBound(arp: ArpAnnouncer | undefined, w: { ifname: string; vip: string }): Promise<void> {
  if (arp && w.ifname !== 'lo' && w.ifname !== 'tunl0') await arp.announce(w.ifname, w.vip).catch(() => undefined);
}

/** One address of syncVips's wanted set, with every owner that wants it. */
interface Wanted {
  ifname: string;
  vip: string;
  owners: Set<string>;
  lifetimeSeconds: number | undefined;
}

/**
 * Makes the VIPs owned by owners matching `scope` exactly `wants`. `state.vips` is updated in place.
 * Newly bound addresses on a non-loopback interface are announced (gratuitous ARP / unsolicited NA); an
 * unbound one's announcement still under way is withdrawn. The agent's announcer runs in the background
 * (BackgroundAnnouncer), so the awaits below cost nothing and a failure is logged there.
 */
export async function syncVips(
  netif: NetInterfaceOps,
  state: AgentState,
  wants: VipWant[],
  scope: (owner: string) => boolean,
  arp?: ArpAnnouncer,
  /** Re-add addresses we believe bound (drift repair); off for change-driven runs, which stay O(change). */
  verify = true,
): Promise<VipResult> {
  const result: VipResult = { failed: new Map(), added: [], removed: [], changed: false };
  indexes.delete(state.vips);
  const before = JSON.stringify(state.vips);
  const wanted = new Map<string, Wanted>();
  for (const w of wants) {
    const k = keyOf(w.ifname, w.vip);
    const e = wanted.get(k) ?? { ifname: w.ifname, vip: w.vip, owners: new Set<string>(), lifetimeSeconds: undefined };
    e.owners.add(w.owner);
    e.lifetimeSeconds ??= w.lifetimeSeconds;
    wanted.set(k, e);
  }
  const owned = new Map(state.vips.map((v) => [keyOf(v.ifname, v.vip), v]));
  const bound = verify ? await boundAddresses(netif, new Set([...wanted].filter(([k]) => owned.has(k)).map(([, w]) => w.ifname))) : new Map();
  const isBound = boundIn(bound);

  // Addresses to bind, in one pipelined addVips: new ones, and (verify) owned ones the dump did not show,
  // re-added in case someone removed them (drift; false means they are still there).
  const adds: { k: string; w: Wanted; fresh: boolean }[] = [];
  for (const [k, w] of wanted) {
    const cur = owned.get(k);
    const others = (cur?.owners ?? []).filter((o) => !scope(o));
    if (cur) {
      cur.owners = [...others, ...w.owners].sort();
      if (verify && !isBound(w.ifname, w.vip)) adds.push({ k, w, fresh: false });
    } else {
      adds.push({ k, w, fresh: true });
    }
  }
  const added = adds.length ? await netif.addVips(adds.map(({ w }) => vipAdd(w))) : [];
  for (const [i, { k, w, fresh }] of adds.entries()) {
    const r = added[i];
    if (r instanceof Error) {
      for (const o of w.owners) result.failed.set(o, r.message);
      continue;
    }
    if (!r) continue;
    result.added.push(k);
    // Only addresses we added are ours to remove later.
    if (!fresh) continue;
    state.vips.push({ ifname: w.ifname, vip: w.vip, owners: [...w.owners].sort() });
    await announceBound(arp, w);
  }

  for (const v of [...state.vips]) {
    const k = keyOf(v.ifname, v.vip);
    if (wanted.has(k)) continue;
    v.owners = v.owners.filter((o) => !scope(o));
    if (v.owners.length > 0) continue;
    arp?.withdraw?.(v.ifname, v.vip);
    try {
      await netif.removeVip(v.ifname, v.vip);
    } catch (e) {
      // The interface may be gone with its addresses; anything else is reported and retried.
      if (!/ENODEV/.test((e as Error).message)) {
        result.failed.set(`unbind:${k}`, (e as Error).message);
        continue;
      }
    }
    state.vips = state.vips.filter((x) => x !== v);
    result.removed.push(k);
  }
  result.changed = JSON.stringify(state.vips) !== before;
  return result;
}

/**
 * The change-driven counterpart of syncVips: adds and drops single owners, touching only the addresses
 * they name (no pass over every VIP, no re-add of addresses believed bound; the full pass does that).
 * `remove` goes first, so an owner that moves from one address to another is released and re-bound.
 */
export async function syncVipChanges(
  netif: NetInterfaceOps,
  state: AgentState,
  changes: { add: readonly VipWant[]; remove: readonly VipWant[] },
  arp?: ArpAnnouncer,
): Promise<VipResult> {
  const result: VipResult = { failed: new Map(), added: [], removed: [], changed: false };
  const idx = indexOf(state);
  for (const w of changes.remove) {
    const k = keyOf(w.ifname, w.vip);
    const cur = idx.get(k);
    if (!cur || !cur.owners.includes(w.owner)) continue;
    const owners = cur.owners.filter((o) => o !== w.owner);
    result.changed = true;
    if (owners.length > 0) {
      cur.owners = owners;
      continue;
    }
    arp?.withdraw?.(w.ifname, w.vip);
    try {
      await netif.removeVip(w.ifname, w.vip);
    } catch (e) {
      if (!/ENODEV/.test((e as Error).message)) {
        // Keep it owned by nobody in this scope: the next full pass retries the unbind.
        cur.owners = owners;
        result.failed.set(`unbind:${k}`, (e as Error).message);
        continue;
      }
    }
    state.vips.splice(state.vips.indexOf(cur), 1);
    idx.delete(k);
    result.removed.push(k);
  }
  // Owners of addresses we hold join them; the other addresses are bound in one pipelined addVips (an
  // address named by several owners once: the first one's lifetime, as syncVips takes it).
  const toBind = new Map<string, VipWant[]>();
  for (const w of changes.add) {
    const k = keyOf(w.ifname, w.vip);
    const cur = idx.get(k);
    if (!cur) {
      const owners = toBind.get(k);
      if (owners) owners.push(w);
      else toBind.set(k, [w]);
    } else if (!cur.owners.includes(w.owner)) {
      cur.owners = [...cur.owners, w.owner].sort();
      result.changed = true;
    }
  }
  const binds = [...toBind];
  const added = binds.length ? await netif.addVips(binds.map(([, ws]) => vipAdd(ws[0] as VipWant))) : [];
  for (const [i, [k, ws]] of binds.entries()) {
    const r = added[i];
    const w = ws[0] as VipWant;
    if (r instanceof Error) {
      for (const o of ws) result.failed.set(o.owner, r.message);
      continue;
    }
    // Only addresses we added are ours to remove later; one already bound stays someone else's.
    if (!r) continue;
    const v: OwnedVip = { ifname: w.ifname, vip: w.vip, owners: [...new Set(ws.map((o) => o.owner))].sort() };
    state.vips.push(v);
    idx.set(k, v);
    result.added.push(k);
    result.changed = true;
    await announceBound(arp, w);
  }
  return result;
}
