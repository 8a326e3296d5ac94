#!/usr/bin/env node
/**
 * kubectl-lvs: the kubectl plugin of lvs-operator (an executable named kubectl-lvs on PATH makes
 * `kubectl lvs ...` work; the package installs it as a bin).
 *
 *   kubectl lvs status [-n NS | -A] [-o table|json|yaml] [--no-connections]
 *   kubectl lvs import [FILE|-] [--namespace NS] [--prefix P] [--health-check none|tcp] [--skip-unsupported] [-o yaml|json]
 *   kubectl lvs export [--node NAME] [--source nodeplans|objects] [-f FILE|DIR|-]...
 *
 * Global: --kubeconfig FILE, --context NAME (else $KUBECONFIG, in-cluster, ~/.kube/config).
 * From a checkout: `node src/cli/main.ts ...` or `npm run cli -- ...`.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { loadKubeConfig } from '../kube/kubeconfig.ts';
import { importRules, type ImportIssue } from './import.ts';
import { admissionFromStatus, planObjects, rulesOf, servicesOfNodePlans, servicesOfPlan } from './export.ts';
import { loadManifests } from './manifests.ts';
import { buildStatus, formatStatus } from './status.ts';
import { portResolver } from './services.ts';
import { ClusterReader } from './cluster.ts';

export const USAGE = `kubectl lvs: see and migrate lvs-operator load balancers

Usage:
  kubectl lvs status [-n NAMESPACE | -A] [-o table|json|yaml] [--no-connections]
      One ipvsadm -Ln style table per VirtualService: VIP, scheduler, mode, active director, and each
      realserver with weight, health and active/inactive connections.
  kubectl lvs import [FILE|-] [--namespace NS] [--prefix PREFIX] [--health-check none|tcp]
                     [--skip-unsupported] [-o yaml|json]
      ipvsadm-save / ipvsadm -Sn rules to VirtualService and RealServer manifests. Lines that cannot be
      expressed are listed on stderr with their line number; the exit status is 3 unless
      --skip-unsupported, and 1 for lines that are not valid rules.
  kubectl lvs export [--node NAME] [--source nodeplans|objects] [-f FILE|DIR|-]...
      The rules a director is meant to hold, in ipvsadm-save form (ipvsadm -R reads them). From the
      cluster's NodePlans by default; -f plans manifests offline (no cluster needed).

Options:
  --kubeconfig FILE   kubeconfig to use (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --context NAME      kubeconfig context
  -h, --help          this help
`;

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** The whole of standard input. */
  stdin: () => string;
  env: Record<string, string | undefined>;
}

const processIo: Io = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  stdin: () => fs.readFileSync(0, 'utf8'),
  env: process.env,
};

class UsageError extends Error {}

const COMMON = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function reader(values: { kubeconfig?: string | undefined; context?: string | undefined }, io: Io): { reader: ClusterReader; namespace?: string } {
  const loaded = loadKubeConfig({
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.context ? { context: values.context } : {}),
    env: io.env,
  });
  return { reader: new ClusterReader(loaded.kc), ...(loaded.namespace ? { namespace: loaded.namespace } : {}) };
}

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${allowed.join(', ')}, not "${value}"`);
  return value as T;
}

async function status(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON,
      namespace: { type: 'string', short: 'n' },
      'all-namespaces': { type: 'boolean', short: 'A', default: false },
      output: { type: 'string', short: 'o' },
      'no-connections': { type: 'boolean', default: false },
    },
  });
  if (values.help) return help(io);
  if (positionals.length) throw new UsageError(`status takes no arguments (got ${positionals.join(' ')})`);
  if (values['all-namespaces'] && values.namespace) throw new UsageError('-n and -A exclude each other');
  const output = oneOf('-o', values.output, ['table', 'json', 'yaml'] as const, 'table');
  const { reader: r, namespace: contextNs } = reader(values, io);
  const ns = values['all-namespaces'] ? undefined : values.namespace ?? contextNs ?? 'default';
  const [virtualServices, realServers, nodePlans] = await Promise.all([r.virtualServices(ns), r.realServers(ns), r.nodePlans()]);
  if (!nodePlans) io.stderr('note: NodePlans are not readable with these credentials; realservers come from RealServer status, directors are not listed\n');
  let connections;
  if (!values['no-connections'] && nodePlans) {
    const holders = [...new Set(buildStatus({ virtualServices, realServers, nodePlans }).flatMap((s) => (s.activeDirector ? [s.activeDirector] : [])))];
    const got = await r.connections(holders);
    if (got.problems.length) io.stderr(`note: connection counts unavailable: ${got.problems.join('; ')}\n`);
    connections = got.table;
  }
  const services = buildStatus({ virtualServices, realServers, ...(nodePlans ? { nodePlans } : {}), ...(connections ? { connections } : {}) });
  if (services.length === 0 && output === 'table') {
    io.stdout(ns ? `No VirtualServices found in namespace ${ns}.\n` : 'No VirtualServices found.\n');
    return 0;
  }
  io.stdout(formatStatus(services, output));
  return 0;
}

export function formatIssue(i: ImportIssue, file: string): string {
  return `${file}:${i.line}: ${i.kind === 'error' ? 'error' : 'unsupported'}: ${i.message}\n    ${i.text}\n`;
}

async function runImport(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON,
      namespace: { type: 'string', short: 'n' },
      prefix: { type: 'string' },
      'health-check': { type: 'string' },
      'skip-unsupported': { type: 'boolean', default: false },
      output: { type: 'string', short: 'o' },
    },
  });
  if (values.help) return help(io);
  if (positionals.length > 1) throw new UsageError('import reads one file (or - for stdin)');
  const output = oneOf('-o', values.output, ['yaml', 'json'] as const, 'yaml');
  const healthCheck = oneOf('--health-check', values['health-check']?.toLowerCase(), ['none', 'tcp'] as const, 'none');
  const file = positionals[0] ?? '-';
  const text = file === '-' ? io.stdin() : fs.readFileSync(file, 'utf8');
  const result = importRules(text, {
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values.prefix ? { prefix: values.prefix } : {}),
    healthCheck: healthCheck === 'tcp' ? 'TCP' : 'None',
    resolvePort: portResolver(),
  });
  const name = file === '-' ? '<stdin>' : file;
  for (const i of result.issues) io.stderr(formatIssue(i, name));
  const errors = result.issues.filter((i) => i.kind === 'error').length;
  const unsupported = result.issues.length - errors;
  if (errors || (unsupported && !values['skip-unsupported'])) {
    io.stderr(`${name}: ${errors ? `${errors} invalid line(s)` : ''}${errors && unsupported ? ', ' : ''}${unsupported ? `${unsupported} line(s) the API cannot express` : ''}; nothing written${!errors ? ' (--skip-unsupported imports the rest)' : ''}\n`);
    return errors ? 1 : 3;
  }
  if (output === 'json') {
    io.stdout(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: result.objects.map((o) => o.object) }, null, 2)}\n`);
  } else {
    const docs = result.objects.map((o) => `${o.source.map((s) => `# line ${s.line}: ${s.text}`).join('\n')}\n${toYaml(o.object)}`);
    io.stdout(docs.length ? `---\n${docs.join('---\n')}` : '');
  }
  return 0;
}

