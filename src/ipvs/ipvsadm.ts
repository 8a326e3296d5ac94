// ipvsadm 1.31 notation: render our table as `ipvsadm -S -n` rules (restore files, diagnostics) and
// as the token rows of `ipvsadm -L -n` listings, parse those listings back, and parse rules
// (`ipvsadm -S` output, `ipvsadm -R` input) into our value types. The kernel suites
// use this to compare every state with ipvsadm's own view (an independent netlink implementation).

import { defaultNetmask, familyOf, normalizeAddress, parseIPv4 } from './addr.ts';
import { SvcFlag } from './constants.ts';
import { destKey, formatNetmask, serviceKey } from './keys.ts';
import type {
  AddressFamily, Destination, DestinationEntry, DestinationKey, ForwardingMethod, Protocol, Service, ServiceKey, ServiceState, SyncDaemon, Timeouts,
} from './types.ts';

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

// ------------------------------------------------------------------------------------------------
// Rules: what `ipvsadm -S [-n]` prints and `ipvsadm -R` reads, parsed into our value types with the
// defaults and normalisations ipvsadm 1.31 applies before it talks to the kernel (checked in the lab VM:
// test/fixtures/ipvsadm/README.md). Used by `kubectl lvs import` and by round-trip comparisons.

export type RuleCommand =
  | 'add-service' | 'edit-service' | 'delete-service'
  | 'add-server' | 'edit-server' | 'delete-server'
  | 'clear' | 'zero' | 'other';

interface RuleBase {
  /** 1-based line number in the input. */
  readonly line: number;
  /** The line as written (trimmed). */
  readonly text: string;
}
/** -A/-E: the whole service (edit replaces the configuration, as ipvsadm does). */
export interface ServiceRule extends RuleBase { readonly command: 'add-service' | 'edit-service'; readonly service: Service }
/** -a/-e: the whole destination of the service `service`. */
export interface ServerRule extends RuleBase { readonly command: 'add-server' | 'edit-server'; readonly service: ServiceKey; readonly destination: Destination }
export interface DeleteServiceRule extends RuleBase { readonly command: 'delete-service'; readonly service: ServiceKey }
export interface DeleteServerRule extends RuleBase { readonly command: 'delete-server'; readonly service: ServiceKey; readonly destination: DestinationKey }
export interface ClearRule extends RuleBase { readonly command: 'clear' }
/** -Z: zeroes counters; no effect on the configuration. */
export interface ZeroRule extends RuleBase { readonly command: 'zero'; readonly service?: ServiceKey }
/** A valid ipvsadm command that is not table configuration (--set, --start-daemon, --stop-daemon). */
export interface OtherRule extends RuleBase { readonly command: 'other'; readonly option: string }
export type IpvsadmRule = ServiceRule | ServerRule | DeleteServiceRule | DeleteServerRule | ClearRule | ZeroRule | OtherRule;

export interface RuleProblem {
  readonly line: number;
  readonly text: string;
  readonly message: string;
}

export interface ParseRulesOptions {
  /**
   * Port of a service name (`http`) for a protocol, as getservbyname(3); `ipvsadm -S` without -n prints
   * names. Default: a built-in table of well-known names (WELL_KNOWN_PORTS).
   */
  resolvePort?: (name: string, protocol: Protocol) => number | undefined;
}

/** IANA names `ipvsadm -S` commonly prints (Debian netbase /etc/services), for hosts without that file. */
export const WELL_KNOWN_PORTS: Readonly<Record<string, number>> = {
  'ftp-data': 20, ftp: 21, ssh: 22, telnet: 23, smtp: 25, domain: 53, tftp: 69, gopher: 70, http: 80, kerberos: 88,
  pop3: 110, sunrpc: 111, nntp: 119, ntp: 123, imap2: 143, snmp: 161, 'snmp-trap': 162, bgp: 179, ldap: 389, https: 443,
  'microsoft-ds': 445, submissions: 465, syslog: 514, submission: 587, ldaps: 636, rsync: 873, imaps: 993, pop3s: 995,
  socks: 1080, openvpn: 1194, 'ms-sql-s': 1433, radius: 1812, 'radius-acct': 1813, nfs: 2049, mysql: 3306, diameter: 3868,
  sip: 5060, 'sip-tls': 5061, xmpp: 5222, postgresql: 5432, amqp: 5672, 'http-alt': 8080, memcache: 11211,
};

