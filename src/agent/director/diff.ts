/**
 * The director's reconcile decision, as a pure function: desired services (with effective weights),
 * the kernel table as dumped, and what this agent owns → the minimal list of IPVS operations.
 * Foreign services are never touched; a weight change is one SET_DEST; removed realservers drain.
 */
import type { Destination, DestinationEntry, Service, ServiceState } from '../../ipvs/types.ts';
import { destKey, sameDestinationSettings, sameService, serviceKey } from '../../ipvs/keys.ts';

export interface DesiredService {
  /** namespace/name of the VirtualService. */
  owner: string;
  service: Service;
  destinations: Destination[];
  /** Seconds a removed TCP destination may keep its connections; 0 deletes at once. */
  drainTimeoutSeconds: number;
}

export type DirectorOp =
  | { op: 'addService'; owner: string; service: Service }
  | { op: 'updateService'; owner: string; service: Service }
  | { op: 'deleteService'; owner: string; service: Service }
  | { op: 'addDestination'; owner: string; service: Service; destination: Destination }
  | { op: 'updateDestination'; owner: string; service: Service; destination: Destination; reason: 'changed' | 'drain' }
  | { op: 'deleteDestination'; owner: string; service: Service; destination: Destination };

export interface DiffInput {
  desired: DesiredService[];
  /** The kernel table, as a list or already keyed by serviceKey. */
  actual: ServiceState[] | ReadonlyMap<string, ServiceState>;
  /**
   * Desired services known to be in sync (unchanged since they were last applied): not diffed again,
   * but not deleted either. Keeps a change-driven run proportional to the change.
   */
  inSync?: ReadonlySet<string>;
  /**
   * A change-driven run: the owned serviceKeys that may have left the desired set (services removed from
   * the plan, or whose key changed). Only these are considered for deletion, and draining entries of
   * services not diffed are carried over. Absent: a full run, where every owned key that is neither
   * desired nor in sync is deleted.
   */
  removed?: Iterable<string>;
  /** serviceKey of each desired service, when the caller already has it. */
  keyOf?: (d: DesiredService) => string;
  /** serviceKey → owner, from the agent's ledger: the services this agent created. */
  owned: ReadonlyMap<string, string>;
  /** `${serviceKey}|${destKey}` → epoch ms when draining began. */
  draining: ReadonlyMap<string, number>;
  now: number;
}

export interface DiffResult {
  ops: DirectorOp[];
  /** The draining table after the ops are applied (entries of services not diffed are carried over). */
  draining: Map<string, number>;
  /** Desired services that exist in the kernel but belong to someone else: never touched. */
  conflicts: Array<{ owner: string; service: string }>;
  /** Desired objects that were missing or changed behind our back (someone ran ipvsadm). */
  drift: number;
}

export const drainKey = (svc: Service, dest: Destination): string => `${serviceKey(svc)}|${destKey(dest)}`;
/** The serviceKey part of a drainKey (service keys never contain '|'). */
export const drainService = (k: string): string => k.slice(0, k.indexOf('|'));

/**
 * Whether the kernel's destinations are exactly `want`, in order: same count, and each address, family and
 * port identical as strings with the same settings (the kernel's keys are unique, so then the sets are equal).
 * Anything else, e.g. the same address written differently, goes through the keyed comparison.
 */
function sameDestinationsInOrder(have: readonly DestinationEntry[], want: readonly Destination[]): boolean {
  if (have.length !== want.length) return false;
  for (let i = 0; i < want.length; i++) {
    const h = have[i]!.destination;
    const w = want[i]!;
    if (h.address !== w.address || h.port !== w.port || h.af !== w.af || !sameDestinationSettings(h, w)) return false;
  }
  return true;
}

export function diffDirector(input: DiffInput): DiffResult {
  const ops: DirectorOp[] = [];
  const draining = new Map<string, number>();
  const conflicts: DiffResult['conflicts'] = [];
  let drift = 0;
  const actualByKey: ReadonlyMap<string, ServiceState> = Array.isArray(input.actual)
    ? new Map((input.actual as ServiceState[]).map((s) => [serviceKey(s.service), s]))
    : (input.actual as ReadonlyMap<string, ServiceState>);
  const desiredKeys = new Set<string>();
  const inSync = input.inSync;
  const keyOf = input.keyOf ?? ((d: DesiredService): string => serviceKey(d.service));

  for (const want of input.desired) {
    const key = keyOf(want);
    desiredKeys.add(key);
    const have = actualByKey.get(key);
    const ours = input.owned.has(key);
    if (have && !ours) {
      conflicts.push({ owner: want.owner, service: key });
      continue;
    }
    if (!have) {
      if (ours) drift++;
      ops.push({ op: 'addService', owner: want.owner, service: want.service });
      for (const d of want.destinations) ops.push({ op: 'addDestination', owner: want.owner, service: want.service, destination: d });
      continue;
    }
    if (!sameService(have.service, want.service)) {
      if (input.owned.get(key) === want.owner) drift++;
      ops.push({ op: 'updateService', owner: want.owner, service: want.service });
    }
    // The common case of a resync: the kernel lists the same destinations in the same order with the same
    // settings. Checked field by field, without the keyed maps below (most of a resync's diff otherwise).
    if (sameDestinationsInOrder(have.destinations, want.destinations)) continue;
    const haveDests = new Map(have.destinations.map((d) => [destKey(d.destination), d]));
    const wantKeys = new Set<string>();
    for (const d of want.destinations) {
      const dk = destKey(d);
      wantKeys.add(dk);
      const cur = haveDests.get(dk);
      if (!cur) {
        ops.push({ op: 'addDestination', owner: want.owner, service: want.service, destination: d });
      } else if (!sameDestinationSettings(cur.destination, d)) {
        ops.push({ op: 'updateDestination', owner: want.owner, service: want.service, destination: d, reason: 'changed' });
      }
    }
    for (const [dk, cur] of haveDests) {
      if (wantKeys.has(dk)) continue;
      const k = drainKey(want.service, cur.destination);
      const since = input.draining.get(k);
      const connections = cur.counters.activeConns + cur.counters.inactiveConns;
      const immediate = want.service.protocol !== 'tcp' || want.drainTimeoutSeconds === 0;
      const expired = since !== undefined && input.now - since >= want.drainTimeoutSeconds * 1000;
      if (immediate || connections === 0 || expired) {
        ops.push({ op: 'deleteDestination', owner: want.owner, service: want.service, destination: cur.destination });
        continue;
      }
      draining.set(k, since ?? input.now);
      if (cur.destination.weight !== 0) {
        ops.push({ op: 'updateDestination', owner: want.owner, service: want.service, destination: { ...cur.destination, weight: 0 }, reason: 'drain' });
      }
    }
  }

  const deleted = new Set<string>();
  for (const key of input.removed ?? input.owned.keys()) {
    const owner = input.owned.get(key);
    if (owner === undefined || desiredKeys.has(key) || inSync?.has(key) || deleted.has(key)) continue;
    const have = actualByKey.get(key);
    deleted.add(key);
    if (have) ops.push({ op: 'deleteService', owner, service: have.service });
  }
  // Drain state of services this run did not look at stays as it was.
  const partial = input.removed !== undefined;
  for (const [k, since] of input.draining) {
    const sk = drainService(k);
    if (!desiredKeys.has(sk) && !deleted.has(sk) && (partial || inSync?.has(sk))) draining.set(k, since);
  }
  return { ops, draining, conflicts, drift };
}
