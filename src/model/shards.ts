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
import type { NodePlan } from './plan.ts';

/** 256 shards: ~20 services × 10 realservers each at 5,000 services (the CRD allows shard 0-255). */
export const SHARDS = 256;
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
    realServer.push(...o.spec.realServer.filter((v) => !vips.has(`${v.service}|${v.vip}`)));
    for (const s of o.spec.director) ids.add(s.id);
    for (const v of o.spec.realServer) vips.add(`${v.service}|${v.vip}`);
  }
  return {
    node,
    director: director.sort((a, b) => a.id.localeCompare(b.id)),
    realServer: realServer.sort((a, b) => a.service.localeCompare(b.service) || a.vip.localeCompare(b.vip)),
  };
}
