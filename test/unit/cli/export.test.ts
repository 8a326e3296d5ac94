// kubectl lvs export: the rules a director is meant to hold, from manifests (the controller's planner run
// here) or from NodePlan objects (what the controller wrote for each node).
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { admissionFromStatus, canonicalRules, planObjects, rulesOf, servicesOfNodePlans, servicesOfPlan } from '../../../src/cli/export.ts';
import { plan, type NodeInfo } from '../../../src/model/planner.ts';
import { shardPlan } from '../../../src/model/shards.ts';
import type { NodePlan, PlannedService, RealServer, VIPPool, VirtualService } from '../../../src/api/v1alpha1/index.ts';
import { cli, fixture, ROOT } from './fixtures.ts';

const example = (name: string): string => join(ROOT, 'deploy', 'examples', name);
const nodeDoc = (name: string, ip: string, labels: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
const tmpFile = (name: string, text: string): string => {
  const f = join(mkdtempSync(join(tmpdir(), 'lvs-cli-')), name);
  writeFileSync(f, text);
  return f;
};

const vs = (name: string, spec: Partial<VirtualService['spec']>, namespace = 'lab'): VirtualService => ({
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', metadata: { name, namespace, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { vip: '10.0.0.1', port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'NAT', realServerSelector: { matchLabels: { app: name } }, ...spec },
});
const rs = (name: string, app: string, spec: Partial<RealServer['spec']>, namespace = 'lab'): RealServer => ({
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name, namespace, labels: { app } }, spec: { weight: 1, ...spec },
});
const node = (name: string, ip: string, labels: Record<string, string>): NodeInfo => ({ name, labels, addresses: [{ type: 'InternalIP', address: ip }] });

