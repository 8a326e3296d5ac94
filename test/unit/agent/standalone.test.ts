// lvs-agent --config DIR: the documents it serves, the ones it reports, and the plan of one node.
import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfigDir, planStandalone } from '../../../src/agent/standalone.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

function configDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvs-standalone-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

describe('loadConfigDir', () => {
  it('serves the DR lab example with its Nodes and plans the director and both realservers', () => {
    const dir = configDir({
      '10-lab.yaml': fs.readFileSync(path.join(ROOT, 'deploy/examples/dr-lab.yaml'), 'utf8'),
      '20-nodes.yaml': ['director:192.168.56.34:true', 'web1:192.168.56.37:', 'web2:192.168.56.38:'].map((n) => {
        const [name, ip, director] = n.split(':');
        return `apiVersion: v1\nkind: Node\nmetadata:\n  name: ${name}\n  labels: {${director ? '"lvs.operator.dev/director": "true"' : ''}}\nstatus:\n  addresses: [{ type: InternalIP, address: ${ip} }]\n`;
      }).join('---\n'),
      'README.txt': 'not read',
    });
    const config = loadConfigDir(dir);
    expect(config.problems).toEqual([]);
    expect(config.virtualServices.map((v) => `${v.metadata.namespace}/${v.metadata.name}`)).toEqual(['default/web']);
    expect(config.realServers).toHaveLength(2);
    expect(config.nodes.map((n) => n.name)).toEqual(['director', 'web1', 'web2']);
    const director = planStandalone(config, { node: 'director' }).nodePlan;
    expect(director.director.map((s) => [s.vip, s.destinations.map((d) => d.address)])).toEqual([['192.168.56.40', ['192.168.56.37', '192.168.56.38']]]);
    const web1 = planStandalone(config, { node: 'web1' }).nodePlan;
    expect(web1.director).toEqual([]);
    expect(web1.realServer.map((r) => r.vip)).toEqual(['192.168.56.40']);
  });

  it('reports bad documents with file and document number, a VIPPool and unknown kinds as ignored, and serves the rest', () => {
    const dir = configDir({
      'a.yaml': [
        'apiVersion: lvs.operator.dev/v1alpha1\nkind: VirtualService\nmetadata: { name: ok }\nspec: { vip: 10.0.0.1, port: 80, realServerSelector: { matchLabels: { app: ok } } }',
        'apiVersion: lvs.operator.dev/v1alpha1\nkind: VirtualService\nmetadata: { name: bad }\nspec: { vip: 10.0.0.2, port: 0, realServerSelector: {} }',
        'apiVersion: lvs.operator.dev/v1alpha1\nkind: VIPPool\nmetadata: { name: lab }\nspec: { addresses: [10.0.0.0/24] }',
        'apiVersion: v1\nkind: Namespace\nmetadata: { name: lab }',
        'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }',
      ].join('\n---\n'),
      'b.yml': 'key: [unclosed',
      'c.yaml': 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: lvs.operator.dev/v1alpha1\n  kind: RealServer\n  metadata: { name: r1, labels: { app: ok } }\n  spec: { address: 10.0.1.1 }\n',
    });
    const config = loadConfigDir(dir);
    expect(config.virtualServices.map((v) => v.metadata.name)).toEqual(['ok']);
    // Defaults are filled in as the API server would (namespace, protocol, weight).
    expect(config.virtualServices[0]).toMatchObject({ metadata: { namespace: 'default' }, spec: { protocol: 'TCP' } });
    expect(config.realServers.map((r) => [r.metadata.name, r.spec.weight])).toEqual([['r1', 1]]);
    expect(config.problems.map((p) => `${p.file}#${p.document}: ${p.message}`)).toEqual([
      expect.stringMatching(/^a\.yaml#2: VirtualService "bad" is invalid: spec\.port: Invalid value: 0/),
      'a.yaml#3: VIPPool ignored: the standalone agent has no VIP pools, it serves every spec.vip of its configuration',
      'a.yaml#5: kind ConfigMap (v1) ignored: lvs-agent --config reads VirtualService, RealServer and Node',
      expect.stringMatching(/^b\.yml#1: YAML: /),
    ]);
    expect(planStandalone(config, { node: 'lb', director: true }).nodePlan.director.map((s) => s.destinations.map((d) => d.address))).toEqual([['10.0.1.1']]);
  });

  it('names the directory it cannot read', () => {
    expect(() => loadConfigDir('/nonexistent/lvs')).toThrow(/^cannot read config directory \/nonexistent\/lvs: ENOENT/);
  });
});
