import { admitVips, parsePoolEntry, requestedFamily, type AdmissionInput, type AdmissionNode, type VipDecision } from '../../../src/model/pools.ts';
import { plan, type NodeInfo } from '../../../src/model/planner.ts';
import type { VIPPool, VIPPoolSpec, VirtualService, VirtualServiceSpec, RealServer } from '../../../src/api/v1alpha1/index.ts';

let clock = 0;
/** A VirtualService; each one is a second younger than the previous unless `created` says otherwise. */
const vs = (ns: string, name: string, spec: Partial<VirtualServiceSpec>, extra: { created?: string; status?: VirtualService['status'] } = {}): VirtualService => ({
  apiVersion: 'lvs.operator.dev/v1alpha1',
  kind: 'VirtualService',
  metadata: { name, namespace: ns, generation: 1, creationTimestamp: extra.created ?? new Date(Date.UTC(2026, 0, 1, 0, 0, clock++)).toISOString().replace('.000', '') },
  spec: { port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting', realServerSelector: { matchLabels: { app: 'web' } }, ...spec },
  ...(extra.status ? { status: extra.status } : {}),
});
const pool = (name: string, spec: Partial<VIPPoolSpec>): VIPPool => ({
  apiVersion: 'lvs.operator.dev/v1alpha1',
  kind: 'VIPPool',
  metadata: { name, generation: 1 },
  spec: { addresses: [], namespaceSelector: {}, autoAssign: true, ...spec },
});
const ns = (name: string, labels: Record<string, string> = {}) => ({ name, labels: { 'kubernetes.io/metadata.name': name, ...labels } });
const teamA = ns('team-a', { team: 'a' });
const teamB = ns('team-b', { team: 'b' });
const nodes: AdmissionNode[] = [
  { name: 'director', addresses: [{ type: 'InternalIP', address: '10.1.0.4' }, { type: 'Hostname', address: 'director' }], podCIDRs: ['10.244.0.0/24'] },
  { name: 'web1', addresses: [{ type: 'InternalIP', address: '10.1.0.7' }, { type: 'ExternalIP', address: '2001:db8:1::7' }] },
];
const input = (pools: VIPPool[], extra: Partial<AdmissionInput> = {}): AdmissionInput => ({ pools, namespaces: [teamA, teamB], ...extra });
const decide = (services: VirtualService[], i: AdmissionInput, n: AdmissionNode[] = nodes): Map<string, VipDecision> => admitVips(services, n, i).decisions;
const ok = (d: VipDecision | undefined): { vip: string; pool: string; allocated: boolean } => {
  if (!d?.ok) throw new Error(`not admitted: ${JSON.stringify(d)}`);
  return { vip: d.vip, pool: d.pool, allocated: d.allocated };
};

const poolA = pool('a', { addresses: ['10.1.0.0/28'], namespaceSelector: { matchLabels: { team: 'a' } } });
const poolB = pool('b', { addresses: ['10.2.0.10-10.2.0.12'], namespaceSelector: { matchLabels: { team: 'b' } } });
const shared = pool('shared', { addresses: ['10.3.0.0/30', '2001:db8:3::/126'], namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] } });

describe('pool entries', () => {
  it('CIDRs and inclusive ranges, IPv4 and IPv6', () => {
    expect(parsePoolEntry('192.168.56.40/29')).toEqual({ family: 4, first: 0xc0a83828n, last: 0xc0a8382fn });
    expect(parsePoolEntry('192.168.56.40-192.168.56.42')).toEqual({ family: 4, first: 0xc0a83828n, last: 0xc0a8382an });
    expect(parsePoolEntry('2001:db8::/126')).toEqual({ family: 6, first: 0x20010db8n << 96n, last: (0x20010db8n << 96n) + 3n });
    expect(parsePoolEntry('2001:db8::1f-2001:db8::10')).toBeUndefined();
    expect(parsePoolEntry('10.0.0.1-2001:db8::1')).toBeUndefined();
    expect(parsePoolEntry('10.0.0.0/33')).toBeUndefined();
    expect(parsePoolEntry('lb.example.com')).toBeUndefined();
  });

  it('the family a VirtualService without spec.vip asks for', () => {
    expect(requestedFamily(vs('x', 'a', { ipFamily: 'IPv6' }))).toBe(6);
    expect(requestedFamily(vs('x', 'a', { persistence: { timeoutSeconds: 300, netmask: '255.255.255.0' } }))).toBe(4);
    expect(requestedFamily(vs('x', 'a', { persistence: { timeoutSeconds: 300, netmask: '64' } }))).toBe(6);
    expect(requestedFamily(vs('x', 'a', {}))).toBeUndefined();
  });
});

