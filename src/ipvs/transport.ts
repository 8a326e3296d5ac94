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

import { RawNetlinkSocket } from 'netlink';
import { NETLINK_GENERIC, NLM_F_ACK, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN } from './constants.ts';
import { errnoFromNetlinkError, errnoNumber, IpvsDecodeError, IpvsError } from './errors.ts';
import { align4, parseErrorPayload, parseNetlinkMessages, patchFlags, patchSeqPort, readFlags, readI32, type NetlinkMessage } from './wire.ts';

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
}

export type SocketFactory = () => NetlinkSocketLike;

/**
 * A NETLINK_GENERIC socket from netlink@0.3.0 (the native part only; framing is ours). It peeks at
 * each datagram's size before reading it: a fixed read buffer instead (messagePeeking: false) saves
 * a syscall but allocates that buffer for every datagram, which measured 2x slower for dumps.
 */
export const openGenericNetlinkSocket: SocketFactory = () => {
  // Bigger receive buffer = more replies can queue while we pipeline (capped by net.core.rmem_max).
  const raw = new RawNetlinkSocket(NETLINK_GENERIC, { recvBufferSize: 8 << 20, sendBufferSize: 0 });
  const port = raw.address().port;
  return {
    port,
    send: (data, cb) => raw.send(data, {}, cb),
    onMessage: (fn) => raw.on('message', fn),
    onError: (fn) => raw.on('error', fn),
    ref: () => raw.ref(),
    unref: () => raw.unref(),
    close: () => raw.close(),
  };
};

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
}

interface Pending {
  readonly command: string;
  readonly target: Target;
  readonly dump: boolean;
  readonly parts: NetlinkMessage[];
  readonly resolve: (parts: NetlinkMessage[]) => void;
  readonly reject: (err: IpvsError) => void;
}

const PAD = [Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(2), Buffer.alloc(1)];
/** sendmsg payload limit per batch: well under the default SO_SNDBUF (netlink refuses len > sndbuf-32). */
const MAX_BATCH_BYTES = 60 * 1024;

export class NetlinkTransport {
  private sock: NetlinkSocketLike | undefined;
  private seq = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly timeoutMs: number;
  private readonly factory: SocketFactory;
  private readonly onReset: ((reason: IpvsError) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Bumped by every send and every received datagram; the watchdog compares it between ticks. */
  private progress = 0;
  private closed = false;
  /** Incremented each time a new socket is opened. */
  generation = 0;
  /** Netlink messages written to the socket, for "this costs N requests" accounting. */
  messagesSent = 0;
  sendCalls = 0;

  constructor(opts: TransportOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.factory = opts.socketFactory ?? openGenericNetlinkSocket;
    this.onReset = opts.onReset;
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
    sock.unref();
    return sock;
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
    if (this.pending.size === 0) this.sock?.ref();
    this.pending.set(seq, p);
    this.armTimer();
  }

  private settle(seq: number): Pending | undefined {
    const p = this.pending.get(seq);
    if (!p) return undefined;
    this.pending.delete(seq);
    // The watchdog stays armed (unref'd) and lapses on its own once nothing is pending.
    if (this.pending.size === 0) this.sock?.unref();
    return p;
  }

  private receive(datagram: Buffer): void {
    let msgs: NetlinkMessage[];
    try {
      msgs = parseNetlinkMessages(datagram);
    } catch (e) {
      // Cannot tell whose reply this was: the stream is unusable.
      const errno = errnoNumber('EBADMSG') ?? 74;
      const detail = e instanceof IpvsDecodeError ? `undecodable reply: ${e.message}` : String(e);
      this.reset(new IpvsError(errno, 'RECV', undefined, detail), errno, detail);
      return;
    }
    this.progress++;
    for (const m of msgs) this.dispatch(m);
  }

  private dispatch(m: NetlinkMessage): void {
    const p = this.pending.get(m.seq);
    if (!p) return; // stray (e.g. a late reply of a request we gave up on)
    if (m.type === NLMSG_ERROR || m.type === NLMSG_DONE || m.type === NLMSG_OVERRUN) {
      let errno: number;
      try {
        if (m.type === NLMSG_ERROR) errno = parseErrorPayload(m.payload);
        else if (m.type === NLMSG_DONE) errno = m.payload.length >= 4 ? Math.abs(readI32(m.payload, 0)) : 0;
        else errno = errnoNumber('EOVERFLOW') ?? 75;
      } catch {
        errno = errnoNumber('EBADMSG') ?? 74;
      }
      // An ACK ends a doit; a dump ends with DONE (an ERROR means the dump did not start).
      if (errno === 0 && m.type === NLMSG_ERROR && p.dump) return; // dumps are not ACKed, but tolerate it
      this.settle(m.seq);
      if (errno === 0) p.resolve(p.parts);
      else p.reject(new IpvsError(errno, p.command, targetText(p.target)));
      return;
    }
    if (m.type === NLMSG_NOOP) return;
    p.parts.push(m);
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
    return new Promise((resolve, reject) => {
      let sock: NetlinkSocketLike;
      try {
        sock = this.open();
      } catch (e) {
        reject(e instanceof IpvsError ? new IpvsError(e.errno, msg.command, targetText(msg.target), e.message) : e);
        return;
      }
      const seq = this.nextSeq();
      patchSeqPort(msg.buf, seq, sock.port);
      this.addPending(seq, { command: msg.command, target: msg.target, dump, parts: [], resolve, reject });
      this.write(sock, [msg.buf], [seq], 1);
    });
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

  /** Closes the socket for good; pending requests fail with ECONNRESET. */
  close(): void {
    const errno = errnoNumber('ECONNRESET') ?? 104;
    const reason = new IpvsError(errno, 'CLOSE', undefined, 'client closed');
    this.reset(reason, errno, 'client closed');
    this.closed = true;
  }
}
