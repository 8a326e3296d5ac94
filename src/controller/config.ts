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
  /**
   * The director agents' VIP election flags. loadConfig copies the top-level `failover` section here, so the
   * DaemonSet is built from the agent config alone.
   */
  failover?: FailoverConfig;
}

/** The chart's `failover` values: VIP election between the directors (src/agent/failover). */
export interface FailoverConfig {
  /** Director agents run with --vip-election; off: the planner's holdVip decides alone (no failover). */
  enabled: boolean;
  /** A standby takes a VIP over when its Lease has not changed for this long (whole seconds). */
  leaseDurationSeconds: number;
  /** The holder renews every this many ms; less than half the lease duration. */
  renewIntervalMilliseconds: number;
  /** The IPVS connection-sync daemons' sync id (1..255): distinct from any other sync daemon on the LAN. */
  syncId: number;
  /**
   * Director heartbeats (multicast UDP on the VIPs' segments, src/agent/failover/heartbeat.ts) every this many
   * ms; 0 turns them off. Unset: the agent's default (100 ms). They let a standby take over a silent holder's
   * VIP after two renew intervals instead of the lease duration.
   */
  heartbeatIntervalMilliseconds?: number;
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
  failover: FailoverConfig;
  reserved: ReservedConfig;
}

/** The label the controller puts on nodes whose agent must prepare DR/Tunnel realservers. */
export const REALSERVER_NODE_LABEL = 'lvs.operator.dev/realserver';

export const defaultConfig = (): ControllerConfig => ({
  agent: {
    failover: { ...DEFAULT_FAILOVER },
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
  failover: { ...DEFAULT_FAILOVER },
  reserved: { serviceCIDRs: [], podCIDRs: [], addresses: [] },
});

export const DEFAULT_FAILOVER: Readonly<FailoverConfig> = { enabled: true, leaseDurationSeconds: 2, renewIntervalMilliseconds: 500, syncId: 1 };

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
  const failover: FailoverConfig = { ...base.failover, ...(raw.failover ?? {}) };
  // A values file from before heartbeats renders null: the agent's default.
  if (failover.heartbeatIntervalMilliseconds === null) delete failover.heartbeatIntervalMilliseconds;
  checkFailover(failover, file);
  return {
    agent: { ...base.agent, ...(raw.agent ?? {}), failover },
    defaultDirectorSelector: raw.defaultDirectorSelector ?? base.defaultDirectorSelector,
    failover,
    reserved,
  };
}

/** The agent's own checks (electionTiming, SyncDaemons), at controller start-up instead of in every agent pod. */
function checkFailover(f: FailoverConfig, file: string): void {
  const bad = (what: string): never => {
    throw new Error(`controller config ${file}: failover.${what}`);
  };
  if (typeof f.enabled !== 'boolean') bad(`enabled: ${JSON.stringify(f.enabled)} is not a boolean`);
  if (!Number.isInteger(f.leaseDurationSeconds) || f.leaseDurationSeconds < 1) bad(`leaseDurationSeconds: ${JSON.stringify(f.leaseDurationSeconds)} is not a whole number ≥ 1`);
  const renew = f.renewIntervalMilliseconds;
  if (!Number.isInteger(renew) || renew <= 0 || 2 * renew >= f.leaseDurationSeconds * 1000) {
    bad(`renewIntervalMilliseconds: ${JSON.stringify(renew)} must be a positive whole number less than half of leaseDurationSeconds (${f.leaseDurationSeconds} s)`);
  }
  if (!Number.isInteger(f.syncId) || f.syncId < 1 || f.syncId > 255) bad(`syncId: ${JSON.stringify(f.syncId)} is not 1..255`);
  const hb = f.heartbeatIntervalMilliseconds;
  if (hb !== undefined && (!Number.isInteger(hb) || hb < 0 || (hb > 0 && 5 * hb > f.leaseDurationSeconds * 1000))) {
    bad(`heartbeatIntervalMilliseconds: ${JSON.stringify(hb)} must be 0 (off) or a positive whole number of at most a fifth of leaseDurationSeconds (${f.leaseDurationSeconds} s)`);
  }
}
