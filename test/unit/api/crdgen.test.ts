import fs from 'node:fs';
import path from 'node:path';
import { Project } from 'ts-morph';
import { renderedCrds, CRD_DIRS } from '../../../src/crdgen/main.ts';
import { generateCrds } from '../../../src/crdgen/crd.ts';
import { SchemaBuilder, SchemaError, type JSONSchemaProps } from '../../../src/crdgen/schema.ts';
import { lintStructural } from '../../../src/crdgen/lint.ts';

function build(source: string, name: string): JSONSchemaProps {
  const project = new Project({ useInMemoryFileSystem: true });
  const file = project.createSourceFile('api.ts', source);
  return new SchemaBuilder([file]).forInterface(name);
}

describe('committed CRDs', () => {
  it.each(CRD_DIRS.map((d) => [path.relative(process.cwd(), d)]))('%s matches a fresh generation (run npm run generate)', (dir) => {
    for (const [name, text] of renderedCrds()) {
      expect(fs.readFileSync(path.join(dir, name), 'utf8')).toBe(text);
    }
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()).toEqual([...renderedCrds().keys()].sort());
  });
});

describe('generated CRDs', () => {
  const crds = generateCrds();
  const vs = crds.find((c) => c.spec.names.kind === 'VirtualService')!;
  const schema = vs.spec.versions[0]!.schema.openAPIV3Schema;
  const spec = schema.properties!.spec!;

  it('names, short names that avoid Istio vs, category, status subresource', () => {
    expect(vs.metadata.name).toBe('virtualservices.lvs.operator.dev');
    expect(vs.spec.names.shortNames).toEqual(['lvsvs']);
    expect(vs.spec.names.categories).toEqual(['lvs']);
    expect(vs.spec.versions[0]!.subresources).toEqual({ status: {} });
    expect(crds.map((c) => c.spec.names.shortNames[0])).toEqual(['lvsvs', 'lvsrs', 'lvsnp', 'lvsvp']);
  });

  it('printer columns answer VIP, port, mode, scheduler, ready, director, age', () => {
    const cols = vs.spec.versions[0]!.additionalPrinterColumns.filter((c) => !c.priority).map((c) => c.name);
    expect(cols).toEqual(['VIP', 'Port', 'Mode', 'Scheduler', 'Ready', 'Director', 'Age']);
  });

  it('every scheduler of the kernel, with wlc as default', () => {
    expect(spec.properties!.scheduler).toMatchObject({ default: 'wlc', enum: ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'] });
  });

  it('doc comments become descriptions on every field', () => {
    const missing: string[] = [];
    const walk = (s: JSONSchemaProps, p: string): void => {
      if (p.split('.').length > 2 && !s.description && !p.endsWith('[]') && !p.endsWith('{}')) missing.push(p);
      for (const [k, c] of Object.entries(s.properties ?? {})) walk(c, `${p}.${k}`);
      if (s.items) walk(s.items, `${p}[]`);
    };
    for (const crd of crds) walk(crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!, `${crd.spec.names.kind}.spec`);
    expect(missing).toEqual([]);
  });

  it('conditions are a list map keyed by type with the upstream schema', () => {
    const cond = schema.properties!.status!.properties!.conditions!;
    expect(cond['x-kubernetes-list-type']).toBe('map');
    expect(cond['x-kubernetes-list-map-keys']).toEqual(['type']);
    expect(cond.items!.required).toEqual(['lastTransitionTime', 'message', 'reason', 'status', 'type']);
    expect(cond.items!.properties!.status!.enum).toEqual(['True', 'False', 'Unknown']);
  });

  it('cross-field rules are CEL with messages', () => {
    const rules = spec['x-kubernetes-validations']!.map((r) => r.message);
    expect(rules.some((m) => m.includes('schedulerFlags'))).toBe(true);
  });
});

describe('schema builder', () => {
  it('maps optional, defaulted, enum, integer bounds, arrays, maps and CEL', () => {
    const s = build(
      `/** Thing doc. @cel {"rule":"self.a > 0","message":"a must be positive"} */
       export interface Thing {
         /** A. @minimum 1 @maximum 9 */ a: number;
         /** B. @default "x" */ b: 'x' | 'y';
         /** C. @maxItems 3 @listType set @itemMaximum 5 */ c?: number[];
         /** D. @maxProperties 2 */ d?: Record<string, string>;
         /** E. */ e?: boolean;
       }`,
      'Thing',
    );
    expect(s).toEqual({
      type: 'object',
      description: 'Thing doc.',
      properties: {
        a: { type: 'integer', description: 'A.', minimum: 1, maximum: 9 },
        b: { type: 'string', enum: ['x', 'y'], description: 'B.', default: 'x' },
        c: { type: 'array', items: { type: 'integer', maximum: 5 }, description: 'C.', maxItems: 3, 'x-kubernetes-list-type': 'set' },
        d: { type: 'object', additionalProperties: { type: 'string' }, description: 'D.', maxProperties: 2 },
        e: { type: 'boolean', description: 'E.' },
      },
      required: ['a'],
      'x-kubernetes-validations': [{ rule: 'self.a > 0', message: 'a must be positive' }],
    });
  });

  it('refuses recursion, undocumented fields, unknown tags and non-literal unions', () => {
    expect(() => build('export interface R { /** x */ r?: R; }', 'R')).toThrow(/recursive type R -> R/);
    expect(() => build('export interface U { u: string; }', 'U')).toThrow(/every field needs a doc comment/);
    expect(() => build('export interface T {\n /**\n * Doc.\n * @bogus 1\n */\n t: string;\n}', 'T')).toThrow(/unknown JSDoc tag @bogus/);
    expect(() => build('export interface N { /** x */ n: string | number; }', 'N')).toThrow(SchemaError);
  });
});

describe('structural lint', () => {
  it.each([
    ['missing type', { properties: {} }, /needs a type/],
    ['$ref', { type: 'object', $ref: '#/x' }, /"\$ref" is not allowed/],
    ['CEL on unbounded string', { type: 'string', 'x-kubernetes-validations': [{ rule: 'true', message: 'm' }] }, /needs maxLength/],
    ['CEL on unbounded list', { type: 'array', items: { type: 'string' }, 'x-kubernetes-validations': [{ rule: 'true', message: 'm' }] }, /needs maxItems/],
    ['list map key not required', { type: 'array', maxItems: 1, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'], items: { type: 'object', properties: { k: { type: 'string' } } } }, /must be a required or defaulted scalar/],
  ] as const)('rejects %s', (_n, schema, re) => {
    expect(() => lintStructural(schema as JSONSchemaProps, 'x')).toThrow(re);
  });
});
