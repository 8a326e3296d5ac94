/**
 * Director heartbeats: each director agent multicasts "I am alive" on the segments of its VIPs every
 * `intervalMs` (UDP to a link-local group, as VRRP does on 224.0.0.18), and listens for the others. The Lease
 * stays the only authority on who holds a VIP (a standby still has to win it with a conditional write); the
 * heartbeats only change WHEN a standby considers the holder's Lease expired:
 * - early, for a holder whose heartbeats stopped (dead agent, dead node, cut link) and that has not renewed
 *   its Lease for `earlyExpiryMs` (2 renew intervals by default) instead of the whole lease duration;
 * - late, for a holder whose heartbeats still arrive (it only lost the API server, or renews slowly on a busy
 *   node): not before the Lease has been unchanged for 10 lease durations, as a VRRP backup that hears its
 *   master never takes over. The holder keeps the VIP meanwhile ('retained'), so nothing flaps.
 * Heartbeats are sent from a worker thread: a heartbeat says "this agent's process lives and its NIC works",
 * and must not stop while the main thread is busy (a netlink request the kernel serves slowly, such as
 * starting a sync daemon, blocks it for seconds under emulation), or a busy holder would look dead.
 *
 * Why this is as safe as the Lease alone:
 * - a holder never heard from is never judged down (no multicast on the segment, a firewall): the Lease
 *   duration applies, as without heartbeats;
 * - a forged or replayed heartbeat can only keep a standby from taking over early;
 * - both signals must fail together: a holder that renews but whose heartbeats are lost keeps the VIP, and one
 *   whose heartbeats flow but that cannot renew is judged by the Lease duration;
 * - a standby that was itself stalled (its check ran late: a GC pause, a starved node) gives every holder
 *   a fresh grace period first, since the heartbeats queued in its socket have not been read yet.
 */
import * as dgram from 'node:dgram';
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { realClock } from '../../kube/clock.ts';
import type { Clock, TimerHandle } from '../../kube/clock.ts';
import type { Logger } from '../../util/log.ts';

/** Defaults: a link-local group (IANA: 224.0.0.69–100 unassigned) and a port of our own. */
export const HEARTBEAT_GROUP = '224.0.0.83';
export const HEARTBEAT_PORT = 7838;

/** "224.0.0.83:7838" → group and port; a clear error for anything else (an IPv4 multicast group is required). */
export function parseHeartbeatGroup(text: string): { group: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text.trim());
  const first = m ? Number(m[1]!.split('.')[0]) : NaN;
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(first >= 224 && first <= 239) || m[1]!.split('.').some((o) => Number(o) > 255) || !(port >= 1 && port <= 65535)) {
    throw new Error(`--failover-heartbeat-group must be an IPv4 multicast group and a UDP port, like ${HEARTBEAT_GROUP}:${HEARTBEAT_PORT}; got "${text}"`);
  }
  return { group: m[1]!, port };
}

/** What a heartbeat says (JSON, one datagram). */
export interface Heartbeat {
  /** Sender's node name (the Lease holder identity). */
  node: string;
  /** Sender's heartbeat interval: receivers judge it by the slower of theirs and its. */
  intervalMs: number;
  seq: number;
  /** MACs of the sender's heartbeat interfaces (lower case): who answers ARP for a VIP, as a director. */
  macs?: string[];
}

const MAGIC = 'lvs-operator.heartbeat.v1';

export function encodeHeartbeat(h: Heartbeat): Buffer {
  return Buffer.from(JSON.stringify({ t: MAGIC, ...h }));
}

/** undefined for anything that is not a well-formed heartbeat (other traffic on the group, garbage). */
export function decodeHeartbeat(b: Buffer): Heartbeat | undefined {
  if (b.length > 1024) return undefined;
  try {
    const o = JSON.parse(b.toString('utf8')) as Partial<Heartbeat> & { t?: unknown };
    if (o.t !== MAGIC || typeof o.node !== 'string' || !o.node || typeof o.intervalMs !== 'number' || !(o.intervalMs > 0) || typeof o.seq !== 'number') return undefined;
    const macs = Array.isArray(o.macs) ? o.macs.filter((m): m is string => typeof m === 'string').map((m) => m.toLowerCase()) : [];
    return { node: o.node, intervalMs: o.intervalMs, seq: o.seq, ...(macs.length ? { macs } : {}) };
  } catch {
    return undefined;
  }
}

