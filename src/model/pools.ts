/**
 * VIP admission and allocation, pure: which VirtualService may use which VIP. VIPs are default-deny: a VIP
 * is admitted only when it lies in a VIPPool whose namespaceSelector selects the VirtualService's
 * namespace, is no node's own address, not reserved (the API server's address, the service and pod
 * ranges) and not in use by another namespace. A VirtualService without spec.vip gets the lowest free
 * address of an allowed pool; the allocation is read back from its status, so it survives restarts.
 *
 * Order makes it deterministic: VirtualServices by creation time, then namespace/name; pools by name;
 * a pool's entries in the order listed. First every explicit VIP and every still-valid earlier allocation
 * is claimed (the older claim wins an address), then the others are allocated.
 */
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { VIPPool, PoolDirectors } from '../api/v1alpha1/vippool.ts';
import * as C from '../api/v1alpha1/conditions.ts';
import { bigIntToIp, cidrBounds, familyOf, ipToBigInt, isIP, parseCidr, type AddressFamily } from '../api/ip.ts';
import { matchesSelector } from './selector.ts';

/** The label the API server puts on every namespace (namespaceSelector's way to pick one by name). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export interface NamespaceInfo {
  name: string;
  labels?: Record<string, string>;
}

/** An address or CIDR no VIP may use, and why (for the condition message). */
export interface ReservedRange {
  /** An address (10.96.0.1) or a CIDR (10.96.0.0/12). */
  range: string;
  /** e.g. "the API server's Service address", "the service CIDR". */
  what: string;
}

export interface AdmissionInput {
  pools: VIPPool[];
  namespaces: NamespaceInfo[];
  /** Besides the nodes' own addresses and pod CIDRs, which come with the nodes. */
  reserved?: ReservedRange[];
}

/** The parts of a Node admission looks at. */
export interface AdmissionNode {
  name: string;
  addresses: Array<{ type: string; address: string }>;
  podCIDRs?: string[];
}

export interface AdmissionProblem {
  reason: string;
  message: string;
}

export interface AdmittedVip {
  vip: string;
  pool: string;
  /** Given by the controller (the VirtualService has no spec.vip). */
  allocated: boolean;
  directors?: PoolDirectors;
}

export type VipDecision = ({ ok: true } & AdmittedVip) | ({ ok: false } & AdmissionProblem);

export interface PoolUsage {
  name: string;
  /** VirtualServices admitted by the pool. */
  virtualServices: number;
  /** Distinct addresses of the pool in use by admitted VirtualServices. */
  addressesInUse: number;
  /** Of those, allocated ones. */
  allocated: number;
  /** Free addresses (neither in use nor reserved), saturating at 2^31 − 1. */
  available: number;
}

export interface Admission {
  /** By VirtualService id (namespace/name); live VirtualServices only. */
  decisions: Map<string, VipDecision>;
  /** By pool name; every live pool, used or not. */
  pools: Map<string, PoolUsage>;
}

interface Interval {
  family: AddressFamily;
  first: bigint;
  last: bigint;
}

interface Pool {
  name: string;
  obj: VIPPool;
  ranges: Interval[];
}

const MAX_AVAILABLE = 2147483647n;
const idOf = (o: { metadata: { namespace?: string; name?: string } }): string => `${o.metadata.namespace ?? 'default'}/${o.metadata.name ?? ''}`;
const addrKey = (family: AddressFamily, n: bigint): string => `${family}|${n}`;

/** An entry of VIPPoolSpec.addresses as an interval; undefined when malformed (the CRD refuses those). */
export function parsePoolEntry(entry: string): Interval | undefined {
  if (entry.includes('/')) {
    const c = parseCidr(entry);
    return c ? { family: c.family, ...cidrBounds(c) } : undefined;
  }
  const parts = entry.split('-');
  if (parts.length !== 2 || !parts.every(isIP)) return undefined;
  const [a = '', b = ''] = parts;
  const family = familyOf(a);
  if (familyOf(b) !== family) return undefined;
  const first = ipToBigInt(a);
  const last = ipToBigInt(b);
  return first <= last ? { family, first, last } : undefined;
}

function parseRange(range: string): Interval | undefined {
  if (isIP(range)) {
    const n = ipToBigInt(range);
    return { family: familyOf(range), first: n, last: n };
  }
  return range.includes('/') ? parsePoolEntry(range) : undefined;
}

