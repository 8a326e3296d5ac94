import { plan, rankDirectors, canonicalIP, type NodeInfo } from '../../../src/model/planner.ts';
import { matchesSelector } from '../../../src/model/selector.ts';
import type { VirtualService, RealServer, VirtualServiceSpec, RealServerSpec } from '../../../src/api/v1alpha1/index.ts';

const vs = (name: string, spec: Partial<VirtualServiceSpec>, meta: Partial<VirtualService['metadata']> = {}): VirtualService => ({
  apiVersion: 'lvs.operator.dev/v1alpha1',
  kind: 'VirtualService',
  metadata: { name, namespace: 'lab', generation: 3, creationTimestamp: '2026-01-01T00:00:00Z', ...meta },
  spec: { vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting', realServerSelector: { matchLabels: { app: 'web' } }, ...spec },
});
const rs = (name: string, spec: Partial<RealServerSpec>, labels: Record<string, string> = { app: 'web' }, namespace = 'lab'): RealServer => ({
  apiVersion: 'lvs.operator.dev/v1alpha1',
  kind: 'RealServer',
  metadata: { name, namespace, labels },
  spec: { weight: 1, ...spec },
});
const node = (name: string, ip: string, labels: Record<string, string> = {}): NodeInfo => ({ name, labels, addresses: [{ type: 'Hostname', address: name }, { type: 'InternalIP', address: ip }] });

const nodes = [
  node('director', '192.168.56.34', { 'lvs.operator.dev/director': 'true' }),
  node('web1', '192.168.56.37'),
  node('web2', '192.168.56.38'),
];

describe('planner: the DR lab', () => {
  const p = plan({ virtualServices: [vs('web', {})], realServers: [rs('web1', { nodeName: 'web1' }), rs('web2', { nodeName: 'web2' })], nodes });

  it('the director programs the service with both realservers at their node InternalIPs', () => {
    const d = p.nodes.get('director')!;
    expect(d.director).toHaveLength(1);
    expect(d.director[0]).toMatchObject({
      id: 'lab/web', generation: 3, vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting', holdVip: true,
      healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 },
      destinations: [
        { realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1 },
        { realServer: 'lab/web2', address: '192.168.56.38', port: 80, weight: 1 },
      ],
    });
    // Zero thresholds are left out of the plan (absent means 0).
    expect(d.director[0]!.destinations.some((x) => 'upperThreshold' in x || 'lowerThreshold' in x)).toBe(false);
    expect(d.realServer).toEqual([]);
  });

  it('plans connection thresholds a RealServer sets', () => {
    const t = plan({ virtualServices: [vs('web', {})], realServers: [rs('web1', { nodeName: 'web1', upperThreshold: 100, lowerThreshold: 10 }), rs('web2', { nodeName: 'web2', upperThreshold: 50 })], nodes });
    expect(t.nodes.get('director')!.director[0]!.destinations.map((x) => [x.upperThreshold, x.lowerThreshold])).toEqual([[100, 10], [50, undefined]]);
  });

  it('web1 and web2 are prepared as DR realservers (VIP on lo)', () => {
    expect(p.nodes.get('web1')).toEqual({ node: 'web1', director: [], realServer: [{ service: 'lab/web', vip: '192.168.56.40', forwarding: 'DirectRouting' }] });
    expect(p.nodes.get('web2')!.realServer).toHaveLength(1);
  });

  it('reports outcomes for status', () => {
    expect(p.services.get('lab/web')).toMatchObject({ directors: ['director'], activeDirector: 'director', skipped: [] });
    expect(p.services.get('lab/web')!.rejected).toBeUndefined();
    expect(p.realServers.get('lab/web1')).toEqual({ id: 'lab/web1', address: '192.168.56.37', selectedBy: ['lab/web'], problems: [] });
  });

  it('is deterministic', () => {
    const again = plan({ virtualServices: [vs('web', {})], realServers: [rs('web2', { nodeName: 'web2' }), rs('web1', { nodeName: 'web1' })], nodes: [...nodes].reverse() });
    expect(JSON.stringify([...again.nodes])).toBe(JSON.stringify([...p.nodes]));
  });
});