async function runExport(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON,
      node: { type: 'string' },
      source: { type: 'string' },
      filename: { type: 'string', short: 'f', multiple: true },
    },
  });
  if (values.help) return help(io);
  if (positionals.length) throw new UsageError(`export takes no arguments (got ${positionals.join(' ')}); use -f FILE for manifests`);
  const node = values.node;
  let services;
  if (values.filename?.length) {
    if (values.source) throw new UsageError('--source applies to the cluster, not to -f');
    const m = loadManifests(values.filename, io.stdin);
    for (const p of m.problems) io.stderr(`${p.file}: document ${p.document}: ${p.message}\n`);
    if (m.nodePlans.length && !m.virtualServices.length) {
      services = servicesOfNodePlans(m.nodePlans, node);
    } else {
      const planned = planObjects(m, node !== undefined ? { node } : {});
      for (const w of planned.warnings) io.stderr(`warning: ${w.object}: ${w.message}\n`);
      services = servicesOfPlan(planned.plan, planned.node);
    }
  } else {
    const source = oneOf('--source', values.source, ['nodeplans', 'objects'] as const, 'nodeplans');
    const { reader: r } = reader(values, io);
    if (source === 'nodeplans') {
      const plans = await r.nodePlans(node);
      if (!plans) throw new Error('NodePlans are not readable with these credentials (they are internal to the operator); try --source objects');
      if (node !== undefined && plans.length === 0) io.stderr(`warning: node ${node} has no NodePlans: it directs nothing\n`);
      services = servicesOfNodePlans(plans, node);
    } else {
      const [virtualServices, realServers, nodes, pools] = await Promise.all([r.virtualServices(), r.realServers(), r.nodes(), r.vipPools()]);
      if (!pools) io.stderr('warning: VIPPools are not readable with these credentials: a pool\'s director restriction is not applied\n');
      // VIPs are default-deny: export what the controller admitted (its verdicts are in each status).
      const admitted = admissionFromStatus(virtualServices, pools ?? []);
      const planned = planObjects({ virtualServices, realServers, nodes }, { ...(node !== undefined ? { node } : {}), admitted });
      for (const w of planned.warnings) io.stderr(`warning: ${w.object}: ${w.message}\n`);
      services = servicesOfPlan(planned.plan, planned.node);
    }
  }
  const lines = rulesOf(services);
  io.stdout(lines.length ? `${lines.join('\n')}\n` : '');
  return 0;
}

function help(io: Io): number {
  io.stdout(USAGE);
  return 0;
}

/** Runs one command line; returns the exit status (2 for usage errors). */
export async function run(argv: string[], io: Io = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'status':
        return await status(rest, io);
      case 'import':
        return await runImport(rest, io);
      case 'export':
        return await runExport(rest, io);
      case undefined:
      case 'help':
      case '-h':
      case '--help':
        return help(io);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    const usage = e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    io.stderr(`kubectl lvs${command ? ` ${command}` : ''}: ${(e as Error).message}\n${usage ? "Run 'kubectl lvs --help' for usage.\n" : ''}`);
    return usage ? 2 : 1;
  }
}

if (import.meta.main) {
  run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