/** The network side, behind an interface so that the monitor runs on a fake in unit tests. */
export interface HeartbeatTransport {
  /**
   * Listen on these interfaces, and send `heartbeat` on each every `intervalMs` (seq counted up by the
   * sender); [] stops sending. Joins the group on each.
   */
  setInterfaces(ifnames: readonly string[], heartbeat: Omit<Heartbeat, 'seq'>): Promise<void>;
  onMessage(cb: (payload: Buffer) => void): void;
  /** Sending failed (or works again: undefined). */
  onSendError(cb: (err: string | undefined) => void): void;
  close(): void;
}

export interface HeartbeatMonitorOptions {
  node: string;
  transport: HeartbeatTransport;
  /** Send interval (default 100 ms). */
  intervalMs?: number;
  /** A sender is down after this many of its intervals without a heartbeat (default 5). */
  missed?: number;
  /** A node went down (its heartbeats stopped): the elections judge its Leases again. */
  onDown?: (node: string) => void;
  clock?: Clock;
  log: Logger;
}

interface Peer {
  lastSeen: number;
  intervalMs: number;
  down: boolean;
  macs: string[];
}

export class HeartbeatMonitor {
  readonly #o: HeartbeatMonitorOptions;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #missed: number;
  readonly #peers = new Map<string, Peer>();
  #timer: TimerHandle | undefined;
  #lastTick = 0;
  #sending = false;
  #closed = false;

