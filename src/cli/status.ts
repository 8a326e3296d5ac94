/**
 * `kubectl lvs status`: one `ipvsadm -Ln`-like table per VirtualService, built (purely) from
 * - the VirtualService (spec, status.activeDirector, conditions),
 * - the NodePlans: which directors program it, the planned realservers with their resolved addresses and
 *   weights (spec), and the health each director's agent reports (status),
 * - when NodePlans cannot be read (the default view/edit roles do not include them), the RealServers
 *   instead: status.address, spec.weight and the health in status.virtualServices,
 * - active/inactive connections from the agents' metrics (lvs_backend_connections_active/inactive), which
 *   the NodePlan status does not carry; absent when the metrics cannot be fetched.
 */
import { stringify as toYaml } from 'yaml';
import type { Condition } from '../api/v1alpha1/meta.ts';
import type { NodePlan, PlannedDestination, PlannedService, ServiceReport } from '../api/v1alpha1/nodeplan.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import { idOf } from '../model/planner.ts';
import { canonicalIP } from '../model/planner.ts';
import { reportedHealthy } from '../model/reports.ts';

export interface BackendConnections {
  active: number;
  inactive: number;
}

/** Connections per `${node}|${virtual_service}|${address}|${port}` (address canonicalised). */
export type ConnectionTable = Map<string, BackendConnections>;

export const connectionKey = (node: string, service: string, address: string, port: number): string => `${node}|${service}|${canonicalIP(address)}|${port}`;

export interface StatusRealServer {
  /** namespace/name of the RealServer, when known. */
  realServer?: string;
  address: string;
  port: number;
  weight: number;
  /** true/false as the director's health check reports it; undefined when no report exists. */
  healthy?: boolean;
  activeConnections?: number;
  inactiveConnections?: number;
}

export interface StatusService {
  namespace: string;
  name: string;
  vip: string;
  port: number;
  protocol: string;
  scheduler: string;
  schedulerFlags: string[];
  onePacket: boolean;
  persistence?: { timeoutSeconds: number; netmask?: string };
  forwarding: string;
  /** The node that holds the VIP (status.activeDirector, else the agent that reports holding it). */
  activeDirector?: string;
  /** Every director that programs it (hot standbys included), from the NodePlans. */
  directors: string[];
  /** healthy/total, from the VirtualService status. */
  ready?: string;
  conditions: Array<Pick<Condition, 'type' | 'status' | 'reason' | 'message'>>;
  /** Errors the directors' agents report. */
  errors: string[];
  /** Where the realserver rows come from. */
  source: 'nodeplans' | 'realservers';
  realServers: StatusRealServer[];
}

export interface StatusInput {
  virtualServices: VirtualService[];
  realServers: RealServer[];
  /** Undefined when NodePlans cannot be read. */
  nodePlans?: NodePlan[];
  connections?: ConnectionTable;
}

interface Entry {
  node: string;
  planned: PlannedService;
  report?: ServiceReport;
}

export function buildStatus(input: StatusInput): StatusService[] {
  const byService = new Map<string, Entry[]>();
  for (const np of input.nodePlans ?? []) {
    if (np.metadata.deletionTimestamp) continue;
    const reports = new Map((np.status?.services ?? []).map((r) => [r.id, r]));
    for (const planned of np.spec.director) {
      const list = byService.get(planned.id) ?? [];
      const report = reports.get(planned.id);
      list.push({ node: np.spec.node, planned, ...(report ? { report } : {}) });
      byService.set(planned.id, list);
    }
  }
  const vss = [...input.virtualServices].sort((a, b) => idOf(a).localeCompare(idOf(b)));
  return vss.map((vs) => {
    const id = idOf(vs);
    const entries = (byService.get(id) ?? []).sort((a, b) => a.node.localeCompare(b.node));
    const holder = vs.status?.activeDirector ?? entries.find((e) => e.report?.holdsVip)?.node;
    const s = vs.spec;
    const out: StatusService = {
      namespace: vs.metadata.namespace ?? 'default',
      name: vs.metadata.name ?? '',
      vip: vs.status?.vip ?? s.vip ?? '',
      port: s.port,
      protocol: s.protocol ?? 'TCP',
      scheduler: s.scheduler ?? 'wlc',
      schedulerFlags: [...(s.schedulerFlags ?? [])],
      onePacket: s.onePacket ?? false,
      forwarding: s.forwarding ?? 'DirectRouting',
      directors: entries.map((e) => e.node),
      conditions: (vs.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })),
      errors: entries.flatMap((e) => (e.report?.errors ?? []).map((m) => `${e.node}: ${m}`)),
      source: input.nodePlans ? 'nodeplans' : 'realservers',
      realServers: [],
    };
    if (s.persistence) out.persistence = { timeoutSeconds: s.persistence.timeoutSeconds ?? 300, ...(s.persistence.netmask ? { netmask: s.persistence.netmask } : {}) };
    if (holder) out.activeDirector = holder;
    if (vs.status?.realServers?.ready) out.ready = vs.status.realServers.ready;

    if (input.nodePlans) {
      // The VIP holder's view; a hot standby's when nobody holds it (its table is the same).
      const view = entries.find((e) => e.node === holder) ?? entries[0];
      if (view) out.realServers = view.planned.destinations.map((d) => row(view, d, input.connections));
    } else {
      out.realServers = fromRealServers(vs, input.realServers);
    }
    return out;
  });
}

