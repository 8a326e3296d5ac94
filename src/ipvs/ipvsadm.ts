// ipvsadm 1.31 notation: render our table as `ipvsadm -S -n` rules (restore files, diagnostics) and
// as the token rows of `ipvsadm -L -n` listings, and parse those listings back. The kernel suites
// use this to compare every state with ipvsadm's own view (an independent netlink implementation).

import { SvcFlag } from './constants.ts';
import { destKey, formatNetmask, serviceKey } from './keys.ts';
import type { Destination, DestinationEntry, Service, ServiceState, SyncDaemon, Timeouts } from './types.ts';

function bracket(af: 'ipv4' | 'ipv6', address: string): string {
  return af === 'ipv6' ? `[${address}]` : address;
}

/** `-t 192.168.56.40:80`, `-u ...`, `--sctp-service ...`, `-f 1`, `-f 2 -6`. */
export function ruleServiceName(s: Service): string {
  if (s.fwmark !== undefined) return s.af === 'ipv6' ? `-f ${s.fwmark} -6` : `-f ${s.fwmark}`;
  const opt = s.protocol === 'tcp' ? '-t' : s.protocol === 'udp' ? '-u' : '--sctp-service';
  return `${opt} ${bracket(s.af, s.address)}:${s.port}`;
}

/** ipvsadm's names of the scheduler flags (print_sched_flags). */
export function schedFlagNames(scheduler: string, flags: number): string[] {
  const prefix = scheduler === 'sh' || scheduler === 'mh' ? scheduler : undefined;
  const names: string[] = [];
  if (flags & SvcFlag.SCHED1) names.push(prefix ? `${prefix}-fallback` : 'flag-1');
  if (flags & SvcFlag.SCHED2) names.push(prefix ? `${prefix}-port` : 'flag-2');
  if (flags & SvcFlag.SCHED3) names.push('flag-3');
  return names;
}

const TUN_FLAG_OPTS = ['--tun-nocsum', '--tun-csum', '--tun-remcsum'];
const TUN_FLAG_SHORT = ['-c', '+c', 'r+c'];
const FWD_SWITCH = { masq: '-m', tunnel: '-i', droute: '-g', local: '-g' } as const;
const FWD_NAME = { masq: 'Masq', tunnel: 'Tunnel', droute: 'Route', local: 'Local' } as const;

export function formatServiceRule(s: Service): string {
  let line = `-A ${ruleServiceName(s)} -s ${s.scheduler}`;
  if (s.flags & SvcFlag.PERSISTENT) {
    line += ` -p ${s.timeout}`;
    const mask = formatNetmask(s);
    if (mask !== undefined) line += ` -M ${mask}`;
  }
  if (s.pe) line += ` --pe ${s.pe}`;
  if (s.flags & SvcFlag.ONEPACKET) line += ' -o';
  const sched = schedFlagNames(s.scheduler, s.flags);
  if (sched.length) line += ` -b ${sched.join(',')}`;
  return line;
}

export function formatDestinationRule(s: Service, d: Destination): string {
  let line = `-a ${ruleServiceName(s)} -r ${bracket(d.af, d.address)}:${d.port} ${FWD_SWITCH[d.forwarding]} -w ${d.weight}`;
  if (d.forwarding === 'tunnel') {
    line += ` --tun-type ${d.tunnelType}`;
    if (d.tunnelType === 'gue') line += ` --tun-port ${d.tunnelPort}`;
    if (d.tunnelType !== 'ipip') line += ` ${TUN_FLAG_OPTS[d.tunnelFlags] ?? `--tun-flags-${d.tunnelFlags}`}`;
  }
  return line;
}

/** `ipvsadm -S -n` lines for a table (order as given; ipvsadm itself sorts, so compare as sets). */
export function formatIpvsadmRules(states: readonly ServiceState[]): string[] {
  const out: string[] = [];
  for (const st of states) {
    out.push(formatServiceRule(st.service));
    for (const d of st.destinations) out.push(formatDestinationRule(st.service, d.destination));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Listings (`ipvsadm -L -n [--stats|--rate|--thresholds|--persistent-conn|--tun-info] --exact`)

export type ListingMode = 'plain' | 'stats' | 'rate' | 'thresholds' | 'persistent-conn' | 'tun-info';

export interface ListingRow {
  /** serviceKey() notation: `192.168.56.40:80/TCP`, `fwmark 1/IPv4`. */
  readonly service: string;
  /** Whitespace-separated columns after the service name. */
  readonly fields: readonly string[];
  readonly destinations: ReadonlyArray<{ readonly destination: string; readonly fields: readonly string[] }>;
}

/** Parses an `ipvsadm -L -n ...` listing into rows keyed like serviceKey()/destKey(). */
export function parseIpvsadmList(text: string): ListingRow[] {
  const rows: Array<{ service: string; fields: string[]; destinations: Array<{ destination: string; fields: string[] }> }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line || line.startsWith('IP Virtual Server') || line.startsWith('Prot ') || /^\s+-> RemoteAddress/.test(line)) continue;
    const dest = /^\s+->\s+(\S+)\s*(.*)$/.exec(line);
    if (dest) {
      const cur = rows[rows.length - 1];
      if (!cur) throw new Error(`destination line before any service: ${line}`);
      cur.destinations.push({ destination: dest[1] as string, fields: (dest[2] as string).split(/\s+/).filter(Boolean) });
      continue;
    }
    const fwm = /^FWM\s+(\d+)( IPv6)?\s*(.*)$/.exec(line);
    if (fwm) {
      rows.push({ service: `fwmark ${fwm[1]}/${fwm[2] ? 'IPv6' : 'IPv4'}`, fields: (fwm[3] as string).split(/\s+/).filter(Boolean), destinations: [] });
      continue;
    }
    const svc = /^(TCP|UDP|SCTP)\s+(\S+)\s*(.*)$/.exec(line);
    if (svc) {
      rows.push({ service: `${svc[2]}/${svc[1]}`, fields: (svc[3] as string).split(/\s+/).filter(Boolean), destinations: [] });
      continue;
    }
    throw new Error(`unrecognised ipvsadm listing line: ${JSON.stringify(line)}`);
  }
  return rows;
}