const contains = (i: Interval, family: AddressFamily, n: bigint): boolean => i.family === family && i.first <= n && n <= i.last;

/** Family a VirtualService without spec.vip asks for: spec.ipFamily, else what its persistence netmask implies. */
export function requestedFamily(vs: VirtualService): AddressFamily | undefined {
  if (vs.spec.ipFamily) return vs.spec.ipFamily === 'IPv6' ? 6 : 4;
  const netmask = vs.spec.persistence?.netmask;
  if (netmask === undefined) return undefined;
  return netmask.includes('.') ? 4 : 6;
}

/**
 * Decides every live VirtualService's VIP. `virtualServices` must be the live ones; they are sorted here
 * (creation time, then id), so callers may pass them in any order.
 */
export function admitVips(virtualServices: VirtualService[], nodes: AdmissionNode[], input: AdmissionInput): Admission {
  const sorted = [...virtualServices].sort((a, b) => {
    const ta = a.metadata.creationTimestamp ?? '';
    const tb = b.metadata.creationTimestamp ?? '';
    if (ta !== tb) return ta < tb ? -1 : 1;
    return idOf(a).localeCompare(idOf(b));
  });
  const pools = new Map<string, Pool>();
  for (const obj of [...input.pools].filter((p) => !p.metadata.deletionTimestamp).sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''))) {
    const ranges = (obj.spec.addresses ?? []).map(parsePoolEntry).filter((r): r is Interval => r !== undefined);
    pools.set(obj.metadata.name ?? '', { name: obj.metadata.name ?? '', obj, ranges });
  }
  const nsLabels = new Map(input.namespaces.map((n) => [n.name, n.labels ?? {}]));
  // A namespace the cache has not seen yet still has the label the API server always sets.
  const labelsOf = (ns: string): Record<string, string> => nsLabels.get(ns) ?? { [NAMESPACE_NAME_LABEL]: ns };
  const allows = (p: Pool, ns: string): boolean => matchesSelector(p.obj.spec.namespaceSelector ?? { matchExpressions: [{ key: NAMESPACE_NAME_LABEL, operator: 'In', values: [] }] }, labelsOf(ns));

  const nodeAddress = new Map<string, string>();
  const reserved: Array<Interval & { what: string }> = [];
  for (const n of nodes) {
    for (const a of n.addresses) if (isIP(a.address)) nodeAddress.set(addrKey(familyOf(a.address), ipToBigInt(a.address)), n.name);
    for (const c of n.podCIDRs ?? []) {
      const i = parseRange(c);
      if (i) reserved.push({ ...i, what: `the pod CIDR ${c} of node ${n.name}` });
    }
  }
  for (const r of input.reserved ?? []) {
    const i = parseRange(r.range);
    if (i) reserved.push({ ...i, what: r.what });
  }

  /** Address → namespace and VirtualService that claimed it first. */
  const owner = new Map<string, { namespace: string; id: string }>();
  const decisions = new Map<string, VipDecision>();

  const refuse = (reason: string, message: string): VipDecision => ({ ok: false, reason, message });
  /** Node address and reserved-range checks, which no pool can override. */
  const blocked = (vip: string, family: AddressFamily, n: bigint): VipDecision | undefined => {
    const node = nodeAddress.get(addrKey(family, n));
    if (node !== undefined) return refuse(C.ReasonVIPIsNodeAddress, `VIP ${vip} is an address of node ${node}`);
    const r = reserved.find((i) => contains(i, family, n));
    if (r) return refuse(C.ReasonVIPReserved, `VIP ${vip} is reserved: it is ${r.first === r.last ? '' : 'in '}${r.what}`);
    return undefined;
  };
  /** The pool that admits `vip` for namespace `ns` (the one the VirtualService names, else the first by name). */
  const poolFor = (vs: VirtualService, vip: string, family: AddressFamily, n: bigint, prefer?: string): Pool | VipDecision => {
    const ns = vs.metadata.namespace ?? 'default';
    const notAllowed = (why: string): VipDecision => refuse(C.ReasonVIPNotAllowed, `VIP ${vip} is not allowed in namespace ${ns}: ${why}`);
    const inPool = (p: Pool): boolean => p.ranges.some((r) => contains(r, family, n));
    const named = vs.spec.vipPool;
    if (named !== undefined) {
      const p = pools.get(named);
      if (!p) return notAllowed(`VIPPool ${named} does not exist`);
      if (!inPool(p)) return notAllowed(`it is not in VIPPool ${named}`);
      if (!allows(p, ns)) return notAllowed(`VIPPool ${named} does not select the namespace`);
      return p;
    }
    const candidates = [...pools.values()].filter((p) => inPool(p) && allows(p, ns));
    const preferred = candidates.find((p) => p.name === prefer);
    return preferred ?? candidates[0] ?? notAllowed('no VIPPool that selects the namespace contains it');
  };

  const admit = (vs: VirtualService, vip: string, pool: Pool, allocated: boolean): void => {
    const family = familyOf(vip);
    const key = addrKey(family, ipToBigInt(vip));
    if (!owner.has(key)) owner.set(key, { namespace: vs.metadata.namespace ?? 'default', id: idOf(vs) });
    const d: VipDecision = { ok: true, vip, pool: pool.name, allocated };
    if (pool.obj.spec.directors) d.directors = pool.obj.spec.directors;
    decisions.set(idOf(vs), d);
  };

  // Pass 1: explicit VIPs and earlier allocations, oldest first.
  const toAllocate: VirtualService[] = [];
  for (const vs of sorted) {
    const id = idOf(vs);
    const ns = vs.metadata.namespace ?? 'default';
    const explicit = vs.spec.vip;
    if (explicit === undefined) {
      const previous = vs.status?.vip;
      if (previous !== undefined && isIP(previous) && keepAllocation(vs, previous)) continue;
      toAllocate.push(vs);
      continue;
    }
    if (!isIP(explicit)) {
      decisions.set(id, refuse(C.ReasonVIPNotAllowed, `VIP ${explicit} is not allowed in namespace ${ns}: not an IP address`));
      continue;
    }
    const family = familyOf(explicit);
    const n = ipToBigInt(explicit);
    const bad = blocked(explicit, family, n);
    if (bad) {
      decisions.set(id, bad);
      continue;
    }
    const pool = poolFor(vs, explicit, family, n);
    if (!('ranges' in pool)) {
      decisions.set(id, pool);
      continue;
    }
    const o = owner.get(addrKey(family, n));
    if (o && o.namespace !== ns) {
      decisions.set(id, refuse(C.ReasonVIPInUse, `VIP ${explicit} is not allowed in namespace ${ns}: it is in use by VirtualService ${o.id} of another namespace`));
      continue;
    }
    admit(vs, explicit, pool, false);
  }

  /** Keeps a still-valid earlier allocation (status.vip); false sends the VirtualService to allocation. */
  function keepAllocation(vs: VirtualService, previous: string): boolean {
    const family = familyOf(previous);
    const want = requestedFamily(vs);
    if (want !== undefined && want !== family) return false;
    const n = ipToBigInt(previous);
    if (blocked(previous, family, n) || owner.has(addrKey(family, n))) return false;
    const pool = poolFor(vs, previous, family, n, vs.status?.vipPool);
    if (!('ranges' in pool)) return false;
    admit(vs, canonical(previous), pool, true);
    return true;
  }

  /**
   * The lowest address of `r` that is neither claimed nor reserved nor a node's. Claims only grow while
   * allocating, so each range's search resumes where the previous one stopped (linear, not quadratic).
   */
  const cursors = new Map<Interval, bigint>();
  function firstFree(r: Interval): bigint | undefined {
    let n = cursors.get(r) ?? r.first;
    while (n <= r.last) {
      const key = addrKey(r.family, n);
      if (owner.has(key) || nodeAddress.has(key)) {
        n++;
        continue;
      }
      const res = reserved.find((i) => contains(i, r.family, n));
      if (res) {
        n = res.last + 1n;
        continue;
      }
      cursors.set(r, n);
      return n;
    }
    cursors.set(r, n);
    return undefined;
  }

  // Pass 2: allocations, oldest first.
  for (const vs of toAllocate) {
    const id = idOf(vs);
    const ns = vs.metadata.namespace ?? 'default';
    const named = vs.spec.vipPool;
    let candidates: Pool[];
    if (named !== undefined) {
      const p = pools.get(named);
      if (!p || !allows(p, ns)) {
        decisions.set(id, refuse(C.ReasonVIPNotAllowed, `no VIP can be allocated in namespace ${ns}: VIPPool ${named} ${p ? 'does not select the namespace' : 'does not exist'}`));
        continue;
      }
      candidates = [p];
    } else {
      candidates = [...pools.values()].filter((p) => p.obj.spec.autoAssign !== false && allows(p, ns));
      if (candidates.length === 0) {
        decisions.set(id, refuse(C.ReasonVIPNotAllowed, `no VIP can be allocated in namespace ${ns}: no auto-assigning VIPPool selects the namespace`));
        continue;
      }
    }
    const family = requestedFamily(vs);
    let got: { vip: string; pool: Pool } | undefined;
    for (const p of candidates) {
      for (const r of p.ranges) {
        if (family !== undefined && r.family !== family) continue;
        const n = firstFree(r);
        if (n !== undefined) {
          got = { vip: bigIntToIp(n, r.family), pool: p };
          break;
        }
      }
      if (got) break;
    }
    if (!got) {
      const names = candidates.map((p) => p.name).join(', ');
      decisions.set(id, refuse(C.ReasonNoVIPAvailable, `no free ${family === undefined ? '' : `IPv${family} `}address in VIPPool ${names} for namespace ${ns}`));
      continue;
    }
    admit(vs, got.vip, got.pool, true);
  }

  return { decisions, pools: usage(pools, decisions, owner, nodeAddress, reserved) };
}