  constructor(o: HeartbeatMonitorOptions) {
    this.#o = o;
    this.#clock = o.clock ?? realClock;
    this.#intervalMs = o.intervalMs ?? 100;
    this.#missed = o.missed ?? 5;
    if (!(this.#intervalMs > 0) || !(this.#missed >= 2)) throw new Error('heartbeat: intervalMs must be positive and missed at least 2');
    o.transport.onMessage((b) => this.#received(b));
    o.transport.onSendError((err) => {
      if (err === undefined) o.log.info('heartbeats sent again');
      else o.log.warn({ err }, 'heartbeat not sent: standbys fall back to the Lease duration');
    });
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Send (and listen) on these interfaces; [] stops sending (a node that directs nothing is nobody's holder). */
  async setInterfaces(ifnames: readonly string[]): Promise<void> {
    if (this.#closed) return;
    await this.#o.transport.setInterfaces(ifnames, { node: this.#o.node, intervalMs: this.#intervalMs });
    this.#sending = ifnames.length > 0;
    if (this.#sending && this.#timer === undefined) {
      this.#lastTick = this.#clock.now();
      this.#tick();
    }
  }

  /**
   * Whether `node` is known to be down: heard from before, and silent for `missed` of its intervals since.
   * A node never heard from is not down (the Lease alone judges it).
   */
  isDown(node: string): boolean {
    this.#catchUp();
    const p = this.#peers.get(node);
    return p !== undefined && this.#clock.now() - p.lastSeen > this.#missMs(p);
  }

  /** Whether `node`'s heartbeats arrive: one within the last `missed` of its intervals. */
  isAlive(node: string): boolean {
    this.#catchUp();
    const p = this.#peers.get(node);
    return p !== undefined && this.#clock.now() - p.lastSeen <= this.#missMs(p);
  }

  /**
   * Of the MACs that answered ARP for a VIP, those that count as another director holding it: the MACs of
   * directors whose heartbeats arrive. A MAC of no live director (a dead agent's node, whose kernel answers
   * until the VIP's lifetime runs out; a foreign host) does not count, unless no director was ever heard
   * (heartbeats blocked): then every answer counts, as without heartbeats.
   */
  liveDirectorMacs(macs: readonly string[]): string[] {
    if (this.#peers.size === 0) return [...macs];
    const live = new Set<string>();
    for (const [node, p] of this.#peers) if (this.isAlive(node)) for (const m of p.macs) live.add(m);
    return macs.filter((m) => live.has(m.toLowerCase()));
  }

  /** The nodes heard from, with how long ago (ms): for logs and tests. */
  peers(): Map<string, number> {
    const now = this.#clock.now();
    return new Map([...this.#peers].map(([n, p]) => [n, now - p.lastSeen]));
  }

  close(): void {
    this.#closed = true;
    this.#sending = false;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#o.transport.close();
  }

  #missMs(p: Peer): number {
    return this.#missed * Math.max(p.intervalMs, this.#intervalMs);
  }

  #received(b: Buffer): void {
    const h = decodeHeartbeat(b);
    if (!h || h.node === this.#o.node) return; // our own, looped back
    const p = this.#peers.get(h.node);
    if (!p) {
      this.#o.log.info({ peer: h.node, intervalMs: h.intervalMs }, 'heartbeats from another director: its Leases may be taken over early if they stop');
    } else if (p.down) {
      this.#o.log.info({ peer: h.node }, 'heartbeats from director again');
    }
    this.#peers.set(h.node, { lastSeen: this.#clock.now(), intervalMs: h.intervalMs, down: false, macs: h.macs ?? [] });
  }

  /**
   * Our own check is overdue (a stall here, not there: a starved or paused process, often the whole node):
   * what the others sent meanwhile is still unread in the socket, so every peer gets a fresh grace period.
   * Run before any judgement: after a stall the elections' timers may fire before the check's.
   * Only peers alive when the stall began get it: one already silent for `missed` intervals at our last check
   * (judged down then, or due to be at the check that came late) stays dead. Reviving it made a dead agent's kernel, still answering ARP for its VIP
   * until the lifetime ran out, look like a live holder to a retained VIP's conflict probe, which then let go.
   */
  #catchUp(): void {
    if (!this.#sending) return;
    const now = this.#clock.now();
    if (now - this.#lastTick <= this.#intervalMs * 3) return;
    for (const p of this.#peers.values()) {
      if (this.#lastTick - p.lastSeen > this.#missMs(p)) continue;
      p.lastSeen = Math.max(p.lastSeen, now);
    }
    this.#o.log.debug({ lateMs: Math.round(now - this.#lastTick - this.#intervalMs) }, 'heartbeat check ran late: peers get a fresh grace period');
    this.#lastTick = now;
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#closed || !this.#sending) return;
    this.#catchUp();
    const now = this.#clock.now();
    this.#lastTick = now;
    for (const [node, p] of this.#peers) {
      if (p.down || now - p.lastSeen <= this.#missMs(p)) continue;
      p.down = true;
      this.#o.log.warn({ peer: node, silentMs: Math.round(now - p.lastSeen) }, 'director heartbeats stopped');
      try {
        this.#o.onDown?.(node);
      } catch (e) {
        this.#o.log.error({ err: (e as Error).message }, 'heartbeat onDown threw');
      }
    }
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#intervalMs);
  }
}

/** The interface's first IPv4 address (multicast membership and sending are per local address). */
function ipv4Of(ifname: string): string | undefined {
  return os.networkInterfaces()[ifname]?.find((a) => a.family === 'IPv4')?.address;
}

function macOf(ifname: string): string | undefined {
  const mac = os.networkInterfaces()[ifname]?.[0]?.mac;
  return mac && mac !== '00:00:00:00:00:00' ? mac.toLowerCase() : undefined;
}

/**
 * The sender, in a worker thread (see the module comment). CommonJS source evaluated in the worker: plain
 * dgram, no project imports, so it runs the same from the TypeScript sources and from the built image.
 */
const SENDER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const dgram = require('node:dgram');
let sock;
let timer;
let cfg;
let seq = 0;
let failing = false;
const report = (err) => {
  if ((err !== undefined) === failing) return;
  failing = err !== undefined;
  parentPort.postMessage({ type: 'sendError', err });
};
function sendAll() {
  const c = cfg;
  if (!c || !sock) return;
  const payload = Buffer.from(JSON.stringify({ t: c.magic, node: c.node, intervalMs: c.intervalMs, seq: seq++, macs: c.macs }));
  let i = 0;
  const next = (err) => {
    if (err) return report(err.message);
    if (i >= c.addrs.length) return report(undefined);
    const addr = c.addrs[i++];
    try {
      sock.setMulticastInterface(addr);
      sock.send(payload, c.port, c.group, next);
    } catch (e) {
      report(addr + ': ' + e.message);
    }
  };
  next();
}
parentPort.on('message', (m) => {
  clearInterval(timer);
  timer = undefined;
  cfg = m.addrs && m.addrs.length ? m : undefined;
  if (!cfg) return;
  const start = () => {
    sendAll();
    timer = setInterval(sendAll, cfg.intervalMs);
  };
  if (sock) return start();
  sock = dgram.createSocket({ type: 'udp4' });
  sock.on('error', (e) => report(e.message));
  sock.bind(0, () => {
    sock.setMulticastTTL(1);
    sock.setMulticastLoopback(false);
    if (cfg) start();
  });
});
`;

/**
 * UDP multicast on the node's interfaces (hostNetwork agents): one socket bound to the group's port with a
 * membership per interface for receiving, a worker thread for sending, TTL 1 (link-local: never routed).
 * IPv4 only: an interface without an IPv4 address is skipped (its VIPs are judged by the Lease alone).
 */
export class UdpHeartbeatTransport implements HeartbeatTransport {
  readonly #group: string;
  readonly #port: number;
  readonly #log: Logger;
  readonly #socket: dgram.Socket;
  readonly #ready: Promise<void>;
  /** ifname → local address joined. */
  #joined = new Map<string, string>();
  #cb: ((b: Buffer) => void) | undefined;
  #errCb: ((err: string | undefined) => void) | undefined;
  #worker: Worker | undefined;

  constructor(o: { group?: string; port?: number; log: Logger }) {
    this.#group = o.group ?? HEARTBEAT_GROUP;
    this.#port = o.port ?? HEARTBEAT_PORT;
    this.#log = o.log;
    this.#socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    this.#socket.on('message', (b) => this.#cb?.(b));
    this.#socket.on('error', (e) => this.#log.warn({ err: e.message }, 'heartbeat socket error'));
    this.#ready = new Promise((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.bind(this.#port, () => {
        this.#socket.off('error', reject);
        this.#socket.unref();
        resolve();
      });
    });
    this.#ready.catch(() => undefined);
  }

  async setInterfaces(ifnames: readonly string[], heartbeat: Omit<Heartbeat, 'seq'>): Promise<void> {
    await this.#ready;
    const next = new Map<string, string>();
    for (const ifname of new Set(ifnames)) {
      const addr = ipv4Of(ifname);
      if (addr) next.set(ifname, addr);
      else if (!this.#joined.has(ifname)) this.#log.info({ interface: ifname }, 'no IPv4 address: no director heartbeats on this interface');
    }
    for (const [ifname, addr] of this.#joined) {
      if (next.get(ifname) === addr) continue;
      try {
        this.#socket.dropMembership(this.#group, addr);
      } catch {
        // the address is gone with its interface
      }
    }
    for (const [ifname, addr] of next) {
      if (this.#joined.get(ifname) === addr) continue;
      try {
        this.#socket.addMembership(this.#group, addr);
      } catch (e) {
        this.#log.warn({ interface: ifname, group: this.#group, err: (e as Error).message }, 'cannot join the heartbeat group');
        next.delete(ifname);
      }
    }
    this.#joined = next;
    if (next.size === 0 && !this.#worker) return;
    const macs = [...next.keys()].flatMap((ifname) => macOf(ifname) ?? []);
    this.#sender().postMessage({ magic: MAGIC, node: heartbeat.node, intervalMs: heartbeat.intervalMs, macs, group: this.#group, port: this.#port, addrs: [...next.values()] });
  }

  #sender(): Worker {
    if (!this.#worker) {
      const w = new Worker(SENDER_SOURCE, { eval: true, name: 'lvs-heartbeat' });
      w.on('message', (m: { type: string; err?: string }) => {
        if (m.type === 'sendError') this.#errCb?.(m.err);
      });
      w.on('error', (e) => this.#log.error({ err: e.message }, 'heartbeat sender thread failed: standbys fall back to the Lease duration'));
      w.unref();
      this.#worker = w;
    }
    return this.#worker;
  }

  onMessage(cb: (payload: Buffer) => void): void {
    this.#cb = cb;
  }

  onSendError(cb: (err: string | undefined) => void): void {
    this.#errCb = cb;
  }

  close(): void {
    void this.#worker?.terminate();
    this.#worker = undefined;
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }
}
