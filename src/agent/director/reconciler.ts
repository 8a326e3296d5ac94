/**
 * Makes the kernel match the director part of a node plan: sysctls, IPVS services and destinations,
 * and the VIPs of the services this node holds. One bad service never stops the others: each failure
 * is reported against its service with the errno.
 */
import type { IpvsInterface } from '../../ipvs/interface.ts';
import type { IpvsError } from '../../ipvs/errors.ts';
import { destKey, serviceKey } from '../../ipvs/keys.ts';
import { SvcFlag } from '../../ipvs/constants.ts';
import { ZERO_COUNTERS, ZERO_STATS, type ServiceState } from '../../ipvs/types.ts';
import type { NetInterfaceOps, ArpAnnouncer } from '../../netif/types.ts';
import type { SysctlOps } from '../../sysctl/types.ts';
import { sysctlsFor } from '../../sysctl/policy.ts';
import type { PlannedService } from '../../model/plan.ts';
import type { Logger } from '../../util/log.ts';
import type { StateStore } from '../state.ts';
import { syncVips } from '../vips.ts';
import { diffDirector, type DesiredService, type DirectorOp } from './diff.ts';
import { ipvsDestination, ipvsService } from './desired.ts';

export const DIRECTOR_OWNER_PREFIX = 'director:';

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
}

export interface DirectorReport {
  services: ServiceReport[];
  ops: number;
  drift: number;
}

export interface ReconcileOptions {
  /**
   * Dump the kernel table instead of trusting the cached view (drift repair, drain progress). Without it a
   * change costs netlink requests in proportion to the change, not to the table.
   */
  resync?: boolean;
  /** Changes whenever a health verdict changes, so effective weights are derived again. */
  healthEpoch?: number;
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

export class DirectorReconciler {
  readonly #d: DirectorDeps;
  /** The kernel table as of the last dump plus the operations applied since. */
  #view: Map<string, ServiceState> | undefined;
  /** Desired IPVS objects per planned service object (and health epoch). */
  readonly #memo = new WeakMap<PlannedService, { epoch: number; desired: DesiredService; key: string }>();
  /** Per serviceKey: the desired object last diffed and the view entry that matched it. */
  readonly #applied = new Map<string, { desired: DesiredService; entry: ServiceState }>();
  /** serviceKey → owner: state.services as a Map, kept in step with it. */
  #owned: Map<string, string> | undefined;
  /** Sysctl owners claimed by this process (a resync claims again to repair drift). */
  readonly #claimed = new Set<string>();
  constructor(deps: DirectorDeps) {
    this.#d = deps;
  }

