// Pure IPVS codec: typed requests -> complete netlink messages, reply payloads -> typed values.
// Encoding validates only what the wire cannot represent (ranges, address syntax) and throws
// IpvsError(EINVAL) for it; semantic checks are left to the kernel so errors match its answers.
// Decoding throws only IpvsDecodeError, whatever the input (see the fuzz test).

import { addressBytes, formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from './addr.ts';
import {
  AF_INET,
  AF_INET6,
  Cmd,
  CmdAttr,
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_CMD_GETFAMILY,
  CTRL_VERSION,
  DaemonAttr,
  DaemonState,
  DestAttr,
  Fwd,
  FWD_MASK,
  GENL_ID_CTRL,
  InfoAttr,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPVS_GENL_VERSION,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  StatsAttr,
  SvcAttr,
  SvcFlag,
  TunType,
} from './constants.ts';
import { IpvsDecodeError, IpvsError } from './errors.ts';
import { destKey, serviceKey } from './keys.ts';
import type {
  AddressFamily,
  Destination,
  DestinationEntry,
  DestinationKey,
  ForwardingMethod,
  IpvsInfo,
  Protocol,
  Service,
  ServiceEntry,
  ServiceKey,
  Stats,
  SyncDaemon,
  SyncDaemonConfig,
  SyncDaemonRole,
  Timeouts,
  TunnelType,
} from './types.ts';
import { ZERO_STATS } from './types.ts';
import { AttrTable, MessageWriter, readU32 } from './wire.ts';

// ------------------------------------------------------------------------------------------------
// Requests

export type IpvsRequest =
  | { readonly cmd: 'NEW_SERVICE' | 'SET_SERVICE'; readonly service: Service }
  | { readonly cmd: 'DEL_SERVICE'; readonly service: ServiceKey }
  /** With a service: doit for that one; without: dump of all. */
  | { readonly cmd: 'GET_SERVICE'; readonly service?: ServiceKey | undefined }
  | { readonly cmd: 'NEW_DEST' | 'SET_DEST'; readonly service: ServiceKey; readonly destination: Destination }
  | { readonly cmd: 'DEL_DEST'; readonly service: ServiceKey; readonly destination: DestinationKey }
  | { readonly cmd: 'GET_DEST'; readonly service: ServiceKey }
  | { readonly cmd: 'NEW_DAEMON'; readonly daemon: SyncDaemonConfig }
  | { readonly cmd: 'DEL_DAEMON'; readonly role: SyncDaemonRole }
  | { readonly cmd: 'GET_DAEMON' }
  | { readonly cmd: 'SET_CONFIG'; readonly timeouts: Partial<Timeouts> }
  | { readonly cmd: 'GET_CONFIG' }
  | { readonly cmd: 'GET_INFO' }
  /** Without a service: zero every counter of this netns. */
  | { readonly cmd: 'ZERO'; readonly service?: ServiceKey | undefined }
  | { readonly cmd: 'FLUSH' };

export interface EncodeOptions {
  readonly familyId: number;
  readonly seq?: number;
  readonly port?: number;
}

/** Dump-only commands (GET_DEST, GET_DAEMON) and GET_SERVICE without a key are sent with NLM_F_DUMP. */
export function isDump(req: IpvsRequest): boolean {
  return req.cmd === 'GET_DEST' || req.cmd === 'GET_DAEMON' || (req.cmd === 'GET_SERVICE' && req.service === undefined);
}

function safe(f: () => string, fallback: () => string): string {
  try {
    return f();
  } catch {
    return fallback();
  }
}

function rawServiceName(s: ServiceKey): string {
  return s.fwmark !== undefined ? `fwmark ${String(s.fwmark)}` : `${String(s.address)}:${String(s.port)}/${String(s.protocol)}`;
}

/** The object a request concerns, for error messages: `192.168.56.40:80/TCP -> 10.0.0.1:80`. */
export function requestTarget(req: IpvsRequest): string | undefined {
  const svc = (s: ServiceKey): string => safe(() => serviceKey(s), () => rawServiceName(s));
  const dst = (d: DestinationKey): string => safe(() => destKey(d), () => `${String(d.address)}:${String(d.port)}`);
  switch (req.cmd) {
    case 'NEW_SERVICE':
    case 'SET_SERVICE':
    case 'DEL_SERVICE':
      return svc(req.service);
    case 'GET_SERVICE':
    case 'ZERO':
      return req.service ? svc(req.service) : undefined;
    case 'GET_DEST':
      return svc(req.service);
    case 'NEW_DEST':
    case 'SET_DEST':
    case 'DEL_DEST':
      return `${svc(req.service)} -> ${dst(req.destination)}`;
    case 'NEW_DAEMON':
      return `${req.daemon.role} sync daemon on ${req.daemon.interface}`;
    case 'DEL_DAEMON':
      return `${req.role} sync daemon`;
    default:
      return undefined;
  }
}

const AF_NUM: Record<AddressFamily, number> = { ipv4: AF_INET, ipv6: AF_INET6 };
const PROTO_NUM: Record<Protocol, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP };
const FWD_NUM: Record<ForwardingMethod, number> = { masq: Fwd.MASQ, local: Fwd.LOCALNODE, tunnel: Fwd.TUNNEL, droute: Fwd.DROUTE };
const TUN_NUM: Record<TunnelType, number> = { ipip: TunType.IPIP, gue: TunType.GUE, gre: TunType.GRE };
const ROLE_NUM: Record<SyncDaemonRole, number> = { master: DaemonState.MASTER, backup: DaemonState.BACKUP };

