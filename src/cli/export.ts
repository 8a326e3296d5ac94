/**
 * `kubectl lvs export`: the IPVS rules a director is meant to hold, as `ipvsadm-save -n` lines
 * (`-A`/`-a`), so they can be diffed against `ipvsadm -Sn` on the node or restored with `ipvsadm -R`.
 *
 * Where the rules come from:
 * - in a cluster, by default, the NodePlan objects: their spec is the planner's output as the controller
 *   computed it — with the controller's own configuration (its default director selector, which the CLI
 *   cannot see) — and it is exactly what each node's agent is told to program. That is what a director
 *   is "meant to hold". Re-planning on the client could disagree with the controller (another version,
 *   another configuration) and would describe a state no agent acts on.
 * - `--source objects` (a cluster whose controller is not running) and `-f FILE|DIR` (no cluster): the
 *   same pure planner the controller uses (src/model/planner.ts), run here on the objects.
 * Weights are the configured ones; the agent sets 0 while a health check fails (see `status`).
 */
import type { PlannedService } from '../api/v1alpha1/nodeplan.ts';
import type { NodePlan as NodePlanObject } from '../api/v1alpha1/nodeplan.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import { ipvsDestination, ipvsService } from '../agent/director/desired.ts';
import { addressBytes } from '../ipvs/addr.ts';
import { applyIpvsadmRules, formatDestinationRule, formatServiceRule, parseIpvsadmRules, type ParseRulesOptions, type RuleProblem, type TableService } from '../ipvs/ipvsadm.ts';
import type { Destination, Service } from '../ipvs/types.ts';
import { plan, type NodeInfo, type Plan } from '../model/planner.ts';
import type { Admission, VipDecision } from '../model/pools.ts';
import type { VIPPool } from '../api/v1alpha1/vippool.ts';
import * as C from '../api/v1alpha1/conditions.ts';

/** Orders addresses numerically (IPv4 before IPv6), like a sorted `ipvsadm -Ln`. */
function compareAddress(a: { af: 'ipv4' | 'ipv6'; address: string }, b: { af: 'ipv4' | 'ipv6'; address: string }): number {
  if (a.af !== b.af) return a.af === 'ipv4' ? -1 : 1;
  const x = addressBytes(a.af, a.address);
  const y = addressBytes(b.af, b.address);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return 0;
}

const PROTO_ORDER = { tcp: 0, udp: 1, sctp: 2 } as const;

function compareService(a: Service, b: Service): number {
  return compareAddress(a as { af: 'ipv4' | 'ipv6'; address: string }, b as { af: 'ipv4' | 'ipv6'; address: string })
    || (a.port ?? 0) - (b.port ?? 0)
    || PROTO_ORDER[a.protocol ?? 'tcp'] - PROTO_ORDER[b.protocol ?? 'tcp'];
}

/** `-a` line with the connection thresholds, which ipvsadm -R reads (-x/-y) but ipvsadm -S never prints. */
function destinationRule(s: Service, d: Destination): string {
  let line = formatDestinationRule(s, d);
  if (d.upperThreshold) line += ` -x ${d.upperThreshold}`;
  if (d.lowerThreshold) line += ` -y ${d.lowerThreshold}`;
  return line;
}

/** ipvsadm-save lines for planned services, sorted by VIP, port and protocol, realservers by address. */
export function rulesOf(services: readonly PlannedService[]): string[] {
  const entries = services.map((p) => ({
    service: ipvsService(p),
    destinations: p.destinations.map((d) => ipvsDestination(p, d, d.weight)),
  }));
  entries.sort((a, b) => compareService(a.service, b.service));
  const out: string[] = [];
  for (const e of entries) {
    out.push(formatServiceRule(e.service));
    const dests = [...e.destinations].sort((a, b) => compareAddress(a, b) || a.port - b.port);
    for (const d of dests) out.push(destinationRule(e.service, d));
  }
  return out;
}

/**
 * The services of the selected node's plan, or of every node's (each service once: every director of a
 * service holds the same rules).
 */
export function servicesOfPlan(p: Plan, node?: string): PlannedService[] {
  if (node !== undefined) return p.nodes.get(node)?.director ?? [];
  return dedupe([...p.nodes.values()].flatMap((n) => n.director));
}

/** The services of NodePlan objects (optionally of one node); the newest generation of each service wins. */
export function servicesOfNodePlans(objects: readonly NodePlanObject[], node?: string): PlannedService[] {
  return dedupe(objects.filter((o) => node === undefined || o.spec.node === node).flatMap((o) => o.spec.director));
}

function dedupe(services: PlannedService[]): PlannedService[] {
  const byId = new Map<string, PlannedService>();
  for (const s of services) {
    const cur = byId.get(s.id);
    if (!cur || s.generation > cur.generation) byId.set(s.id, s);
  }
  return [...byId.values()];
}

export interface OfflineInput {
  virtualServices: VirtualService[];
  realServers: RealServer[];
  nodes: NodeInfo[];
}

export interface PlanWarning {
  object: string;
  message: string;
}

/**
 * Plans objects read from files or the cluster. Without Node objects (e.g. the output of `import`) every
 * service is planned onto one implicit director, whatever its spec.directors.nodeSelector says: there is no
 * node to match, and the rules are the same on every director anyway.
 */
