// Netlink request/reply engine on netlink@0.3.0's native socket (RawNetlinkSocket).
//
// We frame and match messages ourselves instead of using the library's request(): its single
// global multipart buffer breaks on interleaved replies, it rejects with message-only errors, and
// it cannot pipeline. Here every reply is routed by sequence number, so many ACK-only requests can
// be in flight at once (packed several per sendmsg), while the client's queue keeps dumps exclusive.
//
// Failure model: a socket error (e.g. ENOBUFS: replies were dropped) or no reply progress within
// `timeoutMs` rejects everything in flight and discards the socket; the next request opens a new
// one and bumps `generation` so the client re-resolves the family id.
//
// Dumps can also bypass the binding (dumpSync): written and read to their end with write(2)/read(2)
// on the socket's own descriptor, found through /proc, while nothing else is in flight on it. A
// datagram then costs one read into a reused buffer instead of a peek, a fresh buffer and a JS
// callback through the event loop. Without /proc everything goes through the binding.

import fs from 'node:fs';
import { RawNetlinkSocket } from 'netlink';
import { NETLINK_GENERIC, NLM_F_ACK, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_MIN_TYPE, NLMSG_OVERRUN } from './constants.ts';
import { errnoFromNetlinkError, errnoNumber, IpvsError } from './errors.ts';
import { align4, patchFlags, patchSeqPort, readFlags, readI32, readU16, readU32, type NetlinkMessage } from './wire.ts';

/** The slice of a netlink socket the transport needs (lets unit tests plug in a fake kernel). */
export interface NetlinkSocketLike {
  readonly port: number;
  /** One sendmsg of all buffers (concatenated); the callback reports the sendmsg result. */
  send(data: Uint8Array[], cb: (err?: Error) => void): void;
  onMessage(fn: (datagram: Buffer) => void): void;
  onError(fn: (err: Error) => void): void;
  ref(): void;
  unref(): void;
  close(): void;
  /** Synchronous access to the same socket, when available (see SyncIo). */
  readonly sync?: SyncIo | undefined;
}

/**
 * write(2)/read(2) on the socket's descriptor, bypassing the binding and the event loop. The kernel
 * queues a dump's first datagram while it handles the request (netlink_dump_start runs in the
 * sender's context) and every further one, DONE included, inside the recvmsg that takes the
 * previous one, so a whole dump can be read right after sending it. The descriptor is
 * non-blocking (checked), so a read never blocks: EAGAIN means nothing is queued.
 */
export interface SyncIo {
  /** Sends one complete request; throws the errno Error of write(2). */
  write(buf: Buffer): void;
  /** Reads one datagram into `buf`, returns its length; throws the errno Error (code EAGAIN: nothing queued). */
  read(buf: Buffer): number;
}

export type SocketFactory = () => NetlinkSocketLike;

/** O_NONBLOCK where it is 04000 (every architecture Node ships prebuilt binaries for but mips). */
const O_NONBLOCK = ['x64', 'ia32', 'arm', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64'].includes(process.arch) ? 0o4000 : 0;

/**
 * The file descriptor of a netlink@0.3.0 socket (the binding does not expose it): its port leads
 * to the socket inode in /proc/self/net/netlink (ports are unique per protocol and netns), the
 * inode to the descriptor in /proc/self/fd. Only a non-blocking descriptor is returned (libuv's
 * poll watcher sets O_NONBLOCK; /proc/self/fdinfo shows it): a blocking read of an empty socket
 * would hang the process. undefined when /proc or any of this is unavailable.
 */
export function netlinkFd(protocol: number, port: number, proc = '/proc/self'): number | undefined {
  if (O_NONBLOCK === 0) return undefined;
  try {
    let inode: string | undefined;
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    for (const line of fs.readFileSync(`${proc}/net/netlink`, 'latin1').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 10 && f[1] === String(protocol) && f[2] === String(port)) inode = f[9];
    }
    if (inode === undefined) return undefined;
    const link = `socket:[${inode}]`;
    // Newest descriptors first: the socket was usually opened last.
    const fds = fs
      .readdirSync(`${proc}/fd`)
      .map(Number)
      .filter((n) => Number.isInteger(n))
      .sort((a, b) => b - a);
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`${proc}/fd/${fd}`) !== link) continue;
        const flags = /^flags:\s*([0-7]+)$/m.exec(fs.readFileSync(`${proc}/fdinfo/${fd}`, 'latin1'))?.[1];
        return flags !== undefined && (parseInt(flags, 8) & O_NONBLOCK) !== 0 ? fd : undefined;
      } catch {
        /* closed while we looked */
      }
    }
  } catch {
    /* no /proc */
  }
  return undefined;
}