/** ipvsadm's defaults (ipvsadm.c): scheduler wlc, persistence 360 s, weight 1, direct routing. */
export const IPVSADM_DEFAULT_SCHEDULER = 'wlc';
export const IPVSADM_DEFAULT_PERSISTENCE = 360;

const SCHED_FLAG_BITS: Record<string, { bit: number; scheduler?: string }> = {
  'flag-1': { bit: SvcFlag.SCHED1 },
  'flag-2': { bit: SvcFlag.SCHED2 },
  'flag-3': { bit: SvcFlag.SCHED3 },
  'sh-fallback': { bit: SvcFlag.SCHED1, scheduler: 'sh' },
  'sh-port': { bit: SvcFlag.SCHED2, scheduler: 'sh' },
  'mh-fallback': { bit: SvcFlag.SCHED1, scheduler: 'mh' },
  'mh-port': { bit: SvcFlag.SCHED2, scheduler: 'mh' },
};

/** Long options and their short forms; `arg`: none, required, or optional (-p [timeout]). */
const OPTIONS: Record<string, { name: string; arg: 'none' | 'required' | 'optional' | 'three' }> = {};
for (const [names, arg] of [
  [['-A', '--add-service'], 'none'], [['-E', '--edit-service'], 'none'], [['-D', '--delete-service'], 'none'],
  [['-C', '--clear'], 'none'], [['-a', '--add-server'], 'none'], [['-e', '--edit-server'], 'none'],
  [['-d', '--delete-server'], 'none'], [['-Z', '--zero'], 'none'], [['--set'], 'three'],
  [['--start-daemon'], 'required'], [['--stop-daemon'], 'required'],
  [['-t', '--tcp-service'], 'required'], [['-u', '--udp-service'], 'required'], [['--sctp-service'], 'required'],
  [['-f', '--fwmark-service'], 'required'], [['-6', '--ipv6'], 'none'], [['-s', '--scheduler'], 'required'],
  [['-p', '--persistent'], 'optional'], [['-M', '--netmask'], 'required'], [['-b', '--sched-flags'], 'required'],
  [['--pe'], 'required'], [['-o', '--ops'], 'none'], [['-r', '--real-server'], 'required'],
  [['-g', '--gatewaying'], 'none'], [['-i', '--ipip'], 'none'], [['-m', '--masquerading'], 'none'],
  [['-w', '--weight'], 'required'], [['-x', '--u-threshold'], 'required'], [['-y', '--l-threshold'], 'required'],
  [['--tun-type'], 'required'], [['--tun-port'], 'required'], [['--tun-nocsum'], 'none'], [['--tun-csum'], 'none'],
  [['--tun-remcsum'], 'none'], [['-n', '--numeric'], 'none'],
  // Sync daemon settings that only accompany --start-daemon.
  [['--mcast-interface'], 'required'], [['--syncid'], 'required'], [['--sync-maxlen'], 'required'],
  [['--mcast-group'], 'required'], [['--mcast-port'], 'required'], [['--mcast-ttl'], 'required'],
] as const) {
  for (const n of names) OPTIONS[n] = { name: names[names.length - 1] as string, arg };
}

const COMMANDS: Record<string, RuleCommand> = {
  '--add-service': 'add-service', '--edit-service': 'edit-service', '--delete-service': 'delete-service',
  '--clear': 'clear', '--add-server': 'add-server', '--edit-server': 'edit-server', '--delete-server': 'delete-server',
  '--zero': 'zero', '--set': 'other', '--start-daemon': 'other', '--stop-daemon': 'other',
};

class RuleError extends Error {}

function parseNumber(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new RuleError(`illegal ${what} "${text}"`);
  const n = Number(text);
  if (n < min || n > max) throw new RuleError(`${what} ${n} is out of range ${min}..${max}`);
  return n;
}

