/**
 * The planner: a pure function from the API objects (VirtualServices, RealServers, Nodes) to what every
 * node must do, plus the facts the controller turns into status. No I/O, no clock: the same input
 * always gives the same plan, so the controller, the standalone agent and the tests agree.
 */
import { createHash } from 'node:crypto';
import type { VirtualService, HealthCheck } from '../api/v1alpha1/virtualservice.ts';
import type { LabelSelector } from '../api/v1alpha1/meta.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import { familyOf, isIP, ipv6Bytes } from '../api/ip.ts';
import { matchesLabels, matchesSelector } from './selector.ts';
import { emptyPlan, type NodePlan, type PlannedDestination, type PlannedHealthCheck, type PlannedService } from './plan.ts';
import { admitVips, type Admission, type AdmissionInput, type PoolUsage, type VipDecision } from './pools.ts';

/** The label that marks director nodes unless a VirtualService or the operator says otherwise. */
export const DEFAULT_DIRECTOR_SELECTOR: Record<string, string> = { 'lvs.operator.dev/director': 'true' };

/** The parts of a Kubernetes Node the planner needs. */
export interface NodeInfo {
  name: string;
  labels?: Record<string, string>;
  /** status.addresses of the Node. */
  addresses: Array<{ type: string; address: string }>;
  /** spec.podCIDRs of the Node: no VIP may lie in them. */
  podCIDRs?: string[];
}

export interface PlannerInput {
  virtualServices: VirtualService[];
  realServers: RealServer[];
  nodes: NodeInfo[];
  /** Director node selector for VirtualServices without spec.directors.nodeSelector. */
  defaultDirectorSelector?: Record<string, string>;
  /**
   * VIP pools, namespaces and reserved ranges: every VIP must then be admitted by a pool (pools.ts).
   * Without it (standalone mode) every valid spec.vip is used as it is.
   */
  admission?: AdmissionInput;
  /**
   * Admission already decided over all VirtualServices (by admitVips), for planning a subset of them:
   * allocation and VIP ownership depend on every VirtualService. Wins over `admission`.
   */
  admitted?: Admission;
  /**
   * Whether `node`'s agent reports the VIP of `service` prepared (DirectRouting: on lo with ARP suppressed;
   * Tunnel: on tunl0). With it, a node-backed DirectRouting/Tunnel realserver is planned at weight 0 until its
   * node says so: a director would otherwise send it packets for an address it drops (a new node whose agent
   * pod is still starting, an agent that failed to bind). Without it (standalone mode: no reports) every
   * realserver gets its weight.
   */
  prepared?: (node: string, service: string, vip: string) => boolean;
}

export interface Problem {
  reason: string;
  message: string;
}

export interface ServiceOutcome {
  id: string;
  /** Undefined when the service is accepted. */
  rejected?: Problem;
  /** Nodes that direct this service (hot standbys included). */
  directors: string[];
  /** The director that holds the VIP when no election overrides it. */
  activeDirector?: string;
  destinations: PlannedDestination[];
  /** RealServers the selector picked but that cannot serve this service. */
  skipped: Array<{ realServer: string } & Problem>;
  /** RealServers planned at weight 0 until their node reports the VIP prepared (PlannerInput.prepared). */
  unprepared?: string[];
  /** The VIP in use (spec.vip or allocated); undefined when refused. */
  vip?: string;
  /** The VIPPool that admitted the VIP (with admission only). */
  pool?: string;
  /** Whether the VIP was allocated from the pool (the VirtualService has no spec.vip). */
  allocated?: boolean;
}

export interface RealServerOutcome {
  id: string;
  address?: string;
  /** VirtualServices that program this realserver. */
  selectedBy: string[];
  problems: Array<{ virtualService?: string } & Problem>;
}

export interface Plan {
  nodes: Map<string, NodePlan>;
  services: Map<string, ServiceOutcome>;
  realServers: Map<string, RealServerOutcome>;
  /** Usage of every VIPPool (with admission only). */
  pools?: Map<string, PoolUsage>;
}