function serviceFields(s: Service): string[] {
  const f = [s.scheduler];
  const sched = schedFlagNames(s.scheduler, s.flags);
  if (sched.length) f.push(`(${sched.join(',')})`);
  if (s.flags & SvcFlag.PERSISTENT) {
    f.push('persistent', String(s.timeout));
    const mask = formatNetmask(s);
    if (mask !== undefined) f.push('mask', mask);
  }
  if (s.pe) f.push('pe', s.pe);
  if (s.flags & SvcFlag.ONEPACKET) f.push('ops');
  return f;
}

function tunInfo(d: Destination): string {
  if (d.forwarding !== 'tunnel') return 'n/a';
  const flag = TUN_FLAG_SHORT[d.tunnelFlags] ?? 'n/a';
  if (d.tunnelType === 'gue') return `gue:${d.tunnelPort}:${flag}`;
  if (d.tunnelType === 'gre') return `gre:${flag}`;
  return 'ipip';
}

const statsFields = (s: { conns: bigint; inpkts: bigint; outpkts: bigint; inbytes: bigint; outbytes: bigint }): string[] =>
  [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].map(String);
const rateFields = (s: { cps: bigint; inpps: bigint; outpps: bigint; inbps: bigint; outbps: bigint }): string[] =>
  [s.cps, s.inpps, s.outpps, s.inbps, s.outbps].map(String);

function destFields(mode: ListingMode, e: DestinationEntry): string[] {
  const d = e.destination;
  const c = e.counters;
  switch (mode) {
    case 'plain':
      return [FWD_NAME[d.forwarding], String(d.weight), String(c.activeConns), String(c.inactiveConns)];
    case 'stats':
      return statsFields(e.stats);
    case 'rate':
      return rateFields(e.stats);
    case 'thresholds':
      return [String(d.upperThreshold), String(d.lowerThreshold), String(c.activeConns), String(c.inactiveConns)];
    case 'persistent-conn':
      return [String(d.weight), String(c.persistConns), String(c.activeConns), String(c.inactiveConns)];
    case 'tun-info':
      return [FWD_NAME[d.forwarding], tunInfo(d), String(d.weight), String(c.activeConns), String(c.inactiveConns)];
  }
}

/** What `ipvsadm -L -n <mode> --exact` shows for our view of the table, as parsed rows. */
export function expectedIpvsadmList(states: readonly ServiceState[], mode: ListingMode): ListingRow[] {
  return states.map((st) => ({
    service: serviceKey(st.service),
    fields: mode === 'stats' ? statsFields(st.stats) : mode === 'rate' ? rateFields(st.stats) : serviceFields(st.service),
    destinations: st.destinations.map((e) => ({ destination: destKey(e.destination), fields: destFields(mode, e) })),
  }));
}

/** `Timeout (tcp tcpfin udp): 900 120 300` */
export function parseIpvsadmTimeouts(text: string): Timeouts {
  const m = /Timeout \(tcp tcpfin udp\): (\d+) (\d+) (\d+)/.exec(text);
  if (!m) throw new Error(`unrecognised ipvsadm timeout output: ${JSON.stringify(text)}`);
  return { tcp: Number(m[1]), tcpFin: Number(m[2]), udp: Number(m[3]) };
}

/** `master sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)` */
export function parseIpvsadmDaemons(text: string): SyncDaemon[] {
  const out: SyncDaemon[] = [];
  const re = /^(master|backup) sync daemon \(mcast=([^,]+), syncid=(\d+)(?:, maxlen=(\d+), group=([^,]+), port=(\d+), ttl=(\d+))?\)$/gm;
  for (const m of text.matchAll(re)) {
    out.push({
      role: m[1] as 'master' | 'backup',
      interface: m[2] as string,
      syncId: Number(m[3]),
      maxLen: Number(m[4] ?? 0),
      group: m[5] ?? '224.0.0.81',
      port: Number(m[6] ?? 8848),
      ttl: Number(m[7] ?? 1),
    });
  }
  return out;
}