describe('planner: realserver preparation gates the weight (reports from the realserver agents)', () => {
  const objects = { virtualServices: [vs('web', {}), vs('nat', { vip: '192.168.56.41', forwarding: 'NAT' })], realServers: [rs('web1', { nodeName: 'web1', weight: 3 }), rs('web2', { nodeName: 'web2' }), rs('ext', { address: '192.168.56.50' })], nodes };
  const weights = (p: ReturnType<typeof plan>, id: string): Record<string, number> =>
    Object.fromEntries(p.nodes.get('director')!.director.find((s) => s.id === id)!.destinations.map((d) => [d.realServer, d.weight]));

  it('a DR realserver whose node has not reported the VIP prepared is planned at weight 0, and at its weight once it has', () => {
    const asked: string[] = [];
    const p = plan({ ...objects, prepared: (n, service, vip) => (asked.push(`${n} ${service} ${vip}`), n === 'web2') });
    expect(weights(p, 'lab/web')).toEqual({ 'lab/web1': 0, 'lab/web2': 1, 'lab/ext': 1 });
    expect(p.services.get('lab/web')!.unprepared).toEqual(['lab/web1']);
    // Preparation is still planned for web1 (its agent must bind the VIP), and only node-backed DR/Tunnel realservers are asked about.
    expect(p.nodes.get('web1')!.realServer).toEqual([{ service: 'lab/web', vip: '192.168.56.40', forwarding: 'DirectRouting' }]);
    expect(asked.sort()).toEqual(['web1 lab/web 192.168.56.40', 'web2 lab/web 192.168.56.40']);
    const ready = plan({ ...objects, prepared: () => true });
    expect(weights(ready, 'lab/web')).toEqual({ 'lab/web1': 3, 'lab/web2': 1, 'lab/ext': 1 });
    expect(ready.services.get('lab/web')!.unprepared).toBeUndefined();
  });

  it('NAT realservers need no preparation, and without reports (standalone) every realserver gets its weight', () => {
    const p = plan({ ...objects, prepared: () => false });
    expect(weights(p, 'lab/nat')).toEqual({ 'lab/web1': 3, 'lab/web2': 1, 'lab/ext': 1 });
    expect(weights(plan(objects), 'lab/web')).toEqual({ 'lab/web1': 3, 'lab/web2': 1, 'lab/ext': 1 });
  });
});