export const idOf = (o: { metadata: { namespace?: string; name?: string } }): string => `${o.metadata.namespace ?? 'default'}/${o.metadata.name ?? ''}`;

/** A canonical text for an address so that 2001:db8::1 and 2001:0db8:0:0::1 compare equal. */
export function canonicalIP(address: string): string {
  if (familyOf(address) === 4) return address;
  return ipv6Bytes(address).map((b) => b.toString(16).padStart(2, '0')).join('');
}

const HEALTH_DEFAULTS: PlannedHealthCheck = { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 };

function plannedHealthCheck(h: HealthCheck | undefined): PlannedHealthCheck {
  if (!h) return { ...HEALTH_DEFAULTS };
  const out: PlannedHealthCheck = {
    type: h.type ?? HEALTH_DEFAULTS.type,
    intervalSeconds: h.intervalSeconds ?? HEALTH_DEFAULTS.intervalSeconds,
    timeoutSeconds: h.timeoutSeconds ?? HEALTH_DEFAULTS.timeoutSeconds,
    rise: h.rise ?? HEALTH_DEFAULTS.rise,
    fall: h.fall ?? HEALTH_DEFAULTS.fall,
  };
  if (h.port !== undefined) out.port = h.port;
  if (h.path !== undefined) out.path = h.path;
  if (h.host !== undefined) out.host = h.host;
  if (h.expectedStatuses !== undefined) out.expectedStatuses = [...h.expectedStatuses];
  return out;
}

/** Deterministic, spread-out choice of the VIP holder (MetalLB's trick): every planner agrees. */
export function rankDirectors(nodes: string[], vip: string): string[] {
  const score = (n: string): string => createHash('sha256').update(`${n}#${vip}`).digest('hex');
  return [...nodes].sort((a, b) => (score(a) < score(b) ? -1 : score(a) > score(b) ? 1 : a.localeCompare(b)));
}

function nodeAddress(node: NodeInfo, family: 4 | 6): string | undefined {
  const ok = (a: { type: string; address: string }): boolean => isIP(a.address) && familyOf(a.address) === family;
  return node.addresses.find((a) => a.type === 'InternalIP' && ok(a))?.address ?? node.addresses.find((a) => a.type === 'ExternalIP' && ok(a))?.address;
}

/**
 * RealServers a selector can match, in id order: its namespace's, narrowed by the rarest of the selector's
 * matchLabels pairs. Without it planning is O(VirtualServices × RealServers): minutes at 5,000 × 50,000.
 */
function candidateIndex(sorted: RealServer[]): (namespace: string, selector: LabelSelector | undefined) => RealServer[] {
  const byNamespace = new Map<string, RealServer[]>();
  const byLabel = new Map<string, RealServer[]>();
  const push = (m: Map<string, RealServer[]>, k: string, rs: RealServer): void => {
    const list = m.get(k);
    if (list) list.push(rs);
    else m.set(k, [rs]);
  };
  for (const rs of sorted) {
    const ns = rs.metadata.namespace ?? 'default';
    push(byNamespace, ns, rs);
    for (const [k, v] of Object.entries(rs.metadata.labels ?? {})) push(byLabel, JSON.stringify([ns, k, v]), rs);
  }
  return (namespace, selector) => {
    let best = byNamespace.get(namespace) ?? [];
    for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) {
      const list = byLabel.get(JSON.stringify([namespace, k, v])) ?? [];
      if (list.length < best.length) best = list;
    }
    return best;
  };
}

const byAge = (a: VirtualService, b: VirtualService): number => {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return idOf(a).localeCompare(idOf(b));
};

