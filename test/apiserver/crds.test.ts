// The generated CRDs, the examples and the malformed-manifest table against a real
// kube-apiserver, driven with the kubectl users run (scripts/tools.ts).
//   crds/*.yaml                 kubectl apply -f crds/ -> Established; explain shows the docs
//   deploy/examples/*.yaml      each applies (into its own namespace)
//   test/fixtures/malformed.ts  each case is rejected by the server with its `expect` text
// LVS_TEST_CRDS_DIR, LVS_TEST_EXAMPLES_DIR and LVS_TEST_MALFORMED_MODULE override the paths.
import { afterAll, jest } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { sharedApiServer } from './harness.ts';
import { kubectl, kubectlOk, uniqueName } from './util.ts';

jest.setTimeout(120_000);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CRDS_DIR = process.env['LVS_TEST_CRDS_DIR'] ?? join(ROOT, 'crds');
const EXAMPLES_DIR = process.env['LVS_TEST_EXAMPLES_DIR'] ?? join(ROOT, 'deploy', 'examples');
const MALFORMED = process.env['LVS_TEST_MALFORMED_MODULE'] ?? join(ROOT, 'test', 'fixtures', 'malformed.ts');

interface MalformedCase {
  name: string;
  manifest: Record<string, unknown>;
  expect: string;
}

interface PrinterColumn {
  name: string;
  jsonPath: string;
  priority?: number;
}

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
}

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    names: { plural: string; kind: string; shortNames?: string[] };
    versions: Array<{ name: string; served: boolean; storage: boolean; schema: { openAPIV3Schema: Schema }; additionalPrinterColumns?: PrinterColumn[] }>;
  };
}

function yamlFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f));
}

function docs(file: string): Array<Record<string, unknown>> {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => d !== null && typeof d === 'object');
}

const crds: Crd[] = yamlFiles(CRDS_DIR).flatMap((f) => docs(f)).filter((d) => d['kind'] === 'CustomResourceDefinition') as unknown as Crd[];
const examples = yamlFiles(EXAMPLES_DIR);
// Loaded at run time so that a missing fixture fails here with a clear message, not in typecheck.
const malformedCases: MalformedCase[] = existsSync(MALFORMED)
  ? ((await import(pathToFileURL(MALFORMED).href)) as { malformedCases: MalformedCase[] }).malformedCases
  : [];

const squash = (s: string) => s.replace(/\s+/g, ' ').trim();

