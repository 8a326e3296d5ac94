// kubectl lvs status: from objects (VirtualServices, RealServers, NodePlans with the agents' reports) and
// the agents' connection gauges to ipvsadm -Ln style tables, JSON and YAML.
import { describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { buildStatus, formatStatus, parseConnections } from '../../../src/cli/status.ts';
import { plan, type NodeInfo } from '../../../src/model/planner.ts';
import { shardPlan } from '../../../src/model/shards.ts';
import { createLvsMetrics } from '../../../src/agent/metrics/registry.ts';
import { ZERO_STATS } from '../../../src/ipvs/types.ts';
import { createLogger } from '../../../src/util/log.ts';
import type { NodePlan, RealServer, VirtualService } from '../../../src/api/v1alpha1/index.ts';

const cond = (type: string, status: 'True' | 'False', reason: string, message: string) => ({ type, status, reason, message, lastTransitionTime: '2026-01-01T00:00:00Z' });

const web: VirtualService = {
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService',
  metadata: { name: 'web', namespace: 'lab', generation: 2, creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'sh', schedulerFlags: ['sh-port'], forwarding: 'DirectRouting', persistence: { timeoutSeconds: 300, netmask: '255.255.255.0' }, realServerSelector: { matchLabels: { app: 'web' } } },
  status: { activeDirector: 'd2', realServers: { total: 2, healthy: 1, ready: '1/2' }, conditions: [cond('Accepted', 'True', 'Accepted', 'ok'), cond('Programmed', 'True', 'Programmed', 'programmed on d1, d2'), cond('Ready', 'True', 'Ready', 'held by d2')] },
};
const dns: VirtualService = {
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService',
  metadata: { name: 'dns', namespace: 'lab', generation: 1, creationTimestamp: '2026-01-02T00:00:00Z' },
  spec: { vip: '2001:db8::53', port: 53, protocol: 'UDP', scheduler: 'rr', onePacket: true, forwarding: 'NAT', realServerSelector: { matchLabels: { app: 'dns' } } },
  status: { realServers: { total: 1, healthy: 0, ready: '0/1' }, conditions: [cond('Accepted', 'True', 'Accepted', 'ok'), cond('Programmed', 'False', 'ProgrammingFailed', 'd1: EINVAL'), cond('Ready', 'False', 'Pending', 'not programmed on every director yet')] },
};
const rs = (name: string, app: string, spec: RealServer['spec'], status?: RealServer['status']): RealServer => ({
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name, namespace: 'lab', labels: { app } }, spec, ...(status ? { status } : {}),
});
const realServers = [
  rs('web1', 'web', { nodeName: 'web1', weight: 1 }, { address: '192.168.56.37', virtualServices: [{ virtualService: 'web', healthy: true }] }),
  rs('web2', 'web', { nodeName: 'web2', weight: 2 }, { address: '192.168.56.38', virtualServices: [{ virtualService: 'web', healthy: false }] }),
  rs('ns1', 'dns', { address: '2001:db8::100', port: 5353, weight: 1 }),
];
const node = (name: string, ip: string, labels: Record<string, string> = {}): NodeInfo => ({ name, labels, addresses: [{ type: 'InternalIP', address: ip }] });
const nodes = [node('d1', '192.168.56.34', { 'lvs.operator.dev/director': 'true' }), node('d2', '192.168.56.35', { 'lvs.operator.dev/director': 'true' }), node('web1', '192.168.56.37'), node('web2', '192.168.56.38')];

/** NodePlans as the controller writes them, with the status the agents would report. */
function nodePlans(): NodePlan[] {
  const p = plan({ virtualServices: [web, dns], realServers, nodes });
  const objs = [...p.nodes.values()].flatMap((n) => shardPlan(n));
  for (const o of objs) {
    o.status = {
      services: o.spec.director.map((s) => ({
        id: s.id, generation: s.generation, programmed: s.id !== 'lab/dns' || o.spec.node !== 'd1', holdsVip: o.spec.node === 'd2' && s.id === 'lab/web',
        ...(s.id === 'lab/dns' && o.spec.node === 'd1' ? { errors: ['add service [2001:db8::53]:53/UDP: EINVAL (22)'] } : {}),
        unhealthy: s.destinations.filter((d) => d.address === '192.168.56.38').map((d) => ({ address: d.address, port: d.port })),
      })),
    };
  }
  return objs;
}