/** `addr`, `addr:port`, `[v6]`, `[v6]:port`; port as a number or a service name. */
function parseHostPort(text: string, protocol: Protocol, opts: ParseRulesOptions): { af: AddressFamily; address: string; port: number | undefined } {
  let host: string;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.+))?$/.exec(text);
  if (v6) {
    host = v6[1] as string;
    port = v6[2];
  } else {
    const i = text.lastIndexOf(':');
    if (text.indexOf(':') !== i) throw new RuleError(`IPv6 address "${text}" needs brackets: [address]:port`);
    host = i >= 0 ? text.slice(0, i) : text;
    port = i >= 0 ? text.slice(i + 1) : undefined;
  }
  const af = familyOf(host);
  if (!af) throw new RuleError(`"${host}" is not an IP address (host names cannot be imported: save the rules with ipvsadm -Sn)`);
  if (v6 && af !== 'ipv6') throw new RuleError(`"${host}" in brackets is not an IPv6 address`);
  let portNumber: number | undefined;
  if (port !== undefined && port !== '') {
    if (/^\d+$/.test(port)) portNumber = parseNumber(port, 'port', 0, 65535);
    else {
      portNumber = (opts.resolvePort ?? ((n: string) => WELL_KNOWN_PORTS[n]))(port, protocol);
      if (portNumber === undefined) throw new RuleError(`unknown ${protocol} service name "${port}" (save the rules with ipvsadm -Sn)`);
    }
  }
  return { af, address: normalizeAddress(af, host), port: portNumber };
}

function parseNetmask(text: string): { af: AddressFamily; value: number } {
  const v4 = parseIPv4(text);
  if (v4) return { af: 'ipv4', value: (((v4[0] as number) << 24) | ((v4[1] as number) << 16) | ((v4[2] as number) << 8) | (v4[3] as number)) >>> 0 };
  return { af: 'ipv6', value: parseNumber(text, 'netmask', 1, 128) };
}

/** Splits a line into options and their values; `--opt=value` becomes two tokens. */
function tokens(line: string): string[] {
  const out: string[] = [];
  for (const t of line.split(/\s+/).filter(Boolean)) {
    const eq = t.startsWith('--') ? t.indexOf('=') : -1;
    if (eq > 0) out.push(t.slice(0, eq), t.slice(eq + 1));
    else out.push(t);
  }
  return out;
}

