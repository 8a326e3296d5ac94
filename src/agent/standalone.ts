/**
 * Standalone mode (`lvs-agent --config DIR`): the same VirtualService/RealServer YAML users apply to
 * Kubernetes, plus optional Node manifests for node addresses and director labels, planned locally with
 * the controller's planner. Bad documents are reported and skipped; the good ones are still served.
 */
import fs from 'node:fs';
import path from 'node:path';
import { addManifests, emptyManifests, type ManifestProblem } from '../api/manifests.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import { plan, type NodeInfo, type Plan, DEFAULT_DIRECTOR_SELECTOR } from '../model/planner.ts';
import type { NodePlan } from '../model/plan.ts';
import { emptyPlan } from '../model/plan.ts';

export type ConfigProblem = ManifestProblem;

export interface LoadedConfig {
  virtualServices: VirtualService[];
  realServers: RealServer[];
  nodes: NodeInfo[];
  problems: ConfigProblem[];
}

/** What the standalone agent says of a document it does not serve (undefined: skipped silently). */
function otherKind(obj: { kind?: unknown; apiVersion?: unknown }): string | undefined {
  if (obj.kind === 'Namespace' || obj.kind === 'NodePlan') return undefined;
  if (obj.kind === 'VIPPool') return 'VIPPool ignored: the standalone agent has no VIP pools, it serves every spec.vip of its configuration';
  return `${typeof obj.kind === 'string' ? `kind ${obj.kind}` : 'an object without kind'}${typeof obj.apiVersion === 'string' ? ` (${obj.apiVersion})` : ''} ignored: lvs-agent --config reads VirtualService, RealServer and Node`;
}

/** Reads every *.yaml / *.yml of `dir` (sorted); bad documents are in `problems`, the rest is served. */
export function loadConfigDir(dir: string): LoadedConfig {
  const out = emptyManifests();
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch (e) {
    throw new Error(`cannot read config directory ${dir}: ${(e as Error).message}`);
  }
  for (const file of files) addManifests(out, file, fs.readFileSync(path.join(dir, file), 'utf8'), { other: otherKind });
  return { virtualServices: out.virtualServices, realServers: out.realServers, nodes: out.nodes, problems: out.problems };
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
