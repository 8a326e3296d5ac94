/**
 * Keeping the plan current without replanning everything: after a change, only the VirtualServices it can
 * affect are planned again (by the same pure planner, on that subset) and the result is spliced into the
 * previous plan. The subset is closed under everything the planner relates across objects:
 *
 *  - a changed VirtualService, and every VirtualService claiming the same VIP:port:protocol (old or new),
 *    because the older one wins the conflict;
 *  - every RealServer such a VirtualService selected or skipped before, or selects now;
 *  - every VirtualService that selected or skipped such a RealServer before, or matches it now (a
 *    RealServer's outcome lists all of them).
 *
 * With that closure the subset's outcomes equal the full plan's (a unit test checks it against plan() over
 * random changes). Node changes that matter to the planner (labels, addresses, nodes coming or going)
 * replan everything, as does a closure larger than a quarter of the VirtualServices.
 */
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import type { LabelSelector } from '../api/v1alpha1/meta.ts';
import { plan, canonicalIP, idOf, type NodeInfo, type Plan } from '../model/planner.ts';
import { admitVips, type Admission, type AdmissionInput, type VipDecision } from '../model/pools.ts';
import type { PlannedRealServerVip, PlannedService } from '../model/plan.ts';
import { matchesSelector } from '../model/selector.ts';

/** Where the objects are (the informers' caches). */
export interface PlanSources {
  getVirtualService(id: string): VirtualService | undefined;
  getRealServer(id: string): RealServer | undefined;
  virtualServices(): VirtualService[];
  realServers(): RealServer[];
  nodes(): NodeInfo[];
  defaultDirectorSelector?: Record<string, string>;
  /**
   * VIP pools, namespaces and reserved ranges. Admission is decided over all VirtualServices on every
   * update (allocation and VIP ownership relate them all); those whose decision changed are replanned.
   */
  admission?: () => AdmissionInput;
  /**
   * Whether a node reports a service's VIP prepared (planner.ts: node-backed DR/Tunnel realservers get weight
   * 0 until then). A change of it must be passed to update() as a changed VirtualService.
   */
  prepared?: (node: string, service: string, vip: string) => boolean;
}

export interface PlanUpdate {
  plan: Plan;
  full: boolean;
  /** VirtualService ids whose outcome was recomputed (all of them after a full replan). */
  services: Set<string>;
  /** RealServer ids whose outcome was recomputed. */
  realServers: Set<string>;
  /** node → shard-relevant service ids whose director or realserver entries may have changed there. */
  nodes: Map<string, Set<string>>;
}

const live = (o: { metadata: { deletionTimestamp?: string } } | undefined): boolean => !!o && !o.metadata.deletionTimestamp;
/** The VIP:port:protocol a VirtualService competes for: its admitted VIP, else spec.vip; none when refused. */
const vipKey = (vs: VirtualService, d: VipDecision | undefined): string => {
  const vip = d ? (d.ok ? d.vip : undefined) : vs.spec.vip;
  return vip === undefined ? `none|${idOf(vs)}` : `${canonicalIP(vip)}|${vs.spec.port}|${vs.spec.protocol ?? 'TCP'}`;
};
const sameDecision = (a: VipDecision | undefined, b: VipDecision | undefined): boolean => JSON.stringify(a) === JSON.stringify(b);
/** What of the admission input decides admission (a pool's status does not). */
const admissionKey = (input: AdmissionInput): string =>
  JSON.stringify([input.pools.map((p) => [p.metadata.name, p.metadata.deletionTimestamp, p.spec]), input.namespaces, input.reserved]);
const pairKey = (ns: string, k: string, v: string): string => `${ns}\u0000${k}\u0000${v}`;
const nodesKey = (nodes: NodeInfo[]): string => JSON.stringify([...nodes].sort((a, b) => (a.name < b.name ? -1 : 1))
  .map((n) => [n.name, Object.entries(n.labels ?? {}).sort(), n.addresses]));

function add<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s) s.add(v);
  else m.set(k, new Set([v]));
}
function remove<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/** Inserts `items` into `sorted` (both ordered by `cmp`), returning a new array. */
function mergeSorted<T>(sorted: T[], items: T[], cmp: (a: T, b: T) => number): T[] {
  if (items.length === 0) return sorted;
  const out = [...sorted];
  for (const it of [...items].sort(cmp)) {
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp(out[mid]!, it) <= 0) lo = mid + 1;
      else hi = mid;
    }
    out.splice(lo, 0, it);
  }
  return out;
}
const byId = (a: PlannedService, b: PlannedService): number => a.id.localeCompare(b.id);
const byServiceVip = (a: PlannedRealServerVip, b: PlannedRealServerVip): number => a.service.localeCompare(b.service) || a.vip.localeCompare(b.vip);

