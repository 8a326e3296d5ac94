import { shardPlan, mergeShards, shardOf, nodeLabelValue, shardName, SHARDS, NODE_LABEL } from '../../../src/model/shards.ts';
import type { NodePlan, PlannedService } from '../../../src/model/plan.ts';

const svc = (i: number): PlannedService => ({
  id: `ns${i % 7}/svc-${i}`, generation: 1, vip: `10.0.${Math.floor(i / 250)}.${i % 250}`, port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: true, healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: Array.from({ length: 10 }, (_, j) => ({ realServer: `ns${i % 7}/rs-${i}-${j}`, address: `10.1.${j}.${i % 250}`, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 })),
});

describe('plan shards', () => {
  it('shard assignment is stable and spread', () => {
    expect(shardOf('lab/web')).toBe(shardOf('lab/web'));
    const counts = new Array<number>(SHARDS).fill(0);
    for (let i = 0; i < 5000; i++) counts[shardOf(`ns/svc-${i}`)]!++;
    expect(Math.min(...counts)).toBeGreaterThan(200);
  });

  it('5,000 services x 10 realservers on one director: every shard far below etcd\'s 1.5 MiB, and the merge is lossless', () => {
    const plan: NodePlan = { node: 'director-1', director: Array.from({ length: 5000 }, (_, i) => svc(i)).sort((a, b) => a.id.localeCompare(b.id)), realServer: [] };
    const objects = shardPlan(plan);
    expect(objects.length).toBe(SHARDS);
    const biggest = Math.max(...objects.map((o) => Buffer.byteLength(JSON.stringify(o))));
    expect(biggest).toBeLessThan(1024 * 1024);
    expect(objects.every((o) => o.metadata.labels?.[NODE_LABEL] === 'director-1')).toBe(true);
    expect(mergeShards('director-1', objects)).toEqual(plan);
  });

  it('an empty plan has no objects; realserver VIPs travel too', () => {
    expect(shardPlan({ node: 'n', director: [], realServer: [] })).toEqual([]);
    const p: NodePlan = { node: 'web1', director: [], realServer: [{ service: 'lab/web', vip: '192.168.56.40', forwarding: 'DirectRouting' }] };
    expect(mergeShards('web1', shardPlan(p))).toEqual(p);
    expect(mergeShards('web2', shardPlan(p))).toEqual({ node: 'web2', director: [], realServer: [] });
  });

  it('names and labels stay valid for long node names', () => {
    const long = `${'a'.repeat(70)}.example.com`;
    expect(nodeLabelValue('web1')).toBe('web1');
    expect(nodeLabelValue(long)).toMatch(/^h-[0-9a-f]{40}$/);
    expect(shardName('web1', 3)).toBe('web1.3');
    expect(shardName('x'.repeat(253), 15).length).toBeLessThanOrEqual(253);
  });
});