/**
 * A netlink socket of `protocol` from netlink@0.3.0 (the native part only; framing is ours). The binding
 * peeks at each datagram's size and reads exactly that. (Its fixed-buffer mode, messagePeeking:
 * false, allocates and zero-fills the whole buffer for every datagram and hands it to JS: measured
 * slower for dumps at 3.7, 4, 8 and 32 KiB.) `sync` reads dumps without the binding; see SyncIo.
 */
export const openNetlinkSocket = (protocol: number): SocketFactory => () => {
  // Bigger receive buffer = more replies can queue while we pipeline (capped by net.core.rmem_max).
  const raw = new RawNetlinkSocket(protocol, { recvBufferSize: 8 << 20, sendBufferSize: 0 });
  const port = raw.address().port;
  let open = true;
  let fd: number | undefined | null = null; // null = not looked up yet
  const io: SyncIo = {
    write: (buf) => {
      const n = fs.writeSync(fd as number, buf);
      if (n !== buf.length) throw Object.assign(new Error(`short write: ${n} of ${buf.length} bytes`), { code: 'EIO' });
    },
    read: (buf) => fs.readSync(fd as number, buf, 0, buf.length, null),
  };
  return {
    port,
    send: (data, cb) => raw.send(data, {}, cb),
    onMessage: (fn) => raw.on('message', fn),
    onError: (fn) => raw.on('error', fn),
    ref: () => raw.ref(),
    unref: () => raw.unref(),
    close: () => {
      open = false; // the descriptor number may be reused from now on
      raw.close();
    },
    get sync(): SyncIo | undefined {
      if (!open) return undefined;
      if (fd === null) fd = netlinkFd(protocol, port);
      return fd === undefined ? undefined : io;
    },
  };
};

/** The IPVS client's sockets. */
export const openGenericNetlinkSocket: SocketFactory = openNetlinkSocket(NETLINK_GENERIC);

export interface OutgoingMessage {
  /** A complete netlink message; seq and portid are patched in by the transport. */
  readonly buf: Buffer;
  /** For errors: IPVS command name and the object concerned (lazy: formatting costs, errors are rare). */
  readonly command: string;
  readonly target?: Target;
}

export type Target = string | (() => string | undefined) | undefined;

const targetText = (t: Target): string | undefined => (typeof t === 'function' ? t() : t);

export interface TransportOptions {
  /** Reject when no reply traffic arrives for this long while requests are pending (default 10 s). */
  readonly timeoutMs?: number;
  readonly socketFactory?: SocketFactory;
  /** Called when the socket is discarded (error, timeout, close). */
  readonly onReset?: (reason: IpvsError) => void;
  /**
   * Read size of dumpSync() (default 32 KiB, the kernel's cap for dump datagrams). At least
   * NLMSG_GOODSIZE: a reply bigger than a read is cut short, silently when the cut falls between
   * messages. The kernel sizes this socket's dump datagrams by the largest read it has seen.
   */
  readonly syncReadLength?: number;
}

