/**
 * Makes the kernel match the director part of a node plan: sysctls, IPVS services and destinations,
 * and the VIPs of the services this node holds. One bad service never stops the others: each failure
 * is reported against its service with the errno.
 *
 * Two kinds of run. A full run (the first, and every periodic resync) takes the whole plan, dumps the
 * kernel, re-claims sysctls and re-checks VIPs: it repairs drift. A change-driven run takes only the
 * services that changed (and the ids that left the plan) and costs work in proportion to them: it trusts
 * its view of the kernel (the last dump plus the operations applied since) and its per-service records.
 */
import type { IpvsInterface } from '../../ipvs/interface.ts';
import type { IpvsError } from '../../ipvs/errors.ts';
import { destKey, serviceKey } from '../../ipvs/keys.ts';
import { SvcFlag } from '../../ipvs/constants.ts';
import { ZERO_COUNTERS, ZERO_STATS, type Service, type ServiceEntry, type ServiceState } from '../../ipvs/types.ts';
import type { NetInterfaceOps, ArpAnnouncer } from '../../netif/types.ts';
import type { SysctlOps } from '../../sysctl/types.ts';
import { sysctlsFor } from '../../sysctl/policy.ts';
import type { PlannedService } from '../../model/plan.ts';
import type { Logger } from '../../util/log.ts';
import type { StateStore } from '../state.ts';
import { boundAddresses, rebindMissing, syncVipChanges, syncVips, vipLedgerMatches, type BoundAddresses, type VipResult, type VipWant } from '../vips.ts';
import { diffDirector, drainService, type DesiredService, type DirectorOp } from './diff.ts';
import { deepEqual, planDelta } from '../plandelta.ts';
import { ipvsDestination, ipvsService } from './desired.ts';

export const DIRECTOR_OWNER_PREFIX = 'director:';
/** Whether a sysctl claim or VIP owner is this reconciler's. */
const directorOwned = (owner: string): boolean => owner.startsWith(DIRECTOR_OWNER_PREFIX);

export interface DirectorDeps {
  ipvs: IpvsInterface;
  netif: NetInterfaceOps;
  sysctl: SysctlOps;
  arp?: ArpAnnouncer;
  state: StateStore;
  log: Logger;
  now?: () => number;
  /** The interface that holds VIPs when a service names none (the default route's). */
  defaultInterface: () => Promise<string>;
  /**
   * Whether this node binds a service's VIP now; default: the plan's holdVip. With director failover this
   * is the VIP election (src/agent/failover), the plan's holdVip being only its preference; its hold and
   * release events must make the agent look at the VIP's services again (Agent.touch), since a
   * change-driven run only looks at changed services.
   */
  holdsVip?: (s: PlannedService) => boolean;
  /** Kernel lifetime to bind a held VIP with (see VipOptions); default none: forever. */
  vipLifetimeSeconds?: (s: PlannedService) => number | undefined;
}

/** Whether a destination may get new connections; undefined = no verdict yet (counts as healthy). */
export type HealthLookup = (serviceId: string, address: string, port: number) => boolean | undefined;

export interface ServiceReport {
  id: string;
  generation: number;
  ok: boolean;
  /** Why the service is not (fully) programmed. */
  errors: string[];
  holdsVip: boolean;
  /** Since when (epoch ms) this node holds the VIP without interruption; set while holdsVip. */
  vipHeldSince?: number;
}

export interface DirectorReport {
  /**
   * Every planned service's report, by id. This is the reconciler's live table: a run replaces the
   * entries it touches (never edits one it published), so holding on to an entry is safe.
   */
  services: ReadonlyMap<string, ServiceReport>;
  /** Ids whose report this run replaced or dropped (every id, after a full run). */
  changed: readonly string[];
  /** How many planned services are not fully programmed. */
  failed: number;
  /** Whether the run covered the whole plan and read the kernel (the first run and every resync). */
  full: boolean;
  ops: number;
  drift: number;
}

export interface ReconcileOptions {
  /**
   * A full run: dump the kernel table instead of trusting the cached view, claim sysctls again, re-check
   * VIPs (drift repair, drain progress). Without it a change costs work in proportion to the change.
   */
  resync?: boolean;
}

/** A change-driven run's input: only what changed since the last run. */
export interface DirectorChanges {
  /** New planned services, and planned services that differ from the ones last reconciled. */
  upsert: readonly PlannedService[];
  /** Ids that left the plan. */
  remove: readonly string[];
}

