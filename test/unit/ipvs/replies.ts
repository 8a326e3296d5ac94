// Test helper: kernel-side reply messages built the way net/netfilter/ipvs/ip_vs_ctl.c fills them
// (16-byte addresses, be16 ports, flags with mask ~0, STATS + STATS64, attribute order), plus a
// scriptable fake netlink socket for transport/client tests.

import { endianness } from 'node:os';
import {
  AF_INET,
  AF_INET6,
  Cmd,
  CmdAttr,
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  DaemonAttr,
  DestAttr,
  InfoAttr,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
  StatsAttr,
  SvcAttr,
} from '../../../src/ipvs/constants.ts';
import { addressBytes } from '../../../src/ipvs/addr.ts';
import type { NetlinkSocketLike, SyncIo } from '../../../src/ipvs/transport.ts';
import type { DestinationCounters, Destination, Service, Stats, SyncDaemon } from '../../../src/ipvs/types.ts';
import { ZERO_COUNTERS, ZERO_STATS } from '../../../src/ipvs/types.ts';
import { MessageWriter, parseNetlinkMessages, type NetlinkMessage } from '../../../src/ipvs/wire.ts';

export const LE = endianness() === 'LE';
export const FAMILY = 0x1d;

const addr16 = (af: 'ipv4' | 'ipv6', a: string): Uint8Array => {
  const out = new Uint8Array(16);
  out.set(addressBytes(af, a));
  return out;
};

function stats(w: MessageWriter, type: number, s: Stats, legacy: boolean): void {
  w.nest(type, () => {
    const put = (t: number, v: bigint, wide: boolean): void => {
      if (wide) {
        const b = Buffer.alloc(8);
        if (LE) b.writeBigUInt64LE(v);
        else b.writeBigUInt64BE(v);
        w.bytes(t, b);
      } else w.u32(t, Number(v & 0xffffffffn));
    };
    put(StatsAttr.CONNS, s.conns, !legacy);
    put(StatsAttr.INPKTS, s.inpkts, !legacy);
    put(StatsAttr.OUTPKTS, s.outpkts, !legacy);
    put(StatsAttr.INBYTES, s.inbytes, true);
    put(StatsAttr.OUTBYTES, s.outbytes, true);
    put(StatsAttr.CPS, s.cps, !legacy);
    put(StatsAttr.INPPS, s.inpps, !legacy);
    put(StatsAttr.OUTPPS, s.outpps, !legacy);
    put(StatsAttr.INBPS, s.inbps, !legacy);
    put(StatsAttr.OUTBPS, s.outbps, !legacy);
  });
}

export interface ReplyOptions {
  seq?: number;
  flags?: number;
  /** Omit STATS64 (kernel < 4.1): only the legacy STATS nest. */
  legacyOnly?: boolean;
}

/** One NEW_SERVICE message as GET_SERVICE answers it. */
export function serviceReply(s: Service, st: Stats = ZERO_STATS, o: ReplyOptions = {}): Buffer {
  const w = new MessageWriter(FAMILY, o.flags ?? NLM_F_MULTI, Cmd.NEW_SERVICE, 1);
  w.nest(CmdAttr.SERVICE, () => {
    w.u16(SvcAttr.AF, s.af === 'ipv4' ? AF_INET : AF_INET6);
    if (s.fwmark !== undefined) w.u32(SvcAttr.FWMARK, s.fwmark);
    else {
      w.u16(SvcAttr.PROTOCOL, s.protocol === 'tcp' ? IPPROTO_TCP : s.protocol === 'udp' ? IPPROTO_UDP : IPPROTO_SCTP);
      w.bytes(SvcAttr.ADDR, addr16(s.af, s.address));
      w.u16be(SvcAttr.PORT, s.port);
    }
    w.string(SvcAttr.SCHED_NAME, s.scheduler);
    if (s.pe) w.string(SvcAttr.PE_NAME, s.pe);
    w.flagsMask(SvcAttr.FLAGS, s.flags, 0xffffffff);
    w.u32(SvcAttr.TIMEOUT, s.timeout);
    if (s.af === 'ipv4') w.u32be(SvcAttr.NETMASK, s.netmask);
    else w.u32(SvcAttr.NETMASK, s.netmask);
    stats(w, SvcAttr.STATS, st, true);
    if (!o.legacyOnly) stats(w, SvcAttr.STATS64, st, false);
  });
  return w.finish(o.seq ?? 0, 0);
}

