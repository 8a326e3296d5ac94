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
  GENL_HDRLEN,
  NLA_HDRLEN,
  NLA_TYPE_MASK,
  NLMSG_HDRLEN,
  NLMSG_MIN_TYPE,
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
import { ZERO_COUNTERS, ZERO_STATS } from './types.ts';
import { AttrCursor, LE, MessageWriter } from './wire.ts';

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

function decodeAf(v: number, what: string): AddressFamily {
  const af = AF_NAME.get(v);
  if (!af) throw new IpvsDecodeError(`${what}: unknown address family ${v}`);
  return af;
}

// The hot decoders (services, destinations, stats) walk attributes by offset: no cursor objects,
// no subarrays, nothing allocated but the result. A full table dump decodes 100,000s of these.
// They are total like the rest: every length is checked before it is read, and the only thing
// they throw is IpvsDecodeError, with the path of the offending attribute.

/** Host-order u16/u32 by index; callers have checked the bounds. */
const u16At: (b: Buffer, o: number) => number = LE ? (b, o) => (b[o] as number) | ((b[o + 1] as number) << 8) : (b, o) => ((b[o] as number) << 8) | (b[o + 1] as number);
const u32At: (b: Buffer, o: number) => number = LE
  ? (b, o) => ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16) | ((b[o + 3] as number) << 24)) >>> 0
  : (b, o) => (((b[o] as number) << 24) | ((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number)) >>> 0;
const be16At = (b: Buffer, o: number): number => ((b[o] as number) << 8) | (b[o + 1] as number);
const be32At = (b: Buffer, o: number): number => (((b[o] as number) << 24) | ((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number)) >>> 0;

/** Error paths are joined only when an error is thrown (`sub` names a nest below `what`). */
const path = (what: string, sub: string): string => (sub ? `${what}.${sub}` : what);

function attrError(what: string, len: number, rem: number, sub = ''): IpvsDecodeError {
  return new IpvsDecodeError(`${path(what, sub)}: attribute of length ${len} with ${rem} bytes left`);
}

function shortError(what: string, name: string, len: number, need: number, sub = ''): IpvsDecodeError {
  return new IpvsDecodeError(`${path(what, sub)}: ${name} has ${len} bytes, expected at least ${need}`);
}

/** Counters below this come from a table instead of a fresh BigInt (idle services, rates). */
const SMALL_BIGINTS: readonly bigint[] = Array.from({ length: 1024 }, (_, i) => BigInt(i));

function big(lo: number, hi: number): bigint {
  if (hi === 0) return lo < 1024 ? (SMALL_BIGINTS[lo] as bigint) : BigInt(lo);
  // Exact in a double below 2^53: one BigInt instead of three.
  return hi < 0x200000 ? BigInt(hi * 4294967296 + lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

/** lo/hi halves of the 10 counters of the stats nest being decoded (reused: decoding is synchronous). */
const counters = new Uint32Array(20);
const S_CONNS = StatsAttr.CONNS;
const S_OUTBPS = StatsAttr.OUTBPS;

/**
 * STATS64 (all u64) or legacy STATS (mixed u32/u64) nest at [start, end): the width is taken from
 * each attribute's length. All-zero stats (idle or new entries) share the frozen ZERO_STATS.
 */
function statsAt(b: Buffer, start: number, end: number, what: string, sub: string): Stats {
  counters.fill(0);
  let any = 0;
  let off = start;
  while (end - off >= NLA_HDRLEN) {
    const len = u16At(b, off);
    if (len < NLA_HDRLEN || len > end - off) throw attrError(what, len, end - off, sub);
    const type = u16At(b, off + 2) & NLA_TYPE_MASK;
    if (type >= S_CONNS && type <= S_OUTBPS) {
      // PAD and future attributes are skipped
      const p = off + NLA_HDRLEN;
      const n = len - NLA_HDRLEN;
      const i = (type - S_CONNS) * 2;
      if (n >= 8) {
        const lo = LE ? u32At(b, p) : u32At(b, p + 4);
        const hi = LE ? u32At(b, p + 4) : u32At(b, p);
        counters[i] = lo;
        counters[i + 1] = hi;
        any |= lo | hi;
      } else if (n >= 4) {
        const lo = u32At(b, p);
        counters[i] = lo;
        counters[i + 1] = 0;
        any |= lo;
      } else {
        throw shortError(what, 'counter', n, 4, sub);
      }
    }
    off += (len + 3) & ~3;
  }
  if (any === 0) return ZERO_STATS;
  const c = counters;
  return {
    conns: big(c[0] as number, c[1] as number),
    inpkts: big(c[2] as number, c[3] as number),
    outpkts: big(c[4] as number, c[5] as number),
    inbytes: big(c[6] as number, c[7] as number),
    outbytes: big(c[8] as number, c[9] as number),
    cps: big(c[10] as number, c[11] as number),
    inpps: big(c[12] as number, c[13] as number),
    outpps: big(c[14] as number, c[15] as number),
    inbps: big(c[16] as number, c[17] as number),
    outbps: big(c[18] as number, c[19] as number),
  };
}

/** A stats nest's attributes (STATS or STATS64 payload). */
export function decodeStats(buf: Buffer): Stats {
  return statsAt(buf, 0, buf.length, 'stats', '');
}

/**
 * IPv4 address text by its 32-bit value: a table's destinations repeat the same few backends
 * across services, so most lookups hit. Bounded: cleared when full.
 */
const ipv4Text = new Map<number, string>();

function ipv4At(b: Buffer, off: number): string {
  const key = be32At(b, off) | 0; // signed: a small integer key, not a heap number
  let s = ipv4Text.get(key);
  if (s === undefined) {
    if (ipv4Text.size >= 65536) ipv4Text.clear();
    s = formatIPv4(b, off);
    ipv4Text.set(key, s);
  }
  return s;
}

function addrAt(buf: Buffer, off: number, af: AddressFamily): string {
  return af === 'ipv4' ? ipv4At(buf, off) : formatIPv6(buf, off);
}

/** NUL-terminated string attribute; the last one decoded is reused when the bytes match (scheduler names). */
let lastName = '';
let lastNameBytes = Buffer.alloc(0);

function nameAt(b: Buffer, off: number, len: number): string {
  let n = 0;
  while (n < len && b[off + n] !== 0) n++;
  if (n === lastNameBytes.length && n <= 32) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (b[off + i] !== lastNameBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastName;
  }
  const s = b.toString('utf8', off, off + n);
  if (n <= 32) {
    lastName = s;
    lastNameBytes = Buffer.from(b.subarray(off, off + n));
  }
  return s;
}

/**
 * The payload of the nest `type` among the top-level attributes of a genl message at [start, end)
 * (the last one wins), as [payloadStart, payloadEnd) in `span`.
 */
function topNestAt(b: Buffer, start: number, end: number, type: number, what: string, span: Int32Array): void {
  if (end - start < GENL_HDRLEN) throw new IpvsDecodeError(`${what}: generic netlink payload of ${end - start} bytes`);
  let found = -1;
  let off = start + GENL_HDRLEN;
  while (end - off >= NLA_HDRLEN) {
    const len = u16At(b, off);
    if (len < NLA_HDRLEN || len > end - off) throw attrError(what, len, end - off);
    if ((u16At(b, off + 2) & NLA_TYPE_MASK) === type) {
      found = off;
      span[0] = off + NLA_HDRLEN;
      span[1] = off + len;
    }
    off += (len + 3) & ~3;
  }
  if (found < 0) throw new IpvsDecodeError(`${what}: missing attribute ${type}`);
}

const nestSpan = new Int32Array(2);

function missing(what: string, name: string): IpvsDecodeError {
  return new IpvsDecodeError(`${what}: missing ${name}`);
}

/** The attributes of a CMD_ATTR_SERVICE nest at [start, end). */
function serviceAt(b: Buffer, start: number, end: number, what: string): ServiceEntry {
  let afNum = -1;
  let protoNum = -1;
  let addrOff = -1;
  let addrLen = 0;
  let port = -1;
  let fwmark = 0;
  let scheduler: string | undefined;
  let flags = -1;
  let timeout = -1;
  let netmaskOff = -1;
  let pe = '';
  let s64 = -1;
  let s64End = 0;
  let legacy = -1;
  let legacyEnd = 0;
  let off = start;
  while (end - off >= NLA_HDRLEN) {
    const len = u16At(b, off);
    if (len < NLA_HDRLEN || len > end - off) throw attrError(what, len, end - off);
    const p = off + NLA_HDRLEN;
    const n = len - NLA_HDRLEN;
    switch (u16At(b, off + 2) & NLA_TYPE_MASK) {
      case SvcAttr.AF: if (n < 2) throw shortError(what, 'af', n, 2); afNum = u16At(b, p); break;
      case SvcAttr.PROTOCOL: if (n < 2) throw shortError(what, 'protocol', n, 2); protoNum = u16At(b, p); break;
      case SvcAttr.ADDR: if (n < 4) throw shortError(what, 'addr', n, 4); addrOff = p; addrLen = n; break;
      case SvcAttr.PORT: if (n < 2) throw shortError(what, 'port', n, 2); port = be16At(b, p); break;
      case SvcAttr.FWMARK: if (n < 4) throw shortError(what, 'fwmark', n, 4); fwmark = u32At(b, p); break;
      case SvcAttr.SCHED_NAME: scheduler = nameAt(b, p, n); break;
      case SvcAttr.FLAGS: if (n < 8) throw shortError(what, 'flags', n, 8); flags = (u32At(b, p) & u32At(b, p + 4)) >>> 0; break;
      case SvcAttr.TIMEOUT: if (n < 4) throw shortError(what, 'timeout', n, 4); timeout = u32At(b, p); break;
      case SvcAttr.NETMASK: if (n < 4) throw shortError(what, 'netmask', n, 4); netmaskOff = p; break;
      case SvcAttr.PE_NAME: pe = nameAt(b, p, n); break;
      case SvcAttr.STATS64: s64 = p; s64End = p + n; break;
      case SvcAttr.STATS: legacy = p; legacyEnd = p + n; break;
      default: break; // attributes of newer kernels
    }
    off += (len + 3) & ~3;
  }
  if (afNum < 0) throw missing(what, 'af');
  const af = decodeAf(afNum, 'service');
  if (scheduler === undefined) throw missing(what, 'sched_name');
  if (flags < 0) throw missing(what, 'flags');
  if (timeout < 0) throw missing(what, 'timeout');
  if (netmaskOff < 0) throw missing(what, 'netmask');
  // IPv4: a be32 mask; IPv6: a host-order prefix length.
  const netmask = af === 'ipv4' ? be32At(b, netmaskOff) : u32At(b, netmaskOff);
  // STATS64 when the kernel sends it (>= 4.1), else the legacy nest with its 32-bit counters.
  const stats = s64 >= 0 ? statsAt(b, s64, s64End, what, 'stats64') : legacy >= 0 ? statsAt(b, legacy, legacyEnd, what, 'stats') : ZERO_STATS;
  if (fwmark !== 0) {
    return { service: pe !== '' ? { af, fwmark, scheduler, flags, timeout, netmask, pe } : { af, fwmark, scheduler, flags, timeout, netmask }, stats };
  }
  if (protoNum < 0) throw missing(what, 'protocol');
  const protocol = PROTO_NAME.get(protoNum);
  if (!protocol) throw new IpvsDecodeError(`${what}: unknown protocol ${protoNum}`);
  if (addrOff < 0) throw missing(what, 'addr');
  if (af === 'ipv6' && addrLen < 16) throw new IpvsDecodeError(`${what}: IPv6 addr of ${addrLen} bytes`);
  if (port < 0) throw missing(what, 'port');
  const address = addrAt(b, addrOff, af);
  return {
    service: pe !== '' ? { af, protocol, address, port, scheduler, flags, timeout, netmask, pe } : { af, protocol, address, port, scheduler, flags, timeout, netmask },
    stats,
  };
}

/** The attributes of a CMD_ATTR_DEST nest at [start, end). */
function destAt(b: Buffer, start: number, end: number, serviceAf: AddressFamily, what: string): DestinationEntry {
  let addrOff = -1;
  let addrLen = 0;
  let port = -1;
  let fwd = -1;
  let weight = -1;
  let upper = 0;
  let lower = 0;
  let active = 0;
  let inactive = 0;
  let persist = 0;
  let afNum = -1;
  let tun = 0;
  let tunPort = 0;
  let tunFlags = 0;
  let s64 = -1;
  let s64End = 0;
  let legacy = -1;
  let legacyEnd = 0;
  let off = start;
  while (end - off >= NLA_HDRLEN) {
    const len = u16At(b, off);
    if (len < NLA_HDRLEN || len > end - off) throw attrError(what, len, end - off);
    const p = off + NLA_HDRLEN;
    const n = len - NLA_HDRLEN;
    switch (u16At(b, off + 2) & NLA_TYPE_MASK) {
      case DestAttr.ADDR: if (n < 4) throw shortError(what, 'addr', n, 4); addrOff = p; addrLen = n; break;
      case DestAttr.PORT: if (n < 2) throw shortError(what, 'port', n, 2); port = be16At(b, p); break;
      case DestAttr.FWD_METHOD: if (n < 4) throw shortError(what, 'fwd_method', n, 4); fwd = u32At(b, p) & FWD_MASK; break;
      case DestAttr.WEIGHT: if (n < 4) throw shortError(what, 'weight', n, 4); weight = u32At(b, p); break;
      case DestAttr.U_THRESH: if (n < 4) throw shortError(what, 'u_thresh', n, 4); upper = u32At(b, p); break;
      case DestAttr.L_THRESH: if (n < 4) throw shortError(what, 'l_thresh', n, 4); lower = u32At(b, p); break;
      case DestAttr.ACTIVE_CONNS: if (n < 4) throw shortError(what, 'active_conns', n, 4); active = u32At(b, p); break;
      case DestAttr.INACT_CONNS: if (n < 4) throw shortError(what, 'inact_conns', n, 4); inactive = u32At(b, p); break;
      case DestAttr.PERSIST_CONNS: if (n < 4) throw shortError(what, 'persist_conns', n, 4); persist = u32At(b, p); break;
      case DestAttr.ADDR_FAMILY: if (n < 2) throw shortError(what, 'addr_family', n, 2); afNum = u16At(b, p); break;
      case DestAttr.TUN_TYPE: if (n < 1) throw shortError(what, 'tun_type', n, 1); tun = b[p] as number; break;
      case DestAttr.TUN_PORT: if (n < 2) throw shortError(what, 'tun_port', n, 2); tunPort = be16At(b, p); break;
      case DestAttr.TUN_FLAGS: if (n < 2) throw shortError(what, 'tun_flags', n, 2); tunFlags = u16At(b, p); break;
      case DestAttr.STATS64: s64 = p; s64End = p + n; break;
      case DestAttr.STATS: legacy = p; legacyEnd = p + n; break;
      default: break;
    }
    off += (len + 3) & ~3;
  }
  // ADDR_FAMILY is absent before kernel 3.18: the service's family applies.
  const af = afNum < 0 ? serviceAf : decodeAf(afNum, 'destination');
  if (addrOff < 0) throw missing(what, 'addr');
  if (af === 'ipv6' && addrLen < 16) throw new IpvsDecodeError(`${what}: IPv6 addr of ${addrLen} bytes`);
  if (port < 0) throw missing(what, 'port');
  if (fwd < 0) throw missing(what, 'fwd_method');
  if (weight < 0) throw missing(what, 'weight');
  const forwarding = FWD_NAME[fwd];
  if (!forwarding) throw new IpvsDecodeError(`${what}: unknown forwarding method ${fwd}`);
  const tunnelType = TUN_NAME[tun];
  if (!tunnelType) throw new IpvsDecodeError(`${what}: unknown tunnel type ${tun}`);
  const stats = s64 >= 0 ? statsAt(b, s64, s64End, what, 'stats64') : legacy >= 0 ? statsAt(b, legacy, legacyEnd, what, 'stats') : ZERO_STATS;
  return {
    destination: {
      address: addrAt(b, addrOff, af),
      port,
      af,
      forwarding,
      weight,
      upperThreshold: upper,
      lowerThreshold: lower,
      tunnelType,
      tunnelPort: tunPort,
      tunnelFlags: tunFlags,
    },
    counters: (active | inactive | persist) === 0 ? ZERO_COUNTERS : { activeConns: active, inactiveConns: inactive, persistConns: persist },
    stats,
  };
}

/**
 * Dumps arrive as raw parts (whole netlink messages, as the transport's dump() and dumpSync() hand
 * them over). Control messages (type < 16: NOOP, ERROR, DONE) are skipped: the transport has acted
 * on them. Each decoded entry is appended to `out`.
 */
export function decodeServiceDumpPart(part: Buffer, out: ServiceEntry[]): void {
  let off = 0;
  while (part.length - off >= NLMSG_HDRLEN) {
    const len = u32At(part, off);
    if (len < NLMSG_HDRLEN || len > part.length - off) throw dumpFraming('service dump', off, len, part.length - off);
    if (u16At(part, off + 4) >= NLMSG_MIN_TYPE) {
      topNestAt(part, off + NLMSG_HDRLEN, off + len, CmdAttr.SERVICE, 'service reply', nestSpan);
      out.push(serviceAt(part, nestSpan[0] as number, nestSpan[1] as number, 'service reply.service'));
    }
    off += (len + 3) & ~3;
  }
}

/** See decodeServiceDumpPart; `serviceAf` applies to destinations without ADDR_FAMILY (kernel < 3.18). */
export function decodeDestDumpPart(part: Buffer, serviceAf: AddressFamily, out: DestinationEntry[]): void {
  let off = 0;
  while (part.length - off >= NLMSG_HDRLEN) {
    const len = u32At(part, off);
    if (len < NLMSG_HDRLEN || len > part.length - off) throw dumpFraming('destination dump', off, len, part.length - off);
    if (u16At(part, off + 4) >= NLMSG_MIN_TYPE) {
      topNestAt(part, off + NLMSG_HDRLEN, off + len, CmdAttr.DEST, 'destination reply', nestSpan);
      out.push(destAt(part, nestSpan[0] as number, nestSpan[1] as number, serviceAf, 'destination reply.destination'));
    }
    off += (len + 3) & ~3;
  }
}

function dumpFraming(what: string, off: number, len: number, rem: number): IpvsDecodeError {
  return new IpvsDecodeError(`${what}: netlink message at offset ${off}: length ${len} outside 16..${rem}`);
}

/** Every entry of a GET_SERVICE dump, from its raw parts. */
export function decodeServiceDump(parts: readonly Buffer[]): ServiceEntry[] {
  const out: ServiceEntry[] = [];
  for (const p of parts) decodeServiceDumpPart(p, out);
  return out;
}

/** Every entry of a GET_DEST dump, from its raw parts. */
export function decodeDestDump(parts: readonly Buffer[], serviceAf: AddressFamily): DestinationEntry[] {
  const out: DestinationEntry[] = [];
  for (const p of parts) decodeDestDumpPart(p, serviceAf, out);
  return out;
}

/** Cursor over the nest `type` among the top-level attributes of a genl message payload. */
function topNest(payload: Buffer, type: number, what: string): AttrCursor {
  if (payload.length < GENL_HDRLEN) throw new IpvsDecodeError(`${what}: generic netlink payload of ${payload.length} bytes`);
  const top = new AttrCursor(payload, GENL_HDRLEN, payload.length, what);
  let found: AttrCursor | undefined;
  while (top.next()) if (top.type === type) found = top.nest(type === CmdAttr.SERVICE ? 'service' : type === CmdAttr.DEST ? 'destination' : 'daemon');
  if (!found) return top.fail(`missing attribute ${type}`);
  return found;
}

function daemonFrom(c: AttrCursor): SyncDaemon {
  let state = -1;
  let iface: string | undefined;
  let syncId = -1;
  let maxLen = 0;
  let group = '224.0.0.81';
  let port = 8848;
  let ttl = 1;
  while (c.next()) {
    switch (c.type) {
      case DaemonAttr.STATE: state = c.u32('state'); break;
      case DaemonAttr.MCAST_IFN: iface = c.string(); break;
      case DaemonAttr.SYNC_ID: syncId = c.u32('sync_id'); break;
      case DaemonAttr.SYNC_MAXLEN: maxLen = c.u16('sync_maxlen'); break;
      case DaemonAttr.MCAST_GROUP: group = formatIPv4(c.buf, c.bytesAt(4, 'mcast_group')); break;
      case DaemonAttr.MCAST_GROUP6: group = formatIPv6(c.buf, c.bytesAt(16, 'mcast_group6')); break;
      case DaemonAttr.MCAST_PORT: port = c.u16('mcast_port'); break; // host order, unlike service ports
      case DaemonAttr.MCAST_TTL: ttl = c.u8('mcast_ttl'); break;
      default: break;
    }
  }
  const role: SyncDaemonRole | undefined = state === DaemonState.MASTER ? 'master' : state === DaemonState.BACKUP ? 'backup' : undefined;
  if (!role) return c.fail(`unknown state ${state}`);
  if (iface === undefined) return c.fail('missing mcast_ifn');
  if (syncId < 0) return c.fail('missing sync_id');
  return { role, interface: iface, syncId, maxLen, group, port, ttl };
}

/** u32 top-level attributes of a genl message payload, by type (absent = undefined). */
function topU32s(payload: Buffer, maxType: number, what: string): Array<number | undefined> {
  if (payload.length < GENL_HDRLEN) throw new IpvsDecodeError(`${what}: generic netlink payload of ${payload.length} bytes`);
  const c = new AttrCursor(payload, GENL_HDRLEN, payload.length, what);
  const out = new Array<number | undefined>(maxType + 1);
  while (c.next()) if (c.type <= maxType) out[c.type] = c.len >= 4 ? c.u32(`attribute ${c.type}`) : c.len >= 2 ? c.u16(`attribute ${c.type}`) : c.fail(`attribute ${c.type} of ${c.len} bytes`);
  return out;
}

/** The attributes inside CMD_ATTR_SERVICE. */
export function decodeServiceAttrs(buf: Buffer): ServiceEntry {
  return serviceAt(buf, 0, buf.length, 'service');
}

/** The attributes inside CMD_ATTR_DEST; `serviceAf` is used when ADDR_FAMILY is absent (kernel < 3.18). */
export function decodeDestAttrs(buf: Buffer, serviceAf: AddressFamily): DestinationEntry {
  return destAt(buf, 0, buf.length, serviceAf, 'destination');
}

export function decodeDaemonAttrs(buf: Buffer): SyncDaemon {
  return daemonFrom(new AttrCursor(buf, 0, buf.length, 'daemon'));
}

/** A GET_SERVICE reply message (cmd NEW_SERVICE); `payload` = everything after the nlmsghdr. */
export function decodeServiceReply(payload: Buffer): ServiceEntry {
  topNestAt(payload, 0, payload.length, CmdAttr.SERVICE, 'service reply', nestSpan);
  return serviceAt(payload, nestSpan[0] as number, nestSpan[1] as number, 'service reply.service');
}

/** A GET_DEST reply message (cmd NEW_DEST). */
export function decodeDestReply(payload: Buffer, serviceAf: AddressFamily): DestinationEntry {
  topNestAt(payload, 0, payload.length, CmdAttr.DEST, 'destination reply', nestSpan);
  return destAt(payload, nestSpan[0] as number, nestSpan[1] as number, serviceAf, 'destination reply.destination');
}

/** A GET_DAEMON reply message (cmd NEW_DAEMON). */
export function decodeDaemonReply(payload: Buffer): SyncDaemon {
  return daemonFrom(topNest(payload, CmdAttr.DAEMON, 'daemon reply'));
}

/** A GET_INFO reply (cmd SET_INFO): top-level INFO_ATTR_* (not CMD_ATTR_*). */
export function decodeInfoReply(payload: Buffer): IpvsInfo {
  const [, v, size] = topU32s(payload, InfoAttr.CONN_TAB_SIZE, 'info reply');
  if (v === undefined || size === undefined) throw new IpvsDecodeError('info reply: missing version or conn_tab_size');
  return { version: `${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`, versionCode: v, connTableSize: size };
}

/** A GET_CONFIG reply (cmd SET_CONFIG); a timeout the kernel omits (protocol not built) reads as 0. */
export function decodeTimeoutsReply(payload: Buffer): Timeouts {
  const t = topU32s(payload, CmdAttr.TIMEOUT_UDP, 'config reply');
  return { tcp: t[CmdAttr.TIMEOUT_TCP] ?? 0, tcpFin: t[CmdAttr.TIMEOUT_TCP_FIN] ?? 0, udp: t[CmdAttr.TIMEOUT_UDP] ?? 0 };
}

/** nlctrl GETFAMILY reply -> family id (a u16). */
export function decodeFamilyReply(payload: Buffer): number {
  if (payload.length < GENL_HDRLEN) throw new IpvsDecodeError(`family reply: generic netlink payload of ${payload.length} bytes`);
  const c = new AttrCursor(payload, GENL_HDRLEN, payload.length, 'family reply');
  let id: number | undefined;
  while (c.next()) if (c.type === CTRL_ATTR_FAMILY_ID) id = c.u16('family_id');
  if (id === undefined) return c.fail('missing family_id');
  return id;
}
