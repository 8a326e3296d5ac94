// Helpers for the chart tests: run helm (from scripts/tools.ts) on charts/lvs-operator and parse what it renders.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helmPath } from '../../../scripts/tools.ts';
import { CHART_DIR, ROOT } from '../../../scripts/render-deploy.ts';

export { CHART_DIR, ROOT };
export const CUSTOM_VALUES = join(ROOT, 'test', 'unit', 'chart', 'values-custom.yaml');

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): HelmResult {
  const r = spawnSync(helmPath(), args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Write `yaml` to a temporary values file and return its path. */
export function valuesFile(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'lvs-chart-'));
  const file = join(dir, 'values.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** `helm template` with release lvs-operator in lvs-system; throws with helm's stderr on failure. */
export function render(extraArgs: string[] = [], opts: { release?: string; namespace?: string; crds?: boolean } = {}): K8sObject[] {
  const args = ['template', opts.release ?? 'lvs-operator', CHART_DIR, '--namespace', opts.namespace ?? 'lvs-system', ...(opts.crds ? ['--include-crds'] : []), ...extraArgs];
  const r = helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return parseManifests(r.stdout);
}

export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const obj = doc.toJS() as K8sObject | null;
    if (obj) out.push(obj);
  }
  return out;
}

export function find(objs: K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in [${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}]`);
  return o;
}

export function rulesOf(obj: K8sObject): PolicyRule[] {
  return (obj['rules'] as PolicyRule[] | undefined) ?? [];
}

/** Expand rules into sorted "group/resource:verb" strings, for exact comparisons. */
export function grants(rules: PolicyRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.add(`${g || 'core'}/${res}:${v}`);
  return [...out].sort();
}