describe('planner: rules', () => {
  it('NAT needs no realserver preparation and may map ports', () => {
    const p = plan({ virtualServices: [vs('nat', { forwarding: 'NAT' })], realServers: [rs('a', { nodeName: 'web1', port: 8080 })], nodes });
    expect(p.nodes.get('web1')!.realServer).toEqual([]);
    expect(p.nodes.get('director')!.director[0]!.destinations[0]).toMatchObject({ address: '192.168.56.37', port: 8080 });
  });

  it('DirectRouting refuses a different realserver port, naming both ports', () => {
    const p = plan({ virtualServices: [vs('web', {})], realServers: [rs('a', { address: '10.0.0.1', port: 8080 }), rs('b', { address: '10.0.0.2' })], nodes });
    expect(p.services.get('lab/web')!.skipped).toEqual([{ realServer: 'lab/a', reason: 'PortMismatch', message: 'DirectRouting cannot change the port: realserver port 8080, service port 80' }]);
    expect(p.services.get('lab/web')!.destinations.map((d) => d.address)).toEqual(['10.0.0.2']);
    expect(p.realServers.get('lab/a')!.problems[0]!.reason).toBe('PortMismatch');
  });

  it('a VIP:port:protocol claimed twice: the older wins, the other is rejected with VIPConflict', () => {
    const older = vs('old', {}, { creationTimestamp: '2025-01-01T00:00:00Z' });
    const newer = vs('new', { vip: '192.168.56.40' }, { namespace: 'other', creationTimestamp: '2026-05-01T00:00:00Z' });
    const p = plan({ virtualServices: [newer, older], realServers: [], nodes });
    expect(p.services.get('lab/old')!.rejected).toBeUndefined();
    expect(p.services.get('other/new')!.rejected).toEqual({ reason: 'VIPConflict', message: '192.168.56.40:80/TCP is already served by VirtualService lab/old, which is older' });
    expect(p.nodes.get('director')!.director.map((s) => s.id)).toEqual(['lab/old']);
  });

  it('the same VIP with another port or protocol is no conflict; IPv6 spellings are compared canonically', () => {
    const p = plan({
      virtualServices: [vs('a', {}), vs('b', { port: 443 }), vs('c', { protocol: 'UDP' }), vs('d', { vip: '2001:db8::1' }), vs('e', { vip: '2001:0db8:0::1' })],
      realServers: [], nodes,
    });
    expect([...p.services.values()].filter((o) => o.rejected).map((o) => o.id)).toEqual(['lab/e']);
    expect(canonicalIP('2001:db8::1')).toBe(canonicalIP('2001:0db8:0:0:0:0:0:1'));
  });

  it('selects only RealServers of the same namespace matching the selector', () => {
    const p = plan({
      virtualServices: [vs('web', {})],
      realServers: [rs('a', { address: '10.0.0.1' }), rs('b', { address: '10.0.0.2' }, { app: 'db' }), rs('c', { address: '10.0.0.3' }, { app: 'web' }, 'elsewhere')],
      nodes,
    });
    expect(p.services.get('lab/web')!.destinations.map((d) => d.realServer)).toEqual(['lab/a']);
    expect(p.realServers.get('elsewhere/c')!.selectedBy).toEqual([]);
  });

  it('a missing node or a family mismatch skips the realserver with a reason', () => {
    const p = plan({ virtualServices: [vs('web', {})], realServers: [rs('a', { nodeName: 'ghost' }), rs('b', { address: '2001:db8::5' })], nodes });
    expect(p.services.get('lab/web')!.skipped.map((s) => s.reason)).toEqual(['NodeNotFound', 'AddressFamilyMismatch']);
  });

  it('Tunnel prepares realserver nodes and may mix families', () => {
    const dual = [...nodes.slice(0, 1), { name: 'web1', addresses: [{ type: 'InternalIP', address: '2001:db8::37' }] }];
    const p = plan({ virtualServices: [vs('t', { forwarding: 'Tunnel' })], realServers: [rs('a', { nodeName: 'web1' })], nodes: dual });
    expect(p.nodes.get('web1')!.realServer).toEqual([{ service: 'lab/t', vip: '192.168.56.40', forwarding: 'Tunnel' }]);
    expect(p.services.get('lab/t')!.destinations[0]!.address).toBe('2001:db8::37');
  });

  it('duplicate address:port through two RealServers is programmed once', () => {
    const p = plan({ virtualServices: [vs('web', {})], realServers: [rs('a', { address: '10.0.0.1' }), rs('b', { address: '10.0.0.1' })], nodes });
    expect(p.services.get('lab/web')!.destinations).toHaveLength(1);
    expect(p.services.get('lab/web')!.skipped[0]!.reason).toBe('DuplicateRealServer');
  });

  it('several directors: all program the table, exactly one holds the VIP; per-service director selectors', () => {
    const many = [...nodes, node('director2', '192.168.56.35', { 'lvs.operator.dev/director': 'true' }), node('edge', '192.168.56.36', { role: 'edge' })];
    const p = plan({ virtualServices: [vs('a', {}), vs('b', { vip: '192.168.56.41', directors: { nodeSelector: { role: 'edge' }, interface: 'eth1' } })], realServers: [], nodes: many });
    const holders = ['director', 'director2'].filter((n) => p.nodes.get(n)!.director.find((s) => s.id === 'lab/a')?.holdVip);
    expect(holders).toHaveLength(1);
    expect(p.nodes.get('director')!.director.find((s) => s.id === 'lab/a')).toBeDefined();
    expect(p.nodes.get('director2')!.director.find((s) => s.id === 'lab/a')).toBeDefined();
    expect(p.nodes.get('edge')!.director).toEqual([expect.objectContaining({ id: 'lab/b', interface: 'eth1', holdVip: true })]);
    expect(p.services.get('lab/a')!.activeDirector).toBe(holders[0]);
    // Each of the two directors of lab/a knows it has a standby (its VIP gets a kernel lifetime); edge has none.
    for (const n of ['director', 'director2']) expect(p.nodes.get(n)!.director.find((s) => s.id === 'lab/a')!.standbyDirectors).toBe(1);
    expect(p.nodes.get('edge')!.director[0]!.standbyDirectors).toBeUndefined();
  });

  it('deleted objects are planned away', () => {
    const p = plan({ virtualServices: [vs('web', {}, { deletionTimestamp: '2026-01-02T00:00:00Z' })], realServers: [rs('web1', { nodeName: 'web1' })], nodes });
    expect(p.nodes.get('director')!.director).toEqual([]);
    expect(p.nodes.get('web1')!.realServer).toEqual([]);
    expect(p.services.has('lab/web')).toBe(false);
  });

  it('persistence, flags and defaults carry over', () => {
    const p = plan({ virtualServices: [vs('p', { scheduler: 'sh', schedulerFlags: ['sh-port', 'sh-fallback'], persistence: { timeoutSeconds: 600, netmask: '255.255.255.0' } })], realServers: [], nodes });
    expect(p.nodes.get('director')!.director[0]).toMatchObject({ schedulerFlags: ['sh-fallback', 'sh-port'], persistence: { timeoutSeconds: 600, netmask: '255.255.255.0' }, drainTimeoutSeconds: 60 });
  });

  it('rankDirectors spreads VIPs and is stable', () => {
    expect(rankDirectors(['a', 'b', 'c'], '10.0.0.1')).toEqual(rankDirectors(['c', 'b', 'a'], '10.0.0.1'));
    const firsts = new Set(Array.from({ length: 50 }, (_, i) => rankDirectors(['a', 'b', 'c'], `10.0.0.${i}`)[0]));
    expect(firsts.size).toBe(3);
  });
});

describe('label selectors', () => {
  it.each([
    [{}, { a: '1' }, true],
    [{ matchLabels: { a: '1' } }, { a: '1', b: '2' }, true],
    [{ matchLabels: { a: '1' } }, { a: '2' }, false],
    [{ matchExpressions: [{ key: 'a', operator: 'In' as const, values: ['1', '2'] }] }, { a: '2' }, true],
    [{ matchExpressions: [{ key: 'a', operator: 'NotIn' as const, values: ['1'] }] }, {}, true],
    [{ matchExpressions: [{ key: 'a', operator: 'Exists' as const }] }, {}, false],
    [{ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' as const }] }, { b: '1' }, true],
  ])('%j on %j = %s', (sel, labels, ok) => expect(matchesSelector(sel, labels)).toBe(ok));
});
