/**
 * Splitting a node's plan over NodePlan objects: services are spread over a fixed number of shards by a
 * stable hash of their id, and only non-empty shards exist. The agent merges whatever shards carry its
 * node label. Small shards keep a change cheap: the controller rewrites, the API server validates and
 * stores, and the agent receives and parses one whole shard per change (a 460 KB merge patch took the API
 * server ~450 ms, a 29 KB one ~20 ms), and none approaches etcd's object size limit (~1.5 MiB).
 */
import { createHash } from 'node:crypto';
import { API_VERSION } from '../api/v1alpha1/meta.ts';
import type { NodePlan as NodePlanObject, NodePlanSpec } from '../api/v1alpha1/nodeplan.ts';
import type { NodePlan, PlannedService } from './plan.ts';

/**
 * 4,096 shards: at 5,000 services ~3,000 exist, and a changed service's shard holds ~2 services × 10
 * realservers (~3 KiB with status); the CRD allows shard 0-4095. The API server's work per write grows with
 * the object (`npm run bench:nodeplan`): a spec patch of a 2-service shard cost it 1.9 MB of allocation and
 * 7 ms of CPU, the agent's status patch 1.3 MB / 5 ms; a 6-service shard (1,024 shards) 4.3 MB / 11 ms and
 * 3.0 MB / 10 ms, a 20-service one (256 shards) 13 MB / 36 ms and 8 MB / 23 ms. That garbage decides how
 * often the API server collects its whole store (1.4 GB live at 5,000 × 10), which takes both of the
 * benchmark host's cores for ~2 s. Was 256, then 1,024: more shards move entries, which the controller does
 * without leaving one on no shard (addsEntries; h % 4096 % 1024 = h % 1024).
 */
export const SHARDS = 4096;
export const NODE_LABEL = 'lvs.operator.dev/node';

/** FNV-1a: stable across processes and versions (unlike anything seeded). */
export function shardOf(serviceId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < serviceId.length; i++) {
    h ^= serviceId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % SHARDS;
}

const rsKey = (v: { service: string; vip: string }): string => `${v.service}|${v.vip}`;

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** The node label value: the node name when it is a valid label value, else a hash of it. */
export function nodeLabelValue(node: string): string {
  if (node.length <= 63 && LABEL_VALUE.test(node)) return node;
  return `h-${createHash('sha256').update(node).digest('hex').slice(0, 40)}`;
}

export function shardName(node: string, shard: number): string {
  const suffix = `.${shard}`;
  if (node.length + suffix.length <= 253) return `${node}${suffix}`;
  return `${node.slice(0, 200)}-${createHash('sha256').update(node).digest('hex').slice(0, 16)}${suffix}`;
}

/** The NodePlan objects (spec only) that carry `plan`; an empty plan has none. */
export function shardPlan(plan: NodePlan): NodePlanObject[] {
  const specs = new Map<number, NodePlanSpec>();
  const get = (shard: number): NodePlanSpec => {
    let s = specs.get(shard);
    if (!s) {
      s = { node: plan.node, shard, director: [], realServer: [] };
      specs.set(shard, s);
    }
    return s;
  };
  for (const svc of plan.director) get(shardOf(svc.id)).director.push(svc);
  for (const vip of plan.realServer) get(shardOf(vip.service)).realServer.push(vip);
  return [...specs.values()]
    .sort((a, b) => a.shard - b.shard)
    .map((spec) => ({
      apiVersion: API_VERSION,
      kind: 'NodePlan',
      metadata: { name: shardName(plan.node, spec.shard), labels: { [NODE_LABEL]: nodeLabelValue(plan.node), 'app.kubernetes.io/managed-by': 'lvs-operator' } },
      spec,
    }));
}

/**
 * The node's whole plan from its shards (what the agent does with the NodePlans it watches). An entry in
 * two shards (while the controller moves it, e.g. after the shard count changed) is taken once.
 */