/** One NEW_DEST message as GET_DEST answers it (kernel attribute order). */
export function destReply(d: Destination, c: DestinationCounters = ZERO_COUNTERS, st: Stats = ZERO_STATS, o: ReplyOptions & { noAf?: boolean } = {}): Buffer {
  const w = new MessageWriter(FAMILY, o.flags ?? NLM_F_MULTI, Cmd.NEW_DEST, 1);
  const tun = { ipip: 0, gue: 1, gre: 2 }[d.tunnelType];
  const fwd = { masq: 0, local: 1, tunnel: 2, droute: 3 }[d.forwarding];
  w.nest(CmdAttr.DEST, () => {
    w.bytes(DestAttr.ADDR, addr16(d.af, d.address));
    w.u16be(DestAttr.PORT, d.port);
    w.u32(DestAttr.FWD_METHOD, fwd);
    w.u32(DestAttr.WEIGHT, d.weight);
    w.u8(DestAttr.TUN_TYPE, tun);
    w.u16be(DestAttr.TUN_PORT, d.tunnelPort);
    w.u16(DestAttr.TUN_FLAGS, d.tunnelFlags);
    w.u32(DestAttr.U_THRESH, d.upperThreshold);
    w.u32(DestAttr.L_THRESH, d.lowerThreshold);
    w.u32(DestAttr.ACTIVE_CONNS, c.activeConns);
    w.u32(DestAttr.INACT_CONNS, c.inactiveConns);
    w.u32(DestAttr.PERSIST_CONNS, c.persistConns);
    if (!o.noAf) w.u16(DestAttr.ADDR_FAMILY, d.af === 'ipv4' ? AF_INET : AF_INET6);
    stats(w, DestAttr.STATS, st, true);
    if (!o.legacyOnly) stats(w, DestAttr.STATS64, st, false);
  });
  return w.finish(o.seq ?? 0, 0);
}

export function daemonReply(d: SyncDaemon, o: ReplyOptions = {}): Buffer {
  const w = new MessageWriter(FAMILY, o.flags ?? NLM_F_MULTI, Cmd.NEW_DAEMON, 1);
  w.nest(CmdAttr.DAEMON, () => {
    w.u32(DaemonAttr.STATE, d.role === 'master' ? 1 : 2);
    w.string(DaemonAttr.MCAST_IFN, d.interface);
    w.u32(DaemonAttr.SYNC_ID, d.syncId);
    w.u16(DaemonAttr.SYNC_MAXLEN, d.maxLen);
    w.u16(DaemonAttr.MCAST_PORT, d.port);
    w.u8(DaemonAttr.MCAST_TTL, d.ttl);
    if (d.group.includes(':')) w.bytes(DaemonAttr.MCAST_GROUP6, addressBytes('ipv6', d.group));
    else w.bytes(DaemonAttr.MCAST_GROUP, addressBytes('ipv4', d.group));
  });
  return w.finish(o.seq ?? 0, 0);
}

export function infoReply(version = 0x010201, size = 4096, o: ReplyOptions = {}): Buffer {
  const w = new MessageWriter(FAMILY, o.flags ?? 0, Cmd.SET_INFO, 1);
  w.u32(InfoAttr.VERSION, version);
  w.u32(InfoAttr.CONN_TAB_SIZE, size);
  return w.finish(o.seq ?? 0, 0);
}

export function configReply(tcp: number, tcpFin: number, udp: number, o: ReplyOptions = {}): Buffer {
  const w = new MessageWriter(FAMILY, o.flags ?? 0, Cmd.SET_CONFIG, 1);
  w.u32(CmdAttr.TIMEOUT_TCP, tcp);
  w.u32(CmdAttr.TIMEOUT_TCP_FIN, tcpFin);
  w.u32(CmdAttr.TIMEOUT_UDP, udp);
  return w.finish(o.seq ?? 0, 0);
}

export function familyReply(id = FAMILY, o: ReplyOptions = {}): Buffer {
  const w = new MessageWriter(16, o.flags ?? 0, 1 /* CTRL_CMD_NEWFAMILY */, 2);
  w.u16(CTRL_ATTR_FAMILY_ID, id);
  w.string(CTRL_ATTR_FAMILY_NAME, 'IPVS');
  return w.finish(o.seq ?? 0, 0);
}

/** NLMSG_ERROR; errno 0 = ACK. Carries the original header like the kernel (capped form). */
export function errorMessage(seq: number, errno: number, port = 0): Buffer {
  const b = Buffer.alloc(16 + 4 + 16);
  const w32 = (v: number, off: number): number => (LE ? b.writeInt32LE(v, off) : b.writeInt32BE(v, off));
  const w16 = (v: number, off: number): number => (LE ? b.writeUInt16LE(v, off) : b.writeUInt16BE(v, off));
  w32(b.length, 0);
  w16(NLMSG_ERROR, 4);
  w16(errno === 0 ? 0x100 : 0, 6);
  w32(seq, 8);
  w32(port, 12);
  w32(-errno, 16);
  w32(16, 20);
  w32(seq, 28);
  return b;
}

export function doneMessage(seq: number, errno = 0): Buffer {
  const b = Buffer.alloc(20);
  const w32 = (v: number, off: number): number => (LE ? b.writeInt32LE(v, off) : b.writeInt32BE(v, off));
  w32(20, 0);
  if (LE) b.writeUInt16LE(NLMSG_DONE, 4);
  else b.writeUInt16BE(NLMSG_DONE, 4);
  if (LE) b.writeUInt16LE(NLM_F_MULTI, 6);
  else b.writeUInt16BE(NLM_F_MULTI, 6);
  w32(seq, 8);
  w32(-errno, 16);
  return b;
}