describe('admission of explicit VIPs (default-deny)', () => {
  it('without any pool nothing is admitted, and the message names the VIP and the namespace', () => {
    const d = decide([vs('team-a', 'web', { vip: '10.1.0.5' })], input([])).get('team-a/web');
    expect(d).toEqual({ ok: false, reason: 'VIPNotAllowed', message: 'VIP 10.1.0.5 is not allowed in namespace team-a: no VIPPool that selects the namespace contains it' });
  });

  it("a VIP of the namespace's pool is admitted by it; another team's VIP is refused", () => {
    const d = decide([vs('team-a', 'web', { vip: '10.1.0.5' }), vs('team-a', 'steal', { vip: '10.2.0.11' }), vs('team-b', 'web', { vip: '10.2.0.11' })], input([poolA, poolB]));
    expect(ok(d.get('team-a/web'))).toEqual({ vip: '10.1.0.5', pool: 'a', allocated: false });
    expect(d.get('team-a/steal')).toMatchObject({ ok: false, reason: 'VIPNotAllowed', message: expect.stringContaining('VIP 10.2.0.11 is not allowed in namespace team-a') });
    expect(ok(d.get('team-b/web')).pool).toBe('b');
  });

  it('an empty namespaceSelector selects every namespace, also one the cache has not seen yet', () => {
    const all = pool('all', { addresses: ['10.9.0.0/24'] });
    expect(ok(decide([vs('brand-new', 'web', { vip: '10.9.0.1' })], input([all])).get('brand-new/web')).pool).toBe('all');
    // ... and a selector on the name label works for an unseen namespace too.
    const byName = pool('byname', { addresses: ['10.9.1.0/24'], namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'brand-new' } } });
    expect(ok(decide([vs('brand-new', 'web', { vip: '10.9.1.1' })], input([byName])).get('brand-new/web')).pool).toBe('byname');
  });

  it("a node's own address is refused even inside an allowed pool", () => {
    const d = decide([vs('team-a', 'web', { vip: '10.1.0.4' }), vs('team-a', 'v6', { vip: '2001:db8:1::7' })], input([poolA, pool('v6', { addresses: ['2001:db8:1::/120'] })]));
    expect(d.get('team-a/web')).toEqual({ ok: false, reason: 'VIPIsNodeAddress', message: 'VIP 10.1.0.4 is an address of node director' });
    expect(d.get('team-a/v6')).toMatchObject({ reason: 'VIPIsNodeAddress', message: expect.stringContaining('node web1') });
  });

  it("the API server's address, the service CIDR and a node's pod CIDR are reserved", () => {
    const wide = pool('wide', { addresses: ['10.0.0.0/8'] });
    const reserved = [{ range: '10.96.0.1', what: "the API server's Service address" }, { range: '10.96.0.0/12', what: 'the service CIDR' }];
    const d = decide([vs('team-a', 'api', { vip: '10.96.0.1' }), vs('team-a', 'svc', { vip: '10.100.3.4' }), vs('team-a', 'pod', { vip: '10.244.0.9' })], input([wide], { reserved }));
    expect(d.get('team-a/api')).toEqual({ ok: false, reason: 'VIPReserved', message: "VIP 10.96.0.1 is reserved: it is the API server's Service address" });
    expect(d.get('team-a/svc')).toEqual({ ok: false, reason: 'VIPReserved', message: 'VIP 10.100.3.4 is reserved: it is in the service CIDR' });
    expect(d.get('team-a/pod')).toEqual({ ok: false, reason: 'VIPReserved', message: 'VIP 10.244.0.9 is reserved: it is in the pod CIDR 10.244.0.0/24 of node director' });
  });

  it('spec.vipPool: the VIP must lie in that pool, which must exist and select the namespace', () => {
    const d = decide([
      vs('team-a', 'gone', { vip: '10.1.0.5', vipPool: 'nope' }),
      vs('team-a', 'outside', { vip: '10.1.0.5', vipPool: 'shared' }),
      vs('team-a', 'foreign', { vip: '10.2.0.10', vipPool: 'b' }),
      vs('team-a', 'fine', { vip: '10.3.0.1', vipPool: 'shared' }),
    ], input([poolA, poolB, shared]));
    expect(d.get('team-a/gone')).toMatchObject({ reason: 'VIPNotAllowed', message: 'VIP 10.1.0.5 is not allowed in namespace team-a: VIPPool nope does not exist' });
    expect(d.get('team-a/outside')).toMatchObject({ reason: 'VIPNotAllowed', message: 'VIP 10.1.0.5 is not allowed in namespace team-a: it is not in VIPPool shared' });
    expect(d.get('team-a/foreign')).toMatchObject({ reason: 'VIPNotAllowed', message: 'VIP 10.2.0.10 is not allowed in namespace team-a: VIPPool b does not select the namespace' });
    expect(ok(d.get('team-a/fine')).pool).toBe('shared');
  });

  it('a VIP belongs to one namespace: the older claim keeps it, ports may share it within the namespace', () => {
    const d = decide([
      vs('team-a', 'http', { vip: '10.3.0.1' }),
      vs('team-b', 'grab', { vip: '10.3.0.1', port: 8080 }),
      vs('team-a', 'https', { vip: '10.3.0.1', port: 443 }),
    ], input([shared]));
    expect(ok(d.get('team-a/http')).vip).toBe('10.3.0.1');
    expect(d.get('team-b/grab')).toEqual({ ok: false, reason: 'VIPInUse', message: 'VIP 10.3.0.1 is not allowed in namespace team-b: it is in use by VirtualService team-a/http of another namespace' });
    expect(ok(d.get('team-a/https')).vip).toBe('10.3.0.1');
  });

  it('a pool being deleted admits nothing', () => {
    const deleting = { ...poolA, metadata: { ...poolA.metadata, deletionTimestamp: '2026-01-02T00:00:00Z' } };
    expect(decide([vs('team-a', 'web', { vip: '10.1.0.5' })], input([deleting])).get('team-a/web')).toMatchObject({ ok: false, reason: 'VIPNotAllowed' });
  });
});