  async reconcile(services: PlannedService[], healthy: HealthLookup, opts: ReconcileOptions = {}): Promise<DirectorReport> {
    const { ipvs, sysctl, log } = this.#d;
    const now = (this.#d.now ?? Date.now)();
    const state = this.#d.state.load();
    const reports = new Map<string, ServiceReport>(
      services.map((s) => [s.id, { id: s.id, generation: s.generation, ok: true, errors: [], holdsVip: false }]),
    );
    const failed = new Set<string>();
    const fail = (id: string, msg: string): void => {
      const r = reports.get(id);
      if (!r) return;
      r.ok = false;
      r.errors.push(msg);
      failed.add(id);
    };

    // Interfaces first: a service whose interface does not exist fails alone. Look up each distinct
    // interface once, then assign synchronously (no await per service: runs stay cheap at 5,000 services).
    const ifaceOf = new Map<string, string>();
    const names = new Set<string>();
    let fallback: string | undefined;
    let fallbackError: string | undefined;
    if (services.some((s) => s.interface === undefined)) {
      try {
        fallback = await this.#d.defaultInterface();
      } catch (e) {
        fallbackError = (e as Error).message;
      }
    }
    for (const s of services) names.add(s.interface ?? fallback ?? '');
    names.delete('');
    const lookupError = new Map<string, string>();
    await Promise.all([...names].map((n) => this.#d.netif.getInterface(n).then(() => undefined, (e: unknown) => void lookupError.set(n, (e as Error).message))));
    for (const s of services) {
      const ifname = s.interface ?? fallback;
      if (ifname === undefined) fail(s.id, `interface: ${fallbackError ?? 'no interface'}`);
      else if (lookupError.has(ifname)) fail(s.id, `interface: ${lookupError.get(ifname)}`);
      else ifaceOf.set(s.id, ifname);
    }

    // Sysctls before IPVS: a NAT director without ip_forward would black-hole replies. They depend only on
    // the forwarding method and the interface, so services that share both share one claim.
    const groups = new Map<string, { mode: PlannedService['forwarding']; ifname: string; ipv6: boolean; ids: string[] }>();
    for (const s of services) {
      const ifname = ifaceOf.get(s.id);
      if (!ifname) continue;
      const ipv6 = s.vip.includes(':');
      const owner = `${DIRECTOR_OWNER_PREFIX}${s.forwarding}/${ifname}${ipv6 ? '/ipv6' : ''}`;
      const g = groups.get(owner) ?? { mode: s.forwarding, ifname, ipv6, ids: [] };
      g.ids.push(s.id);
      groups.set(owner, g);
    }
    for (const [owner, g] of groups) {
      if (!opts.resync && this.#claimed.has(owner)) continue;
      try {
        await sysctl.claim(owner, sysctlsFor('director', g.mode, g.ifname, { ipv6: g.ipv6 }));
        this.#claimed.add(owner);
      } catch (e) {
        this.#claimed.delete(owner);
        for (const id of g.ids) fail(id, `sysctl: ${(e as Error).message}`);
      }
    }
    const stale = opts.resync || [...this.#claimed].some((o) => !groups.has(o)) ? await sysctl.owners() : [];
    for (const owner of stale) {
      if (owner.startsWith(DIRECTOR_OWNER_PREFIX) && !groups.has(owner)) {
        await sysctl.release(owner);
        this.#claimed.delete(owner);
      }
    }

    // IPVS.
    const programmable = failed.size ? services.filter((s) => !failed.has(s.id)) : services;
    // Desired IPVS objects are derived once per planned service object and health epoch; a service whose
    // planned object and kernel entry are both the ones of the last run is in sync and not diffed again.
    const epoch = opts.healthEpoch ?? 0;
    const desired: DesiredService[] = [];
    const inSync = new Set<string>();
    const keys = new Map<DesiredService, string>();
    for (const s of programmable) {
      let m = this.#memo.get(s);
      if (!m || m.epoch !== epoch) {
        const d: DesiredService = {
          owner: s.id,
          service: ipvsService(s),
          destinations: s.destinations.map((x) => ipvsDestination(s, x, healthy(s.id, x.address, x.port) === false ? 0 : x.weight)),
          drainTimeoutSeconds: s.drainTimeoutSeconds,
        };
        m = { epoch, desired: d, key: serviceKey(d.service) };
        this.#memo.set(s, m);
      }
      keys.set(m.desired, m.key);
      const last = this.#applied.get(m.key);
      if (!opts.resync && this.#view && last && last.desired === m.desired && last.entry === this.#view.get(m.key)) inSync.add(m.key);
      else desired.push(m.desired);
    }
    // Services that failed before IPVS must not be deleted from the kernel: keep them out of the diff.
    this.#owned ??= new Map(Object.entries(state.services));
    let owned: ReadonlyMap<string, string> = this.#owned;
    if (failed.size) {
      const failedKeys = new Set(services.filter((s) => failed.has(s.id)).map((s) => this.#memo.get(s)?.key ?? serviceKey(ipvsService(s))));
      owned = new Map([...this.#owned].filter(([k]) => !failedKeys.has(k)));
    }
    if (opts.resync || !this.#view) this.#view = new Map((await ipvs.listServices()).map((s) => [serviceKey(s.service), s]));
    const view = this.#view;
    const diff = diffDirector({ desired, actual: view, inSync, keyOf: (d) => keys.get(d) ?? serviceKey(d.service), owned, draining: new Map(Object.entries(state.draining)), now });
    for (const c of diff.conflicts) fail(c.owner, `EEXIST: ${c.service} exists in the kernel and is not owned by lvs-operator; not touching it`);
    const results = diff.ops.length > 0 ? await ipvs.apply(diff.ops) : [];
    diff.ops.forEach((op: DirectorOp, i: number) => {
      const err: IpvsError | undefined = results[i];
      const key = serviceKey(op.service);
      if (err) {
        // Idempotent outcomes: the object is already as we want it.
        if ((op.op === 'addService' && err.code === 'EEXIST' && state.services[key] === op.owner) || (op.op.startsWith('delete') && (err.code === 'ESRCH' || err.code === 'ENOENT'))) {
          if (op.op === 'deleteService') {
            delete state.services[key];
            this.#owned?.delete(key);
          }
          return;
        }
        fail(op.owner, err.message);
        log.warn({ service: op.owner, op: op.op, errno: err.code, err: err.message }, 'ipvs operation failed');
        // The kernel disagrees with our view: read it again next time.
        this.#view = undefined;
        return;
      }
      if (this.#view) applyToView(this.#view, op);
      if (op.op === 'addService') {
        state.services[key] = op.owner;
        this.#owned?.set(key, op.owner);
      }
      if (op.op === 'deleteService') {
        delete state.services[key];
        this.#owned?.delete(key);
      }
    });
    // Remember what each diffed service now looks like in the kernel view (failed ones are diffed again).
    const failedOwners = failed;
    for (const d of desired) {
      const key = keys.get(d)!;
      const entry = this.#view?.get(key);
      if (entry && !failedOwners.has(d.owner)) this.#applied.set(key, { desired: d, entry });
      else this.#applied.delete(key);
    }
    if (opts.resync) for (const key of this.#applied.keys()) if (!this.#view?.has(key)) this.#applied.delete(key);
    const draining = Object.fromEntries(diff.draining);
    let dirty = diff.ops.length > 0 || JSON.stringify(draining) !== JSON.stringify(state.draining);
    state.draining = draining;
    if (diff.drift > 0) log.info({ drift: diff.drift }, 'repaired IPVS drift');

    // VIPs of the services this node holds.
    const wants = services
      .filter((s) => s.holdVip && ifaceOf.has(s.id))
      .map((s) => ({ ifname: ifaceOf.get(s.id)!, vip: s.vip, owner: DIRECTOR_OWNER_PREFIX + s.id }));
    const vipResult = await syncVips(this.#d.netif, state, wants, (o) => o.startsWith(DIRECTOR_OWNER_PREFIX), this.#d.arp, opts.resync ?? true);
    for (const [owner, msg] of vipResult.failed) fail(owner.slice(DIRECTOR_OWNER_PREFIX.length), `vip: ${msg}`);
    for (const w of wants) {
      const r = reports.get(w.owner.slice(DIRECTOR_OWNER_PREFIX.length));
      if (r && !vipResult.failed.has(w.owner)) r.holdsVip = true;
    }
    dirty ||= vipResult.changed;
    if (dirty) this.#d.state.save(state);
    return { services: [...reports.values()], ops: diff.ops.length, drift: diff.drift };
  }
}