/** The text a real agent registry exports for the VIP holder's IPVS table. */
async function agentMetricsText(): Promise<string> {
  const m = createLvsMetrics({
    defaultMetrics: false,
    log: createLogger('test', 'silent'),
    readSnapshot: async () => [{
      virtualService: 'lab/web', protocol: 'tcp', address: '192.168.56.40', port: 80, stats: ZERO_STATS,
      destinations: [
        { address: '192.168.56.37', port: 80, weight: 1, activeConns: 12, inactiveConns: 40, stats: ZERO_STATS },
        { address: '192.168.56.38', port: 80, weight: 0, activeConns: 0, inactiveConns: 3, stats: ZERO_STATS },
      ],
    }],
  });
  return m.registry.metrics();
}

describe('status', () => {
  it('parses the connection gauges of a real agent registry', async () => {
    const t = parseConnections('d2', await agentMetricsText());
    expect([...t.entries()]).toEqual([
      ['d2|lab/web|192.168.56.37|80', { active: 12, inactive: 40 }],
      ['d2|lab/web|192.168.56.38|80', { active: 0, inactive: 3 }],
    ]);
  });

  it('formats one ipvsadm -Ln style table per VirtualService from NodePlans, reports and connections', async () => {
    const services = buildStatus({ virtualServices: [web, dns], realServers, nodePlans: nodePlans(), connections: parseConnections('d2', await agentMetricsText()) });
    expect(formatStatus(services, 'table')).toBe([
      'lab/dns  mode NAT  director <none> (standby: d1, d2)  ready 0/1 (Pending)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health  RealServer',
      'UDP  [2001:db8::53]:53 rr ops',
      '  -> [2001:db8::100]:5353         Masq    1      -          -         healthy ns1',
      '  ! Programmed=False ProgrammingFailed: d1: EINVAL',
      '  ! Ready=False Pending: not programmed on every director yet',
      '  ! d1: add service [2001:db8::53]:53/UDP: EINVAL (22)',
      '',
      'lab/web  mode DirectRouting  director d2 (standby: d1)  ready 1/2 (Ready)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health  RealServer',
      'TCP  192.168.56.40:80 sh (sh-port) persistent 300 mask 255.255.255.0',
      '  -> 192.168.56.37:80             Route   1      12         40        healthy web1',
      '  -> 192.168.56.38:80             Route   2      0          3         failing web2',
      '',
    ].join('\n'));
  });

  it('falls back to RealServer status when NodePlans cannot be read', () => {
    const [, w] = buildStatus({ virtualServices: [web, dns], realServers });
    expect(w).toMatchObject({ source: 'realservers', activeDirector: 'd2', directors: [] });
    expect(w!.realServers).toEqual([
      { realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1, healthy: true },
      { realServer: 'lab/web2', address: '192.168.56.38', port: 80, weight: 2, healthy: false },
    ]);
  });

  it('-o json and -o yaml carry the same data as the table', () => {
    const services = buildStatus({ virtualServices: [web], realServers, nodePlans: nodePlans() });
    const json = JSON.parse(formatStatus(services, 'json')) as { items: unknown[] };
    expect(json.items).toEqual(JSON.parse(JSON.stringify(services)));
    expect(parseYaml(formatStatus(services, 'yaml'))).toEqual(json);
    expect(json.items[0]).toMatchObject({
      namespace: 'lab', name: 'web', vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'sh', schedulerFlags: ['sh-port'], forwarding: 'DirectRouting',
      activeDirector: 'd2', directors: ['d1', 'd2'], ready: '1/2', source: 'nodeplans',
      realServers: [
        { realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1, healthy: true },
        { realServer: 'lab/web2', address: '192.168.56.38', port: 80, weight: 2, healthy: false },
      ],
    });
  });

  it('says so when there is nothing', () => {
    expect(formatStatus([], 'table')).toBe('No VirtualServices found.\n');
    expect(JSON.parse(formatStatus([], 'json'))).toEqual({ items: [] });
  });
});