function parseRuleLine(line: number, text: string, opts: ParseRulesOptions): IpvsadmRule {
  const args = tokens(text);
  if (args[0] === 'ipvsadm') args.shift();
  const seen = new Map<string, string>();
  let command: RuleCommand | undefined;
  let commandOption = '';
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const spec = OPTIONS[a];
    if (!spec) throw new RuleError(a.startsWith('-') ? `unknown option ${a}` : `unexpected argument "${a}"`);
    let value = '';
    if (spec.arg === 'required' || spec.arg === 'three') {
      const n = spec.arg === 'three' ? 3 : 1; // --set TCP TCPFIN UDP
      const vs = args.slice(i + 1, i + 1 + n);
      if (vs.length < n) throw new RuleError(`option ${a} needs ${n === 1 ? 'a value' : `${n} values`}`);
      value = vs.join(' ');
      i += n;
    } else if (spec.arg === 'optional' && args[i + 1] !== undefined && /^\d+$/.test(args[i + 1] as string)) {
      value = args[++i] as string;
    }
    const cmd = COMMANDS[spec.name];
    if (cmd) {
      if (command) throw new RuleError(`two commands on one line: ${commandOption} and ${a}`);
      command = cmd;
      commandOption = spec.name;
      continue;
    }
    if (seen.has(spec.name)) throw new RuleError(`option ${a} given twice`);
    seen.set(spec.name, value);
  }
  if (!command) throw new RuleError('no command (-A, -E, -D, -a, -e, -d, -C, -Z)');
  const base = { line, text };
  if (command === 'other') return { ...base, command, option: commandOption };
  if (command === 'clear') return { ...base, command };

  const kinds = ['--tcp-service', '--udp-service', '--sctp-service', '--fwmark-service'].filter((k) => seen.has(k));
  if (kinds.length > 1) throw new RuleError(`more than one service given (${kinds.join(', ')})`);
  if (kinds.length === 0) {
    if (command === 'zero') return { ...base, command };
    throw new RuleError('no service given (-t, -u, --sctp-service or -f)');
  }
  const kind = kinds[0] as string;
  let key: ServiceKey;
  if (kind === '--fwmark-service') {
    key = { af: seen.has('--ipv6') ? 'ipv6' : 'ipv4', fwmark: parseNumber(seen.get(kind) as string, 'fwmark', 1, 0xffffffff) };
  } else {
    const protocol: Protocol = kind === '--tcp-service' ? 'tcp' : kind === '--udp-service' ? 'udp' : 'sctp';
    const hp = parseHostPort(seen.get(kind) as string, protocol, opts);
    key = { af: hp.af, protocol, address: hp.address, port: hp.port ?? 0 };
  }
  if (command === 'zero') return { ...base, command, service: key };
  if (command === 'delete-service') return { ...base, command, service: key };

  if (command === 'add-service' || command === 'edit-service') {
    const scheduler = seen.get('--scheduler') ?? IPVSADM_DEFAULT_SCHEDULER;
    let flags = 0;
    let timeout = 0;
    let netmask = defaultNetmask(key.af);
    if (seen.has('--persistent')) {
      flags |= SvcFlag.PERSISTENT;
      const t = seen.get('--persistent') as string;
      timeout = t === '' ? IPVSADM_DEFAULT_PERSISTENCE : parseNumber(t, 'timeout', 1, 0x7fffffff);
      if (seen.has('--netmask')) {
        const m = parseNetmask(seen.get('--netmask') as string);
        if (m.af !== key.af) throw new RuleError(`netmask ${seen.get('--netmask')} does not fit an ${key.af === 'ipv4' ? 'IPv4' : 'IPv6'} service`);
        netmask = m.value;
      }
    }
    if (seen.has('--ops')) {
      if (key.protocol !== 'udp') throw new RuleError('One-Packet Scheduling (-o) is only for UDP virtual services');
      flags |= SvcFlag.ONEPACKET;
    }
    if (seen.has('--sched-flags')) {
      for (const f of (seen.get('--sched-flags') as string).split(',')) {
        const spec = SCHED_FLAG_BITS[f];
        if (!spec) throw new RuleError(`unknown scheduler flag "${f}"`);
        if (spec.scheduler && spec.scheduler !== scheduler) throw new RuleError(`incompatible scheduler flag "${f}" for scheduler ${scheduler}`);
        flags |= spec.bit;
      }
    }
    const pe = seen.get('--pe');
    return { ...base, command, service: { ...key, scheduler, flags, timeout, netmask, ...(pe ? { pe } : {}) } as Service };
  }

  if (!seen.has('--real-server')) throw new RuleError('no real server given (-r)');
  const protocol: Protocol = key.protocol ?? 'tcp';
  const hp = parseHostPort(seen.get('--real-server') as string, protocol, opts);
  const fwd = ['--gatewaying', '--ipip', '--masquerading'].filter((k) => seen.has(k));
  if (fwd.length > 1) throw new RuleError(`more than one forwarding method (${fwd.join(', ')})`);
  const forwarding: ForwardingMethod = fwd[0] === '--ipip' ? 'tunnel' : fwd[0] === '--masquerading' ? 'masq' : 'droute';
  // ipvsadm: a missing port means the service's; DR and tunnelling cannot change the port at all.
  let port = hp.port ?? 0;
  if (key.fwmark === undefined && (port === 0 || forwarding !== 'masq')) port = key.port;
  if (command === 'delete-server') return { ...base, command, service: key, destination: { af: hp.af, address: hp.address, port } };
  if (hp.af !== key.af && forwarding !== 'tunnel') throw new RuleError('a realserver of another address family is allowed only with tunnelling (-i)');
  const tunnelType = seen.get('--tun-type') ?? 'ipip';
  if (tunnelType !== 'ipip' && tunnelType !== 'gue' && tunnelType !== 'gre') throw new RuleError(`unknown tunnel type "${tunnelType}"`);
  if (forwarding !== 'tunnel' && (seen.has('--tun-type') || seen.has('--tun-port'))) throw new RuleError('--tun-type and --tun-port need -i');
  const tunnelPort = seen.has('--tun-port') ? parseNumber(seen.get('--tun-port') as string, 'tunnel port', 1, 65535) : 0;
  if (tunnelType === 'gue' && !tunnelPort) throw new RuleError('--tun-type gue needs --tun-port');
  const csum = ['--tun-nocsum', '--tun-csum', '--tun-remcsum'].filter((k) => seen.has(k));
  if (csum.length > 1) throw new RuleError(`more than one tunnel checksum option (${csum.join(', ')})`);
  const upper = seen.has('--u-threshold') ? parseNumber(seen.get('--u-threshold') as string, 'upper threshold', 0, 0x7fffffff) : 0;
  const lower = seen.has('--l-threshold') ? parseNumber(seen.get('--l-threshold') as string, 'lower threshold', 0, 0x7fffffff) : 0;
  const destination: Destination = {
    af: hp.af,
    address: hp.address,
    port,
    forwarding,
    weight: seen.has('--weight') ? parseNumber(seen.get('--weight') as string, 'weight', 0, 65535) : 1,
    upperThreshold: upper,
    lowerThreshold: lower,
    tunnelType,
    tunnelPort,
    tunnelFlags: csum[0] === '--tun-csum' ? 1 : csum[0] === '--tun-remcsum' ? 2 : 0,
  };
  return { ...base, command, service: key, destination };
}