describe('CRDs, examples and malformed manifests on a real apiserver', () => {
  const kubeconfig = sharedApiServer().kubeconfigs.admin;
  const k = (args: string[], input?: string) => kubectl(args, { kubeconfig, ...(input === undefined ? {} : { input }) });
  const kOk = (args: string[]) => kubectlOk(args, { kubeconfig });

  test('the inputs exist', () => {
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(expect.arrayContaining(['virtualservices.lvs.operator.dev']));
    expect(examples.map((f) => f.slice(EXAMPLES_DIR.length + 1))).toContain('dr-lab.yaml');
    expect(malformedCases.length).toBeGreaterThan(0);
  });

  test('kubectl apply -f crds/ and every CRD becomes Established', async () => {
    const out = await kOk(['apply', '-f', CRDS_DIR]);
    for (const c of crds) expect(out).toContain(`customresourcedefinition.apiextensions.k8s.io/${c.metadata.name}`);
    await kOk(['wait', '--for=condition=Established', '--timeout=60s', ...crds.map((c) => `crd/${c.metadata.name}`)]);
    // NamesAccepted too, so short names and categories resolve.
    await kOk(['wait', '--for=condition=NamesAccepted', '--timeout=60s', ...crds.map((c) => `crd/${c.metadata.name}`)]);
  });

  test('kubectl explain virtualservices.spec shows the doc comments', async () => {
    const vs = crds.find((c) => c.spec.names.plural === 'virtualservices')!;
    const version = vs.spec.versions.find((v) => v.storage)!;
    const spec = version.schema.openAPIV3Schema.properties?.['spec'];
    expect(spec?.description).toBeTruthy();
    // kubectl may need a moment to see the new group in /openapi/v3.
    let r = await k(['explain', 'virtualservices.spec']);
    for (let i = 0; i < 20 && r.code !== 0; i++) {
      await new Promise((res) => setTimeout(res, 500));
      r = await k(['explain', 'virtualservices.spec']);
    }
    expect(r.stderr).toBe('');
    const out = squash(r.stdout);
    expect(out).toContain(`GROUP: ${vs.spec.group}`);
    expect(out).toContain(`KIND: ${vs.spec.names.kind}`);
    expect(out).toContain(squash(spec!.description!));
    const fields = Object.entries(spec!.properties ?? {});
    expect(fields.length).toBeGreaterThan(0);
    for (const [name, field] of fields) {
      expect(out).toContain(name);
      if (field.description) expect(out).toContain(squash(field.description));
    }
  });

  const exampleNamespaces = new Map<string, string>();
  // Cluster-scoped example objects (the lab's VIPPool) outlive the namespaces: remove them for other suites.
  afterAll(async () => {
    for (const f of examples) {
      for (const o of docs(f)) {
        if (o['kind'] !== 'VIPPool') continue;
        await k(['delete', 'vippool', String((o['metadata'] as { name: string }).name), '--ignore-not-found']);
      }
    }
  });

  test.each(examples.map((f) => [f.slice(EXAMPLES_DIR.length + 1), f]))('example %s applies', async (name, file) => {
    const objects = docs(file);
    expect(objects.length).toBeGreaterThan(0);
    const ns = uniqueName(`ex-${name.replace(/\.ya?ml$/, '').replace(/[^a-z0-9-]/g, '-')}`.slice(0, 50));
    for (const o of objects) {
      const n = (o['metadata'] as { namespace?: string } | undefined)?.namespace;
      if (n) await k(['create', 'namespace', n]); // may already exist
    }
    await kOk(['create', 'namespace', ns]);
    exampleNamespaces.set(name, ns);
    const r = await k(['apply', '-n', ns, '-f', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const names = (await kOk(['get', '-n', ns, '-f', file, '-o', 'name'])).trim().split('\n');
    expect(names).toHaveLength(objects.length);
  });

  test('the lab pool example is the DR lab VIP pool, and kubectl get lvsvp shows its addresses', async () => {
    expect(examples.map((f) => f.slice(EXAMPLES_DIR.length + 1))).toContain('vip-pool-lab.yaml');
    const out = await kOk(['get', 'lvsvp', 'lab']);
    const [header, row] = out.trimEnd().split('\n');
    expect(header).toMatch(/^NAME\s+ADDRESSES\s+AUTO\s+SERVICES\s+IN USE\s+AVAILABLE\s+AGE$/);
    expect(row).toMatch(/^lab\s+\["192\.168\.56\.40\/29"\]\s+true\s/);
    const explain = squash((await kOk(['explain', 'vippools.spec.addresses'])));
    expect(explain).toContain('CIDRs (192.168.56.40/29, 2001:db8:0:56::/120) and inclusive ranges');
  });

  test('printer columns show in kubectl get lvsvs', async () => {
    const vs = crds.find((c) => c.spec.names.plural === 'virtualservices')!;
    expect(vs.spec.names.shortNames).toContain('lvsvs');
    const cols = vs.spec.versions.find((v) => v.storage)!.additionalPrinterColumns ?? [];
    expect(cols.length).toBeGreaterThan(0);
    const ns = exampleNamespaces.get('dr-lab.yaml');
    expect(ns).toBeDefined();
    const out = await kOk(['get', 'lvsvs', '-n', ns!, '-o', 'wide']);
    const [header, ...rows] = out.trimEnd().split('\n');
    for (const c of cols) expect(header).toContain(c.name.toUpperCase());
    // Default output hides priority > 0 columns.
    const narrow = (await kOk(['get', 'lvsvs', '-n', ns!])).split('\n')[0]!;
    for (const c of cols) {
      if ((c.priority ?? 0) > 0) expect(narrow.split(/\s{2,}/)).not.toContain(c.name.toUpperCase());
      else expect(narrow).toContain(c.name.toUpperCase());
    }
    // The dr-lab VirtualService "web" shows its VIP and port in its row.
    const web = rows.find((r) => r.startsWith('web '));
    expect(web).toBeDefined();
    expect(web).toMatch(/192\.168\.56\.40\s+80\b/);
  });

  describe('malformed manifests are rejected by the apiserver', () => {
    const results = new Map<string, { code: number; stderr: string; stdout: string }>();
    const ns = uniqueName('malformed');

    beforeAll(async () => {
      await kOk(['create', 'namespace', ns]);
      // kubectl apply (client-side, --validate=strict: server-side field validation), 4 at a time.
      const queue = [...malformedCases];
      const worker = async () => {
        for (let c = queue.shift(); c; c = queue.shift()) {
          const m = c.manifest as { metadata?: { namespace?: string } };
          const args = ['apply', '-f', '-', ...(m.metadata?.namespace ? [] : ['-n', ns])];
          results.set(c.name, await k(args, JSON.stringify(c.manifest)));
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    });

    test.each(malformedCases.map((c) => [c.name, c]))('%s', (name, c) => {
      const r = results.get(name)!;
      expect(r.stdout).toBe(''); // nothing was created or configured
      expect(r.code).not.toBe(0);
      // The server's verdict, as kubectl prints it: 422 Invalid ("The Kind "name" is invalid: ...")
      // or another API status ("Error from server (BadRequest): ..."), not a client-side error.
      expect(r.stderr).toMatch(/^(Error from server \(\w+\)|The \w+ "[^"]*" is invalid): /);
      expect(r.stderr).toContain(c.expect);
    });
  });
});
