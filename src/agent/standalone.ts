/**
 * Standalone mode (`lvs-agent --config DIR`): the same VirtualService/RealServer YAML users apply to
 * Kubernetes, plus optional Node manifests for node addresses and director labels, planned locally with
 * the controller's planner. Bad documents are reported and skipped; the good ones are still served.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { validateObject, type KubeObject } from '../api/validate.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import { plan, type NodeInfo, type Plan, DEFAULT_DIRECTOR_SELECTOR } from '../model/planner.ts';
import type { NodePlan } from '../model/plan.ts';
import { emptyPlan } from '../model/plan.ts';

export interface ConfigProblem {
  file: string;
  /** 1-based index of the YAML document in the file. */
  document: number;
  message: string;
}

export interface LoadedConfig {
  virtualServices: VirtualService[];
  realServers: RealServer[];
  nodes: NodeInfo[];
  problems: ConfigProblem[];
}

interface NodeManifest {
  metadata?: { name?: string; labels?: Record<string, string> };
  status?: { addresses?: Array<{ type: string; address: string }> };
}

export function loadConfigDir(dir: string): LoadedConfig {
  const out: LoadedConfig = { virtualServices: [], realServers: [], nodes: [], problems: [] };
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch (e) {
    throw new Error(`cannot read config directory ${dir}: ${(e as Error).message}`);
  }
  for (const file of files) {
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    parseAllDocuments(text).forEach((doc, i) => {
      const problem = (message: string): void => void out.problems.push({ file, document: i + 1, message });
      if (doc.errors.length > 0) return problem(`YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
      const obj = doc.toJS() as KubeObject | null;
      if (obj === null) return;
      if (typeof obj !== 'object' || Array.isArray(obj)) return problem('not a Kubernetes object');
      if (obj.kind === 'Node' && obj.apiVersion === 'v1') {
        const n = obj as NodeManifest;
        if (!n.metadata?.name) return problem('Node without metadata.name');
        out.nodes.push({ name: n.metadata.name, labels: n.metadata.labels ?? {}, addresses: n.status?.addresses ?? [] });
        return;
      }
      if (obj.kind === 'Namespace') return;
      try {
        const valid = validateObject<VirtualService | RealServer>(obj);
        valid.metadata.namespace ??= 'default';
        if (valid.kind === 'VirtualService') out.virtualServices.push(valid as VirtualService);
        else out.realServers.push(valid as RealServer);
      } catch (e) {
        problem((e as Error).message);
      }
    });
  }
  return out;
}

export interface StandaloneOptions {
  node: string;
  /** Act as director when the config has no Node manifest for this node. */
  director?: boolean;
}

/** Plans the config for one node. A node missing from the config is synthesised from the options. */
export function planStandalone(config: LoadedConfig, opts: StandaloneOptions): { plan: Plan; nodePlan: NodePlan } {
  const nodes = [...config.nodes];
  if (!nodes.some((n) => n.name === opts.node)) {
    nodes.push({ name: opts.node, labels: opts.director ? { ...DEFAULT_DIRECTOR_SELECTOR } : {}, addresses: [] });
  }
  const p = plan({ virtualServices: config.virtualServices, realServers: config.realServers, nodes });
  return { plan: p, nodePlan: p.nodes.get(opts.node) ?? emptyPlan(opts.node) };
}