export function plan(input: PlannerInput): Plan {
  const nodes = new Map<string, NodePlan>();
  const nodeByName = new Map(input.nodes.map((n) => [n.name, n]));
  for (const n of [...input.nodes].sort((a, b) => a.name.localeCompare(b.name))) nodes.set(n.name, emptyPlan(n.name));
  const services = new Map<string, ServiceOutcome>();
  const realServers = new Map<string, RealServerOutcome>();
  const live = <T extends { metadata: { deletionTimestamp?: string } }>(o: T): boolean => !o.metadata.deletionTimestamp;

  const rsList = input.realServers.filter(live).sort((a, b) => idOf(a).localeCompare(idOf(b)));
  for (const rs of rsList) realServers.set(idOf(rs), { id: idOf(rs), selectedBy: [], problems: [] });
  const candidates = candidateIndex(rsList);

  // Resolve each RealServer's address once; the family is checked per service.
  const resolve = (rs: RealServer, family: 4 | 6, tunnel: boolean): { address?: string; problem?: Problem } => {
    if (rs.spec.address) return { address: rs.spec.address };
    const node = nodeByName.get(rs.spec.nodeName ?? '');
    if (!node) return { problem: { reason: 'NodeNotFound', message: `node ${rs.spec.nodeName ?? ''} does not exist` } };
    const address = nodeAddress(node, family) ?? (tunnel ? nodeAddress(node, family === 4 ? 6 : 4) : undefined);
    if (!address) return { problem: { reason: 'NoNodeAddress', message: `node ${node.name} has no IPv${family} InternalIP` } };
    return { address };
  };

  const liveVs = input.virtualServices.filter(live).sort(byAge);
  const admitted = input.admitted ?? (input.admission ? admitVips(liveVs, input.nodes, input.admission) : undefined);
  const claimed = new Map<string, string>();
  for (const vs of liveVs) {
    const id = idOf(vs);
    const s = vs.spec;
    const outcome: ServiceOutcome = { id, directors: [], destinations: [], skipped: [] };
    services.set(id, outcome);

    const decision: VipDecision | undefined = admitted
      ? (admitted.decisions.get(id) ?? { ok: false, reason: 'Pending', message: 'VIP admission has not looked at this VirtualService yet' })
      : s.vip === undefined ? { ok: false, reason: 'VIPRequired', message: 'spec.vip is required: there are no VIP pools to allocate from' } : undefined;
    if (decision && !decision.ok) {
      outcome.rejected = { reason: decision.reason, message: decision.message };
      continue;
    }
    const vip = decision?.vip ?? s.vip ?? '';
    const key = `${canonicalIP(vip)}|${s.port}|${s.protocol}`;
    const owner = claimed.get(key);
    if (owner) {
      outcome.rejected = { reason: 'VIPConflict', message: `${vip}:${s.port}/${s.protocol} is already served by VirtualService ${owner}, which is older` };
      continue;
    }
    claimed.set(key, id);
    outcome.vip = vip;
    if (decision) {
      outcome.pool = decision.pool;
      outcome.allocated = decision.allocated;
    }

    const family = familyOf(vip);
    const tunnel = s.forwarding === 'Tunnel';
    const seen = new Set<string>();
    const namespace = vs.metadata.namespace ?? 'default';
    for (const rs of candidates(namespace, s.realServerSelector)) {
      if (!matchesSelector(s.realServerSelector, rs.metadata.labels)) continue;
      const rsId = idOf(rs);
      const rsOut = realServers.get(rsId)!;
      const skip = (reason: string, message: string): void => {
        outcome.skipped.push({ realServer: rsId, reason, message });
        rsOut.problems.push({ virtualService: id, reason, message });
      };
      const { address, problem } = resolve(rs, family, tunnel);
      if (!address) {
        skip(problem!.reason, problem!.message);
        continue;
      }
      rsOut.address = address;
      if (familyOf(address) !== family && !tunnel) {
        skip('AddressFamilyMismatch', `realserver ${address} is IPv${familyOf(address)} but VIP ${vip} is IPv${family}; only Tunnel mixes families`);
        continue;
      }
      const port = rs.spec.port ?? s.port;
      if (s.forwarding !== 'NAT' && port !== s.port) {
        skip('PortMismatch', `${s.forwarding} cannot change the port: realserver port ${port}, service port ${s.port}`);
        continue;
      }
      const destKey = `${canonicalIP(address)}|${port}`;
      if (seen.has(destKey)) {
        skip('DuplicateRealServer', `${address}:${port} is already selected through another RealServer`);
        continue;
      }
      seen.add(destKey);
      const upper = rs.spec.upperThreshold ?? 0;
      const prepares = rs.spec.nodeName !== undefined && s.forwarding !== 'NAT' && nodes.has(rs.spec.nodeName);
      const waiting = prepares && input.prepared !== undefined && !input.prepared(rs.spec.nodeName!, id, vip);
      if (waiting) (outcome.unprepared ??= []).push(rsId);
      outcome.destinations.push({
        realServer: rsId,
        address,
        port,
        weight: waiting ? 0 : (rs.spec.weight ?? 1),
        // Zeros left out (absent means 0): a field less per realserver in every shard the API server handles.
        ...(upper ? { upperThreshold: upper } : {}),
        ...(rs.spec.lowerThreshold ? { lowerThreshold: rs.spec.lowerThreshold } : {}),
      });
      rsOut.selectedBy.push(id);
      if (prepares) {
        nodes.get(rs.spec.nodeName!)!.realServer.push({ service: id, vip, forwarding: tunnel ? 'Tunnel' : 'DirectRouting', ...(decision ? { pool: decision.pool } : {}) });
      }
    }

    const selector = s.directors?.nodeSelector ?? input.defaultDirectorSelector ?? DEFAULT_DIRECTOR_SELECTOR;
    // A pool's director selector narrows the service's: its VIPs stay on the pool's directors.
    const poolSelector = decision?.directors?.nodeSelector;
    const directorNodes = input.nodes.filter((n) => matchesLabels(selector, n.labels) && (!poolSelector || matchesLabels(poolSelector, n.labels))).map((n) => n.name);
    outcome.directors = rankDirectors(directorNodes, vip);
    outcome.activeDirector = outcome.directors[0];
    for (const d of outcome.directors) {
      const svc: PlannedService = {
        id,
        generation: vs.metadata.generation ?? 0,
        vip,
        port: s.port,
        protocol: s.protocol ?? 'TCP',
        scheduler: s.scheduler ?? 'wlc',
        schedulerFlags: [...(s.schedulerFlags ?? [])].sort(),
        onePacket: s.onePacket ?? false,
        forwarding: s.forwarding ?? 'DirectRouting',
        holdVip: d === outcome.activeDirector,
        ...(outcome.directors.length > 1 ? { standbyDirectors: outcome.directors.length - 1 } : {}),
        ...(decision ? { pool: decision.pool } : {}),
        healthCheck: plannedHealthCheck(s.healthCheck),
        drainTimeoutSeconds: s.drainTimeoutSeconds ?? 60,
        destinations: outcome.destinations.map((x) => ({ ...x })),
      };
      if (s.persistence) {
        svc.persistence = { timeoutSeconds: s.persistence.timeoutSeconds ?? 300 };
        if (s.persistence.netmask !== undefined) svc.persistence.netmask = s.persistence.netmask;
      }
      const ifname = s.directors?.interface ?? decision?.directors?.interface;
      if (ifname) svc.interface = ifname;
      nodes.get(d)!.director.push(svc);
    }
  }
  for (const p of nodes.values()) {
    p.director.sort((a, b) => a.id.localeCompare(b.id));
    p.realServer.sort((a, b) => a.service.localeCompare(b.service) || a.vip.localeCompare(b.vip));
  }
  return admitted ? { nodes, services, realServers, pools: admitted.pools } : { nodes, services, realServers };
}