interface Pending {
  readonly command: string;
  readonly target: Target;
  readonly dump: boolean;
  /** dump(): data is kept as raw datagrams (whole netlink messages) in `raw`, not split into `parts`. */
  readonly raw: Buffer[] | undefined;
  readonly parts: NetlinkMessage[];
  readonly resolve: (parts: NetlinkMessage[]) => void;
  readonly reject: (err: IpvsError) => void;
}

const NO_PARTS: NetlinkMessage[] = [];

const PAD = [Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(2), Buffer.alloc(1)];
/** sendmsg payload limit per batch: well under the default SO_SNDBUF (netlink refuses len > sndbuf-32). */
const MAX_BATCH_BYTES = 60 * 1024;

/** scanDatagram() bits: a message with another seq, a control message (NOOP, ERROR, DONE...). */
const MIXED_SEQ = 1;
const HAS_CONTROL = 2;

/**
 * One pass over the message headers of d[0, n), allocating nothing: their lengths must tile it
 * (zero padding after the last is allowed). Returns the framing problem as text, else the bits
 * MIXED_SEQ (a message's seq is not `seq`) and HAS_CONTROL; 0 = a datagram of data for `seq`.
 */
function scanDatagram(d: Buffer, n: number, seq: number): number | string {
  let off = 0;
  let bits = 0;
  while (n - off >= NLMSG_HDRLEN) {
    const len = readU32(d, off);
    if (len < NLMSG_HDRLEN || len > n - off) return `netlink message at offset ${off}: length ${len} outside 16..${n - off}`;
    if (readU32(d, off + 8) !== seq) bits |= MIXED_SEQ;
    if (readU16(d, off + 4) < NLMSG_MIN_TYPE) bits |= HAS_CONTROL;
    off += align4(len);
  }
  for (let i = off; i < n; i++) if (d[i] !== 0) return `netlink datagram: ${n - off} trailing bytes`;
  return bits;
}

/**
 * The errno with which the control message of `type` at d[off, off+len) ends its request (0: an
 * ACK, a clean DONE), or -1 for NOOP and the reserved types, which end nothing.
 */
function endErrno(d: Buffer, off: number, len: number, type: number): number {
  if (type === NLMSG_OVERRUN) return errnoNumber('EOVERFLOW') ?? 75;
  if (type !== NLMSG_ERROR && type !== NLMSG_DONE) return -1;
  if (len - NLMSG_HDRLEN >= 4) return Math.abs(readI32(d, off + NLMSG_HDRLEN));
  return type === NLMSG_ERROR ? (errnoNumber('EBADMSG') ?? 74) : 0;
}

/** Hands `parts` to `onData` in order, letting the event loop run whenever a turn has taken `budgetMs`. */
export async function handEach(parts: readonly Buffer[], onData: (part: Buffer) => void, budgetMs: number): Promise<void> {
  let turn = performance.now();
  for (const part of parts) {
    if (performance.now() - turn >= budgetMs) {
      await new Promise((resolve) => setImmediate(resolve));
      turn = performance.now();
    }
    onData(part);
  }
}

export class NetlinkTransport {
  private sock: NetlinkSocketLike | undefined;
  private seq = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly timeoutMs: number;
  private readonly factory: SocketFactory;
  private readonly onReset: ((reason: IpvsError) => void) | undefined;
  private readonly syncReadLength: number;
  private timer: NodeJS.Timeout | undefined;
  /** Bumped by every send and every received datagram; the watchdog compares it between ticks. */
  private progress = 0;
  private closed = false;
  /** hold() count: while > 0 the socket keeps the event loop alive whatever is pending. */
  private holds = 0;
  /** Incremented each time a new socket is opened. */
  generation = 0;
  /** Netlink messages written to the socket, for "this costs N requests" accounting. */
  messagesSent = 0;
  sendCalls = 0;