/** Reasons of Accepted=False that are VIP admission's verdicts (pools.ts), not the planner's. */
const ADMISSION_REASONS: ReadonlySet<string> = new Set([C.ReasonVIPNotAllowed, C.ReasonVIPIsNodeAddress, C.ReasonVIPReserved, C.ReasonVIPInUse, C.ReasonNoVIPAvailable]);

/**
 * VIP admission as the controller decided it, read back from each VirtualService's status, for planning
 * cluster objects: the controller alone knows every input (reserved ranges from its configuration, the API
 * server's addresses), so the CLI repeats its verdicts instead of recomputing them. A verdict from an older
 * generation still holds unless spec.vip has moved since (admission reads nothing else of the spec that
 * changes often); a VirtualService with no verdict, or whose VIP moved, is Pending (not exported). `pools`
 * (when readable) give each admitted VIP its pool's director narrowing.
 */
export function admissionFromStatus(virtualServices: readonly VirtualService[], pools: readonly VIPPool[] = []): Admission {
  const decisions = new Map<string, VipDecision>();
  const byName = new Map(pools.map((p) => [p.metadata.name ?? '', p]));
  for (const vs of virtualServices) {
    if (vs.metadata.deletionTimestamp) continue;
    const id = `${vs.metadata.namespace ?? 'default'}/${vs.metadata.name ?? ''}`;
    const generation = vs.metadata.generation ?? 0;
    const accepted = (vs.status?.conditions ?? []).find((c) => c.type === C.ConditionAccepted);
    if (!accepted) {
      decisions.set(id, { ok: false, reason: C.ReasonPending, message: 'no Accepted condition: the controller has not admitted its VIP (is it running?)' });
      continue;
    }
    if (accepted.observedGeneration !== generation && vs.spec.vip !== undefined && vs.status?.vip !== vs.spec.vip) {
      decisions.set(id, { ok: false, reason: C.ReasonPending, message: `spec.vip ${vs.spec.vip} is newer than the controller's last decision (generation ${accepted.observedGeneration ?? '?'})` });
      continue;
    }
    if (accepted.status !== 'True' && ADMISSION_REASONS.has(accepted.reason)) {
      decisions.set(id, { ok: false, reason: accepted.reason, message: accepted.message });
      continue;
    }
    const vip = vs.spec.vip ?? vs.status?.vip;
    if (!vip) {
      decisions.set(id, { ok: false, reason: C.ReasonPending, message: 'no VIP: neither spec.vip nor an allocation in status.vip' });
      continue;
    }
    const pool = vs.status?.vipPool ?? '';
    const directors = byName.get(pool)?.spec.directors;
    decisions.set(id, { ok: true, vip, pool, allocated: vs.spec.vip === undefined, ...(directors ? { directors } : {}) });
  }
  return { decisions, pools: new Map() };
}

export function planObjects(input: OfflineInput, opts: { node?: string; defaultDirectorSelector?: Record<string, string>; admitted?: Admission } = {}): { plan: Plan; node?: string; warnings: PlanWarning[] } {
  let { virtualServices, nodes } = input;
  let node = opts.node;
  let defaultDirectorSelector = opts.defaultDirectorSelector;
  if (nodes.length === 0) {
    node ??= 'director';
    nodes = [{ name: node, labels: {}, addresses: [] }];
    defaultDirectorSelector = {};
    virtualServices = virtualServices.map((vs) => {
      if (!vs.spec.directors?.nodeSelector) return vs;
      const { nodeSelector: _drop, ...directors } = vs.spec.directors;
      void _drop;
      return { ...vs, spec: { ...vs.spec, directors } };
    });
  }
  const p = plan({ virtualServices, realServers: input.realServers, nodes, ...(defaultDirectorSelector ? { defaultDirectorSelector } : {}), ...(opts.admitted ? { admitted: opts.admitted } : {}) });
  const warnings: PlanWarning[] = [];
  for (const s of p.services.values()) {
    if (s.rejected) warnings.push({ object: `VirtualService ${s.id}`, message: `${s.rejected.reason}: ${s.rejected.message}` });
    else if (s.directors.length === 0) warnings.push({ object: `VirtualService ${s.id}`, message: 'no node matches its director node selector' });
    for (const k of s.skipped) warnings.push({ object: `RealServer ${k.realServer}`, message: `left out of ${s.id}: ${k.reason}: ${k.message}` });
  }
  if (node !== undefined && !p.nodes.has(node)) warnings.push({ object: `Node ${node}`, message: 'no such node' });
  return { plan: p, ...(node !== undefined ? { node } : {}), warnings };
}

/**
 * A rules table in canonical form: every `-A` and `-a` line (thresholds included) formatted from the parsed
 * values and sorted, so two tables that program the kernel the same way give the same lines whatever their
 * spelling (names or numbers, long or short options, defaults written out or not) and order.
 */
export function canonicalTable(services: readonly TableService[]): string[] {
  const out: string[] = [];
  for (const s of services) {
    out.push(formatServiceRule(s.service));
    for (const d of s.destinations) out.push(destinationRule(s.service, d.destination));
  }
  return out.sort();
}

/** canonicalTable() of rules text, with the lines that are not valid rules. */
export function canonicalRules(text: string, opts: ParseRulesOptions = {}): { lines: string[]; problems: RuleProblem[] } {
  const parsed = parseIpvsadmRules(text, opts);
  const table = applyIpvsadmRules(parsed.rules);
  return { lines: canonicalTable(table.services), problems: [...parsed.problems, ...table.problems] };
}