const canonical = (ip: string): string => bigIntToIp(ipToBigInt(ip), familyOf(ip));

/** Distinct addresses, parsed back from their keys (claimed VIPs and node addresses). */
function addressesOf(keys: Iterable<string>): Array<{ family: AddressFamily; n: bigint }> {
  const out: Array<{ family: AddressFamily; n: bigint }> = [];
  for (const key of new Set(keys)) {
    const bar = key.indexOf('|');
    out.push({ family: key.slice(0, bar) === '6' ? 6 : 4, n: BigInt(key.slice(bar + 1)) });
  }
  return out;
}

function usage(pools: Map<string, Pool>, decisions: Map<string, VipDecision>, owner: Map<string, unknown>, nodeAddress: Map<string, string>, reserved: Interval[]): Map<string, PoolUsage> {
  const claimed = addressesOf([...owner.keys(), ...nodeAddress.keys()]);
  const out = new Map<string, PoolUsage>();
  const inUse = new Map<string, Set<string>>();
  const allocated = new Map<string, Set<string>>();
  for (const p of pools.values()) {
    out.set(p.name, { name: p.name, virtualServices: 0, addressesInUse: 0, allocated: 0, available: 0 });
    inUse.set(p.name, new Set());
    allocated.set(p.name, new Set());
  }
  for (const d of decisions.values()) {
    if (!d.ok) continue;
    const u = out.get(d.pool);
    if (!u) continue;
    u.virtualServices++;
    const key = addrKey(familyOf(d.vip), ipToBigInt(d.vip));
    inUse.get(d.pool)!.add(key);
    if (d.allocated) allocated.get(d.pool)!.add(key);
  }
  for (const p of pools.values()) {
    const u = out.get(p.name)!;
    u.addressesInUse = inUse.get(p.name)!.size;
    u.allocated = allocated.get(p.name)!.size;
    let free = 0n;
    for (const r of p.ranges) {
      // Reserved parts of the range, merged, then single taken addresses outside them.
      const cuts = reserved.filter((i) => i.family === r.family && i.first <= r.last && i.last >= r.first)
        .map((i) => ({ first: i.first > r.first ? i.first : r.first, last: i.last < r.last ? i.last : r.last }))
        .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
      let covered = 0n;
      let end = r.first - 1n;
      for (const c of cuts) {
        const from = c.first > end ? c.first : end + 1n;
        if (c.last >= from) covered += c.last - from + 1n;
        if (c.last > end) end = c.last;
      }
      let taken = 0n;
      for (const a of claimed) {
        if (a.family !== r.family || a.n < r.first || a.n > r.last) continue;
        if (cuts.some((c) => c.first <= a.n && a.n <= c.last)) continue;
        taken++;
      }
      free += r.last - r.first + 1n - covered - taken;
    }
    u.available = Number(free > MAX_AVAILABLE ? MAX_AVAILABLE : free);
  }
  return out;
}