  constructor(opts: TransportOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.factory = opts.socketFactory ?? openGenericNetlinkSocket;
    this.onReset = opts.onReset;
    this.syncReadLength = opts.syncReadLength ?? 32768;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private open(): NetlinkSocketLike {
    if (this.closed) throw IpvsError.fromCode('ECONNRESET', 'OPEN', undefined, 'client closed');
    if (this.sock) return this.sock;
    let sock: NetlinkSocketLike;
    try {
      sock = this.factory();
    } catch (e) {
      throw new IpvsError(errnoFromNetlinkError(e) ?? errnoNumber('EIO') ?? 5, 'OPEN', undefined, `cannot open netlink socket: ${(e as Error).message}`);
    }
    this.sock = sock;
    this.generation++;
    // These run inside the native binding's libuv callbacks, where an exception aborts the
    // process ("terminate called after throwing an instance of 'Napi::Error'"): never let one out.
    sock.onMessage((d) => {
      if (this.sock === sock) this.guard(() => this.receive(d));
    });
    sock.onError((e) => {
      if (this.sock !== sock) return;
      this.guard(() => {
        const errno = errnoFromNetlinkError(e) ?? errnoNumber('EIO') ?? 5;
        this.reset(new IpvsError(errno, 'RECV', undefined, `netlink socket error: ${e.message}`), errno);
      });
    });
    if (this.holds === 0) sock.unref(); // idle sockets must not keep the process alive
    return sock;
  }

  /**
   * Keeps the socket referenced until release(), for a run of back-to-back requests (the
   * destination dumps of listServices()): otherwise every request would ref and unref it.
   */
  hold(): void {
    if (this.holds++ === 0 && this.pending.size === 0) this.sock?.ref();
  }

  release(): void {
    if (this.holds === 0) return;
    if (--this.holds === 0 && this.pending.size === 0) this.sock?.unref();
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      const errno = errnoNumber('EIO') ?? 5;
      const detail = `internal error in the netlink receive path: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      try {
        this.reset(new IpvsError(errno, 'RECV', undefined, detail), errno, detail);
      } catch {
        /* nothing left to do */
      }
    }
  }

  /** Discards the socket; everything in flight is rejected with `errno` for its own command. */
  private reset(reason: IpvsError, errno: number, detail?: string): void {
    const sock = this.sock;
    this.sock = undefined;
    if (sock) {
      // Closing from inside one of the socket's own callbacks (error/message) aborts the process in
      // netlink@0.3.0's native code ("Error in native callback"): close once that callback returned.
      // Its events are ignored from now on (this.sock !== sock).
      setImmediate(() => {
        try {
          sock.close();
        } catch {
          /* already closed */
        }
      });
    }
    const failed = [...this.pending.values()];
    this.pending.clear();
    this.stopTimer();
    for (const p of failed) p.reject(new IpvsError(errno, p.command, targetText(p.target), detail));
    this.onReset?.(reason);
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * One watchdog per socket instead of a timer per request: it fires every `timeoutMs` and gives up
   * when requests are pending and no reply arrived (and nothing was sent) since the previous tick,
   * so a silent kernel is detected within 1-2 × timeoutMs.
   */
  private armTimer(): void {
    this.progress++;
    if (this.timer) return;
    let seen = this.progress;
    const tick = (): void => {
      this.timer = undefined;
      if (this.pending.size === 0) return;
      if (this.progress === seen) {
        const errno = errnoNumber('ETIMEDOUT') ?? 110;
        const detail = `no reply from the kernel within ${this.timeoutMs} ms`;
        this.reset(new IpvsError(errno, 'RECV', undefined, detail), errno, detail);
        return;
      }
      seen = this.progress;
      this.timer = setTimeout(tick, this.timeoutMs).unref();
    };
    this.timer = setTimeout(tick, this.timeoutMs).unref();
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1;
    return s;
  }

  private addPending(seq: number, p: Pending): void {
    if (this.pending.size === 0 && this.holds === 0) this.sock?.ref();
    this.pending.set(seq, p);
    this.armTimer();
  }

  private settle(seq: number): Pending | undefined {
    const p = this.pending.get(seq);
    if (!p) return undefined;
    this.pending.delete(seq);
    // The watchdog stays armed (unref'd) and lapses on its own once nothing is pending.
    if (this.pending.size === 0 && this.holds === 0) this.sock?.unref();
    return p;
  }

  /**
   * One pass over the datagram's headers, allocating nothing: the lengths must tile it, and when
   * every message carries the same seq (always, for kernel replies: a reply skb answers one
   * request) a dump()'s datagram is kept whole for the decoder instead of being split up here.
   */
  private receive(d: Buffer): void {
    const seq = d.length >= NLMSG_HDRLEN ? readU32(d, 8) : -1;
    const scan = scanDatagram(d, d.length, seq);
    if (typeof scan === 'string') {
      this.undecodable(scan);
      return;
    }
    this.progress++;
    if (seq === -1) return;
    const p = this.pending.get(seq);
    if (scan === 0 && p?.raw) {
      p.raw.push(d); // the common case: a datagram full of dump entries
      return;
    }
    for (let off = 0; d.length - off >= NLMSG_HDRLEN; ) {
      const len = readU32(d, off);
      this.dispatch(d, off, len);
      off += align4(len);
    }
  }

  private undecodable(detail: string): void {
    // Cannot tell whose reply this was: the stream is unusable.
    const errno = errnoNumber('EBADMSG') ?? 74;
    this.reset(new IpvsError(errno, 'RECV', undefined, `undecodable reply: ${detail}`), errno, `undecodable reply: ${detail}`);
  }

  /** One message at [off, off+len) of a datagram (lengths already checked). */
  private dispatch(d: Buffer, off: number, len: number): void {
    const seq = readU32(d, off + 8);
    const p = this.pending.get(seq);
    if (!p) return; // stray (e.g. a late reply of a request we gave up on)
    const type = readU16(d, off + 4);
    if (type < NLMSG_MIN_TYPE) {
      const errno = endErrno(d, off, len, type);
      if (errno < 0) return; // NOOP and reserved control types
      // An ACK ends a doit; a dump ends with DONE (an ERROR means the dump did not start).
      if (errno === 0 && type === NLMSG_ERROR && p.dump) return; // dumps are not ACKed, but tolerate it
      this.settle(seq);
      if (errno === 0) p.resolve(p.parts);
      else p.reject(new IpvsError(errno, p.command, targetText(p.target)));
      return;
    }
    if (p.raw) p.raw.push(d.subarray(off, off + len));
    else p.parts.push({ type, flags: readU16(d, off + 6), seq, port: readU32(d, off + 12), payload: d.subarray(off + NLMSG_HDRLEN, off + len) });
  }

  private write(sock: NetlinkSocketLike, bufs: Uint8Array[], seqs: readonly number[], count: number): void {
    this.messagesSent += count;
    this.sendCalls++;
    sock.send(bufs, (err) => {
      if (!err) return;
      this.guard(() => {
        const errno = errnoFromNetlinkError(err) ?? errnoNumber('EIO') ?? 5;
        for (const seq of seqs) {
          const p = this.settle(seq);
          p?.reject(new IpvsError(errno, p.command, targetText(p.target), `sendmsg failed: ${err.message}`));
        }
      });
    });
  }

  /** One request; resolves with the reply data messages (ACK/DONE stripped). */
  request(msg: OutgoingMessage, dump: boolean): Promise<NetlinkMessage[]> {
    return new Promise((resolve, reject) => this.start(msg, dump, undefined, resolve, reject));
  }

  /**
   * One dump request; resolves with its data as the datagrams it arrived in (whole netlink
   * messages; NOOP/DONE may be among them) for a decoder that walks them in place.
   */
  dump(msg: OutgoingMessage): Promise<Buffer[]> {
    return new Promise((resolve, reject) => {
      const raw: Buffer[] = [];
      this.start(msg, true, raw, () => resolve(raw), reject);
    });
  }

  private start(msg: OutgoingMessage, dump: boolean, raw: Buffer[] | undefined, resolve: (parts: NetlinkMessage[]) => void, reject: (err: IpvsError) => void): void {
    let sock: NetlinkSocketLike;
    try {
      sock = this.open();
    } catch (e) {
      reject(e instanceof IpvsError ? new IpvsError(e.errno, msg.command, targetText(msg.target), e.message) : (e as IpvsError));
      return;
    }
    const seq = this.nextSeq();
    patchSeqPort(msg.buf, seq, sock.port);
    this.addPending(seq, { command: msg.command, target: msg.target, dump, raw, parts: raw ? NO_PARTS : [], resolve, reject });
    this.write(sock, [msg.buf], [seq], 1);
  }

  /**
   * Sends ACK-only requests (NEW/SET/DEL) back to back, up to `batch` messages per sendmsg, and
   * resolves with one entry per message (undefined = done, else the error).
   *
   * Only the last message of each sendmsg asks for an ACK. The kernel runs the messages of one
   * sendmsg in order before the syscall returns and always reports a failure (NLMSG_ERROR carries
   * the failed seq), so when the last message's ACK arrives every earlier one without an error
   * has succeeded. This keeps the receive side to one datagram per batch plus one per failure,
   * instead of one per request. At most `window` messages are unconfirmed at any time.
   */
  async pipeline(msgs: readonly OutgoingMessage[], window = 128, batch = 128): Promise<(IpvsError | undefined)[]> {
    const results = new Array<IpvsError | undefined>(msgs.length);
    let next = 0;
    let outstanding = 0;
    let wake: (() => void) | undefined;
    const settled = (index: number, err: IpvsError | undefined): void => {
      results[index] = err;
      outstanding--;
      const w = wake;
      wake = undefined;
      w?.();
    };
    while (next < msgs.length) {
      if (outstanding + Math.min(batch, msgs.length - next) > window && outstanding > 0) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      let sock: NetlinkSocketLike;
      try {
        sock = this.open();
      } catch (e) {
        const err = e as IpvsError;
        for (; next < msgs.length; next++) {
          const m = msgs[next] as OutgoingMessage;
          results[next] = new IpvsError(err.errno, m.command, targetText(m.target), err.message);
        }
        break;
      }
      const bufs: Buffer[] = [];
      const seqs: number[] = [];
      let bytes = 0;
      while (next < msgs.length && seqs.length < batch && bytes < MAX_BATCH_BYTES) {
        const index = next++;
        const m = msgs[index] as OutgoingMessage;
        const seq = this.nextSeq();
        patchSeqPort(m.buf, seq, sock.port);
        patchFlags(m.buf, readFlags(m.buf) & ~NLM_F_ACK);
        // Messages in one skb must start 4-aligned; nlmsg_len itself stays unpadded.
        if (bufs.length > 0) {
          const pad = PAD[(bufs[bufs.length - 1] as Buffer).length & 3] as Buffer;
          if (pad.length) bufs.push(pad);
        }
        bufs.push(m.buf);
        bytes += align4(m.buf.length);
        seqs.push(seq);
        outstanding++;
        this.addPending(seq, {
          command: m.command,
          target: m.target,
          dump: false,
          raw: undefined,
          parts: [],
          resolve: () => settled(index, undefined),
          reject: (err) => settled(index, err),
        });
      }
      const last = seqs[seqs.length - 1] as number;
      const lastBuf = bufs[bufs.length - 1] as Buffer;
      patchFlags(lastBuf, readFlags(lastBuf) | NLM_F_ACK);
      const silent = seqs.slice(0, -1);
      const lastPending = this.pending.get(last) as Pending;
      // When the batch's last message is answered, the silent ones before it that got no error are done.
      const finishSilent = (): void => {
        for (const s of silent) this.settle(s)?.resolve([]);
      };
      this.pending.set(last, {
        ...lastPending,
        resolve: (parts) => {
          finishSilent();
          lastPending.resolve(parts);
        },
        reject: (err) => {
          // A socket-level failure (reset/timeout/send error) leaves the silent ones unknown: the
          // reset path rejects them itself; a kernel NACK of the last one says nothing about them.
          finishSilent();
          lastPending.reject(err);
        },
      });
      this.write(sock, bufs, seqs, seqs.length);
    }
    while (outstanding > 0) await new Promise<void>((r) => (wake = r));
    return results;
  }

  /**
   * One dump handed part by part to `onData`: read synchronously where the socket allows it (dumpSync), else
   * through the event loop (dump()); either way the event loop runs whenever a turn has taken `budgetMs`.
   */
  async dumpEach(msg: OutgoingMessage, onData: (part: Buffer) => void, budgetMs = Infinity): Promise<void> {
    const sync = this.canSync() ? this.dumpSync(msg, onData, budgetMs) : false;
    if (sync === false) await handEach(await this.dump(msg), onData, budgetMs);
    else if (sync !== true) await sync;
  }

  /** Whether dumpSync() can run now: the socket offers SyncIo and no request is in flight. */
  canSync(): boolean {
    if (this.pending.size > 0) return false;
    try {
      return this.open().sync !== undefined;
    } catch {
      return false; // closed: the async path reports it
    }
  }

  /**
   * One dump over the socket's SyncIo: sends `msg` and reads the reply to its end before
   * returning, handing `onData` every datagram of it (or single messages, when a datagram also
   * holds control or stray messages) as a view into a reused buffer, valid only during the call.
   * Reads are `syncReadLength` bytes.
   *
   * Returns false, having sent nothing, when the socket has no SyncIo or requests are in flight
   * (their replies must not be read here: the binding's callbacks deliver them): use dump() then.
   * Returns true when the dump ended with DONE. If a read finds nothing queued (EAGAIN) before
   * DONE, the rest is left to the event loop like any reply and a promise of it is returned
   * (timeouts and socket errors apply to it as to dump()). Throws IpvsError for refusals and socket
   * errors, or what `onData` throws; a dump that stopped midway discards the socket (the rest of
   * its reply would be read as the answer to the next request).
   *
   * With `budgetMs`, a dump still going after that long is left to the event loop in the same way, and its
   * parts are handed to `onData` in turns of about `budgetMs`: a table of thousands of services (kernel
   * time and decoding, 0.1–1 s in the emulated lab VM) does not hold up everything else for all of it.
   * (The kernel queues the next datagram inside the read that takes one, so the binding's poll callback
   * finds it.)
   *
   * Sharing the descriptor with the binding is safe because both run on the event-loop thread:
   * the binding reads only in its poll callback, never while this runs, and nothing of ours is
   * pending then; a poll callback that finds the datagrams gone gets EAGAIN, which it ignores.
   */
  dumpSync(msg: OutgoingMessage, onData: (part: Buffer) => void, budgetMs = Infinity): boolean | Promise<void> {
    if (this.pending.size > 0) return false;
    const readLength = this.syncReadLength;
    let sock: NetlinkSocketLike;
    try {
      sock = this.open();
    } catch (e) {
      throw e instanceof IpvsError ? new IpvsError(e.errno, msg.command, targetText(msg.target), e.message) : e;
    }
    const io = sock.sync;
    if (!io) return false;
    let buf = this.syncBuf;
    if (buf?.length !== readLength) buf = this.syncBuf = Buffer.allocUnsafe(readLength);
    const seq = this.nextSeq();
    patchSeqPort(msg.buf, seq, sock.port);
    this.messagesSent++;
    this.sendCalls++;
    try {
      io.write(msg.buf);
    } catch (e) {
      const errno = errnoFromNetlinkError(e) ?? errnoNumber('EIO') ?? 5;
      throw new IpvsError(errno, msg.command, targetText(msg.target), `sendmsg failed: ${(e as Error).message}`);
    }
    let settled = false;
    const began = performance.now();
    try {
      for (;;) {
        let n: number;
        try {
          n = io.read(buf);
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
            settled = true;
            return this.continueDump(seq, msg, onData, budgetMs);
          }
          const errno = errnoFromNetlinkError(e) ?? errnoNumber('EIO') ?? 5;
          throw new IpvsError(errno, msg.command, targetText(msg.target), `netlink socket error: ${(e as Error).message}`);
        }
        this.progress++;
        const end = this.syncDatagram(buf, n, seq, msg, onData);
        if (end !== undefined) {
          settled = true;
          if (end === true) return true;
          throw end;
        }
        if (performance.now() - began >= budgetMs) {
          settled = true;
          return this.continueDump(seq, msg, onData, budgetMs);
        }
      }
    } finally {
      if (!settled && this.sock === sock) {
        const errno = errnoNumber('EIO') ?? 5;
        this.reset(new IpvsError(errno, 'RECV', undefined, 'dump abandoned midway'), errno, 'dump abandoned midway');
      }
    }
  }

  /**
   * The rest of a dumpSync() reply, through the binding's callbacks (see dumpSync); once it has all come,
   * its parts go to `onData` in turns of about `budgetMs`.
   */
  private continueDump(seq: number, msg: OutgoingMessage, onData: (part: Buffer) => void, budgetMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const raw: Buffer[] = [];
      const done = (): void => void handEach(raw, onData, budgetMs).then(resolve, reject);
      this.addPending(seq, { command: msg.command, target: msg.target, dump: true, raw, parts: NO_PARTS, resolve: done, reject });
    });
  }

  /** Reused by dumpSync(). */
  private syncBuf: Buffer | undefined;

  /**
   * One datagram of a dumpSync() reply in buf[0, n): undefined = more to come, true = DONE,
   * an IpvsError = the kernel ended the dump with an error (the socket is clean). Strays are
   * skipped; an undecodable datagram throws (the stream is unusable).
   */
  private syncDatagram(buf: Buffer, n: number, seq: number, msg: OutgoingMessage, onData: (part: Buffer) => void): true | IpvsError | undefined {
    const scan = scanDatagram(buf, n, seq);
    if (typeof scan === 'string') throw new IpvsError(errnoNumber('EBADMSG') ?? 74, msg.command, targetText(msg.target), `undecodable reply: ${scan}`);
    if (scan === 0) {
      if (n > 0) onData(buf.subarray(0, n));
      return undefined;
    }
    for (let off = 0; n - off >= NLMSG_HDRLEN; ) {
      const len = readU32(buf, off);
      const at = off;
      off += align4(len);
      if (readU32(buf, at + 8) !== seq) continue; // stray: a late reply to an abandoned request
      const type = readU16(buf, at + 4);
      if (type >= NLMSG_MIN_TYPE) {
        onData(buf.subarray(at, at + len));
        continue;
      }
      const errno = endErrno(buf, at, len, type);
      if (errno < 0 || (errno === 0 && type === NLMSG_ERROR)) continue; // NOOP; dumps are not ACKed, but tolerate it
      return errno === 0 ? true : new IpvsError(errno, msg.command, targetText(msg.target));
    }
    return undefined;
  }

  /** Closes the socket for good; pending requests fail with ECONNRESET. */
  close(): void {
    const errno = errnoNumber('ECONNRESET') ?? 104;
    const reason = new IpvsError(errno, 'CLOSE', undefined, 'client closed');
    this.reset(reason, errno, 'client closed');
    this.closed = true;
  }
}
