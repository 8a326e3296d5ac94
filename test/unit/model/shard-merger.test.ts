import { mergeShards, shardPlan, ShardMerger, type ShardObject } from '../../../src/model/shards.ts';
import type { NodePlan, PlannedService } from '../../../src/model/plan.ts';

const svc = (i: number, weight = 1): PlannedService => ({
  id: `ns${i % 3}/svc-${i}`, generation: 1, vip: `10.0.${Math.floor(i / 250)}.${i % 250}`, port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip: true, healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: Array.from({ length: 3 }, (_, j) => ({ realServer: `ns${i % 3}/rs-${i}-${j}`, address: `10.1.${j}.${i % 250}`, port: 80, weight, upperThreshold: 0, lowerThreshold: 0 })),
});

/** A small deterministic generator (the cases must be the same on every run). */
function rng(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
}

const objectsOf = (plan: NodePlan): ShardObject[] => shardPlan(plan).map((o) => ({ metadata: { name: o.metadata.name! }, spec: o.spec }));

describe('ShardMerger', () => {
  const node = 'director-1';
  const base = (): NodePlan => ({
    node,
    director: Array.from({ length: 300 }, (_, i) => svc(i)).sort((a, b) => a.id.localeCompare(b.id)),
    realServer: Array.from({ length: 40 }, (_, i) => ({ service: svc(i).id, vip: svc(i).vip, forwarding: 'DirectRouting' as const })),
  });

  it('a changed entry is swapped in place: same plan as a full merge, every other entry kept by identity', () => {
    const m = new ShardMerger(node);
    let objects = objectsOf(base());
    const first = m.merge(objects);
    expect(m.lastInPlace).toBe(false);
    expect(first).toEqual(mergeShards(node, objects));
    // A weight change: the informer hands a new object for that one shard.
    const target = objects.findIndex((o) => o.spec.director.length > 1);
    const spec = objects[target]!.spec;
    const changed = { ...spec, director: spec.director.map((s, i) => (i === 1 ? { ...s, destinations: s.destinations.map((d) => ({ ...d, weight: 7 })) } : structuredClone(s))) };
    objects = objects.map((o, i) => (i === target ? { metadata: o.metadata, spec: changed } : o));
    const next = m.merge(objects);
    expect(m.lastInPlace).toBe(true);
    expect(next).toEqual(mergeShards(node, objects));
    expect(next.director.find((s) => s.id === spec.director[1]!.id)?.destinations[0]?.weight).toBe(7);
    const swapped = new Set(changed.director);
    next.director.forEach((s, i) => {
      if (!swapped.has(s)) expect(s).toBe(first.director[i]);
    });
    expect(next.realServer).toBe(first.realServer); // no realserver entry in the change: the same array
    expect(m.shardOf(spec.director[1]!.id)).toBe(objects[target]!.metadata.name);
    // Nothing changed: the plan itself comes back.
    expect(m.merge(objects)).toBe(next);
    expect(m.lastInPlace).toBe(true);
  });

  it('equals mergeShards over random changes: weights, added, removed and moved entries, shards added and removed, duplicates', () => {
    const m = new ShardMerger(node);
    // The same steps told which shard changed (the agent's watch events): mergeChanged, or merge when one came or went.
    const told = new ShardMerger(node);
    let toldInPlace = 0;
    const r = rng(7);
    let objects = objectsOf(base());
    // Another node's shard must not count.
    objects.push({ metadata: { name: 'other.1' }, spec: { node: 'other', shard: 1, director: [svc(999)], realServer: [] } });
    let toldPlan = told.merge(objects);
    let nextId = 1000;
    let inPlace = 0;
    let full = 0;
    for (let step = 0; step < 400; step++) {
      const k = r(objects.length);
      const o = objects[k]!;
      const spec = o.spec;
      const kind = r(10);
      let next: ShardObject | undefined = o;
      if (kind < 5 && spec.director.length > 0) {
        // The usual change: one entry's weights (the rest parsed anew, as from a watch event).
        const j = r(spec.director.length);
        next = { metadata: o.metadata, spec: { ...spec, director: spec.director.map((s, i) => (i === j ? { ...s, generation: s.generation + 1, destinations: s.destinations.map((d) => ({ ...d, weight: r(10) })) } : structuredClone(s))) } };
      } else if (kind === 5) {
        next = { metadata: o.metadata, spec: { ...spec, director: [...spec.director, svc(nextId++)] } };
      } else if (kind === 6 && spec.director.length > 0) {
        next = { metadata: o.metadata, spec: { ...spec, director: spec.director.slice(1) } };
      } else if (kind === 7) {
        // An entry of another shard also here (the controller moving it), or a realserver VIP changing.
        const from = objects[r(objects.length)]!.spec;
        // (Never twice within one shard: the controller plans each entry once a shard.)
        const dir = from.director.slice(0, 1).filter((s) => !spec.director.some((x) => x.id === s.id));
        const rs = from.realServer.slice(0, 1).filter((v) => !spec.realServer.some((x) => x.service === v.service && x.vip === v.vip));
        next = { metadata: o.metadata, spec: { ...spec, director: [...spec.director, ...dir], realServer: [...spec.realServer, ...rs] } };
      } else if (kind === 8) {
        const shard = 200 + r(50);
        objects.push({ metadata: { name: `${node}.${shard}.${nextId}` }, spec: { node, shard, director: [svc(nextId++)], realServer: [] } });
      } else if (kind === 9 && objects.length > 3) {
        next = undefined;
      } else {
        next = { metadata: o.metadata, spec: { ...spec, realServer: spec.realServer.map((v) => ({ ...v, forwarding: r(2) ? 'Tunnel' as const : 'DirectRouting' as const })) } };
      }
      const cameOrWent = !next || kind === 8; // a shard deleted, or one added (pushed above)
      objects = next ? objects.map((x, i) => (i === k ? next : x)) : objects.filter((_, i) => i !== k);
      const got = m.merge(objects);
      expect(got).toEqual(mergeShards(node, objects));
      const all = objects;
      const before = toldPlan;
      const viaEvents = cameOrWent ? told.merge(objects) : told.mergeChanged(next && next !== o ? [next] : [], () => all);
      expect(viaEvents).toEqual(got);
      if (!cameOrWent && told.lastInPlace) {
        toldInPlace++;
        // lastSwapped is all that differs from the plan before, entry for entry (what the agent's delta takes).
        const swapped = new Map(told.lastSwapped.map((x) => [x.id, x]));
        expect(swapped.size).toBe(told.lastSwapped.length);
        const rebuilt = before.director.map((x) => swapped.get(x.id) ?? x);
        expect(rebuilt.length).toBe(viaEvents.director.length);
        rebuilt.forEach((x, i) => expect(x).toBe(viaEvents.director[i]));
        for (const x of told.lastSwapped) expect(before.director).not.toContain(x);
      }
      toldPlan = viaEvents;
      // shardOf: the lowest shard carrying the id (the one whose entry the merge takes).
      const carrier = new Map<string, string>();
      for (const x of objects.filter((y) => y.spec.node === node).sort((a, b) => a.spec.shard - b.spec.shard)) {
        for (const d of x.spec.director) if (!carrier.has(d.id)) carrier.set(d.id, x.metadata.name!);
      }
      expect(got.director.map((s) => m.shardOf(s.id))).toEqual(got.director.map((s) => carrier.get(s.id)));
      if (m.lastInPlace) inPlace++;
      else full++;
    }
    // Both ways were taken many times.
    expect(inPlace).toBeGreaterThan(100);
    expect(full).toBeGreaterThan(50);
    expect(toldInPlace).toBeGreaterThan(100);
  });
});