/**
 * Parses rules as `ipvsadm -R` reads them (one command per line, `ipvsadm -S [-n]` output). Blank lines
 * and `#` comments are skipped (ipvsadm -R itself rejects comments). Every bad line is reported with its
 * number; the good ones are still returned.
 */
export function parseIpvsadmRules(text: string, opts: ParseRulesOptions = {}): { rules: IpvsadmRule[]; problems: RuleProblem[] } {
  const rules: IpvsadmRule[] = [];
  const problems: RuleProblem[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    try {
      rules.push(parseRuleLine(i + 1, line, opts));
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      problems.push({ line: i + 1, text: line, message: e.message });
    }
  });
  return { rules, problems };
}

/** A service of a rules table, with the line that last set it. */
export interface TableService {
  service: Service;
  line: number;
  destinations: Array<{ destination: Destination; line: number }>;
}

/**
 * Runs parsed rules against an empty table the way the kernel would (add on an existing entry, edit or
 * delete of a missing one are errors, reported with the line) and returns the resulting table in order.
 */
export function applyIpvsadmRules(rules: readonly IpvsadmRule[]): { services: TableService[]; problems: RuleProblem[] } {
  const table = new Map<string, TableService>();
  const problems: RuleProblem[] = [];
  const fail = (r: IpvsadmRule, message: string): void => void problems.push({ line: r.line, text: r.text, message });
  for (const r of rules) {
    switch (r.command) {
      case 'clear':
        table.clear();
        break;
      case 'zero':
        if (r.service && !table.has(serviceKey(r.service))) fail(r, `no such service ${serviceKey(r.service)}`);
        break;
      case 'other':
        break;
      case 'add-service':
      case 'edit-service': {
        const k = serviceKey(r.service);
        const cur = table.get(k);
        if (r.command === 'add-service' && cur) fail(r, `service ${k} already exists (line ${cur.line})`);
        else if (r.command === 'edit-service' && !cur) fail(r, `no such service ${k}`);
        else if (cur) {
          cur.service = r.service;
          cur.line = r.line;
        } else table.set(k, { service: r.service, line: r.line, destinations: [] });
        break;
      }
      case 'delete-service':
        if (!table.delete(serviceKey(r.service))) fail(r, `no such service ${serviceKey(r.service)}`);
        break;
      case 'add-server':
      case 'edit-server':
      case 'delete-server': {
        const svc = table.get(serviceKey(r.service));
        if (!svc) {
          fail(r, `no such service ${serviceKey(r.service)}`);
          break;
        }
        const dk = destKey(r.destination);
        const i = svc.destinations.findIndex((d) => destKey(d.destination) === dk);
        if (r.command === 'delete-server') {
          if (i < 0) fail(r, `no such realserver ${dk} in ${serviceKey(r.service)}`);
          else svc.destinations.splice(i, 1);
        } else if (r.command === 'add-server' && i >= 0) {
          fail(r, `realserver ${dk} already exists in ${serviceKey(r.service)} (line ${svc.destinations[i]!.line})`);
        } else if (r.command === 'edit-server' && i < 0) {
          fail(r, `no such realserver ${dk} in ${serviceKey(r.service)}`);
        } else if (i >= 0) {
          svc.destinations[i] = { destination: r.destination, line: r.line };
        } else {
          svc.destinations.push({ destination: r.destination, line: r.line });
        }
        break;
      }
    }
  }
  return { services: [...table.values()], problems };
}