describe('allocation', () => {
  it('the lowest free address, skipping node addresses, explicit VIPs of any namespace and reserved ranges', () => {
    const d = decide([
      vs('team-b', 'explicit', { vip: '10.1.0.1' }),
      vs('team-a', 'one', {}),
      vs('team-a', 'two', {}),
      vs('team-a', 'three', {}),
    ], input([pool('a', { addresses: ['10.1.0.0/29'], namespaceSelector: {} })], { reserved: [{ range: '10.1.0.2/31', what: 'the service CIDR' }] }));
    expect(ok(d.get('team-a/one'))).toEqual({ vip: '10.1.0.0', pool: 'a', allocated: true });
    // .1 explicit (team-b), .2 and .3 reserved, .4 node director
    expect(ok(d.get('team-a/two')).vip).toBe('10.1.0.5');
    expect(ok(d.get('team-a/three')).vip).toBe('10.1.0.6');
  });

  it('two namespaces sharing a pool get distinct addresses, in creation order', () => {
    const d = decide([vs('team-b', 'web', {}, { created: '2026-01-01T00:00:02Z' }), vs('team-a', 'web', {}, { created: '2026-01-01T00:00:01Z' })], input([shared]));
    expect(ok(d.get('team-a/web')).vip).toBe('10.3.0.0');
    expect(ok(d.get('team-b/web')).vip).toBe('10.3.0.1');
  });

  it('an allocation recorded in status is kept, even when an older VirtualService would have come first', () => {
    const older = vs('team-a', 'older', {}, { created: '2026-01-01T00:00:01Z' });
    const younger = vs('team-b', 'younger', {}, { created: '2026-01-01T00:00:02Z', status: { vip: '10.3.0.0', vipPool: 'shared' } });
    const d = decide([older, younger], input([shared]));
    expect(ok(d.get('team-b/younger'))).toEqual({ vip: '10.3.0.0', pool: 'shared', allocated: true });
    expect(ok(d.get('team-a/older')).vip).toBe('10.3.0.1');
  });

  it('the same input gives the same allocations (a restarted controller agrees)', () => {
    const services = [vs('team-a', 'x', {}), vs('team-b', 'y', {}), vs('team-a', 'z', { ipFamily: 'IPv6' })];
    const first = decide(services, input([shared]));
    const again = decide([...services].reverse(), input([shared]));
    expect([...again].sort()).toEqual([...first].sort());
    expect(ok(first.get('team-a/z')).vip).toBe('2001:db8:3::');
  });

  it('a recorded allocation that is no longer allowed is given up', () => {
    // The pool no longer selects team-b: the address goes, and with no other pool nothing replaces it.
    const d = decide([vs('team-b', 'web', {}, { status: { vip: '10.1.0.5', vipPool: 'a' } })], input([poolA]));
    expect(d.get('team-b/web')).toEqual({ ok: false, reason: 'VIPNotAllowed', message: 'no VIP can be allocated in namespace team-b: no auto-assigning VIPPool selects the namespace' });
    // A recorded address now used explicitly by an older VirtualService elsewhere is re-allocated.
    const e = decide([vs('team-a', 'explicit', { vip: '10.3.0.0' }), vs('team-b', 'web', {}, { status: { vip: '10.3.0.0', vipPool: 'shared' } })], input([shared]));
    expect(ok(e.get('team-b/web')).vip).toBe('10.3.0.1');
  });

  it('pools that do not auto-assign are used only when named; the family follows ipFamily or the netmask', () => {
    const manual = pool('manual', { addresses: ['10.5.0.0/30'], autoAssign: false });
    const d = decide([
      vs('team-a', 'auto', {}),
      vs('team-a', 'named', { vipPool: 'manual' }),
      vs('team-a', 'v6', { persistence: { timeoutSeconds: 60, netmask: '64' } }),
    ], input([manual, shared]));
    expect(ok(d.get('team-a/auto'))).toMatchObject({ vip: '10.3.0.0', pool: 'shared' });
    expect(ok(d.get('team-a/named'))).toMatchObject({ vip: '10.5.0.0', pool: 'manual' });
    expect(ok(d.get('team-a/v6'))).toMatchObject({ vip: '2001:db8:3::', pool: 'shared' });
  });

  it('many allocations: distinct, lowest first, around explicit VIPs, until the pool is full', () => {
    const p = pool('p', { addresses: ['10.20.0.0/23'] });
    const explicit = Array.from({ length: 100 }, (_, i) => vs('team-b', `x${i}`, { vip: `10.20.0.${2 * i + 1}` }));
    const auto = Array.from({ length: 420 }, (_, i) => vs('team-a', `a${i}`, {}));
    const d = decide([...explicit, ...auto], input([p]), []);
    const got = auto.map((v) => d.get(`team-a/${v.metadata.name}`)).filter((x) => x?.ok).map((x) => ok(x).vip);
    // 512 addresses − 100 explicit = 412 allocations, the rest NoVIPAvailable
    expect(got).toHaveLength(412);
    expect(new Set(got).size).toBe(412);
    expect(got.slice(0, 4)).toEqual(['10.20.0.0', '10.20.0.2', '10.20.0.4', '10.20.0.6']);
    expect(got.at(-1)).toBe('10.20.1.255');
    expect(d.get('team-a/a419')).toMatchObject({ ok: false, reason: 'NoVIPAvailable' });
  });

  it('an exhausted pool says so', () => {
    const tiny = pool('tiny', { addresses: ['10.6.0.1-10.6.0.2'] });
    const d = decide([vs('team-a', 'a', {}), vs('team-a', 'b', {}), vs('team-a', 'c', {})], input([tiny]));
    expect(d.get('team-a/c')).toEqual({ ok: false, reason: 'NoVIPAvailable', message: 'no free address in VIPPool tiny for namespace team-a' });
  });

  it('reserved ranges are skipped whole, so an IPv6 pool behind a big reserved range still allocates at once', () => {
    const v6 = pool('v6', { addresses: ['2001:db8:9::/64'] });
    const d = decide([vs('team-a', 'web', {})], input([v6], { reserved: [{ range: '2001:db8:9::/65', what: 'the service CIDR' }] }));
    expect(ok(d.get('team-a/web')).vip).toBe('2001:db8:9:0:8000::');
  });
});

