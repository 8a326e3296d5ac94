// kubectl lvs import: ipvsadm rules to VirtualService/RealServer manifests.
import { describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { importRules, SERVICE_LABEL } from '../../../src/cli/import.ts';
import { validateObject, type KubeObject } from '../../../src/api/validate.ts';
import { matchesSelector } from '../../../src/model/selector.ts';
import type { RealServer, VirtualService } from '../../../src/api/v1alpha1/index.ts';
import { cli, fixture, fixturePath, RULE_FIXTURES } from './fixtures.ts';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const docs = (yaml: string): KubeObject[] => parseAllDocuments(yaml).map((d) => d.toJS() as KubeObject).filter(Boolean);
const byKind = <T>(objs: KubeObject[], kind: string): T[] => objs.filter((o) => o.kind === kind) as unknown as T[];

describe('import: the classic labs', () => {
  it('turns the DR lab (ipvsadm -Sn of the primer) into one VirtualService and two RealServers', async () => {
    const r = await cli(['import', fixturePath('dr-lab.rules')]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const objs = docs(r.stdout);
    expect(objs.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'VirtualService/tcp-192-168-56-40-80',
      'RealServer/tcp-192-168-56-40-80-192-168-56-37-80',
      'RealServer/tcp-192-168-56-40-80-192-168-56-38-80',
    ]);
    const [vs] = byKind<VirtualService>(objs, 'VirtualService');
    expect(vs!.spec).toEqual({
      vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting',
      realServerSelector: { matchLabels: { [SERVICE_LABEL]: 'tcp-192-168-56-40-80' } },
      healthCheck: { type: 'None' },
    });
    expect(byKind<RealServer>(objs, 'RealServer').map((rs) => rs.spec)).toEqual([{ address: '192.168.56.37', weight: 1 }, { address: '192.168.56.38', weight: 1 }]);
    // The YAML says where each object comes from.
    expect(r.stdout).toContain('# line 2: -a -t 192.168.56.40:80 -r 192.168.56.37:80 -g -w 1');
  });

  it('turns the NAT lab into a NAT VirtualService whose selector picks exactly its RealServers', async () => {
    const r = await cli(['import', '-', '--namespace', 'lab'], fixture('nat-lab.rules'));
    expect(r.code).toBe(0);
    const objs = docs(r.stdout);
    const [vs] = byKind<VirtualService>(objs, 'VirtualService');
    expect(vs).toMatchObject({ metadata: { name: 'tcp-192-168-56-34-80', namespace: 'lab' }, spec: { vip: '192.168.56.34', forwarding: 'NAT', scheduler: 'rr' } });
    const rss = byKind<RealServer>(objs, 'RealServer');
    expect(rss.map((rs) => rs.spec.address)).toEqual(['192.168.142.137', '192.168.142.138']);
    for (const rs of rss) expect(matchesSelector(vs!.spec.realServerSelector, rs.metadata.labels)).toBe(true);
  });
});

describe('import: every fixture', () => {
  it.each(RULE_FIXTURES)('%s.rules: valid manifests with stable DNS-1123 names', (name) => {
    const result = importRules(fixture(`${name}.rules`));
    expect(result.issues.filter((i) => i.kind === 'error')).toEqual([]);
    const names = new Set<string>();
    for (const { object } of result.objects) {
      // The objects pass the same schema and CEL validation as the API server's.
      expect(() => validateObject(object as unknown as KubeObject)).not.toThrow();
      const n = object.metadata.name ?? '';
      expect(n).toMatch(DNS_SUBDOMAIN);
      expect(n.length).toBeLessThanOrEqual(253);
      if (object.kind === 'VirtualService') expect(n.length).toBeLessThanOrEqual(63); // also a label value
      expect(names.has(`${object.kind}/${n}`)).toBe(false);
      names.add(`${object.kind}/${n}`);
    }
    // Stable: the same services in another order give the same names.
    const blocks = fixture(`${name}.rules`).split(/\n(?=-A )/).reverse();
    const again = importRules(blocks.map((b) => b.trimEnd()).join('\n'));
    const key = (r: ReturnType<typeof importRules>) => r.objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`).sort();
    if (!['restore-script'].includes(name)) expect(key(again)).toEqual(key(result));
  });

  it('maps persistence, netmasks, hash flags, one-packet scheduling, tunnels and thresholds', () => {
    const spec = (name: string, vsName: string) => importRules(fixture(name)).objects.find((o) => o.object.metadata.name === vsName)!.object.spec;
    expect(spec('persistence.rules', 'tcp-192-168-56-41-443')).toMatchObject({ scheduler: 'wlc', persistence: { timeoutSeconds: 600, netmask: '255.255.255.0' } });
    expect(spec('persistence.rules', 'tcp-2001-db8-56--41-443')).toMatchObject({ vip: '2001:db8:56::41', persistence: { timeoutSeconds: 120, netmask: '64' } });
    expect(spec('persistence.rules', 'tcp-192-168-56-42-80')).toMatchObject({ forwarding: 'NAT', persistence: { timeoutSeconds: 360 } });
    expect(spec('hash-schedulers.rules', 'tcp-192-168-56-43-80')).toMatchObject({ scheduler: 'sh', schedulerFlags: ['sh-fallback', 'sh-port'] });
    expect(spec('hash-schedulers.rules', 'sctp-192-168-56-43-3868')).toMatchObject({ protocol: 'SCTP', scheduler: 'mh', schedulerFlags: ['mh-port'] });
    expect(spec('ipv6.rules', 'udp-2001-db8-56--53-53')).toMatchObject({ protocol: 'UDP', onePacket: true, forwarding: 'NAT' });
    expect(spec('ipv6.rules', 'udp-2001-db8-56--53-53-2001-db8-142--10-5353')).toEqual({ address: '2001:db8:142::10', port: 5353, weight: 1 });
    expect(spec('tunnel.rules', 'tcp-192-168-56-46-80')).toMatchObject({ forwarding: 'Tunnel' });
    expect(spec('tunnel.rules', 'tcp-192-168-56-46-80-2001-db8-20--11-80')).toEqual({ address: '2001:db8:20::11', weight: 1 });
    expect(spec('thresholds.rules', 'tcp-192-168-56-47-80-192-168-142-137-80')).toEqual({ address: '192.168.142.137', weight: 5, upperThreshold: 1000, lowerThreshold: 750 });
    expect(spec('thresholds.rules', 'tcp-192-168-56-47-80-192-168-142-138-8080')).toEqual({ address: '192.168.142.138', port: 8080, weight: 5, upperThreshold: 200 });
    expect(spec('thresholds.rules', 'tcp-192-168-56-47-80-192-168-142-139-80')).toEqual({ address: '192.168.142.139', weight: 0 });
    expect(importRules(fixture('dr-lab.rules'), { healthCheck: 'TCP', prefix: 'legacy-' }).objects[0]!.object).toMatchObject({ metadata: { name: 'legacy-tcp-192-168-56-40-80' }, spec: { healthCheck: { type: 'TCP' } } });
  });
});

describe('import: what the API cannot express', () => {
  it('lists every unsupported line with its number and writes nothing (exit 3)', async () => {
    const r = await cli(['import', fixturePath('unsupported.rules')]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    const reported = [...r.stderr.matchAll(/unsupported\.rules:(\d+): unsupported: (.*)/g)].map((m) => `${m[1]}: ${m[2]}`);
    expect(reported).toEqual([
      "3: -m (NAT) differs from this service's first realserver (-g, DirectRouting): a VirtualService has one forwarding method for all its realservers",
      '6: --tun-type gue is not supported: Tunnel forwarding is IPIP',
      '7: port 0 (every port of the VIP, used with persistence) is not supported: a VirtualService has one port, 1-65535',
      '8: realserver of the service on line 7, which is not imported (not supported)',
      '9: scheduler "none" is not supported (one of rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh)',
      '10: scheduler flags flag-1 are not supported: only sh-fallback/sh-port with sh and mh-fallback/mh-port with mh',
      '12: not a valid RealServer: spec.address: Invalid value: "string": address must be a unicast address (not loopback, link-local, multicast or unspecified)',
      '14: persistence engine --pe sip is not supported',
      '15: realserver of the service on line 14, which is not imported (not supported)',
    ]);
    // Each report quotes the line itself.
    expect(r.stderr).toContain('unsupported.rules:14: unsupported: persistence engine --pe sip is not supported\n    -A -u 192.168.56.50:5060 -s sh -p 30 --pe sip\n');
    expect(r.stderr).toContain('9 line(s) the API cannot express; nothing written');
  });

  it('imports the rest with --skip-unsupported, still listing the lines (exit 0)', async () => {
    const r = await cli(['import', '--skip-unsupported', fixturePath('unsupported.rules')]);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/: unsupported: /g)).toHaveLength(9);
    expect(docs(r.stdout).map((o) => o.metadata?.name)).toEqual([
      'tcp-192-168-56-50-80', 'tcp-192-168-56-50-80-192-168-56-37-80',
      'tcp-192-168-56-50-81', 'tcp-192-168-56-50-81-192-168-56-37-81',
      'tcp-192-168-56-54-80', 'tcp-192-168-56-54-80-192-168-56-38-80',
    ]);
  });

  it('reports firewall-mark services and their realservers', () => {
    const r = importRules(fixture('fwmark.rules'));
    expect(r.issues.map((i) => `${i.line} ${i.kind}`)).toEqual(['3 unsupported', '4 unsupported', '5 unsupported', '6 unsupported', '7 unsupported']);
    expect(r.issues[0]!.message).toContain('firewall-mark services (-f 10) are not supported');
    expect(r.objects.map((o) => o.object.metadata.name)).toEqual(['tcp-192-168-56-40-80', 'tcp-192-168-56-40-80-192-168-56-37-80']);
  });

  it('rejects lines that are not rules with exit 1 and their line numbers, even with --skip-unsupported', async () => {
    const r = await cli(['import', '--skip-unsupported', '-'], '-A -t 192.168.56.40:80 -s rr\n\n-a -t 192.168.56.40:80 -r 192.168.56.37:80 -w heavy\n--set 900 120 300\n');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('<stdin>:3: error: illegal weight "heavy"\n    -a -t 192.168.56.40:80 -r 192.168.56.37:80 -w heavy\n');
    expect(r.stderr).toContain('<stdin>:4: unsupported: ipvsadm --set is not supported');
    expect(r.stderr).toContain('<stdin>: 1 invalid line(s), 1 line(s) the API cannot express; nothing written');
  });

  it('prints a List with -o json and refuses bad flags (exit 2)', async () => {
    const r = await cli(['import', '-o', 'json', fixturePath('dr-lab.rules')]);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { kind: string; items: KubeObject[] };
    expect(list.kind).toBe('List');
    expect(list.items).toHaveLength(3);
    expect(await cli(['import', '--health-check', 'icmp', fixturePath('dr-lab.rules')])).toMatchObject({ code: 2, stderr: expect.stringContaining('--health-check must be one of none, tcp') });
    expect(await cli(['import', '--prefix', 'Bad_', fixturePath('dr-lab.rules')])).toMatchObject({ code: 1, stderr: expect.stringContaining('--prefix "Bad_"') });
    expect(await cli(['import', '--bogus'])).toMatchObject({ code: 2 });
  });
});