export class IncrementalPlanner {
  readonly #src: PlanSources;
  #plan: Plan | undefined;
  #nodesKey = '';
  #admitted: Admission | undefined;
  #admissionKey = '';
  // Indexes of the objects as last planned (live ones only).
  readonly #vipOf = new Map<string, string>();
  readonly #byVip = new Map<string, Set<string>>();
  readonly #vsByNamespace = new Map<string, Set<string>>();
  readonly #rsLabels = new Map<string, { ns: string; labels: Record<string, string> }>();
  readonly #rsByPair = new Map<string, Set<string>>();
  readonly #rsByNamespace = new Map<string, Set<string>>();
  /** A closure bigger than this share of all VirtualServices replans everything. */
  readonly fullReplanShare: number;

  constructor(src: PlanSources, opts: { fullReplanShare?: number } = {}) {
    this.#src = src;
    this.fullReplanShare = opts.fullReplanShare ?? 0.25;
  }

  get plan(): Plan | undefined {
    return this.#plan;
  }

  /** Forget everything: the next update replans all. */
  reset(): void {
    this.#plan = undefined;
  }

  /**
   * Brings the plan up to date after the given VirtualServices and RealServers (ids "namespace/name")
   * changed in a way the planner cares about (created, deleted, spec, labels, deletion started).
   */
  update(changedVs: Iterable<string>, changedRs: Iterable<string>): PlanUpdate {
    const nodes = this.#src.nodes();
    const key = nodesKey(nodes);
    if (!this.#plan || key !== this.#nodesKey) return this.#full(nodes, key);
    const prev = this.#plan;
    // Admission over every VirtualService; a changed decision replans that one. Its inputs are the
    // VirtualServices (spec, age, the allocation in status), the nodes (a change of theirs replanned all
    // above) and the pools, namespaces and reserved ranges: with none of them changed it is skipped.
    const vsIds = [...changedVs];
    changedVs = vsIds;
    const input = this.#src.admission?.();
    const inputKey = input ? admissionKey(input) : '';
    const before = this.#admitted;
    const admitted = input && (vsIds.length > 0 || inputKey !== this.#admissionKey || !before) ? this.#admit(nodes, input) : before;
    this.#admissionKey = inputKey;
    if (admitted && before && admitted !== before) {
      const changed = new Set(changedVs);
      for (const id of new Set([...before.decisions.keys(), ...admitted.decisions.keys()])) {
        if (!sameDecision(before.decisions.get(id), admitted.decisions.get(id))) changed.add(id);
      }
      changedVs = changed;
      prev.pools = admitted.pools;
    }

    const A = new Set<string>();
    const Rs = new Set<string>();
    const queue: string[] = [];
    const addVs = (id: string): void => {
      if (A.has(id)) return;
      A.add(id);
      queue.push(id);
    };
    const addRs = (id: string): void => {
      if (Rs.has(id)) return;
      Rs.add(id);
      const out = prev.realServers.get(id);
      for (const v of out?.selectedBy ?? []) addVs(v);
      for (const p of out?.problems ?? []) if (p.virtualService) addVs(p.virtualService);
    };

    // Re-index the changed objects; what they were indexed under before is affected too.
    for (const id of changedVs) {
      const old = this.#vipOf.get(id);
      if (old !== undefined) for (const v of this.#byVip.get(old) ?? []) addVs(v);
      this.#indexVs(id, this.#src.getVirtualService(id));
      addVs(id);
    }
    for (const id of changedRs) {
      const rs = this.#src.getRealServer(id);
      this.#indexRs(id, rs);
      addRs(id);
      if (live(rs)) {
        const ns = rs!.metadata.namespace ?? 'default';
        for (const v of this.#vsByNamespace.get(ns) ?? []) {
          const vs = this.#src.getVirtualService(v);
          if (vs && matchesSelector(vs.spec.realServerSelector, rs!.metadata.labels)) addVs(v);
        }
      }
    }
    // Close over VIP groups and selections.
    const limit = Math.max(64, this.fullReplanShare * this.#vipOf.size);
    while (queue.length) {
      if (A.size > limit) return this.#full(nodes, key);
      const id = queue.pop()!;
      const k = this.#vipOf.get(id);
      if (k !== undefined) for (const v of this.#byVip.get(k) ?? []) addVs(v);
      const out = prev.services.get(id);
      for (const d of out?.destinations ?? []) addRs(d.realServer);
      for (const s of out?.skipped ?? []) addRs(s.realServer);
      const vs = this.#src.getVirtualService(id);
      if (live(vs)) for (const r of this.#candidates(vs!.metadata.namespace ?? 'default', vs!.spec.realServerSelector)) addRs(r);
    }

    const vsObjects = [...A].map((id) => this.#src.getVirtualService(id)).filter((o): o is VirtualService => o !== undefined);
    const rsObjects = [...Rs].map((id) => this.#src.getRealServer(id)).filter((o): o is RealServer => o !== undefined);
    const sub = plan({ virtualServices: vsObjects, realServers: rsObjects, nodes, defaultDirectorSelector: this.#src.defaultDirectorSelector, ...(admitted ? { admitted } : {}), ...(this.#src.prepared ? { prepared: this.#src.prepared } : {}) });

    const touched = new Map<string, Set<string>>();
    for (const id of A) {
      prev.services.delete(id);
      const out = sub.services.get(id);
      if (out) prev.services.set(id, out);
    }
    for (const id of Rs) {
      prev.realServers.delete(id);
      const out = sub.realServers.get(id);
      if (out) prev.realServers.set(id, out);
    }
    for (const [name, np] of prev.nodes) {
      const fresh = sub.nodes.get(name);
      const director = np.director.filter((s) => !A.has(s.id));
      const realServer = np.realServer.filter((v) => !A.has(v.service));
      const mark = (id: string): void => add(touched, name, id);
      if (director.length !== np.director.length) for (const s of np.director) if (A.has(s.id)) mark(s.id);
      if (realServer.length !== np.realServer.length) for (const v of np.realServer) if (A.has(v.service)) mark(v.service);
      for (const s of fresh?.director ?? []) mark(s.id);
      for (const v of fresh?.realServer ?? []) mark(v.service);
      if (touched.has(name)) {
        np.director = mergeSorted(director, fresh?.director ?? [], byId);
        np.realServer = mergeSorted(realServer, fresh?.realServer ?? [], byServiceVip);
      }
    }
    return { plan: prev, full: false, services: A, realServers: Rs, nodes: touched };
  }

  #full(nodes: NodeInfo[], key: string): PlanUpdate {
    const virtualServices = this.#src.virtualServices();
    const realServers = this.#src.realServers();
    for (const m of [this.#vipOf, this.#byVip, this.#vsByNamespace, this.#rsLabels, this.#rsByPair, this.#rsByNamespace]) m.clear();
    const input = this.#src.admission?.();
    this.#admissionKey = input ? admissionKey(input) : '';
    const admitted = this.#admit(nodes, input);
    for (const vs of virtualServices) this.#indexVs(idOf(vs), vs);
    for (const rs of realServers) this.#indexRs(idOf(rs), rs);
    const p = plan({ virtualServices, realServers, nodes, defaultDirectorSelector: this.#src.defaultDirectorSelector, ...(admitted ? { admitted } : {}), ...(this.#src.prepared ? { prepared: this.#src.prepared } : {}) });
    this.#plan = p;
    this.#nodesKey = key;
    const touched = new Map<string, Set<string>>();
    for (const [name, np] of p.nodes) touched.set(name, new Set([...np.director.map((s) => s.id), ...np.realServer.map((v) => v.service)]));
    return { plan: p, full: true, services: new Set(p.services.keys()), realServers: new Set(p.realServers.keys()), nodes: touched };
  }

  #indexVs(id: string, vs: VirtualService | undefined): void {
    const old = this.#vipOf.get(id);
    if (old !== undefined) remove(this.#byVip, old, id);
    this.#vipOf.delete(id);
    const ns = id.slice(0, id.indexOf('/'));
    remove(this.#vsByNamespace, ns, id);
    if (!live(vs)) return;
    const k = vipKey(vs!, this.#admitted?.decisions.get(id));
    this.#vipOf.set(id, k);
    add(this.#byVip, k, id);
    add(this.#vsByNamespace, ns, id);
  }

  /** Decides admission over the live VirtualServices (undefined without admission sources). */
  #admit(nodes: NodeInfo[], input: AdmissionInput | undefined = this.#src.admission?.()): Admission | undefined {
    if (!input) return undefined;
    this.#admitted = admitVips(this.#src.virtualServices().filter(live), nodes, input);
    return this.#admitted;
  }

  #indexRs(id: string, rs: RealServer | undefined): void {
    const old = this.#rsLabels.get(id);
    if (old) {
      remove(this.#rsByNamespace, old.ns, id);
      for (const [k, v] of Object.entries(old.labels)) remove(this.#rsByPair, pairKey(old.ns, k, v), id);
      this.#rsLabels.delete(id);
    }
    if (!live(rs)) return;
    const ns = rs!.metadata.namespace ?? 'default';
    // The cached object's own labels (informers replace objects, they never change them in place).
    const labels = rs!.metadata.labels ?? {};
    this.#rsLabels.set(id, { ns, labels });
    add(this.#rsByNamespace, ns, id);
    for (const [k, v] of Object.entries(labels)) add(this.#rsByPair, pairKey(ns, k, v), id);
  }

  /** Ids of the live RealServers `selector` matches in `ns`, found through the rarest matchLabels pair. */
  #candidates(ns: string, selector: LabelSelector | undefined): string[] {
    let best = this.#rsByNamespace.get(ns) ?? new Set<string>();
    for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) {
      const s = this.#rsByPair.get(pairKey(ns, k, v)) ?? new Set<string>();
      if (s.size < best.size) best = s;
    }
    const out: string[] = [];
    for (const id of best) if (matchesSelector(selector, this.#rsLabels.get(id)?.labels)) out.push(id);
    return out;
  }
}