describe('export -f (offline, the planner on manifests)', () => {
  it('the DR lab example with its Nodes exports exactly the DR lab rules of the primer', async () => {
    const nodes = tmpFile('nodes.yaml', [
      nodeDoc('director', '192.168.56.34', { 'lvs.operator.dev/director': 'true' }), nodeDoc('web1', '192.168.56.37'), nodeDoc('web2', '192.168.56.38'),
    ].map((n) => toYaml(n)).join('---\n'));
    const r = await cli(['export', '-f', example('dr-lab.yaml'), '-f', nodes]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe('-A -t 192.168.56.40:80 -s rr\n-a -t 192.168.56.40:80 -r 192.168.56.37:80 -g -w 1\n-a -t 192.168.56.40:80 -r 192.168.56.38:80 -g -w 1\n');
    expect(canonicalRules(r.stdout).lines).toEqual(canonicalRules(fixture('dr-lab.rules')).lines);
    // A node that directs nothing holds no rules.
    expect(await cli(['export', '--node', 'web1', '-f', example('dr-lab.yaml'), '-f', nodes])).toMatchObject({ code: 0, stdout: '' });
  });

  it('the NAT lab example (addresses, no Nodes needed) exports the NAT lab rules', async () => {
    const r = await cli(['export', '-f', example('nat-lab.yaml')]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(canonicalRules(r.stdout).lines).toEqual(canonicalRules(fixture('nat-lab.rules')).lines);
  });

  it('says on stderr which realservers the plan leaves out (node names without Node objects)', async () => {
    const r = await cli(['export', '-f', example('dr-lab.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('-A -t 192.168.56.40:80 -s rr\n');
    expect(r.stderr).toContain('warning: RealServer default/web1: left out of default/web: NodeNotFound: node web1 does not exist');
  });

  it('reports invalid documents with file and document number and exports the valid ones', async () => {
    const bad = tmpFile('bad.yaml', `${toYaml(vs('ok', {}))}---\n${toYaml(vs('bad', { port: 0 }))}`);
    const r = await cli(['export', '-f', bad]);
    expect(r.stderr).toContain(`${bad}: document 2: VirtualService "bad" is invalid: spec.port: Invalid value: 0`);
    expect(r.stdout).toBe('-A -t 10.0.0.1:80 -s rr\n');
  });

  it('writes thresholds (-x/-y), which ipvsadm -R reads, and sorts addresses numerically', () => {
    const p = planObjects({
      virtualServices: [vs('web', {})],
      realServers: [rs('a', 'web', { address: '10.0.1.10', upperThreshold: 100, lowerThreshold: 60 }), rs('b', 'web', { address: '10.0.1.9', port: 8080, weight: 3 })],
      nodes: [],
    });
    expect(rulesOf(servicesOfPlan(p.plan, p.node))).toEqual([
      '-A -t 10.0.0.1:80 -s rr',
      '-a -t 10.0.0.1:80 -r 10.0.1.9:8080 -m -w 3',
      '-a -t 10.0.0.1:80 -r 10.0.1.10:80 -m -w 1 -x 100 -y 60',
    ]);
  });
});

describe('export from NodePlans (what the controller wrote for each node)', () => {
  const nodes = [
    node('d1', '10.9.0.1', { 'lvs.operator.dev/director': 'true', edge: 'a' }),
    node('d2', '10.9.0.2', { 'lvs.operator.dev/director': 'true', edge: 'b' }),
  ];
  const input = {
    virtualServices: [vs('web', {}), vs('dns', { vip: '10.0.0.53', port: 53, protocol: 'UDP', directors: { nodeSelector: { edge: 'b' } } })],
    realServers: [rs('w1', 'web', { address: '10.0.1.1' }), rs('n1', 'dns', { address: '10.0.2.1', weight: 7 })],
    nodes,
  };
  const p = plan(input);
  const objects: NodePlan[] = [...p.nodes.values()].flatMap((n) => shardPlan(n));

  it('gives the same rules as the planner, per node and for all nodes', () => {
    expect(rulesOf(servicesOfNodePlans(objects, 'd1'))).toEqual(['-A -t 10.0.0.1:80 -s rr', '-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1']);
    expect(rulesOf(servicesOfNodePlans(objects, 'd2'))).toEqual(rulesOf(p.nodes.get('d2')!.director));
    expect(rulesOf(servicesOfNodePlans(objects, 'd2'))).toEqual([
      '-A -t 10.0.0.1:80 -s rr', '-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1',
      '-A -u 10.0.0.53:53 -s rr', '-a -u 10.0.0.53:53 -r 10.0.2.1:53 -m -w 7',
    ]);
    expect(rulesOf(servicesOfNodePlans(objects))).toEqual(rulesOf(servicesOfPlan(p)));
  });

  it('reads NodePlans from a file (kubectl get lvsnp -o yaml) and keeps the newest generation of a service', async () => {
    const older = structuredClone(objects.find((o) => o.spec.node === 'd1')!);
    const svc = older.spec.director[0] as PlannedService;
    svc.generation = 0;
    svc.scheduler = 'wlc';
    const list = { apiVersion: 'v1', kind: 'List', items: [older, ...objects.filter((o) => o.spec.node === 'd2')] };
    const f = tmpFile('plans.yaml', toYaml(list));
    const all = await cli(['export', '-f', f]);
    expect(all).toMatchObject({ code: 0, stderr: '' });
    expect(all.stdout).toContain('-A -t 10.0.0.1:80 -s rr\n');
    expect((await cli(['export', '--node', 'd1', '-f', f])).stdout).toBe('-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1\n');
  });
});

describe('export --source objects: VIP admission as the controller decided it (status), not recomputed', () => {
  const accepted = (v: VirtualService, status: 'True' | 'False', reason: string, message = '', extra: Partial<NonNullable<VirtualService['status']>> = {}, observedGeneration = 1): VirtualService => ({
    ...v,
    status: { ...extra, conditions: [{ type: 'Accepted', status, reason, message, observedGeneration, lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  });
  const dirs = [node('d1', '10.9.0.1', { 'lvs.operator.dev/director': 'true', edge: 'a' }), node('d2', '10.9.0.2', { 'lvs.operator.dev/director': 'true', edge: 'b' })];
  const pool: VIPPool = { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VIPPool', metadata: { name: 'edge-a' }, spec: { addresses: ['10.0.0.0/24'], namespaceSelector: {}, autoAssign: false, directors: { nodeSelector: { edge: 'a' } } } };
  const servers = [rs('w1', 'ok', { address: '10.0.1.10' }), rs('w2', 'refused', { address: '10.0.1.11' }), rs('w3', 'pending', { address: '10.0.1.12' }), rs('w4', 'alloc', { address: '10.0.1.13' })];

  it('exports admitted services (allocated VIPs from status.vip, the pool narrowing the directors) and leaves out refused and undecided ones', () => {
    const objects = [
      accepted(vs('ok', { vip: '10.0.0.1' }), 'True', 'Accepted', '', { vip: '10.0.0.1', vipPool: 'edge-a' }),
      accepted(vs('refused', { vip: '10.0.0.2' }), 'False', 'VIPNotAllowed', 'VIP 10.0.0.2 is not allowed in namespace lab: no VIPPool selects the namespace'),
      vs('pending', { vip: '10.0.0.3' }),
      // Its VIP moved after the controller's last decision: that decision was about 10.0.0.9.
      accepted({ ...vs('moved', { vip: '10.0.0.4' }), metadata: { name: 'moved', namespace: 'lab', generation: 2 } }, 'True', 'Accepted', '', { vip: '10.0.0.9', vipPool: 'edge-a' }),
      // A newer generation that kept its VIP (a director selector, a weight): the verdict still holds.
      accepted({ ...vs('ok2', { vip: '10.0.0.5' }), metadata: { name: 'ok2', namespace: 'lab', generation: 3 } }, 'True', 'Accepted', '', { vip: '10.0.0.5', vipPool: 'edge-a' }),
      accepted(vs('alloc', { vip: undefined }), 'True', 'Accepted', '', { vip: '10.0.0.7', vipPool: 'edge-a' }),
    ];
    const admitted = admissionFromStatus(objects, [pool]);
    expect(admitted.decisions.get('lab/refused')).toEqual({ ok: false, reason: 'VIPNotAllowed', message: 'VIP 10.0.0.2 is not allowed in namespace lab: no VIPPool selects the namespace' });
    expect(admitted.decisions.get('lab/pending')).toMatchObject({ ok: false, reason: 'Pending', message: expect.stringContaining('no Accepted condition') });
    expect(admitted.decisions.get('lab/moved')).toMatchObject({ ok: false, reason: 'Pending', message: 'spec.vip 10.0.0.4 is newer than the controller\'s last decision (generation 1)' });
    expect(admitted.decisions.get('lab/ok2')).toMatchObject({ ok: true, vip: '10.0.0.5' });
    expect(admitted.decisions.get('lab/alloc')).toMatchObject({ ok: true, vip: '10.0.0.7', pool: 'edge-a', allocated: true });

    const p = planObjects({ virtualServices: objects, realServers: servers, nodes: dirs }, { admitted });
    expect(rulesOf(servicesOfPlan(p.plan))).toEqual([
      '-A -t 10.0.0.1:80 -s rr',
      '-a -t 10.0.0.1:80 -r 10.0.1.10:80 -m -w 1',
      '-A -t 10.0.0.5:80 -s rr',
      '-A -t 10.0.0.7:80 -s rr',
      '-a -t 10.0.0.7:80 -r 10.0.1.13:80 -m -w 1',
    ]);
    // The pool sends its VIPs to edge a only.
    expect(servicesOfPlan(p.plan, 'd2')).toEqual([]);
    expect(p.warnings.map((w) => `${w.object}: ${w.message}`)).toEqual(expect.arrayContaining([
      'VirtualService lab/refused: VIPNotAllowed: VIP 10.0.0.2 is not allowed in namespace lab: no VIPPool selects the namespace',
      'VirtualService lab/pending: Pending: no Accepted condition: the controller has not admitted its VIP (is it running?)',
    ]));
  });

  it('a service refused for a reason that is not admission (VIPConflict) keeps its admitted VIP, and the planner decides the conflict itself', () => {
    const older = accepted({ ...vs('ok', { vip: '10.0.0.1' }), metadata: { name: 'ok', namespace: 'lab', generation: 1, creationTimestamp: '2025-01-01T00:00:00Z' } }, 'True', 'Accepted', '', { vip: '10.0.0.1', vipPool: 'edge-a' });
    const newer = accepted(vs('refused', { vip: '10.0.0.1' }), 'False', 'VIPConflict', 'VIP 10.0.0.1:80/TCP is claimed by the older VirtualService lab/ok', { vip: '10.0.0.1', vipPool: 'edge-a' });
    const admitted = admissionFromStatus([older, newer], [pool]);
    expect(admitted.decisions.get('lab/refused')).toMatchObject({ ok: true, vip: '10.0.0.1' });
    const p = planObjects({ virtualServices: [older, newer], realServers: servers, nodes: dirs }, { admitted });
    expect(p.plan.services.get('lab/refused')?.rejected?.reason).toBe('VIPConflict');
    expect(rulesOf(servicesOfPlan(p.plan))).toEqual(['-A -t 10.0.0.1:80 -s rr', '-a -t 10.0.0.1:80 -r 10.0.1.10:80 -m -w 1']);
  });
});
