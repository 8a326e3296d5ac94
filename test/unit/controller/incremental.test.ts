import { IncrementalPlanner, type PlanSources } from '../../../src/controller/incremental.ts';
import { specDigest } from '../../../src/controller/controller.ts';
import { plan, type NodeInfo, type Plan } from '../../../src/model/planner.ts';
import { shardPlan } from '../../../src/model/shards.ts';
import { canonicalJson } from '../../../src/util/canonical.ts';
import type { VirtualService, RealServer, VirtualServiceSpec } from '../../../src/api/v1alpha1/index.ts';
import type { LabelSelector } from '../../../src/api/v1alpha1/meta.ts';

/** Deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A small world with many collisions: few VIPs, few labels, shared addresses, node-backed realservers. */
class World implements PlanSources {
  readonly vs = new Map<string, VirtualService>();
  readonly rs = new Map<string, RealServer>();
  nodeList: NodeInfo[] = [
    { name: 'd1', labels: { 'lvs.operator.dev/director': 'true' }, addresses: [{ type: 'InternalIP', address: '192.168.0.1' }] },
    { name: 'd2', labels: { 'lvs.operator.dev/director': 'true', zone: 'b' }, addresses: [{ type: 'InternalIP', address: '192.168.0.2' }] },
    { name: 'n1', labels: {}, addresses: [{ type: 'InternalIP', address: '192.168.1.1' }] },
    { name: 'n2', labels: {}, addresses: [{ type: 'InternalIP', address: '192.168.1.2' }, { type: 'InternalIP', address: 'fd00::2' }] },
    { name: 'n3', labels: { zone: 'b' }, addresses: [{ type: 'InternalIP', address: 'fd00::3' }] },
  ];
  #clock = 0;
  #n = 0;
  readonly r: () => number;
  /** How many label values and VIPs there are: few means most objects relate to each other. */
  readonly #spread: number;

  constructor(seed: number, spread = 3) {
    this.r = rng(seed);
    this.#spread = spread;
  }