/** What the reconciler remembers of each planned service between runs. */
interface Entry {
  planned: PlannedService;
  /** The sysctl owner (forwarding method and interface) it is counted under. */
  group?: string;
  /** Its IPVS service (a key for targeted reads) and serviceKey. */
  service?: Service;
  key?: string;
  /**
   * Its desired IPVS state as last derived from `planned`: reused while `planned` is the same object and
   * its destinations' effective weights (health) are as they were, so a sweep's slices build no new
   * objects for services nobody changed (building them was the largest part of a slice, and its garbage).
   */
  desired?: DesiredService;
  /** The VIP it holds, once bound (or found bound). */
  vip?: VipWant;
  /** Since when it holds it (epoch ms). */
  vipHeldSince?: number;
}

/** What the kernel holds after `op` succeeded, so the next reconcile needs no dump. */
function applyToView(view: Map<string, ServiceState>, op: DirectorOp): void {
  const key = serviceKey(op.service);
  const cur = view.get(key);
  switch (op.op) {
    case 'addService':
      view.set(key, { service: { ...op.service, flags: op.service.flags | SvcFlag.HASHED }, stats: ZERO_STATS, destinations: [] });
      return;
    case 'updateService':
      if (cur) view.set(key, { ...cur, service: { ...op.service, flags: op.service.flags | SvcFlag.HASHED } });
      return;
    case 'deleteService':
      view.delete(key);
      return;
    case 'addDestination':
      if (cur) view.set(key, { ...cur, destinations: [...cur.destinations, { destination: op.destination, counters: ZERO_COUNTERS, stats: ZERO_STATS }] });
      return;
    case 'updateDestination': {
      if (!cur) return;
      const dk = destKey(op.destination);
      view.set(key, { ...cur, destinations: cur.destinations.map((d) => (destKey(d.destination) === dk ? { ...d, destination: op.destination } : d)) });
      return;
    }
    case 'deleteDestination': {
      if (!cur) return;
      const dk = destKey(op.destination);
      view.set(key, { ...cur, destinations: cur.destinations.filter((d) => destKey(d.destination) !== dk) });
      return;
    }
  }
}

