/** The controller's configuration file (the chart's ConfigMap, config.json), with defaults. */
import fs from 'node:fs';
import { DEFAULT_DIRECTOR_SELECTOR } from '../model/planner.ts';
import { isIP, parseCidr } from '../api/ip.ts';

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

export interface AgentConfig {
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  directorNodeSelector: Record<string, string>;
  realServerNodeSelector: Record<string, string>;
  tolerations: Toleration[];
  resources: Record<string, unknown>;
  metricsPort: number;
  priorityClassName?: string;
  serviceAccountName: string;
}

/**
 * Ranges no VIP may use, whatever the VIPPools say (the nodes' own addresses and pod CIDRs and the API
 * server's address are found in the cluster; these are what the cluster does not tell).
 */
export interface ReservedConfig {
  /** The cluster's service CIDRs (kube-apiserver --service-cluster-ip-range). */
  serviceCIDRs: string[];
  /** The cluster's pod CIDRs (the CNI's ranges; nodes' spec.podCIDRs are reserved anyway). */
  podCIDRs: string[];
  /** Further addresses or CIDRs, e.g. gateways or an external API server load balancer. */
  addresses: string[];
}

export interface ControllerConfig {
  agent: AgentConfig;
  /** Director node selector for VirtualServices without spec.directors.nodeSelector. */
  defaultDirectorSelector: Record<string, string>;
  failover: { leaseDurationSeconds: number; renewIntervalMilliseconds: number };
  reserved: ReservedConfig;
}

/** The label the controller puts on nodes whose agent must prepare DR/Tunnel realservers. */
export const REALSERVER_NODE_LABEL = 'lvs.operator.dev/realserver';

export const defaultConfig = (): ControllerConfig => ({
  agent: {
    image: 'ghcr.io/lvs-operator/lvs-operator:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    directorNodeSelector: { ...DEFAULT_DIRECTOR_SELECTOR },
    realServerNodeSelector: { [REALSERVER_NODE_LABEL]: 'true' },
    tolerations: [{ operator: 'Exists' }],
    resources: {},
    metricsPort: 9120,
    priorityClassName: 'system-node-critical',
    serviceAccountName: 'lvs-operator-agent',
  },
  defaultDirectorSelector: { ...DEFAULT_DIRECTOR_SELECTOR },
  failover: { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 },
  reserved: { serviceCIDRs: [], podCIDRs: [], addresses: [] },
});

/** Reads config.json over the defaults; a broken file is a clear startup error, never a silent default. */
export function loadConfig(file: string | undefined): ControllerConfig {
  const base = defaultConfig();
  if (!file) return base;
  let raw: Partial<ControllerConfig>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<ControllerConfig>;
  } catch (e) {
    throw new Error(`cannot read controller config ${file}: ${(e as Error).message}`);
  }
  const reserved: ReservedConfig = { ...base.reserved, ...(raw.reserved ?? {}) };
  for (const [key, list] of Object.entries(reserved)) {
    for (const r of list as unknown[]) {
      if (typeof r !== 'string' || (!isIP(r) && !parseCidr(r))) throw new Error(`controller config ${file}: reserved.${key}: ${JSON.stringify(r)} is not an address or CIDR`);
    }
  }
  return {
    agent: { ...base.agent, ...(raw.agent ?? {}) },
    defaultDirectorSelector: raw.defaultDirectorSelector ?? base.defaultDirectorSelector,
    failover: { ...base.failover, ...(raw.failover ?? {}) },
    reserved,
  };
}