/** Sets the seq of a built message. */
export function withSeq(msg: Buffer, seq: number): Buffer {
  const b = Buffer.from(msg);
  if (LE) b.writeUInt32LE(seq, 8);
  else b.writeUInt32BE(seq, 8);
  return b;
}

/** Concatenates messages into one datagram with 4-byte alignment between them. */
export function datagram(...msgs: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of msgs) {
    parts.push(m);
    const pad = (4 - (m.length & 3)) & 3;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  return Buffer.concat(parts);
}

export interface SentRequest extends NetlinkMessage {
  /** genl command (0 for nlctrl requests: their cmd is CTRL_CMD_GETFAMILY=3 on family 16). */
  readonly cmd: number;
  /** Which socket (by creation order) sent it. */
  readonly socket: number;
}

/** What FakeNetlink.onSyncRead may do to one read(2): fail with that error, or 'defer' (see there). */
export type SyncReadFault = Error | 'defer' | undefined;

/** An Error as fs.readSync/writeSync throw it (code + errno). */
export function errnoError(code: string, errno: number): Error {
  return Object.assign(new Error(`${code}: simulated`), { code, errno: -errno });
}

/**
 * A scriptable stand-in for the kernel side of generic netlink sockets: every sendmsg is split
 * into messages and handed to `handler`, whose returned datagrams are delivered asynchronously.
 * With `syncIo` set, sockets also offer SyncIo like the real one: write() queues the handler's
 * datagrams on the socket, read() takes them in order (cut to the read size, like read(2) on a
 * datagram socket) and throws EAGAIN when none is queued.
 */
export class FakeNetlink {
  readonly sent: SentRequest[] = [];
  sockets = 0;
  closed = 0;
  sendCalls = 0;
  /** Give sockets created from now on a SyncIo. */
  syncIo = false;
  syncWrites = 0;
  syncReads = 0;
  /**
   * Called before every SyncIo read with the socket's queue. An Error is thrown by that read;
   * 'defer' makes it throw EAGAIN and hands what is queued to the socket's message callback on
   * the next turn of the event loop, as if the kernel had queued it later.
   */
  onSyncRead: (socket: number, queue: readonly Buffer[]) => SyncReadFault = () => undefined;
  private readonly errorFns: Array<(e: Error) => void> = [];
  handler: (req: SentRequest) => Buffer[] = () => [];

  private take(data: Uint8Array[], id: number): Buffer[] {
    const msgs = parseNetlinkMessages(Buffer.concat(data.map((d) => Buffer.from(d))));
    const replies: Buffer[] = [];
    for (const m of msgs) {
      const req: SentRequest = { ...m, cmd: m.payload[0] ?? 0, socket: id };
      this.sent.push(req);
      replies.push(...this.handler(req));
    }
    return replies;
  }

  factory = (): NetlinkSocketLike => {
    const id = this.sockets++;
    let onMessage: (d: Buffer) => void = () => {};
    let open = true;
    const errorFns = this.errorFns;
    const queue: Buffer[] = [];
    let polling = false;
    const withSync = this.syncIo;
    const sync: SyncIo = {
      write: (buf) => {
        if (!open) throw errnoError('EBADF', 9);
        this.syncWrites++;
        queue.push(...this.take([buf], id));
      },
      read: (buf) => {
        if (!open) throw errnoError('EBADF', 9);
        this.syncReads++;
        const fault = this.onSyncRead(id, queue);
        if (fault === 'defer') {
          const later = queue.splice(0);
          setImmediate(() => {
            for (const d of later) if (open) onMessage(d);
          });
          throw errnoError('EAGAIN', 11);
        }
        if (fault) throw fault;
        const d = queue.shift();
        if (!d) throw errnoError('EAGAIN', 11);
        // As the binding's poll callback does (the socket stays readable): what nobody has read by the
        // next turn of the event loop goes to the message callback.
        if (queue.length && !polling) {
          polling = true;
          setImmediate(() => {
            polling = false;
            for (const r of queue.splice(0)) if (open) onMessage(r);
          });
        }
        return d.copy(buf, 0, 0, Math.min(d.length, buf.length));
      },
    };
    return {
      port: 1000 + id,
      send: (data, cb) => {
        this.sendCalls++;
        const replies = this.take(data, id);
        setImmediate(() => {
          cb();
          for (const r of replies) if (open) onMessage(r);
        });
      },
      onMessage: (fn) => {
        onMessage = fn;
      },
      onError: (fn) => {
        errorFns[id] = fn;
      },
      ref: () => {},
      unref: () => {},
      close: () => {
        open = false;
        this.closed++;
      },
      get sync(): SyncIo | undefined {
        return withSync && open ? sync : undefined;
      },
    };
  };

  /** Emits a socket error on socket `id` (e.g. ENOBUFS). */
  fail(id: number, err: Error): void {
    this.errorFns[id]?.(err);
  }
}