  #app(): string {
    return `app${Math.floor(this.r() * this.#spread)}`;
  }

  getVirtualService(id: string): VirtualService | undefined {
    return this.vs.get(id);
  }
  getRealServer(id: string): RealServer | undefined {
    return this.rs.get(id);
  }
  virtualServices(): VirtualService[] {
    return [...this.vs.values()];
  }
  realServers(): RealServer[] {
    return [...this.rs.values()];
  }
  nodes(): NodeInfo[] {
    return this.nodeList;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)]!;
  }

  vsSpec(): VirtualServiceSpec {
    const selector = this.pick<LabelSelector>([
      { matchLabels: { app: this.#app() } },
      { matchLabels: { app: this.#app() } },
      { matchLabels: { app: this.#app(), tier: this.pick(['x', 'y']) } },
      { matchExpressions: [{ key: 'app', operator: 'In' as const, values: [this.#app(), this.#app()] }] },
      {},
    ]);
    const spec: VirtualServiceSpec = {
      vip: this.r() < 0.2 ? this.pick(['fd01::1', 'fd01:0:0::1']) : `10.0.0.${Math.floor(this.r() * this.#spread * 2)}`,
      port: this.pick([80, 80, 443]),
      protocol: this.pick(['TCP', 'TCP', 'UDP'] as const),
      scheduler: 'wlc',
      forwarding: this.pick(['DirectRouting', 'NAT', 'Tunnel'] as const),
      realServerSelector: selector,
    };
    if (this.r() < 0.2) spec.directors = { nodeSelector: { zone: 'b' } };
    if (this.r() < 0.2) spec.persistence = { timeoutSeconds: 60 };
    return spec;
  }

  rsObject(ns: string, name: string, generation: number): RealServer {
    const labels: Record<string, string> = { app: this.#app() };
    if (this.r() < 0.5) labels.tier = this.pick(['x', 'y']);
    const spec: RealServer['spec'] = this.r() < 0.6
      ? { address: this.pick(['172.16.0.1', '172.16.0.2', '172.16.0.3', 'fd02::1']), weight: Math.floor(this.r() * 4) }
      : { nodeName: this.pick(['n1', 'n2', 'n3', 'gone']), weight: 1 };
    if (this.r() < 0.3) spec.port = this.pick([80, 443, 8080]);
    return { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name, namespace: ns, labels, generation }, spec };
  }

  /** One random change; returns what changed as the controller's informer handlers would see it. */
  step(): { vs: string[]; rs: string[]; nodes: boolean } {
    const x = this.r();
    const ns = this.pick(['a', 'b']);
    if (x < 0.2 || this.vs.size < 3) {
      const name = `vs${this.#n++}`;
      this.vs.set(`${ns}/${name}`, {
        apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService',
        metadata: { name, namespace: ns, generation: 1, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, this.#clock++ % 3)).toISOString() },
        spec: this.vsSpec(),
      });
      return { vs: [`${ns}/${name}`], rs: [], nodes: false };
    }
    if (x < 0.3 || this.rs.size < 3) {
      const name = `rs${this.#n++}`;
      this.rs.set(`${ns}/${name}`, this.rsObject(ns, name, 1));
      return { vs: [], rs: [`${ns}/${name}`], nodes: false };
    }
    if (x < 0.45) {
      const [id, v] = this.pick([...this.vs]);
      const spec = this.r() < 0.5 ? { ...v.spec, vip: this.vsSpec().vip } : this.vsSpec();
      this.vs.set(id, { ...v, metadata: { ...v.metadata, generation: (v.metadata.generation ?? 1) + 1 }, spec });
      return { vs: [id], rs: [], nodes: false };
    }
    if (x < 0.65) {
      const [id, r] = this.pick([...this.rs]);
      const next = this.rsObject(r.metadata.namespace ?? '', r.metadata.name ?? '', (r.metadata.generation ?? 1) + 1);
      // Sometimes only the labels change (no new generation), sometimes only the weight.
      if (this.r() < 0.3) this.rs.set(id, { ...r, metadata: { ...r.metadata, labels: next.metadata.labels } });
      else if (this.r() < 0.5) this.rs.set(id, { ...r, metadata: { ...r.metadata, generation: next.metadata.generation }, spec: { ...r.spec, weight: (r.spec.weight ?? 1) + 1 } });
      else this.rs.set(id, next);
      return { vs: [], rs: [id], nodes: false };
    }
    if (x < 0.72) {
      const [id, v] = this.pick([...this.vs]);
      if (this.r() < 0.5) this.vs.delete(id);
      else this.vs.set(id, { ...v, metadata: { ...v.metadata, deletionTimestamp: '2026-02-01T00:00:00Z' } });
      return { vs: [id], rs: [], nodes: false };
    }
    if (x < 0.8) {
      const [id, r] = this.pick([...this.rs]);
      if (this.r() < 0.7) this.rs.delete(id);
      else this.rs.set(id, { ...r, metadata: { ...r.metadata, deletionTimestamp: '2026-02-01T00:00:00Z' } });
      return { vs: [], rs: [id], nodes: false };
    }
    if (x < 0.83) {
      // A node change the planner cares about.
      const i = Math.floor(this.r() * this.nodeList.length);
      this.nodeList = this.nodeList.map((n, k) => (k === i ? { ...n, labels: { ...n.labels, 'lvs.operator.dev/director': this.r() < 0.5 ? 'true' : 'false' } } : n));
      return { vs: [], rs: [], nodes: true };
    }
    // Several at once (one pass after a burst of events).
    const a = this.step();
    const b = this.step();
    return { vs: [...a.vs, ...b.vs], rs: [...a.rs, ...b.rs], nodes: a.nodes || b.nodes };
  }
}

/** A plan as plain sorted data, for comparison. */
function normal(p: Plan): unknown {
  const sorted = <V>(m: Map<string, V>): Array<[string, V]> => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
  return { services: sorted(p.services), realServers: sorted(p.realServers), nodes: sorted(p.nodes) };
}

/** Per node, ids of the services whose planned entries (director or realserver) differ between two plans. */
function nodeDiff(before: Plan | undefined, after: Plan): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const entries = (p: Plan | undefined, node: string): Map<string, string> => {
    const m = new Map<string, string>();
    const np = p?.nodes.get(node);
    for (const s of np?.director ?? []) m.set(s.id, `${m.get(s.id) ?? ''}D${canonicalJson(s)}`);
    for (const v of np?.realServer ?? []) m.set(v.service, `${m.get(v.service) ?? ''}R${canonicalJson(v)}`);
    return m;
  };
  for (const node of new Set([...(before?.nodes.keys() ?? []), ...after.nodes.keys()])) {
    const a = entries(before, node);
    const b = entries(after, node);
    for (const id of new Set([...a.keys(), ...b.keys()])) {
      if (a.get(id) !== b.get(id)) {
        if (!out.has(node)) out.set(node, new Set());
        out.get(node)!.add(id);
      }
    }
  }
  return out;
}

describe('IncrementalPlanner', () => {
  it.each([[1, 3], [2, 3], [3, 3], [4, 12], [5, 12], [6, 12]])('equals the full planner after every one of 300 random changes (seed %i, spread %i)', (seed, spread) => {
    const w = new World(seed, spread);
    for (let i = 0; i < 6; i++) w.step();
    const inc = new IncrementalPlanner(w, { fullReplanShare: Infinity });
    let prev: Plan | undefined;
    let incremental = 0;
    let replanned = 0;
    for (let i = 0; i < 300; i++) {
      const change = i === 0 ? { vs: [], rs: [], nodes: false } : w.step();
      const before = prev && (structuredClone(normal(prev)) as unknown);
      const up = inc.update(change.vs, change.rs);
      const want = plan({ virtualServices: w.virtualServices(), realServers: w.realServers(), nodes: w.nodes() });
      expect(normal(up.plan)).toEqual(normal(want));
      if (!change.nodes && i > 0) expect(up.full).toBe(false);
      if (!up.full) {
        incremental++;
        replanned += up.services.size / Math.max(1, w.vs.size);
        // Everything whose planned entries or outcome changed was reported as touched.
        const old = before ? rebuild(before) : undefined;
        for (const [node, ids] of nodeDiff(old, want)) for (const id of ids) expect([node, id, up.nodes.get(node)?.has(id) ?? false]).toEqual([node, id, true]);
        for (const [id, out] of want.services) if (canonicalJson(out) !== canonicalJson(old?.services.get(id))) expect(up.services.has(id)).toBe(true);
        for (const id of old?.services.keys() ?? []) if (!want.services.has(id)) expect(up.services.has(id)).toBe(true);
        for (const [id, out] of want.realServers) if (canonicalJson(out) !== canonicalJson(old?.realServers.get(id))) expect(up.realServers.has(id)).toBe(true);
      }
      prev = up.plan;
    }
    expect(incremental).toBeGreaterThan(250);
    // With many label values and VIPs a change touches only a part of the VirtualServices.
    if (spread > 3) expect(replanned / incremental).toBeLessThan(0.5);
  });

  it('keeps unchanged entries as the same objects (their cached canonical form stays valid)', () => {
    const w = new World(42);
    for (let i = 0; i < 30; i++) w.step();
    const inc = new IncrementalPlanner(w);
    const first = inc.update([], []);
    const before = new Map([...first.plan.nodes].map(([n, np]) => [n, new Map(np.director.map((s) => [s.id, s]))]));
    const [id, r] = [...w.rs].find(([, x]) => x.spec.address) ?? [...w.rs][0]!;
    w.rs.set(id, { ...r, metadata: { ...r.metadata, generation: 9 }, spec: { ...r.spec, weight: 77 } });
    const up = inc.update([], [id]);
    expect(up.full).toBe(false);
    for (const [n, np] of up.plan.nodes) {
      for (const s of np.director) if (!up.services.has(s.id)) expect(before.get(n)?.get(s.id)).toBe(s);
    }
  });

  it('replans everything when the closure is too big', () => {
    const w = new World(7);
    for (let i = 0; i < 60; i++) w.step();
    const inc = new IncrementalPlanner(w, { fullReplanShare: 0 });
    inc.update([], []);
    const ids = [...w.vs.keys()].slice(0, 70);
    expect(inc.update(ids, []).full).toBe(ids.length > 64);
    expect(inc.update(ids.slice(0, 1), []).full).toBe(false);
  });
});

/** A plan back from its normal form (Maps again), to diff against. */
function rebuild(n: unknown): Plan {
  const x = n as { services: Array<[string, never]>; realServers: Array<[string, never]>; nodes: Array<[string, never]> };
  return { services: new Map(x.services), realServers: new Map(x.realServers), nodes: new Map(x.nodes) };
}

describe('specDigest', () => {
  /** The same spec as fresh objects with their keys in another order (what a read from the server gives). */
  const reparsed = <T>(v: T): T => JSON.parse(JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).reverse()) : x))) as T;

  it('is equal for specs with equal canonical JSON, different when anything in them differs', () => {
    const w = new World(3);
    for (let i = 0; i < 80; i++) w.step();
    const p = plan({ virtualServices: w.virtualServices(), realServers: w.realServers(), nodes: w.nodes() });
    const seen = new Map<string, string>();
    let checked = 0;
    for (const np of p.nodes.values()) {
      for (const o of shardPlan(np)) {
        const copy = reparsed(o.spec);
        expect(canonicalJson(copy)).toBe(canonicalJson(o.spec));
        expect(specDigest(copy)).toBe(specDigest(o.spec));
        // Distinct specs, distinct digests.
        const d = specDigest(o.spec);
        const c = canonicalJson(o.spec);
        if (seen.has(d)) expect(seen.get(d)).toBe(c);
        seen.set(d, c);
        // A change anywhere in an entry, or in the order of entries, changes it.
        if (copy.director.length > 0) {
          const changed = reparsed(o.spec);
          changed.director[0]!.generation += 1;
          expect(specDigest(changed)).not.toBe(d);
        }
        if (copy.realServer.length > 1) {
          const swapped = reparsed(o.spec);
          swapped.realServer.reverse();
          if (canonicalJson(swapped) !== c) expect(specDigest(swapped)).not.toBe(d);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(3);
    const empty = { node: 'x', shard: 3, director: [], realServer: [] };
    expect(specDigest(empty)).toBe(specDigest(reparsed(empty)));
    expect(specDigest(empty)).not.toBe(specDigest({ ...empty, shard: 4 }));
    expect(specDigest(empty)).not.toBe(specDigest({ ...empty, node: 'y' }));
  });
});