export function mergeShards(node: string, objects: Array<{ spec: NodePlanSpec }>): NodePlan {
  const mine = objects.filter((o) => o.spec.node === node).sort((a, b) => a.spec.shard - b.spec.shard);
  const director: NodePlan['director'] = [];
  const realServer: NodePlan['realServer'] = [];
  const ids = new Set<string>();
  const vips = new Set<string>();
  for (const o of mine) {
    // Skip what an earlier shard already brought (within one shard, entries are as planned).
    director.push(...o.spec.director.filter((s) => !ids.has(s.id)));
    realServer.push(...o.spec.realServer.filter((v) => !vips.has(rsKey(v))));
    for (const s of o.spec.director) ids.add(s.id);
    for (const v of o.spec.realServer) vips.add(rsKey(v));
  }
  return {
    node,
    director: director.sort((a, b) => a.id.localeCompare(b.id)),
    realServer: realServer.sort((a, b) => a.service.localeCompare(b.service) || a.vip.localeCompare(b.vip)),
  };
}

/**
 * Whether writing `want` over `have` adds an entry `have` does not carry (a created shard adds all of its). The
 * controller writes such shards before the others: an entry moving between shards (after the shard count
 * changed) is then carried twice for a moment (mergeShards takes it once), never by none, which the agent
 * would take for a removed service and tear down.
 */
export function addsEntries(want: NodePlanSpec | undefined, have: NodePlanSpec | undefined): boolean {
  if (!want) return false;
  if (!have) return want.director.length + want.realServer.length > 0;
  const ids = new Set(have.director.map((s) => s.id));
  const vips = new Set(have.realServer.map(rsKey));
  return want.director.some((s) => !ids.has(s.id)) || want.realServer.some((v) => !vips.has(rsKey(v)));
}

/** A NodePlan object as the merge needs it. */
export interface ShardObject {
  metadata: { name?: string };
  spec: NodePlanSpec;
}

/**
 * mergeShards kept up to date across watch events (the agent's cluster mode). When the changed shards carry
 * the same entries as before (same ids, same order: a weight, a destination, a scheduler, the usual change),
 * the new plan is the previous one with those entries swapped in where they sit: a copy of the plan's array
 * and work in proportion to the shards, where a merge sorts the node's whole plan again (5,000 services:
 * ~13 ms natively, ten times that in the emulated lab VM, on every change). Anything else (a shard added or
 * removed, entries added, removed or moved, an entry another shard also carries) merges every shard again.
 * The result equals mergeShards' either way, and unchanged entries keep their positions and identities, so
 * the agent's plan delta recognises them by identity.
 */
export class ShardMerger {
  readonly #node: string;
  /** Shard object name → the spec merged last. */
  #specs = new Map<string, NodePlanSpec>();
  #plan: NodePlan | undefined;
  /** Director id → index in the plan, and the shard that brought it. */
  #dirAt = new Map<string, { index: number; shard: string }>();
  /** Realserver VIP (service|vip) → index in the plan, and the shard that brought it. */
  #rsAt = new Map<string, { index: number; shard: string }>();
  /** Whether the last merge went the in-place way (for tests). */
  lastInPlace = false;
  /**
   * After an in-place merge: the director entries it swapped in (each where the previous plan had the entry
   * with the same id; nothing else of the plan differs by identity). Empty after a full merge.
   */
  lastSwapped: readonly PlannedService[] = [];

  constructor(node: string) {
    this.#node = node;
  }

  /** Director id → name of the shard object that carries it in the plan merged last. */
  shardOf(id: string): string | undefined {
    return this.#dirAt.get(id)?.shard;
  }

