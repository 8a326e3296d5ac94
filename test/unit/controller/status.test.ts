import { plan, type NodeInfo } from '../../../src/model/planner.ts';
import { shardPlan } from '../../../src/model/shards.ts';
import { indexReports, virtualServiceStatus, realServerStatus } from '../../../src/controller/status.ts';
import { conditionEvents, mergeConditions, transitions } from '../../../src/model/conditions.ts';
import type { VirtualService, RealServer, NodePlan as NodePlanObject } from '../../../src/api/v1alpha1/index.ts';

const now = new Date('2026-11-25T10:00:00.123Z');
const vs: VirtualService = {
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService',
  metadata: { name: 'web', namespace: 'lab', generation: 2, creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting', realServerSelector: { matchLabels: { app: 'web' } } },
};
const rs = (name: string, nodeName: string): RealServer => ({
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name, namespace: 'lab', generation: 1, labels: { app: 'web' } }, spec: { nodeName, weight: 1 },
});
const nodes: NodeInfo[] = [
  { name: 'director', labels: { 'lvs.operator.dev/director': 'true' }, addresses: [{ type: 'InternalIP', address: '192.168.56.34' }] },
  { name: 'web1', addresses: [{ type: 'InternalIP', address: '192.168.56.37' }] },
  { name: 'web2', addresses: [{ type: 'InternalIP', address: '192.168.56.38' }] },
];
const p = plan({ virtualServices: [vs], realServers: [rs('web1', 'web1'), rs('web2', 'web2')], nodes });
const objects = (): NodePlanObject[] => [...p.nodes.values()].flatMap((n) => shardPlan(n));
const cond = (s: { conditions?: Array<{ type: string; status: string; reason: string }> }, type: string) => s.conditions?.find((c) => c.type === type);

describe('VirtualService status', () => {
  it('before any agent reports: Accepted, Programmed=False Pending, Ready=False', () => {
    const s = virtualServiceStatus(vs, p, indexReports(objects()), now);
    expect(cond(s, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(cond(s, 'Programmed')).toMatchObject({ status: 'False', reason: 'Pending' });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False' });
    expect(s.observedGeneration).toBe(2);
    expect(s.conditions!.every((c) => c.observedGeneration === 2 && c.lastTransitionTime === '2026-11-25T10:00:00Z')).toBe(true);
  });

  it('after the director reports the current generation with health: Programmed, Ready 1/2, active director', () => {
    const objs = objects();
    const d = objs.find((o) => o.spec.node === 'director')!;
    d.status = { services: [{ id: 'lab/web', generation: 2, programmed: true, holdsVip: true, unhealthy: [{ address: '192.168.56.38', port: 80 }] }] };
    const w1 = objs.find((o) => o.spec.node === 'web1')!;
    w1.status = { realServer: [{ service: 'lab/web', vip: '192.168.56.40', prepared: true }] };
    const reports = indexReports(objs);
    const s = virtualServiceStatus(vs, p, reports, now);
    expect(cond(s, 'Programmed')).toMatchObject({ status: 'True', reason: 'Programmed' });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'True', reason: 'Ready' });
    expect(s.realServers).toEqual({ total: 2, healthy: 1, ready: '1/2' });
    expect(s.activeDirector).toBe('director');
    const r1 = realServerStatus(rs('web1', 'web1'), p, reports, now);
    expect(r1.address).toBe('192.168.56.37');
    expect(cond(r1, 'Healthy')).toMatchObject({ status: 'True' });
    expect(cond(r1, 'Prepared')).toMatchObject({ status: 'True' });
    expect(r1.virtualServices).toEqual([{ virtualService: 'web', healthy: true }]);
    const r2 = realServerStatus(rs('web2', 'web2'), p, reports, now);
    expect(cond(r2, 'Healthy')).toMatchObject({ status: 'False', reason: 'HealthCheckFailed' });
    expect(cond(r2, 'Prepared')).toMatchObject({ status: 'False', reason: 'Pending' });
  });

  it('an older generation reported is still Pending; errors make ProgrammingFailed', () => {
    const objs = objects();
    const d = objs.find((o) => o.spec.node === 'director')!;
    d.status = { services: [{ id: 'lab/web', generation: 1, programmed: true, holdsVip: true }] };
    expect(cond(virtualServiceStatus(vs, p, indexReports(objs), now), 'Programmed')).toMatchObject({ status: 'False', reason: 'Pending' });
    d.status = { services: [{ id: 'lab/web', generation: 2, programmed: false, holdsVip: false, errors: ['vip: ENODEV: dev eth9'] }] };
    const s = virtualServiceStatus(vs, p, indexReports(objs), now);
    expect(cond(s, 'Programmed')).toMatchObject({ status: 'False', reason: 'ProgrammingFailed' });
    expect(s.conditions!.find((c) => c.type === 'Programmed')!.message).toContain('director: vip: ENODEV: dev eth9');
  });

  it('after a failover the active director is the most recent holder: a dead holder keeps its last report', () => {
    const two = [...nodes, { name: 'director2', labels: { 'lvs.operator.dev/director': 'true' }, addresses: [{ type: 'InternalIP', address: '192.168.56.35' }] }];
    const p2 = plan({ virtualServices: [vs], realServers: [rs('web1', 'web1')], nodes: two });
    expect(p2.services.get('lab/web')!.directors).toHaveLength(2);
    const objs = [...p2.nodes.values()].flatMap((n) => shardPlan(n));
    const report = (node: string, holdsVip: boolean, vipHeldSince?: string): void => {
      objs.find((o) => o.spec.node === node)!.status = { services: [{ id: 'lab/web', generation: 2, programmed: true, holdsVip, ...(vipHeldSince ? { vipHeldSince } : {}) }] };
    };
    const [first, second] = p2.services.get('lab/web')!.directors as [string, string];
    // Before: the first director holds the VIP.
    report(first, true, '2026-11-25T09:00:00.000Z');
    report(second, false);
    expect(virtualServiceStatus(vs, p2, indexReports(objs), now).activeDirector).toBe(first);
    // The first director's agent died (its report stays), the second took the VIP over later.
    report(second, true, '2026-11-25T09:59:58.500Z');
    expect(virtualServiceStatus(vs, p2, indexReports(objs), now).activeDirector).toBe(second);
    // An agent without vipHeldSince (older version) loses against one that has it.
    report(first, true);
    expect(virtualServiceStatus(vs, p2, indexReports(objs), now).activeDirector).toBe(second);
  });

  it('a VIP conflict: Accepted=False VIPConflict, nothing programmed', () => {
    const twin: VirtualService = { ...vs, metadata: { ...vs.metadata, name: 'twin', creationTimestamp: '2026-06-01T00:00:00Z' } };
    const p2 = plan({ virtualServices: [vs, twin], realServers: [], nodes });
    const s = virtualServiceStatus(twin, p2, indexReports([]), now);
    expect(cond(s, 'Accepted')).toMatchObject({ status: 'False', reason: 'VIPConflict' });
    expect(cond(s, 'Programmed')).toMatchObject({ status: 'False', reason: 'NotAccepted' });
  });
});

