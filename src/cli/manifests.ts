/**
 * Reading manifests for offline use (`export -f`): YAML or JSON files, directories of them, or stdin;
 * `kind: List` (kubectl get -o yaml) is unpacked. VirtualServices and RealServers are validated and
 * defaulted like the API server does; Nodes give addresses and director labels; everything else is
 * ignored. Invalid documents are reported with file and document number, like lvs-agent --config.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { validateObject, type KubeObject } from '../api/validate.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import type { NodePlan } from '../api/v1alpha1/nodeplan.ts';
import { GROUP } from '../api/v1alpha1/meta.ts';
import type { NodeInfo } from '../model/planner.ts';

export interface ManifestProblem {
  file: string;
  document: number;
  message: string;
}

export interface Manifests {
  virtualServices: VirtualService[];
  realServers: RealServer[];
  nodes: NodeInfo[];
  nodePlans: NodePlan[];
  problems: ManifestProblem[];
}

interface NodeManifest {
  metadata?: { name?: string; labels?: Record<string, string> };
  status?: { addresses?: Array<{ type: string; address: string }> };
}

const isObject = (v: unknown): v is KubeObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Adds the objects of one text (a file or stdin) to `out`. */
export function addManifests(out: Manifests, file: string, text: string): void {
  parseAllDocuments(text).forEach((doc, i) => {
    const problem = (message: string): void => void out.problems.push({ file, document: i + 1, message });
    if (doc.errors.length > 0) return problem(`YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return;
    if (!isObject(value)) return problem('not a Kubernetes object');
    const items = value.kind === 'List' || (typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value['items'])) ? value['items'] : [value];
    for (const obj of items as unknown[]) {
      if (!isObject(obj)) {
        problem('a List item is not a Kubernetes object');
        continue;
      }
      addObject(out, obj, problem);
    }
  });
}

function addObject(out: Manifests, obj: KubeObject, problem: (m: string) => void): void {
  if (obj.kind === 'Node' && obj.apiVersion === 'v1') {
    const n = obj as NodeManifest;
    if (!n.metadata?.name) return problem('Node without metadata.name');
    out.nodes.push({ name: n.metadata.name, labels: n.metadata.labels ?? {}, addresses: n.status?.addresses ?? [] });
    return;
  }
  if (obj.kind === 'NodePlan' && typeof obj.apiVersion === 'string' && obj.apiVersion.startsWith(`${GROUP}/`)) {
    out.nodePlans.push(obj as unknown as NodePlan);
    return;
  }
  if (obj.kind !== 'VirtualService' && obj.kind !== 'RealServer') return;
  try {
    // Objects read back from a cluster carry server-set metadata and status; the schema accepts both.
    const valid = validateObject<VirtualService | RealServer>(obj);
    valid.metadata.namespace ??= 'default';
    if (valid.kind === 'VirtualService') out.virtualServices.push(valid as VirtualService);
    else out.realServers.push(valid as RealServer);
  } catch (e) {
    problem((e as Error).message);
  }
}

export const emptyManifests = (): Manifests => ({ virtualServices: [], realServers: [], nodes: [], nodePlans: [], problems: [] });

/** Reads files, directories (their *.yaml, *.yml and *.json, sorted; not recursive) and `-` (stdin text). */
export function loadManifests(paths: readonly string[], stdin: () => string = () => fs.readFileSync(0, 'utf8')): Manifests {
  const out = emptyManifests();
  for (const p of paths) {
    if (p === '-') {
      addManifests(out, '<stdin>', stdin());
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch (e) {
      throw new Error(`${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
    if (stat.isDirectory()) {
      for (const f of fs.readdirSync(p).filter((f) => /\.(ya?ml|json)$/.test(f)).sort()) {
        addManifests(out, path.join(p, f), fs.readFileSync(path.join(p, f), 'utf8'));
      }
    } else {
      addManifests(out, p, fs.readFileSync(p, 'utf8'));
    }
  }
  return out;
}