describe('pool usage', () => {
  it('counts services, addresses in use, allocations and free addresses', () => {
    const p = pool('p', { addresses: ['10.1.0.0/29', '10.1.0.100-10.1.0.101'] });
    const usage = admitVips([
      vs('team-a', 'http', { vip: '10.1.0.1' }),
      vs('team-a', 'https', { vip: '10.1.0.1', port: 443 }),
      vs('team-b', 'auto', {}),
    ], nodes, input([p, shared], { reserved: [{ range: '10.1.0.6/31', what: 'reserved' }] })).pools;
    // 10 addresses: .1 in use, .0 allocated, .4 a node's, .6/.7 reserved → 5 free
    expect(usage.get('p')).toEqual({ name: 'p', virtualServices: 3, addressesInUse: 2, allocated: 1, available: 5 });
    expect(usage.get('shared')).toEqual({ name: 'shared', virtualServices: 0, addressesInUse: 0, allocated: 0, available: 8 });
  });

  it('saturates for IPv6', () => {
    const usage = admitVips([], nodes, input([pool('v6', { addresses: ['2001:db8::/64'] })])).pools;
    expect(usage.get('v6')?.available).toBe(2147483647);
  });
});

describe('the planner with admission', () => {
  const planNodes: NodeInfo[] = [
    { name: 'director', labels: { 'lvs.operator.dev/director': 'true', zone: 'a' }, addresses: [{ type: 'InternalIP', address: '10.1.0.4' }] },
    { name: 'director-b', labels: { 'lvs.operator.dev/director': 'true', zone: 'b' }, addresses: [{ type: 'InternalIP', address: '10.1.0.5' }] },
    { name: 'web1', labels: {}, addresses: [{ type: 'InternalIP', address: '10.1.0.7' }] },
  ];
  const web1: RealServer = { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name: 'web1', namespace: 'team-a', labels: { app: 'web' } }, spec: { nodeName: 'web1', weight: 1 } };
  const web1b: RealServer = { ...web1, metadata: { ...web1.metadata, namespace: 'team-b' } };

  it('a refused service is programmed nowhere: no director entry, no realserver VIP', () => {
    const p = plan({ virtualServices: [vs('team-b', 'steal', { vip: '10.1.0.9' })], realServers: [web1b], nodes: planNodes, admission: input([poolA]) });
    expect(p.services.get('team-b/steal')).toMatchObject({ rejected: { reason: 'VIPNotAllowed', message: expect.stringContaining('VIP 10.1.0.9 is not allowed in namespace team-b') }, directors: [], destinations: [] });
    for (const n of p.nodes.values()) expect([...n.director, ...n.realServer]).toEqual([]);
  });

  it('planned entries carry the admitting pool; an allocated VIP is planned and reported', () => {
    const p = plan({ virtualServices: [vs('team-a', 'web', {})], realServers: [web1], nodes: planNodes, admission: input([poolA]) });
    const svc = p.services.get('team-a/web')!;
    // .0 is the first free address of 10.1.0.0/28 (.4/.5/.7 are nodes')
    expect(svc).toMatchObject({ vip: '10.1.0.0', pool: 'a', allocated: true });
    expect(p.nodes.get('director')!.director[0]).toMatchObject({ id: 'team-a/web', vip: '10.1.0.0', pool: 'a' });
    expect(p.nodes.get('web1')!.realServer).toEqual([{ service: 'team-a/web', vip: '10.1.0.0', forwarding: 'DirectRouting', pool: 'a' }]);
    expect(p.pools?.get('a')).toMatchObject({ virtualServices: 1, allocated: 1 });
  });

  it("a pool's director selector narrows the service's and its interface is the default", () => {
    const zoned = pool('zoned', { addresses: ['10.8.0.0/24'], directors: { nodeSelector: { zone: 'b' }, interface: 'eth1' } });
    const p = plan({ virtualServices: [vs('team-a', 'web', { vip: '10.8.0.1' }), vs('team-a', 'own', { vip: '10.8.0.2', directors: { interface: 'bond0' } })], realServers: [], nodes: planNodes, admission: input([zoned]) });
    expect(p.services.get('team-a/web')!.directors).toEqual(['director-b']);
    expect(p.nodes.get('director')!.director).toEqual([]);
    expect(p.nodes.get('director-b')!.director.map((s) => [s.id, s.interface])).toEqual([['team-a/own', 'bond0'], ['team-a/web', 'eth1']]);
  });

  it('precomputed admission (for planning a subset) is used as given', () => {
    const all = [vs('team-a', 'one', {}), vs('team-a', 'two', {})];
    const admitted = admitVips(all, planNodes, input([poolA]));
    const sub = plan({ virtualServices: [all[1]!], realServers: [], nodes: planNodes, admitted });
    expect(sub.services.get('team-a/two')!.vip).toBe(ok(admitted.decisions.get('team-a/two')).vip);
    expect(sub.services.get('team-a/two')!.vip).not.toBe('10.1.0.0');
  });

  it('without admission (standalone) a spec.vip is used as it is and a missing one is refused', () => {
    const p = plan({ virtualServices: [vs('team-a', 'web', { vip: '192.0.2.1' }), vs('team-a', 'none', {})], realServers: [], nodes: planNodes });
    expect(p.services.get('team-a/web')).toMatchObject({ vip: '192.0.2.1', directors: ['director', 'director-b'] });
    expect(p.services.get('team-a/web')!.pool).toBeUndefined();
    expect(p.nodes.get('director')!.director[0]!.pool).toBeUndefined();
    expect(p.services.get('team-a/none')!.rejected).toMatchObject({ reason: 'VIPRequired' });
    expect(p.pools).toBeUndefined();
  });
});
