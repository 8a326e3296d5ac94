/**
 * Reading our objects from YAML/JSON text, as `lvs-agent --config` and `kubectl lvs export -f` do: every
 * document of a text, `kind: List` (kubectl get -o yaml) unpacked; VirtualServices and RealServers validated
 * and defaulted like the API server does; Nodes give addresses and director labels; NodePlans are kept as
 * they are. Invalid documents are reported with file and document number and skipped; the rest is kept.
 */
import { parseAllDocuments } from 'yaml';
import { validateObject, type KubeObject } from './validate.ts';
import type { VirtualService } from './v1alpha1/virtualservice.ts';
import type { RealServer } from './v1alpha1/realserver.ts';
import type { NodePlan } from './v1alpha1/nodeplan.ts';
import { GROUP } from './v1alpha1/meta.ts';
import type { NodeInfo } from '../model/planner.ts';

export interface ManifestProblem {
  file: string;
  /** 1-based index of the YAML document in the file. */
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

export interface ManifestOptions {
  /**
   * Any other object (not a VirtualService, RealServer, v1 Node or NodePlan): a message to report it as a
   * problem, or undefined to skip it silently. Default: skipped (a `kubectl get -o yaml` dump holds anything).
   */
  other?: (obj: KubeObject) => string | undefined;
}

interface NodeManifest {
  metadata?: { name?: string; labels?: Record<string, string> };
  status?: { addresses?: Array<{ type: string; address: string }> };
}

const isObject = (v: unknown): v is KubeObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export const emptyManifests = (): Manifests => ({ virtualServices: [], realServers: [], nodes: [], nodePlans: [], problems: [] });

/** Adds the objects of one text (a file or stdin) to `out`. */
export function addManifests(out: Manifests, file: string, text: string, opts: ManifestOptions = {}): void {
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
      addObject(out, obj, problem, opts);
    }
  });
}

function addObject(out: Manifests, obj: KubeObject, problem: (m: string) => void, opts: ManifestOptions): void {
  const ours = typeof obj.apiVersion === 'string' && obj.apiVersion.startsWith(`${GROUP}/`);
  if (obj.kind === 'Node' && obj.apiVersion === 'v1') {
    const n = obj as NodeManifest;
    if (!n.metadata?.name) return problem('Node without metadata.name');
    out.nodes.push({ name: n.metadata.name, labels: n.metadata.labels ?? {}, addresses: n.status?.addresses ?? [] });
    return;
  }
  if (obj.kind === 'NodePlan' && ours) {
    out.nodePlans.push(obj as unknown as NodePlan);
    return;
  }
  if (obj.kind !== 'VirtualService' && obj.kind !== 'RealServer') {
    const message = opts.other?.(obj);
    if (message !== undefined) problem(message);
    return;
  }
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