describe('conditions', () => {
  it('keep lastTransitionTime while the status holds, keep foreign conditions, report transitions', () => {
    const t1 = new Date('2026-01-01T00:00:00.999Z');
    const a = mergeConditions([{ type: 'example.com/Foreign', status: 'True', reason: 'X', message: '', lastTransitionTime: '2020-01-01T00:00:00Z' }], [{ type: 'Ready', status: 'False', reason: 'Pending', message: 'm' }], 1, t1);
    const b = mergeConditions(a, [{ type: 'Ready', status: 'False', reason: 'Other', message: 'm2' }], 2, new Date('2026-01-02T00:00:00Z'));
    expect(b.find((c) => c.type === 'Ready')).toMatchObject({ lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'Other', observedGeneration: 2 });
    expect(b.find((c) => c.type === 'example.com/Foreign')).toBeDefined();
    expect(transitions(a, b)).toEqual([]);
    const c = mergeConditions(b, [{ type: 'Ready', status: 'True', reason: 'Ready', message: '' }], 2, new Date('2026-01-03T00:00:00Z'));
    expect(transitions(b, c).map((x) => x.type)).toEqual(['Ready']);
  });
  it('make Events of transitions, but none of a condition that first appears as Pending', () => {
    const at = (n: number): Date => new Date(`2026-01-0${n}T00:00:00Z`);
    const created = mergeConditions(undefined, [
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'valid' },
      { type: 'Programmed', status: 'False', reason: 'Pending', message: 'waiting' },
      { type: 'Ready', status: 'False', reason: 'Pending', message: 'not yet' },
    ], 1, at(1));
    expect(conditionEvents(undefined, created)).toEqual([{ type: 'Normal', reason: 'Accepted', note: 'valid' }]);
    const programmed = mergeConditions(created, [
      { type: 'Programmed', status: 'True', reason: 'Programmed', message: 'on d1' },
      { type: 'Ready', status: 'True', reason: 'Ready', message: 'held' },
    ], 1, at(2));
    expect(conditionEvents(created, programmed)).toEqual([
      { type: 'Normal', reason: 'Programmed', note: 'on d1' },
      { type: 'Normal', reason: 'Ready', note: 'held' },
    ]);
    // A new generation: Pending again is a Normal transition; a failure is a Warning; Ready False is Normal.
    const pending = mergeConditions(programmed, [{ type: 'Programmed', status: 'False', reason: 'Pending', message: 'generation 2' }], 2, at(3));
    expect(conditionEvents(programmed, pending)).toEqual([{ type: 'Normal', reason: 'ProgrammedFalse', note: 'generation 2' }]);
    const failed = mergeConditions(programmed, [
      { type: 'Programmed', status: 'False', reason: 'ProgrammingFailed', message: 'EEXIST' },
      { type: 'Ready', status: 'False', reason: 'NoHealthyRealServers', message: 'none' },
    ], 2, at(4));
    expect(conditionEvents(programmed, failed)).toEqual([
      { type: 'Warning', reason: 'ProgrammedFalse', note: 'EEXIST' },
      { type: 'Normal', reason: 'ReadyFalse', note: 'none' },
    ]);
    // Rejected at creation: a Warning right away.
    const rejected = mergeConditions(undefined, [{ type: 'Accepted', status: 'False', reason: 'VIPConflict', message: 'older one wins' }], 1, at(5));
    expect(conditionEvents(undefined, rejected)).toEqual([{ type: 'Warning', reason: 'AcceptedFalse', note: 'older one wins' }]);
  });
});