class Invalid extends Error {}

function checkInt(v: unknown, max: number, what: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new Invalid(`${what} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

function checkName(v: unknown, maxLen: number, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > maxLen || v.includes('\0')) {
    throw new Invalid(`${what} must be 1..${maxLen} bytes without NUL, got ${JSON.stringify(v)}`);
  }
  return v;
}

function afNum(af: unknown): number {
  const n = AF_NUM[af as AddressFamily];
  if (n === undefined) throw new Invalid(`address family must be ipv4 or ipv6, got ${String(af)}`);
  return n;
}

/** IPv4 goes out as its 4 bytes (kernel zero-fills the union; matches the verified image), IPv6 as 16. */
function addrOf(af: AddressFamily, address: unknown): Uint8Array {
  if (typeof address !== 'string') throw new Invalid(`address must be a string, got ${String(address)}`);
  try {
    return addressBytes(af, address);
  } catch (e) {
    throw new Invalid((e as Error).message);
  }
}

function writeServiceKey(w: MessageWriter, s: ServiceKey): void {
  w.u16(SvcAttr.AF, afNum(s.af));
  if (s.fwmark !== undefined) {
    w.u32(SvcAttr.FWMARK, checkInt(s.fwmark, 0xffffffff, 'fwmark', 1));
    return;
  }
  const proto = PROTO_NUM[s.protocol];
  if (proto === undefined) throw new Invalid(`protocol must be tcp, udp or sctp, got ${String(s.protocol)}`);
  w.u16(SvcAttr.PROTOCOL, proto);
  w.bytes(SvcAttr.ADDR, addrOf(s.af, s.address));
  w.u16be(SvcAttr.PORT, checkInt(s.port, 0xffff, 'port'));
}

function writeService(w: MessageWriter, s: Service): void {
  writeServiceKey(w, s);
  w.string(SvcAttr.SCHED_NAME, checkName(s.scheduler, 15, 'scheduler'));
  // HASHED is kernel-internal: never send it (mask ~0 replaces all other bits).
  w.flagsMask(SvcAttr.FLAGS, checkInt(s.flags, 0xffffffff, 'flags') & ~SvcFlag.HASHED, 0xffffffff);
  w.u32(SvcAttr.TIMEOUT, checkInt(s.timeout, 0xffffffff, 'timeout'));
  const mask = checkInt(s.netmask, 0xffffffff, 'netmask');
  if (s.af === 'ipv4') w.u32be(SvcAttr.NETMASK, mask);
  else w.u32(SvcAttr.NETMASK, mask); // IPv6: host-order prefix length
  if (s.pe !== undefined && s.pe !== '') w.string(SvcAttr.PE_NAME, checkName(s.pe, 15, 'persistence engine'));
}

function writeDestKey(w: MessageWriter, d: DestinationKey): void {
  afNum(d.af);
  w.bytes(DestAttr.ADDR, addrOf(d.af, d.address));
  w.u16be(DestAttr.PORT, checkInt(d.port, 0xffff, 'port'));
}

function writeDest(w: MessageWriter, d: Destination, alwaysTunnel: boolean): void {
  writeDestKey(w, d);
  const fwd = FWD_NUM[d.forwarding];
  if (fwd === undefined) throw new Invalid(`forwarding must be masq, local, tunnel or droute, got ${String(d.forwarding)}`);
  const tun = TUN_NUM[d.tunnelType];
  if (tun === undefined) throw new Invalid(`tunnelType must be ipip, gue or gre, got ${String(d.tunnelType)}`);
  w.u32(DestAttr.FWD_METHOD, fwd);
  w.u32(DestAttr.WEIGHT, checkInt(d.weight, 0xffffffff, 'weight'));
  w.u32(DestAttr.U_THRESH, checkInt(d.upperThreshold, 0xffffffff, 'upperThreshold'));
  w.u32(DestAttr.L_THRESH, checkInt(d.lowerThreshold, 0xffffffff, 'lowerThreshold'));
  w.u16(DestAttr.ADDR_FAMILY, afNum(d.af));
  const port = checkInt(d.tunnelPort, 0xffff, 'tunnelPort');
  const flags = checkInt(d.tunnelFlags, 0xffff, 'tunnelFlags');
  // SET_DEST overwrites the tunnel fields with 0 when absent, so it always carries them; NEW_DEST
  // may leave them out when they are the defaults (same effect, shorter message).
  if (alwaysTunnel || fwd === Fwd.TUNNEL || tun !== 0 || port !== 0 || flags !== 0) {
    w.u8(DestAttr.TUN_TYPE, tun);
    w.u16be(DestAttr.TUN_PORT, port);
    w.u16(DestAttr.TUN_FLAGS, flags);
  }
}

function writeDaemon(w: MessageWriter, d: SyncDaemonConfig): void {
  const state = ROLE_NUM[d.role];
  if (state === undefined) throw new Invalid(`sync daemon role must be master or backup, got ${String(d.role)}`);
  w.u32(DaemonAttr.STATE, state);
  w.string(DaemonAttr.MCAST_IFN, checkName(d.interface, 15, 'interface'));
  w.u32(DaemonAttr.SYNC_ID, checkInt(d.syncId, 255, 'syncId'));
  if (d.maxLen !== undefined) w.u16(DaemonAttr.SYNC_MAXLEN, checkInt(d.maxLen, 0xffff, 'maxLen'));
  if (d.group !== undefined) {
    const v4 = parseIPv4(d.group);
    const v6 = v4 ? undefined : parseIPv6(d.group);
    if (!v4 && !v6) throw new Invalid(`group must be an IP address, got ${JSON.stringify(d.group)}`);
    if (v4) w.bytes(DaemonAttr.MCAST_GROUP, v4); // "NLA_U32" carrying an in_addr: network order
    else if (v6) w.bytes(DaemonAttr.MCAST_GROUP6, v6);
  }
  // Unlike service/dest ports, the daemon port is host order: the kernel does htons(port + id).
  if (d.port !== undefined) w.u16(DaemonAttr.MCAST_PORT, checkInt(d.port, 0xffff, 'port'));
  if (d.ttl !== undefined) w.u8(DaemonAttr.MCAST_TTL, checkInt(d.ttl, 255, 'ttl'));
}

/**
 * One complete netlink message for `req` (flags REQUEST|ACK, plus DUMP for dumps).
 * Throws IpvsError(EINVAL) for values the wire cannot carry.
 */
export function encodeRequest(req: IpvsRequest, opts: EncodeOptions): Buffer {
  const flags = NLM_F_REQUEST | NLM_F_ACK | (isDump(req) ? NLM_F_DUMP : 0);
  const w = new MessageWriter(opts.familyId, flags, Cmd[req.cmd], IPVS_GENL_VERSION);
  try {
    switch (req.cmd) {
      case 'NEW_SERVICE':
      case 'SET_SERVICE':
        w.nest(CmdAttr.SERVICE, () => writeService(w, req.service));
        break;
      case 'DEL_SERVICE':
      case 'GET_DEST':
        w.nest(CmdAttr.SERVICE, () => writeServiceKey(w, req.service));
        break;
      case 'GET_SERVICE':
      case 'ZERO':
        if (req.service) {
          const key = req.service;
          w.nest(CmdAttr.SERVICE, () => writeServiceKey(w, key));
        }
        break;
      case 'NEW_DEST':
      case 'SET_DEST':
        w.nest(CmdAttr.SERVICE, () => writeServiceKey(w, req.service));
        w.nest(CmdAttr.DEST, () => writeDest(w, req.destination, req.cmd === 'SET_DEST'));
        break;
      case 'DEL_DEST':
        w.nest(CmdAttr.SERVICE, () => writeServiceKey(w, req.service));
        w.nest(CmdAttr.DEST, () => {
          writeDestKey(w, req.destination);
          w.u16(DestAttr.ADDR_FAMILY, afNum(req.destination.af)); // required for mixed-AF dests
        });
        break;
      case 'NEW_DAEMON':
        w.nest(CmdAttr.DAEMON, () => writeDaemon(w, req.daemon));
        break;
      case 'DEL_DAEMON': {
        const state = ROLE_NUM[req.role];
        if (state === undefined) throw new Invalid(`sync daemon role must be master or backup, got ${String(req.role)}`);
        w.nest(CmdAttr.DAEMON, () => w.u32(DaemonAttr.STATE, state));
        break;
      }
      case 'SET_CONFIG': {
        // 0 or absent leaves the kernel value unchanged, so only send what is given.
        const t = req.timeouts;
        if (t.tcp !== undefined) w.u32(CmdAttr.TIMEOUT_TCP, checkInt(t.tcp, 0x7fffffff, 'tcp timeout'));
        if (t.tcpFin !== undefined) w.u32(CmdAttr.TIMEOUT_TCP_FIN, checkInt(t.tcpFin, 0x7fffffff, 'tcpFin timeout'));
        if (t.udp !== undefined) w.u32(CmdAttr.TIMEOUT_UDP, checkInt(t.udp, 0x7fffffff, 'udp timeout'));
        break;
      }
      case 'GET_DAEMON':
      case 'GET_CONFIG':
      case 'GET_INFO':
      case 'FLUSH':
        break;
    }
  } catch (e) {
    if (e instanceof Invalid) throw IpvsError.fromCode('EINVAL', req.cmd, requestTarget(req), e.message);
    throw e;
  }
  return w.finish(opts.seq ?? 0, opts.port ?? 0);
}

/** nlctrl CTRL_CMD_GETFAMILY for a generic netlink family name. */
export function encodeGetFamily(name: string, seq = 0, port = 0): Buffer {
  const w = new MessageWriter(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, CTRL_CMD_GETFAMILY, CTRL_VERSION);
  w.string(CTRL_ATTR_FAMILY_NAME, name);
  return w.finish(seq, port);
}

// ------------------------------------------------------------------------------------------------
// Replies. Every function below takes the payload after the nlmsghdr (genl header + attributes).

const AF_NAME = new Map<number, AddressFamily>([
  [AF_INET, 'ipv4'],
  [AF_INET6, 'ipv6'],
]);
const PROTO_NAME = new Map<number, Protocol>([
  [IPPROTO_TCP, 'tcp'],
  [IPPROTO_UDP, 'udp'],
  [IPPROTO_SCTP, 'sctp'],
]);
const FWD_NAME: readonly ForwardingMethod[] = ['masq', 'local', 'tunnel', 'droute'];
const TUN_NAME: readonly TunnelType[] = ['ipip', 'gue', 'gre'];
const MAX_SVC_ATTR = 12;
const MAX_DEST_ATTR = 15;
const MAX_DAEMON_ATTR = 8;
const MAX_STATS_ATTR = 11;

function decodeAf(v: number, what: string): AddressFamily {
  const af = AF_NAME.get(v);
  if (!af) throw new IpvsDecodeError(`${what}: unknown address family ${v}`);
  return af;
}

function decodeAddr(t: AttrTable, type: number, af: AddressFamily, name: string): string {
  return af === 'ipv4' ? formatIPv4(t.buf, t.bytesAt(type, 4, name)) : formatIPv6(t.buf, t.bytesAt(type, 16, name));
}

/** STATS64 (all u64) or legacy STATS (mixed u32/u64): the width is taken from each attribute's length. */
function decodeStatsTable(t: AttrTable): Stats {
  const v = (type: number, name: string): bigint => {
    const len = t.length(type);
    if (len < 0) return 0n;
    return len >= 8 ? t.u64(type, name) : BigInt(t.u32(type, name));
  };
  return {
    conns: v(StatsAttr.CONNS, 'conns'),
    inpkts: v(StatsAttr.INPKTS, 'inpkts'),
    outpkts: v(StatsAttr.OUTPKTS, 'outpkts'),
    inbytes: v(StatsAttr.INBYTES, 'inbytes'),
    outbytes: v(StatsAttr.OUTBYTES, 'outbytes'),
    cps: v(StatsAttr.CPS, 'cps'),
    inpps: v(StatsAttr.INPPS, 'inpps'),
    outpps: v(StatsAttr.OUTPPS, 'outpps'),
    inbps: v(StatsAttr.INBPS, 'inbps'),
    outbps: v(StatsAttr.OUTBPS, 'outbps'),
  };
}

/** A stats nest's attributes (STATS or STATS64 payload). */
export function decodeStats(buf: Buffer): Stats {
  return decodeStatsTable(new AttrTable(buf, 0, buf.length, MAX_STATS_ATTR, 'stats'));
}

function pickStats(t: AttrTable, stats64: number, stats: number): Stats {
  if (t.has(stats64)) return decodeStatsTable(t.nested(stats64, MAX_STATS_ATTR, 'stats64'));
  if (t.has(stats)) return decodeStatsTable(t.nested(stats, MAX_STATS_ATTR, 'stats'));
  return ZERO_STATS;
}

function serviceFromTable(t: AttrTable): ServiceEntry {
  const af = decodeAf(t.u16(SvcAttr.AF, 'af'), 'service');
  const fwmark = t.optU32(SvcAttr.FWMARK, 'fwmark');
  const flagsAt = t.bytesAt(SvcAttr.FLAGS, 8, 'flags');
  const flags = (readU32(t.buf, flagsAt) & readU32(t.buf, flagsAt + 4)) >>> 0;
  const pe = t.has(SvcAttr.PE_NAME) ? t.string(SvcAttr.PE_NAME, 'pe_name') : '';
  const config = {
    scheduler: t.string(SvcAttr.SCHED_NAME, 'sched_name'),
    flags,
    timeout: t.u32(SvcAttr.TIMEOUT, 'timeout'),
    // IPv4: a be32 mask; IPv6: a host-order prefix length.
    netmask: af === 'ipv4' ? t.u32be(SvcAttr.NETMASK, 'netmask') : t.u32(SvcAttr.NETMASK, 'netmask'),
    ...(pe !== '' ? { pe } : {}),
  };
  const stats = pickStats(t, SvcAttr.STATS64, SvcAttr.STATS);
  if (fwmark !== 0) return { service: { af, fwmark, ...config }, stats };
  const protoNum = t.u16(SvcAttr.PROTOCOL, 'protocol');
  const protocol = PROTO_NAME.get(protoNum);
  if (!protocol) throw new IpvsDecodeError(`service: unknown protocol ${protoNum}`);
  const address = decodeAddr(t, SvcAttr.ADDR, af, 'addr');
  return { service: { af, protocol, address, port: t.u16be(SvcAttr.PORT, 'port'), ...config }, stats };
}

function destFromTable(t: AttrTable, serviceAf: AddressFamily): DestinationEntry {
  const af = t.has(DestAttr.ADDR_FAMILY) ? decodeAf(t.u16(DestAttr.ADDR_FAMILY, 'addr_family'), 'destination') : serviceAf;
  const fwdNum = t.u32(DestAttr.FWD_METHOD, 'fwd_method') & FWD_MASK;
  const forwarding = FWD_NAME[fwdNum];
  if (!forwarding) throw new IpvsDecodeError(`destination: unknown forwarding method ${fwdNum}`);
  const tunNum = t.has(DestAttr.TUN_TYPE) ? t.u8(DestAttr.TUN_TYPE, 'tun_type') : 0;
  const tunnelType = TUN_NAME[tunNum];
  if (!tunnelType) throw new IpvsDecodeError(`destination: unknown tunnel type ${tunNum}`);
  return {
    destination: {
      address: decodeAddr(t, DestAttr.ADDR, af, 'addr'),
      port: t.u16be(DestAttr.PORT, 'port'),
      af,
      forwarding,
      weight: t.u32(DestAttr.WEIGHT, 'weight'),
      upperThreshold: t.optU32(DestAttr.U_THRESH, 'u_thresh'),
      lowerThreshold: t.optU32(DestAttr.L_THRESH, 'l_thresh'),
      tunnelType,
      tunnelPort: t.has(DestAttr.TUN_PORT) ? t.u16be(DestAttr.TUN_PORT, 'tun_port') : 0,
      tunnelFlags: t.has(DestAttr.TUN_FLAGS) ? t.u16(DestAttr.TUN_FLAGS, 'tun_flags') : 0,
    },
    counters: {
      activeConns: t.optU32(DestAttr.ACTIVE_CONNS, 'active_conns'),
      inactiveConns: t.optU32(DestAttr.INACT_CONNS, 'inact_conns'),
      persistConns: t.optU32(DestAttr.PERSIST_CONNS, 'persist_conns'),
    },
    stats: pickStats(t, DestAttr.STATS64, DestAttr.STATS),
  };
}

function daemonFromTable(t: AttrTable): SyncDaemon {
  const state = t.u32(DaemonAttr.STATE, 'state');
  const role: SyncDaemonRole | undefined = state === DaemonState.MASTER ? 'master' : state === DaemonState.BACKUP ? 'backup' : undefined;
  if (!role) throw new IpvsDecodeError(`daemon: unknown state ${state}`);
  const group = t.has(DaemonAttr.MCAST_GROUP6)
    ? formatIPv6(t.buf, t.bytesAt(DaemonAttr.MCAST_GROUP6, 16, 'mcast_group6'))
    : t.has(DaemonAttr.MCAST_GROUP)
      ? formatIPv4(t.buf, t.bytesAt(DaemonAttr.MCAST_GROUP, 4, 'mcast_group'))
      : '224.0.0.81';
  return {
    role,
    interface: t.string(DaemonAttr.MCAST_IFN, 'mcast_ifn'),
    syncId: t.u32(DaemonAttr.SYNC_ID, 'sync_id'),
    maxLen: t.has(DaemonAttr.SYNC_MAXLEN) ? t.u16(DaemonAttr.SYNC_MAXLEN, 'sync_maxlen') : 0,
    group,
    // Host order, unlike service ports.
    port: t.has(DaemonAttr.MCAST_PORT) ? t.u16(DaemonAttr.MCAST_PORT, 'mcast_port') : 8848,
    ttl: t.has(DaemonAttr.MCAST_TTL) ? t.u8(DaemonAttr.MCAST_TTL, 'mcast_ttl') : 1,
  };
}

/** The attributes inside CMD_ATTR_SERVICE. */
export function decodeServiceAttrs(buf: Buffer): ServiceEntry {
  return serviceFromTable(new AttrTable(buf, 0, buf.length, MAX_SVC_ATTR, 'service'));
}

/** The attributes inside CMD_ATTR_DEST; `serviceAf` is used when ADDR_FAMILY is absent (kernel < 3.18). */
export function decodeDestAttrs(buf: Buffer, serviceAf: AddressFamily): DestinationEntry {
  return destFromTable(new AttrTable(buf, 0, buf.length, MAX_DEST_ATTR, 'destination'), serviceAf);
}

export function decodeDaemonAttrs(buf: Buffer): SyncDaemon {
  return daemonFromTable(new AttrTable(buf, 0, buf.length, MAX_DAEMON_ATTR, 'daemon'));
}

/** A GET_SERVICE reply message (cmd NEW_SERVICE); `payload` = everything after the nlmsghdr. */
export function decodeServiceReply(payload: Buffer): ServiceEntry {
  const top = AttrTable.ofGenl(payload, CmdAttr.SERVICE, 'service reply');
  return serviceFromTable(top.nested(CmdAttr.SERVICE, MAX_SVC_ATTR, 'service'));
}

/** A GET_DEST reply message (cmd NEW_DEST). */
export function decodeDestReply(payload: Buffer, serviceAf: AddressFamily): DestinationEntry {
  const top = AttrTable.ofGenl(payload, CmdAttr.DEST, 'destination reply');
  return destFromTable(top.nested(CmdAttr.DEST, MAX_DEST_ATTR, 'destination'), serviceAf);
}

/** A GET_DAEMON reply message (cmd NEW_DAEMON). */
export function decodeDaemonReply(payload: Buffer): SyncDaemon {
  const top = AttrTable.ofGenl(payload, CmdAttr.DAEMON, 'daemon reply');
  return daemonFromTable(top.nested(CmdAttr.DAEMON, MAX_DAEMON_ATTR, 'daemon'));
}

/** A GET_INFO reply (cmd SET_INFO): top-level INFO_ATTR_* (not CMD_ATTR_*). */
export function decodeInfoReply(payload: Buffer): IpvsInfo {
  const t = AttrTable.ofGenl(payload, InfoAttr.CONN_TAB_SIZE, 'info reply');
  const v = t.u32(InfoAttr.VERSION, 'version');
  return {
    version: `${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`,
    versionCode: v,
    connTableSize: t.u32(InfoAttr.CONN_TAB_SIZE, 'conn_tab_size'),
  };
}

/** A GET_CONFIG reply (cmd SET_CONFIG); a timeout the kernel omits (protocol not built) reads as 0. */
export function decodeTimeoutsReply(payload: Buffer): Timeouts {
  const t = AttrTable.ofGenl(payload, CmdAttr.TIMEOUT_UDP, 'config reply');
  return {
    tcp: t.optU32(CmdAttr.TIMEOUT_TCP, 'timeout_tcp'),
    tcpFin: t.optU32(CmdAttr.TIMEOUT_TCP_FIN, 'timeout_tcp_fin'),
    udp: t.optU32(CmdAttr.TIMEOUT_UDP, 'timeout_udp'),
  };
}

/** nlctrl GETFAMILY reply -> family id. */
export function decodeFamilyReply(payload: Buffer): number {
  return AttrTable.ofGenl(payload, CTRL_ATTR_FAMILY_ID, 'family reply').u16(CTRL_ATTR_FAMILY_ID, 'family_id');
}
