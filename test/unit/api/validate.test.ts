import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { validateObject, ValidationError, type KubeObject } from '../../../src/api/validate.ts';
import type { VirtualService, RealServer } from '../../../src/api/v1alpha1/index.ts';
import { malformedCases } from '../../fixtures/malformed.ts';

const EXAMPLES = path.resolve('deploy/examples');

function examples(): Array<{ file: string; doc: KubeObject }> {
  return fs
    .readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((file) =>
      parseAllDocuments(fs.readFileSync(path.join(EXAMPLES, file), 'utf8')).map((d) => ({ file, doc: d.toJS() as KubeObject })),
    );
}

describe('deploy/examples', () => {
  const all = examples();
  it('has the DR and NAT labs', () => {
    const files = new Set(all.map((e) => e.file));
    expect([...files]).toEqual(expect.arrayContaining(['dr-lab.yaml', 'nat-lab.yaml']));
  });

  it.each(all.map((e) => [`${e.file}: ${String(e.doc.kind)}/${String(e.doc.metadata?.name)}`, e.doc] as const))('%s validates', (_n, doc) => {
    expect(() => validateObject(doc)).not.toThrow();
  });

  it('the DR lab is the classic one: 192.168.56.40:80, rr, DirectRouting, web1 and web2', () => {
    const dr = all.filter((e) => e.file === 'dr-lab.yaml').map((e) => e.doc);
    const svc = validateObject<VirtualService>(dr.find((d) => d.kind === 'VirtualService')!);
    expect(svc.spec).toMatchObject({ vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting' });
    const nodes = dr.filter((d) => d.kind === 'RealServer').map((d) => validateObject<RealServer>(d).spec.nodeName);
    expect(nodes.sort()).toEqual(['web1', 'web2']);
  });
});

describe('defaults', () => {
  it('fills protocol TCP, scheduler wlc (as ipvsadm), DirectRouting, weight 1, health check timings', () => {
    const svc = validateObject<VirtualService>({
      apiVersion: 'lvs.operator.dev/v1alpha1',
      kind: 'VirtualService',
      metadata: { name: 'a' },
      spec: { vip: '10.1.2.3', port: 443, realServerSelector: {}, healthCheck: { type: 'HTTPS' }, persistence: {} },
    });
    expect(svc.spec.protocol).toBe('TCP');
    expect(svc.spec.scheduler).toBe('wlc');
    expect(svc.spec.forwarding).toBe('DirectRouting');
    expect(svc.spec.drainTimeoutSeconds).toBe(60);
    expect(svc.spec.persistence?.timeoutSeconds).toBe(300);
    expect(svc.spec.healthCheck).toEqual({ type: 'HTTPS', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 });
    const rs = validateObject<RealServer>({ apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name: 'r' }, spec: { address: '10.1.2.4' } });
    expect(rs.spec.weight).toBe(1);
  });

  it('does not modify its input (nothing is lost on a bad manifest)', () => {
    const input = { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name: 'r' }, spec: { address: '10.1.2.4' } };
    const before = JSON.stringify(input);
    validateObject(input);
    expect(JSON.stringify(input)).toBe(before);
  });
});

describe('malformed manifests', () => {
  it('the table has at least 20 cases with distinct names', () => {
    expect(malformedCases.length).toBeGreaterThanOrEqual(20);
    expect(new Set(malformedCases.map((c) => c.name)).size).toBe(malformedCases.length);
  });

  it.each(malformedCases.map((c) => [c.name, c] as const))('%s is rejected with its message', (_n, c) => {
    let err: unknown;
    try {
      validateObject(c.manifest);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toContain(c.expect);
  });

  it('reports every problem at once, with the object named', () => {
    const bad = { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', metadata: { name: 'x' }, spec: { vip: 'nope', port: 0, realServerSelector: {} } };
    expect(() => validateObject(bad)).toThrow(/VirtualService "x" is invalid: .*vip must be a valid.*spec.port in body should be greater/);
  });

  it('rejects foreign kinds and API versions clearly', () => {
    expect(() => validateObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } })).toThrow(/apiVersion: Unsupported value: "v1".*kind: Unsupported value: "Service"/);
  });
});