function sameDraining(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** A sweep's service dump, begun ahead of it, and the serviceKeys changed since it began. */
interface ReadAhead {
  table: Promise<ServiceEntry[] | undefined>;
  touched: Set<string>;
}

/**
 * A sliced full run: the kernel's services (without destinations: each step reads those of its own
 * services), the addresses bound then, the sysctl owners claimed.
 */
interface Sweep {
  services: ReadonlyMap<string, ServiceEntry>;
  addresses: BoundAddresses;
  reclaimed: Set<string>;
}

export class DirectorReconciler {
  readonly #d: DirectorDeps;
  /** The kernel table as of the last dump plus the operations applied since. */
  #view: Map<string, ServiceState> | undefined;
  /** serviceKeys whose view entry may be wrong (an operation on them failed): read again before use. */
  readonly #stale = new Set<string>();
  /** serviceKey → owner: state.services as a Map, kept in step with it. */
  #owned: Map<string, string> | undefined;
  /** Per planned service id: what the last run that touched it decided. */
  readonly #entries = new Map<string, Entry>();
  readonly #reports = new Map<string, ServiceReport>();
  readonly #failing = new Set<string>();
  /** Sysctl owner → ids of the planned services that need its claim. */
  readonly #groups = new Map<string, Set<string>>();
  /** Sysctl owners claimed by this process (a full run claims again to repair drift). */
  readonly #claimed = new Set<string>();
  /** Interfaces seen to exist, and the default interface, since the last full run. */
  readonly #interfaces = new Set<string>();
  #fallback: string | undefined;
  /** A kernel read begun ahead of the next sweep (#readAhead). */
  #prefetched: ReadAhead | undefined;
  /** A sliced full run in progress (beginSweep … finishSweep). */
  #sweep: Sweep | undefined;

  constructor(deps: DirectorDeps) {
    this.#d = deps;
  }

  /**
   * With `resync` (or before the first run): a full run over `services`. Without: a change-driven run
   * over the services whose objects are not the ones last reconciled, and the ids no longer listed.
   */
  async reconcile(services: readonly PlannedService[], healthy: HealthLookup, opts: ReconcileOptions = {}): Promise<DirectorReport> {
    if (opts.resync || !this.#view) return this.#run(services, [], true, healthy);
    const byId = new Map([...this.#entries].map(([id, e]) => [id, e.planned]));
    const delta = planDelta(byId, [], services, 'identity');
    return this.#run(delta.changed, delta.removed, false, healthy);
  }

  /** A change-driven run: only `changes` are looked at (a full run first when none has happened yet). */
  async reconcileChanges(changes: DirectorChanges, healthy: HealthLookup): Promise<DirectorReport> {
    if (this.#view) return this.#run(changes.upsert, changes.remove, false, healthy);
    const all = new Map([...this.#entries].map(([id, e]) => [id, e.planned]));
    for (const id of changes.remove) all.delete(id);
    for (const s of changes.upsert) all.set(s.id, s);
    return this.#run([...all.values()], [], true, healthy);
  }

  /**
   * The service dump for the next sweep, begun now unless one is under way, while change-driven runs go on.
   * Services changed during and after it are taken from the view (`touched`). Its table never rejects:
   * undefined after a failed read.
   */
  #readAhead(): ReadAhead {
    this.#prefetched ??= {
      touched: new Set(),
      table: this.#d.ipvs.dumpServices().catch((e: unknown) => {
        this.#d.log.warn({ err: (e as Error).message }, 'reading the IPVS services ahead of a sweep failed');
        return undefined;
      }),
    };
    return this.#prefetched;
  }

  /**
   * Begins a sliced full run (a sweep): the periodic drift repair, done as sweepSlice over slices of the plan
   * and then finishSweep, each a short run of its own with change-driven runs free to go in between. At 5,000
   * services a full run's comparison alone held the agent for 1–3 s in the lab VM, and every change that met
   * it waited that long. Reads the kernel's services (one dump, without destinations: each step reads those
   * of its services, so that 50,000 destination objects do not live through the whole sweep, into the
   * old generation of the heap) and the addresses of the interfaces holding our VIPs, outside any run.
   * Resolves false when there is nothing to sweep against (no run yet, the read failed, or a full run came
   * meanwhile): the caller runs a full run instead.
   */
  async beginSweep(): Promise<boolean> {
    if (!this.#view) return false; // the first run reads for itself
    const started = performance.now();
    const pre = this.#readAhead();
    const table = await pre.table;
    if (!table || this.#prefetched !== pre) return false;
    const readMs = performance.now() - started;
    const ifnames = new Set<string>();
    for (const e of this.#entries.values()) if (e.vip) ifnames.add(e.vip.ifname);
    const addresses = await boundAddresses(this.#d.netif, ifnames);
    if (this.#prefetched !== pre) return false;
    this.#d.log.debug({ services: table.length, servicesMs: Math.round(readMs), addressesMs: Math.round(performance.now() - started - readMs) }, 'sweep read');
    this.#sweep = { services: new Map(table.map((s) => [serviceKey(s.service), s])), addresses, reclaimed: new Set() };
    // As a full run does: interfaces and the default route are looked up again.
    this.#interfaces.clear();
    this.#fallback = undefined;
    return true;
  }

  /**
   * One slice of a sweep: a change-driven run over `services` that first takes their kernel state from the
   * sweep's service dump and their destinations as the kernel has them now (unless a run changed them since
   * the dump: then the view is newer), claims their sysctls again and
   * re-adds their VIPs that are gone. Reports only the services whose report changed.
   */
  sweepSlice(services: readonly PlannedService[], healthy: HealthLookup): Promise<DirectorReport> {
    return this.#run(services, [], false, healthy, this.#sweep && 'slice');
  }

  /**
   * The end of a sweep, after every slice: what a full run does beyond single services. Drops the ids
   * `planned` no longer lists, deletes owned IPVS services that no planned service has (left by a previous
   * agent process or a failed delete), releases sysctl claims and VIPs nobody needs. Reports as a full run.
   */
  async finishSweep(planned: (id: string) => boolean, healthy: HealthLookup): Promise<DirectorReport> {
    const removed = [...this.#entries.keys()].filter((id) => !planned(id));
    try {
      return await this.#run([], removed, false, healthy, this.#sweep && 'finish');
    } finally {
      this.#sweep = undefined;
      this.#prefetched = undefined;
    }
  }

  /** The kernel table for a full run (which ends a sweep's read ahead: the view it patches is replaced). */
  async #readTable(): Promise<Map<string, ServiceState>> {
    this.#prefetched = undefined;
    return new Map((await this.#d.ipvs.listServices()).map((s) => [serviceKey(s.service), s]));
  }

  async #run(work: readonly PlannedService[], removedIds: readonly string[], full: boolean, healthy: HealthLookup, step?: 'slice' | 'finish'): Promise<DirectorReport> {
    const { ipvs, sysctl, log } = this.#d;
    // A full run takes the place of a sweep in progress (its read included).
    const sweep = full ? undefined : step && this.#sweep;
    if (full) this.#sweep = undefined;
    const now = (this.#d.now ?? Date.now)();
    // Where a full run's (or a sweep's end's) time goes, for the debug log: it holds up every change meanwhile.
    const phases: Record<string, number> | undefined = full || step === 'finish' ? {} : undefined;
    let lapStart = performance.now();
    const lap = (name: string): void => {
      if (!phases) return;
      const t = performance.now();
      phases[name] = Math.round(t - lapStart);
      lapStart = t;
    };
    const state = this.#d.state.load();
    this.#owned ??= new Map(Object.entries(state.services));
    if (full) {
      const ids = new Set(work.map((s) => s.id));
      removedIds = [...this.#entries.keys()].filter((id) => !ids.has(id));
      this.#interfaces.clear();
      this.#fallback = undefined;
    }
    // What the last runs decided for every id this run looks at.
    const prev = new Map<string, Entry | undefined>();
    for (const s of work) prev.set(s.id, this.#entries.get(s.id));
    for (const id of removedIds) prev.set(id, this.#entries.get(id));

    const reports = new Map<string, ServiceReport>(
      work.map((s) => [s.id, { id: s.id, generation: s.generation, ok: true, errors: [], holdsVip: false }]),
    );
    const failed = new Set<string>();
    const fail = (id: string, msg: string): void => {
      const r = reports.get(id);
      if (!r) return;
      r.ok = false;
      r.errors.push(msg);
      failed.add(id);
    };

    // Interfaces first: a service whose interface does not exist fails alone. Each distinct interface is
    // looked up once per full run (change-driven runs trust what the last lookup found).
    const ifaceOf = new Map<string, string>();
    let fallbackError: string | undefined;
    if (this.#fallback === undefined && work.some((s) => s.interface === undefined)) {
      try {
        this.#fallback = await this.#d.defaultInterface();
      } catch (e) {
        fallbackError = (e as Error).message;
      }
    }
    const names = new Set<string>();
    for (const s of work) {
      const n = s.interface ?? this.#fallback;
      if (n !== undefined && !this.#interfaces.has(n)) names.add(n);
    }
    const lookupError = new Map<string, string>();
    await Promise.all([...names].map((n) => this.#d.netif.getInterface(n).then(
      () => void this.#interfaces.add(n),
      (e: unknown) => void lookupError.set(n, (e as Error).message),
    )));
    for (const s of work) {
      const ifname = s.interface ?? this.#fallback;
      if (ifname === undefined) fail(s.id, `interface: ${fallbackError ?? 'no interface'}`);
      else if (lookupError.has(ifname)) fail(s.id, `interface: ${lookupError.get(ifname)}`);
      else ifaceOf.set(s.id, ifname);
    }

    lap('interfaces');
    // Sysctls before IPVS: a NAT director without ip_forward would black-hole replies. They depend only on
    // the forwarding method and the interface, so services that share both share one claim.
    const groupOf = new Map<string, string>();
    const needed = new Map<string, { mode: PlannedService['forwarding']; ifname: string; ipv6: boolean; ids: string[] }>();
    for (const s of work) {
      const ifname = ifaceOf.get(s.id);
      if (!ifname) continue;
      const ipv6 = s.vip.includes(':');
      const owner = `${DIRECTOR_OWNER_PREFIX}${s.forwarding}/${ifname}${ipv6 ? '/ipv6' : ''}`;
      const g = needed.get(owner) ?? { mode: s.forwarding, ifname, ipv6, ids: [] };
      g.ids.push(s.id);
      needed.set(owner, g);
      groupOf.set(s.id, owner);
    }
    if (full) this.#groups.clear();
    const emptied = new Set<string>();
    for (const [id, e] of prev) {
      if (full || e?.group === undefined || e.group === groupOf.get(id)) continue;
      this.#groups.get(e.group)?.delete(id);
      emptied.add(e.group);
    }
    for (const [owner, g] of needed) {
      const members = this.#groups.get(owner) ?? new Set<string>();
      for (const id of g.ids) members.add(id);
      this.#groups.set(owner, members);
      // A full run claims every owner again (drift repair), a sweep each owner once.
      if (!full && this.#claimed.has(owner) && !(sweep && !sweep.reclaimed.has(owner))) continue;
      try {
        await sysctl.claim(owner, sysctlsFor('director', g.mode, g.ifname, { ipv6: g.ipv6 }));
        this.#claimed.add(owner);
        sweep?.reclaimed.add(owner);
      } catch (e) {
        this.#claimed.delete(owner);
        for (const id of g.ids) fail(id, `sysctl: ${(e as Error).message}`);
      }
    }
    // A full run also releases claims left by a previous agent process; a change-driven one the claims its
    // changes left without a service.
    const stale = full
      ? (await sysctl.owners()).filter((o) => directorOwned(o) && !needed.has(o))
      : step === 'finish'
        ? (await sysctl.owners()).filter((o) => directorOwned(o) && !this.#groups.get(o)?.size)
        : [...emptied].filter((o) => !this.#groups.get(o)?.size);
    for (const owner of stale) {
      await sysctl.release(owner);
      this.#claimed.delete(owner);
      this.#groups.delete(owner);
    }

    lap('sysctl');
    // IPVS. Desired objects are derived for the services this run looks at; every one of them (failed ones
    // too: those must not be deleted) has its serviceKey.
    const desired: DesiredService[] = [];
    const keys = new Map<DesiredService, string>();
    /** Per service of this run: its IPVS service and key, and its desired state unless it failed before IPVS. */
    const serviceOf = new Map<string, { service: Service; key: string; desired?: DesiredService }>();
    for (const s of work) {
      const e = prev.get(s.id);
      const same = e?.planned === s && e.service !== undefined && e.key !== undefined;
      const service = same ? e.service! : ipvsService(s);
      const key = same ? e.key! : serviceKey(service);
      const sk: { service: Service; key: string; desired?: DesiredService } = { service, key };
      serviceOf.set(s.id, sk);
      if (failed.has(s.id)) continue;
      const weights = s.destinations.map((x) => (healthy(s.id, x.address, x.port) === false ? 0 : x.weight));
      let d = same ? e.desired : undefined;
      if (d && !weights.every((w, i) => d!.destinations[i]?.weight === w)) d = undefined;
      d ??= {
        owner: s.id,
        service,
        destinations: s.destinations.map((x, i) => ipvsDestination(s, x, weights[i]!)),
        drainTimeoutSeconds: s.drainTimeoutSeconds,
      };
      keys.set(d, key);
      desired.push(d);
      sk.desired = d;
    }
    // Keys of services that left the plan or moved to another address: candidates for deletion.
    const gone: string[] = [];
    const goneServices: Service[] = [];
    if (!full) {
      for (const [id, e] of prev) {
        if (e?.key === undefined || e.key === serviceOf.get(id)?.key) continue;
        gone.push(e.key);
        if (e.service) goneServices.push(e.service);
      }
    }
    // A full run must not delete the services that failed before IPVS: keep them out of the diff.
    let owned: ReadonlyMap<string, string> = this.#owned;
    if (full && failed.size) {
      const failedKeys = new Set([...failed].map((id) => serviceOf.get(id)!.key));
      owned = new Map([...this.#owned].filter(([k]) => !failedKeys.has(k)));
    }
    lap('desired');
    // The end of a sweep also deletes owned services that no planned service has.
    const removedSet = new Set(step === 'finish' ? removedIds : []);
    const liveKeys = new Set<string>();
    if (step === 'finish') {
      const entryKeys = new Set<string>();
      for (const [id, e] of this.#entries) {
        if (e.key === undefined) continue;
        entryKeys.add(e.key);
        if (!removedSet.has(id)) liveKeys.add(e.key);
      }
      for (const k of this.#owned.keys()) if (!entryKeys.has(k)) gone.push(k);
    }
    if (sweep && this.#view) {
      // The kernel's state of the keys this step looks at: the service as the sweep's dump found it, its
      // destinations read now. Not for keys a run changed since the dump (the view is newer then) or that the
      // view is unsure of (read again below). From now on the view is newer for them too.
      const touched = this.#prefetched?.touched;
      const view = this.#view;
      const read: Array<[string, ServiceEntry]> = [];
      for (const k of new Set([...keys.values(), ...gone])) {
        if (touched?.has(k) || this.#stale.has(k)) continue;
        touched?.add(k);
        const t = sweep.services.get(k);
        if (t) read.push([k, t]);
        else view.delete(k);
      }
      if (read.length) {
        const destinations = await ipvs.listDestinationsOf(read.map(([, t]) => t.service));
        read.forEach(([k, t], i) => view.set(k, { ...t, destinations: destinations[i] ?? [] }));
      }
    }
    if (full || !this.#view) {
      this.#view = await this.#readTable();
      this.#stale.clear();
    } else if (this.#stale.size) {
      await this.#refresh(this.#view, [...desired.map((d) => d.service), ...goneServices]);
    }
    lap('read');
    const view = this.#view;
    const draining = new Map(Object.entries(state.draining));
    const diff = diffDirector({ desired, actual: view, keyOf: (d) => keys.get(d)!, owned, draining, now, ...(full ? {} : { removed: gone }) });
    for (const c of diff.conflicts) fail(c.owner, `EEXIST: ${c.service} exists in the kernel and is not owned by lvs-operator; not touching it`);
    lap('diff');
    const results = diff.ops.length > 0 ? await ipvs.apply(diff.ops) : [];
    const touched = this.#prefetched?.touched;
    if (touched) for (const op of diff.ops) touched.add(serviceKey(op.service));
    /** serviceKeys whose ledger entry this run set or removed. */
    const ownership: string[] = [];
    diff.ops.forEach((op: DirectorOp, i: number) => {
      const err: IpvsError | undefined = results[i];
      const key = serviceKey(op.service);
      if (err) {
        // Idempotent outcomes: the object is already as we want it.
        if ((op.op === 'addService' && err.code === 'EEXIST' && state.services[key] === op.owner) || (op.op.startsWith('delete') && (err.code === 'ESRCH' || err.code === 'ENOENT'))) {
          if (op.op === 'deleteService') {
            delete state.services[key];
            this.#owned?.delete(key);
            ownership.push(key);
          }
          return;
        }
        fail(op.owner, err.message);
        log.warn({ service: op.owner, op: op.op, errno: err.code, err: err.message }, 'ipvs operation failed');
        // The kernel disagrees with our view of this service: read it again before the next diff of it.
        this.#stale.add(key);
        return;
      }
      applyToView(view, op);
      if (op.op === 'addService') {
        state.services[key] = op.owner;
        this.#owned?.set(key, op.owner);
        ownership.push(key);
      }
      if (op.op === 'deleteService') {
        delete state.services[key];
        this.#owned?.delete(key);
        ownership.push(key);
      }
    });
    lap('apply');
    // Drain records of services no planned service has any more (a full run's diff drops those itself).
    if (step === 'finish') for (const k of [...diff.draining.keys()]) if (!liveKeys.has(drainService(k))) diff.draining.delete(k);
    const drainingChanged = !sameDraining(diff.draining, draining);
    if (drainingChanged) state.draining = Object.fromEntries(diff.draining);
    if (diff.drift > 0) log.info({ drift: diff.drift }, 'repaired IPVS drift');

    // VIPs of the services this node holds: a full run makes the set exact and re-adds missing addresses;
    // a change-driven one releases and binds only what its services changed.
    const wants = new Map<string, VipWant>();
    // A service whose VIP:port is someone else's IPVS service is not ours to announce: binding its VIP
    // would draw traffic to rules we do not control (and report the service as held).
    const conflicted = new Set(diff.conflicts.map((c) => c.owner));
    for (const s of work) {
      const ifname = ifaceOf.get(s.id);
      if (conflicted.has(s.id)) continue;
      if (!((this.#d.holdsVip ? this.#d.holdsVip(s) : s.holdVip) && ifname)) continue;
      const lifetimeSeconds = this.#d.vipLifetimeSeconds?.(s);
      wants.set(s.id, { ifname, vip: s.vip, owner: DIRECTOR_OWNER_PREFIX + s.id, ...(lifetimeSeconds !== undefined ? { lifetimeSeconds } : {}) });
    }
    let vipResult: VipResult | undefined;
    if (full) {
      vipResult = await syncVips(this.#d.netif, state, [...wants.values()], directorOwned, this.#d.arp, true);
    } else if (step === 'finish') {
      // The exact set, as a full run makes it; the slices have re-added the missing ones.
      // Usually the ledger is that set already (change-driven runs keep it in step): then nothing to do.
      const held: VipWant[] = [];
      for (const [id, e] of this.#entries) if (e.vip && !removedSet.has(id)) held.push(e.vip);
      if (!vipLedgerMatches(state, held, directorOwned)) vipResult = await syncVips(this.#d.netif, state, held, directorOwned, this.#d.arp, false);
    } else {
      const add: VipWant[] = [];
      const remove: VipWant[] = [];
      for (const [id, e] of prev) {
        const w = wants.get(id);
        const old = e?.vip;
        const same = old !== undefined && w !== undefined && old.ifname === w.ifname && old.vip === w.vip;
        if (old && !same) remove.push(old);
        if (w && !same) add.push(w);
      }
      vipResult = add.length || remove.length ? await syncVipChanges(this.#d.netif, state, { add, remove }, this.#d.arp) : undefined;
      if (sweep) {
        const kept: VipWant[] = [];
        for (const [id, e] of prev) {
          const w = wants.get(id);
          if (w && e?.vip && e.vip.ifname === w.ifname && e.vip.vip === w.vip) kept.push(w);
        }
        const rebound = kept.length ? await rebindMissing(this.#d.netif, kept, sweep.addresses) : undefined;
        if (rebound?.added.length) log.info({ vips: rebound.added }, 'repaired VIP drift');
        if (rebound) vipResult = vipResult ? { ...vipResult, failed: new Map([...vipResult.failed, ...rebound.failed]), added: [...vipResult.added, ...rebound.added] } : rebound;
      }
    }
    lap('vips');
    for (const [owner, msg] of vipResult?.failed ?? []) fail(owner.slice(DIRECTOR_OWNER_PREFIX.length), `vip: ${msg}`);
    const vipsChanged = vipResult?.changed ?? false;
    if (ownership.length || drainingChanged || vipsChanged) this.#d.state.save(state, { services: ownership, draining: drainingChanged, vips: vipsChanged });

    lap('save');
    // Remember what was decided, and publish the reports. A sweep's slice publishes only the reports that
    // differ: it looks at services nobody changed, and each published one is compared again downstream.
    const unchanged = new Set<string>();
    for (const s of work) {
      const w = wants.get(s.id);
      const bound = w !== undefined && !vipResult?.failed.has(w.owner);
      const sk = serviceOf.get(s.id)!;
      const before = prev.get(s.id);
      const heldSince = bound ? (before?.vip && before.vipHeldSince !== undefined ? before.vipHeldSince : now) : undefined;
      this.#entries.set(s.id, { planned: s, group: groupOf.get(s.id), service: sk.service, key: sk.key, desired: sk.desired, vip: bound ? w : undefined, ...(heldSince !== undefined ? { vipHeldSince: heldSince } : {}) });
      const r = reports.get(s.id)!;
      r.holdsVip = bound;
      if (heldSince !== undefined) r.vipHeldSince = heldSince;
      if (step === 'slice' && deepEqual(this.#reports.get(s.id), r)) unchanged.add(s.id);
      else this.#reports.set(s.id, r);
      if (r.ok) this.#failing.delete(s.id);
      else this.#failing.add(s.id);
    }
    for (const id of removedIds) {
      this.#entries.delete(id);
      this.#reports.delete(id);
      this.#failing.delete(id);
    }
    lap('entries');
    if (phases) log.debug({ services: work.length, ...(step ? { step } : {}), phases }, 'full run phases');
    return {
      services: this.#reports,
      changed: [...[...reports.keys()].filter((id) => !unchanged.has(id)), ...removedIds],
      failed: this.#failing.size,
      full: full || step === 'finish',
      ops: diff.ops.length,
      drift: diff.drift,
    };
  }

  /** Reads the stale ones among `services` from the kernel into the view (after a failed operation). */
  async #refresh(view: Map<string, ServiceState>, services: readonly Service[]): Promise<void> {
    for (const svc of services) {
      const key = serviceKey(svc);
      if (!this.#stale.delete(key)) continue;
      this.#prefetched?.touched.add(key);
      const entry = await this.#d.ipvs.getService(svc);
      if (entry) view.set(key, { ...entry, destinations: await this.#d.ipvs.listDestinations(svc) });
      else view.delete(key);
    }
  }
}