  merge(objects: readonly ShardObject[]): NodePlan {
    const mine = objects.filter((o) => o.spec.node === this.#node);
    const inPlace = this.#inPlace(mine);
    this.lastInPlace = inPlace !== undefined;
    if (inPlace) return inPlace;
    this.lastSwapped = [];
    const plan = mergeShards(this.#node, mine);
    // Which shard each entry came from: the first carrier in shard order, as mergeShards takes it.
    const ordered = [...mine].sort((a, b) => a.spec.shard - b.spec.shard);
    const firstShard = <T>(key: (e: T) => string, entries: (spec: NodePlanSpec) => readonly T[]): Map<string, string> => {
      const at = new Map<string, string>();
      for (const o of ordered) for (const e of entries(o.spec)) if (!at.has(key(e))) at.set(key(e), o.metadata.name ?? '');
      return at;
    };
    const dirShard = firstShard((s: PlannedService) => s.id, (spec) => spec.director);
    const rsShard = firstShard(rsKey, (spec) => spec.realServer);
    this.#dirAt = new Map(plan.director.map((s, index) => [s.id, { index, shard: dirShard.get(s.id)! }]));
    this.#rsAt = new Map(plan.realServer.map((v, index) => [rsKey(v), { index, shard: rsShard.get(rsKey(v))! }]));
    this.#specs = new Map(mine.map((o) => [o.metadata.name ?? '', o.spec]));
    this.#plan = plan;
    return plan;
  }

  /**
   * As merge(objects) when the caller knows which shards' specs changed since the last merge and that no shard
   * came or went meanwhile: `changed` are those shards' objects now. Costs work in proportion to them (the
   * agent learns them from watch events) instead of a pass over every shard; `all` is listed only when the
   * entries cannot be swapped in place.
   */
  mergeChanged(changed: readonly ShardObject[], all: () => readonly ShardObject[]): NodePlan {
    const swapped = changed.every((o) => o.spec.node === this.#node) ? this.#swap(changed) : undefined;
    this.lastInPlace = swapped !== undefined;
    return swapped ?? this.merge(all());
  }

  /** The plan with the changed shards' entries swapped in, or undefined when that would not be mergeShards' result. */
  #inPlace(mine: readonly ShardObject[]): NodePlan | undefined {
    return mine.length === this.#specs.size ? this.#swap(mine) : undefined;
  }

  /** The plan with the entries of `objects` (shards merged before, any of them changed) swapped in, or undefined. */
  #swap(objects: readonly ShardObject[]): NodePlan | undefined {
    const plan = this.#plan;
    // (An id twice within one shard — never planned — takes the full merge too.)
    if (!plan || this.#dirAt.size !== plan.director.length || this.#rsAt.size !== plan.realServer.length) return undefined;
    const changed: Array<{ shard: string; old: NodePlanSpec; next: NodePlanSpec }> = [];
    for (const o of objects) {
      const shard = o.metadata.name ?? '';
      const old = this.#specs.get(shard);
      if (!old || old.shard !== o.spec.shard) return undefined;
      if (old !== o.spec) changed.push({ shard, old, next: o.spec });
    }
    this.lastSwapped = [];
    if (changed.length === 0) return plan;
    const swapped: PlannedService[] = [];
    let director: PlannedService[] | undefined;
    let realServer: NodePlan['realServer'] | undefined;
    for (const { shard, old, next } of changed) {
      if (old.director.length !== next.director.length || old.realServer.length !== next.realServer.length) return undefined;
      for (let i = 0; next.director !== old.director && i < next.director.length; i++) {
        const s = next.director[i]!;
        const at = this.#dirAt.get(s.id);
        if (s.id !== old.director[i]!.id || at?.shard !== shard) return undefined;
        if (s === plan.director[at.index]) continue;
        (director ??= plan.director.slice())[at.index] = s;
        swapped.push(s);
      }
      for (let i = 0; next.realServer !== old.realServer && i < next.realServer.length; i++) {
        const v = next.realServer[i]!;
        const at = this.#rsAt.get(rsKey(v));
        if (rsKey(v) !== rsKey(old.realServer[i]!) || at?.shard !== shard) return undefined;
        if (v !== plan.realServer[at.index]) (realServer ??= plan.realServer.slice())[at.index] = v;
      }
    }
    for (const { shard, next } of changed) this.#specs.set(shard, next);
    this.lastSwapped = swapped;
    this.#plan = { node: this.#node, director: director ?? plan.director, realServer: realServer ?? plan.realServer };
    return this.#plan;
  }
}
