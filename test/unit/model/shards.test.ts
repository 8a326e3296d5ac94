import { shardPlan, mergeShards, shardOf, nodeLabelValue, shardName, addsEntries, SHARDS, NODE_LABEL } from '../../../src/model/shards.ts';
import type { NodePlan, PlannedService } from '../../../src/model/plan.ts';
import type { NodePlanSpec } from '../../../src/api/v1alpha1/nodeplan.ts';

const svc = (i: number): PlannedService => ({
  id: `ns${i % 7}/svc-${i}`, generation: 1, vip: `10.0.${Math.floor(i / 250)}.${i % 250}`, port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: true, healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: Array.from({ length: 10 }, (_, j) => ({ realServer: `ns${i % 7}/rs-${i}-${j}`, address: `10.1.${j}.${i % 250}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 })),
});

describe('plan shards', () => {
  it('shard assignment is stable and spread', () => {
    expect(shardOf('lab/web')).toBe(shardOf('lab/web'));
    const counts = new Array<number>(SHARDS).fill(0);
    for (let i = 0; i < 200_000; i++) counts[shardOf(`ns/svc-${i}`)]!++;
    expect(Math.min(...counts)).toBeGreaterThan(200_000 / SHARDS / 3);
    expect(Math.max(...counts)).toBeLessThan((200_000 / SHARDS) * 2);
  });

  it('5,000 services x 10 realservers on one director: every shard far below etcd\'s 1.5 MiB, and the merge is lossless', () => {
    const plan: NodePlan = { node: 'director-1', director: Array.from({ length: 5000 }, (_, i) => svc(i)).sort((a, b) => a.id.localeCompare(b.id)), realServer: [] };
    const objects = shardPlan(plan);
    // Only non-empty shards exist: at 1.2 services a shard on average, ~30% are empty (Poisson: e^-1.2).
    expect(objects.length).toBe(new Set(plan.director.map((s) => shardOf(s.id))).size);
    expect(objects.length).toBeGreaterThan(SHARDS * (1 - Math.exp(-5000 / SHARDS)) * 0.95);
    // Small objects: one change rewrites one shard, which the API server and the agent handle whole.
    const sizes = objects.map((o) => Buffer.byteLength(JSON.stringify(o))).sort((a, b) => a - b);
    expect(sizes[Math.floor(sizes.length / 2)]).toBeLessThan(4 * 1024);
    expect(sizes.at(-1)).toBeLessThan(16 * 1024);
    expect(objects.every((o) => o.metadata.labels?.[NODE_LABEL] === 'director-1')).toBe(true);
    expect(mergeShards('director-1', objects)).toEqual(plan);
  });

  it('an empty plan has no objects; realserver VIPs travel too', () => {
    expect(shardPlan({ node: 'n', director: [], realServer: [] })).toEqual([]);
    const p: NodePlan = { node: 'web1', director: [], realServer: [{ service: 'lab/web', vip: '192.168.56.40', forwarding: 'DirectRouting' }] };
    expect(mergeShards('web1', shardPlan(p))).toEqual(p);
    expect(mergeShards('web2', shardPlan(p))).toEqual({ node: 'web2', director: [], realServer: [] });
  });

  it('a service\'s director and realserver entries share its shard', () => {
    const both: NodePlan = { node: 'web1', director: [svc(1), svc(2)].sort((a, b) => a.id.localeCompare(b.id)), realServer: [{ service: svc(1).id, vip: svc(1).vip, forwarding: 'DirectRouting' }] };
    const objects = shardPlan(both);
    const holder = objects.find((o) => o.spec.director.some((s) => s.id === svc(1).id));
    expect(holder?.spec.realServer).toEqual(both.realServer);
    expect(mergeShards('web1', objects)).toEqual(both);
  });

  it('an entry found in two shards (moved between them) is merged once', () => {
    const plan: NodePlan = { node: 'd', director: Array.from({ length: 40 }, (_, i) => svc(i)).sort((a, b) => a.id.localeCompare(b.id)), realServer: [{ service: 'ns1/svc-1', vip: '10.0.0.1', forwarding: 'DirectRouting' }] };
    const objects = shardPlan(plan);
    // The same entries once more in a shard of the old layout, as while the controller rewrites shards.
    const old = { spec: { node: 'd', shard: 3, director: plan.director.slice(0, 10), realServer: plan.realServer } };
    expect(mergeShards('d', [...objects, old])).toEqual(plan);
  });

  it('addsEntries: a shard to write first carries an entry the server\'s copy does not', () => {
    const spec = (ids: number[], rs: string[] = []): NodePlanSpec =>
      ({ node: 'd', shard: 1, director: ids.map(svc), realServer: rs.map((service) => ({ service, vip: '10.0.0.1', forwarding: 'DirectRouting' as const })) });
    expect(addsEntries(spec([1, 2]), undefined)).toBe(true); // created
    expect(addsEntries(spec([]), undefined)).toBe(false);
    expect(addsEntries(spec([1, 2]), spec([1, 2]))).toBe(false);
    expect(addsEntries({ ...spec([1, 2]), director: [{ ...svc(1), generation: 2 }, svc(2)] }, spec([1, 2]))).toBe(false); // changed in place
    expect(addsEntries(spec([1]), spec([1, 2]))).toBe(false); // removals only
    expect(addsEntries(spec([1, 3]), spec([1, 2]))).toBe(true);
    expect(addsEntries(spec([1], ['a/b']), spec([1]))).toBe(true);
    expect(addsEntries(undefined, spec([1]))).toBe(false); // deleted
  });

  it.each([256, 1024])('from %i shards to SHARDS: every entry of an old shard stays there or goes to a new one, which is written first', (before) => {
    expect(SHARDS % before).toBe(0);
    const plan: NodePlan = { node: 'd', director: Array.from({ length: 3000 }, (_, i) => svc(i)).sort((a, b) => a.id.localeCompare(b.id)), realServer: [] };
    const next = shardPlan(plan);
    // The old layout: shardOf(id) % before is the FNV hash % before, the old assignment.
    const old = new Map<number, PlannedService[]>();
    for (const s of plan.director) old.set(shardOf(s.id) % before, [...(old.get(shardOf(s.id) % before) ?? []), s]);
    const oldSpec = (k: number): NodePlanSpec | undefined => (old.has(k) ? { node: 'd', shard: k, director: old.get(k)!, realServer: [] } : undefined);
    // The old shards only lose entries (written in the second batch); every entry they lose goes to a shard
    // that did not exist before (written in the first).
    let moved = 0;
    for (const o of next) {
      if (o.spec.shard < before) expect(addsEntries(o.spec, oldSpec(o.spec.shard))).toBe(false);
      else {
        expect(addsEntries(o.spec, undefined)).toBe(true);
        moved += o.spec.director.length;
      }
    }
    expect(moved).toBeGreaterThan(0);
    // Meanwhile, an agent merging old and new shards together sees every service once.
    const olds = [...old.keys()].map((k) => ({ spec: oldSpec(k)! }));
    expect(mergeShards('d', [...olds, ...next])).toEqual(plan);
  });

  it('names and labels stay valid for long node names', () => {
    const long = `${'a'.repeat(70)}.example.com`;
    expect(nodeLabelValue('web1')).toBe('web1');
    expect(nodeLabelValue(long)).toMatch(/^h-[0-9a-f]{40}$/);
    expect(shardName('web1', 3)).toBe('web1.3');
    expect(shardName('x'.repeat(253), SHARDS - 1).length).toBeLessThanOrEqual(253);
  });
});