function row(view: Entry, d: PlannedDestination, connections: ConnectionTable | undefined): StatusRealServer {
  const r: StatusRealServer = { realServer: d.realServer, address: d.address, port: d.port, weight: d.weight };
  const h = reportedHealthy(view.report, d.address, d.port);
  if (h !== undefined) r.healthy = h;
  const c = connections?.get(connectionKey(view.node, view.planned.id, d.address, d.port));
  if (c) {
    r.activeConnections = c.active;
    r.inactiveConnections = c.inactive;
  }
  return r;
}

function fromRealServers(vs: VirtualService, realServers: RealServer[]): StatusRealServer[] {
  const ns = vs.metadata.namespace ?? 'default';
  const out: StatusRealServer[] = [];
  for (const rs of [...realServers].sort((a, b) => idOf(a).localeCompare(idOf(b)))) {
    if ((rs.metadata.namespace ?? 'default') !== ns) continue;
    const binding = rs.status?.virtualServices?.find((b) => b.virtualService === vs.metadata.name);
    if (!binding) continue;
    out.push({
      realServer: idOf(rs),
      address: rs.status?.address ?? rs.spec.address ?? rs.spec.nodeName ?? '',
      port: rs.spec.port ?? vs.spec.port,
      weight: rs.spec.weight ?? 1,
      healthy: binding.healthy,
    });
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Output

const FORWARD: Record<string, string> = { DirectRouting: 'Route', NAT: 'Masq', Tunnel: 'Tunnel' };

const hostPort = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/** The service line's flags in ipvsadm -Ln words: `rr (sh-port) persistent 300 mask 255.255.255.0 ops`. */
function serviceFlags(s: StatusService): string {
  const f = [s.scheduler];
  if (s.schedulerFlags.length) f.push(`(${s.schedulerFlags.join(',')})`);
  if (s.persistence) {
    f.push('persistent', String(s.persistence.timeoutSeconds));
    if (s.persistence.netmask) f.push('mask', s.persistence.netmask);
  }
  if (s.onePacket) f.push('ops');
  return f.join(' ');
}

const health = (h: boolean | undefined): string => (h === undefined ? 'unknown' : h ? 'healthy' : 'failing');
const count = (n: number | undefined): string => (n === undefined ? '-' : String(n));
const cond = (s: StatusService, type: string): StatusService['conditions'][number] | undefined => s.conditions.find((c) => c.type === type);

/** The tables, one per VirtualService, ipvsadm -Ln style with Health and RealServer columns added. */
export function formatTable(services: readonly StatusService[]): string {
  if (services.length === 0) return 'No VirtualServices found.\n';
  const blocks = services.map((s) => {
    const ready = cond(s, 'Ready');
    const standby = s.directors.filter((d) => d !== s.activeDirector);
    const head = [
      `${s.namespace}/${s.name}`,
      `mode ${s.forwarding}`,
      `director ${s.activeDirector ?? '<none>'}${standby.length ? ` (standby: ${standby.join(', ')})` : ''}`,
      `ready ${s.ready ?? '-'}${ready ? ` (${ready.status === 'True' ? 'Ready' : ready.reason})` : ''}`,
    ].join('  ');
    const lines = [
      head,
      'Prot LocalAddress:Port Scheduler Flags',
      `  -> ${'RemoteAddress:Port'.padEnd(28)} Forward Weight ActiveConn InActConn Health  RealServer`,
      `${s.protocol.padEnd(4)} ${hostPort(s.vip, s.port)} ${serviceFlags(s)}`,
    ];
    for (const r of s.realServers) {
      lines.push(`  -> ${hostPort(r.address, r.port).padEnd(28)} ${(FORWARD[s.forwarding] ?? s.forwarding).padEnd(7)} ${String(r.weight).padEnd(6)} ${count(r.activeConnections).padEnd(10)} ${count(r.inactiveConnections).padEnd(9)} ${health(r.healthy).padEnd(7)} ${r.realServer?.split('/')[1] ?? ''}`.trimEnd());
    }
    for (const c of s.conditions) if (c.status !== 'True') lines.push(`  ! ${c.type}=${c.status} ${c.reason}: ${c.message}`);
    for (const e of s.errors) lines.push(`  ! ${e}`);
    return lines.join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}

/** For scripts: `{"items": [...]}`, the same data as the table. */
export function formatStatus(services: StatusService[], output: 'table' | 'json' | 'yaml'): string {
  if (output === 'table') return formatTable(services);
  const doc = { items: services };
  return output === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : toYaml(doc);
}

// ------------------------------------------------------------------------------------------------
// Agent metrics

const SAMPLE = /^(lvs_backend_connections_(?:active|inactive))\{(.*)\}\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;

/**
 * The connection gauges of one agent's /metrics (Prometheus text format), keyed for `node`. Only services
 * the agent names (virtual_service label) are kept.
 */
export function parseConnections(node: string, text: string, into: ConnectionTable = new Map()): ConnectionTable {
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    LABEL.lastIndex = 0;
    const body = m[2] as string;
    let l: RegExpExecArray | null;
    while (LABEL.lastIndex < body.length && (l = LABEL.exec(body))) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const service = labels['virtual_service'];
    const address = labels['remote_address'];
    const port = Number(labels['remote_port']);
    if (!service || !address || !Number.isInteger(port)) continue;
    const key = connectionKey(node, service, address, port);
    const cur = into.get(key) ?? { active: 0, inactive: 0 };
    const value = Number(m[3]);
    if (m[1] === 'lvs_backend_connections_active') cur.active = value;
    else cur.inactive = value;
    into.set(key, cur);
  }
  return into;
}
