// Typed, promise-based IPVS client over generic netlink. One socket; operations run one at a time
// through a promise queue (the kernel allows a single dump per socket, and a stable order keeps
// the table's evolution predictable); bulk changes go through apply(), which pipelines them.

import { IPVS_FAMILY_NAME } from './constants.ts';
import {
  decodeDaemonReply,
  decodeDestDump,
  decodeDestDumpPart,
  decodeFamilyReply,
  decodeInfoReply,
  decodeServiceDumpPart,
  decodeServiceReply,
  decodeTimeoutsReply,
  encodeGetFamily,
  encodeRequest,
  isDump,
  requestTarget,
  type IpvsRequest,
} from './codec.ts';
import { IpvsError, isIpvsError } from './errors.ts';
import type { IpvsInterface, IpvsOp, IpvsOpResult, ListOptions } from './interface.ts';
import { NetlinkTransport, openGenericNetlinkSocket, type OutgoingMessage, type SocketFactory, type TransportOptions } from './transport.ts';
import type {
  Destination,
  DestinationEntry,
  DestinationKey,
  IpvsInfo,
  Service,
  ServiceEntry,
  ServiceKey,
  ServiceState,
  SyncDaemon,
  SyncDaemonConfig,
  SyncDaemonRole,
  Timeouts,
} from './types.ts';
import type { Logger } from '../util/log.ts';
import type { NetlinkMessage } from './wire.ts';

export interface IpvsClientOptions {
  /** No reply progress for this long fails the request and recreates the socket (default 10 s). */
  readonly timeoutMs?: number;
  /**
   * Max unconfirmed requests in apply() (default 128). Every failed request is answered with an
   * error message that carries the request (~1.5 KiB of receive buffer each); if they overflow the
   * socket's receive buffer (measured: 256 failures do with the default net.core.rmem_max) the
   * kernel drops replies (ENOBUFS) and the unconfirmed ops fail.
   */
  readonly pipelineWindow?: number;
  /** Requests packed into one sendmsg in apply(), only the last asks for an ACK (default 128). */
  readonly pipelineBatch?: number;
  /**
   * Sockets used in parallel for the per-service destination dumps of listServices() when they
   * cannot be read synchronously (default 16). A socket runs one dump at a time, so this is what
   * overlaps the round trips.
   */
  readonly dumpConcurrency?: number;
  /** How long listServices() and dumpServices() read synchronously before the event loop (or, interleaved, the queue) runs; default 10 ms. */
  readonly sliceMs?: number;
  readonly logger?: Logger;
  /** For tests: where sockets come from (default: netlink@0.3.0 RawNetlinkSocket, NETLINK_GENERIC). */
  readonly socketFactory?: SocketFactory;
}

/** The netlink command an IpvsInterface op becomes. */
export function opToRequest(op: IpvsOp): IpvsRequest {
  switch (op.op) {
    case 'addService':
      return { cmd: 'NEW_SERVICE', service: op.service };
    case 'updateService':
      return { cmd: 'SET_SERVICE', service: op.service };
    case 'deleteService':
      return { cmd: 'DEL_SERVICE', service: op.service };
    case 'addDestination':
      return { cmd: 'NEW_DEST', service: op.service, destination: op.destination };
    case 'updateDestination':
      return { cmd: 'SET_DEST', service: op.service, destination: op.destination };
    case 'deleteDestination':
      return { cmd: 'DEL_DEST', service: op.service, destination: op.destination };
  }
}

/**
 * Read sizes of the synchronous dumps (NetlinkTransport.dumpSync), per socket: the kernel sizes a
 * socket's dump datagrams by its largest read. The service dump reads 32 KiB, the cap, on the main
 * socket: IPVS walks its service table from the start again for every datagram of that dump. The
 * destination dumps (a few hundred bytes per destination) run on their own socket with reads of
 * one page, which NLMSG_GOODSIZE (a page less skb overhead, at most 8 KiB less) always fits: the
 * kernel allocates smaller buffers for smaller reads, and most services fit one datagram anyway.
 */
const SERVICE_DUMP_READ = 32768;
const DEST_DUMP_READ = process.arch === 'x64' || process.arch === 'ia32' ? 4096 : 8192;
/** How long listServices() reads synchronously before it lets the event loop run (default of sliceMs). */
const SYNC_SLICE_MS = 10;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class IpvsClient implements IpvsInterface {
  private readonly transport: NetlinkTransport;
  /** Sockets of the destination dumps (one when they are read synchronously), opened on first use. */
  private readonly dumpers: NetlinkTransport[] = [];
  /** The socket of dumpServices(), opened on first use. */
  private tableDumper: NetlinkTransport | undefined;
  private readonly dumpConcurrency: number;
  private readonly sliceMs: number;
  private readonly transportOptions: TransportOptions;

  private readonly window: number;
  private readonly batch: number;
  private readonly log: Logger | undefined;
  private familyId: number | undefined;
  private familyLookup: Promise<number> | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  /** Netlink requests sent, per command (GETFAMILY included). */
  readonly requestCounts: Record<string, number> = {};

  constructor(opts: IpvsClientOptions = {}) {
    this.window = opts.pipelineWindow ?? 128;
    this.batch = opts.pipelineBatch ?? 128;
    this.log = opts.logger;
    this.dumpConcurrency = Math.max(1, opts.dumpConcurrency ?? 16);
    this.sliceMs = opts.sliceMs ?? SYNC_SLICE_MS;

    this.transportOptions = {
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      socketFactory: opts.socketFactory ?? openGenericNetlinkSocket,
      onReset: (reason) => {
        // A new socket may talk to a reloaded ip_vs: look the family up again.
        this.familyId = undefined;
        if (reason.command !== 'CLOSE') this.log?.warn({ errno: reason.code, err: reason.message }, 'ipvs netlink socket reset');
      },
    };
    this.transport = new NetlinkTransport({ ...this.transportOptions, syncReadLength: SERVICE_DUMP_READ });
  }

  /** Total netlink requests sent so far. */
  get requestCount(): number {
    return Object.values(this.requestCounts).reduce((a, b) => a + b, 0);
  }

  resetRequestCounts(): void {
    for (const k of Object.keys(this.requestCounts)) delete this.requestCounts[k];
  }

  private count(command: string, n = 1): void {
    this.requestCounts[command] = (this.requestCounts[command] ?? 0) + n;
  }

  /** Runs `fn` after everything queued before it (success or failure). */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * The IPVS family id, looked up on `transport` unless known or being looked up (dumpServices() asks outside
   * the queue: one lookup serves every caller, and it adds no request to the main socket).
   */
  private family(transport = this.transport): Promise<number> {
    if (this.familyId !== undefined) return Promise.resolve(this.familyId);
    this.familyLookup ??= (async () => {
      this.count('GETFAMILY');
      const parts = await transport.request({ buf: encodeGetFamily(IPVS_FAMILY_NAME), command: 'GETFAMILY', target: IPVS_FAMILY_NAME }, false);
      const first = parts[0];
      if (!first) throw IpvsError.fromCode('ENOENT', 'GETFAMILY', IPVS_FAMILY_NAME, 'empty reply to the family lookup');
      this.familyId = decodeFamilyReply(first.payload);
      this.log?.debug({ familyId: this.familyId }, 'resolved IPVS generic netlink family');
      return this.familyId;
    })().finally(() => {
      this.familyLookup = undefined;
    });
    return this.familyLookup;
  }

  private send(req: IpvsRequest, transport = this.transport): Promise<NetlinkMessage[]> {
    return this.withFamily(req, (msg) => transport.request(msg, isDump(req)));
  }

  /** A dump request; resolves with the raw datagrams for decodeServiceDump/decodeDestDump. */
  private sendDump(req: IpvsRequest, transport = this.transport): Promise<Buffer[]> {
    return this.withFamily(req, (msg) => transport.dump(msg));
  }

  /**
   * A dump read synchronously (NetlinkTransport.dumpSync): true when done, a promise when the
   * kernel had not queued all of it yet (the rest comes through the event loop), or false when
   * `transport` cannot read synchronously now (nothing sent).
   */
  private syncDump(transport: NetlinkTransport, req: IpvsRequest, familyId: number, decodePart: (part: Buffer) => void): boolean | Promise<void> {
    if (!transport.canSync()) return false;
    const buf = encodeRequest(req, { familyId });
    this.count(req.cmd);
    return transport.dumpSync({ buf, command: req.cmd, target: () => requestTarget(req) }, decodePart);
  }

  /**
   * A dump decoded part by part: synchronously when the socket allows it, else one async round trip.
   * With `budgetMs`, the event loop runs whenever reading and decoding have taken that long.
   */
  private async dumpWith(transport: NetlinkTransport, req: IpvsRequest, decodePart: (part: Buffer) => void, budgetMs?: number): Promise<void> {
    const familyId = await this.family(transport);
    this.count(req.cmd);
    await transport.dumpEach({ buf: encodeRequest(req, { familyId }), command: req.cmd, target: () => requestTarget(req) }, decodePart, budgetMs);
  }

  /** The socket of the destination dumps (its sync reads are smaller than the main socket's). */
  private dumper(i: number): NetlinkTransport {
    while (this.dumpers.length <= i) this.dumpers.push(new NetlinkTransport({ ...this.transportOptions, syncReadLength: DEST_DUMP_READ }));
    return this.dumpers[i] as NetlinkTransport;
  }

  private withFamily<T>(req: IpvsRequest, go: (msg: OutgoingMessage) => Promise<T>): Promise<T> {
    const sendWith = (familyId: number): Promise<T> => {
      const buf = encodeRequest(req, { familyId });
      this.count(req.cmd);
      return go({ buf, command: req.cmd, target: () => requestTarget(req) });
    };
    // Skip an async hop when the family is known (this path runs once per service in listServices).
    if (this.familyId !== undefined) {
      try {
        return sendWith(this.familyId);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.family().then(sendWith);
  }

  /** Sends one request (queued); resolves with the reply data messages. */
  private call(req: IpvsRequest): Promise<NetlinkMessage[]> {
    return this.enqueue(() => this.send(req));
  }

  // ---------------------------------------------------------------- info, config

  async info(): Promise<IpvsInfo> {
    const [m] = await this.call({ cmd: 'GET_INFO' });
    if (!m) throw IpvsError.fromCode('EBADMSG', 'GET_INFO', undefined, 'no reply data');
    return decodeInfoReply(m.payload);
  }

  async getTimeouts(): Promise<Timeouts> {
    const [m] = await this.call({ cmd: 'GET_CONFIG' });
    if (!m) throw IpvsError.fromCode('EBADMSG', 'GET_CONFIG', undefined, 'no reply data');
    return decodeTimeoutsReply(m.payload);
  }

  /** 0 or absent fields leave the kernel's value unchanged. */
  async setTimeouts(t: Partial<Timeouts>): Promise<void> {
    await this.call({ cmd: 'SET_CONFIG', timeouts: t });
  }

  // ---------------------------------------------------------------- services

  async addService(svc: Service): Promise<void> {
    await this.call({ cmd: 'NEW_SERVICE', service: svc });
  }

  async updateService(svc: Service): Promise<void> {
    await this.call({ cmd: 'SET_SERVICE', service: svc });
  }

  async deleteService(key: ServiceKey): Promise<void> {
    await this.call({ cmd: 'DEL_SERVICE', service: key });
  }

  async getService(key: ServiceKey): Promise<ServiceEntry | undefined> {
    try {
      const [m] = await this.call({ cmd: 'GET_SERVICE', service: key });
      return m ? decodeServiceReply(m.payload) : undefined;
    } catch (e) {
      if (isIpvsError(e, 'ESRCH')) return undefined;
      throw e;
    }
  }

  /**
   * GET_SERVICE dump: every service of this netns (without destinations). Not queued behind this client's
   * other calls, nor they behind it: it reads on a socket of its own, letting the event loop run every
   * sliceMs, so a sweep's read of thousands of services delays no change (it took 1 s in the lab VM, with
   * the event loop held and a change queued behind it). Changes of ours made meanwhile may or may not show.
   */
  dumpServices(): Promise<ServiceEntry[]> {
    this.tableDumper ??= new NetlinkTransport({ ...this.transportOptions, syncReadLength: SERVICE_DUMP_READ });
    return this.serviceDump(this.tableDumper);
  }

  /** One GET_DEST dump per key, in one turn of the queue, read synchronously while the socket allows it. */
  listDestinationsOf(keys: readonly ServiceKey[]): Promise<DestinationEntry[][]> {
    return this.enqueue(async () => {
      const out: DestinationEntry[][] = [];
      if (!keys.length) return out;
      const familyId = await this.family();
      const t = this.dumper(0);
      for (const service of keys) {
        const destinations: DestinationEntry[] = [];
        const sync = this.syncDump(t, { cmd: 'GET_DEST', service }, familyId, (part) => decodeDestDumpPart(part, service.af, destinations));
        if (sync === false) out.push(decodeDestDump(await this.sendDump({ cmd: 'GET_DEST', service }, t), service.af));
        else {
          if (sync !== true) await sync;
          out.push(destinations);
        }
      }
      return out;
    });
  }

  // ---------------------------------------------------------------- destinations

  async addDestination(key: ServiceKey, dest: Destination): Promise<void> {
    await this.call({ cmd: 'NEW_DEST', service: key, destination: dest });
  }

  async updateDestination(key: ServiceKey, dest: Destination): Promise<void> {
    await this.call({ cmd: 'SET_DEST', service: key, destination: dest });
  }

  async deleteDestination(key: ServiceKey, dest: DestinationKey): Promise<void> {
    await this.call({ cmd: 'DEL_DEST', service: key, destination: dest });
  }

  listDestinations(key: ServiceKey): Promise<DestinationEntry[]> {
    return this.enqueue(async () => {
      const out: DestinationEntry[] = [];
      await this.dumpWith(this.transport, { cmd: 'GET_DEST', service: key }, (part) => decodeDestDumpPart(part, key.af, out));
      return out;
    });
  }

  /**
   * All services with their destinations: one service dump, then one destination dump per service.
   * Holds the queue, so no change of ours lands in the middle (other programs' changes still can:
   * IPVS dumps are not snapshots).
   *
   * The dumps are read synchronously (NetlinkTransport.dumpSync) when the sockets allow it: a
   * round trip through the event loop per datagram costs more than the kernel's work for it. The
   * event loop still runs every SYNC_SLICE_MS. Otherwise (no SyncIo) the destination dumps run
   * `dumpConcurrency` at a time on separate sockets.
   */
  listServices(opts: ListOptions = {}): Promise<ServiceState[]> {
    if (opts.interleave) return this.listInterleaved();
    return this.enqueue(async () => {
      const services = await this.serviceDump();
      const out = new Array<ServiceState>(services.length);
      await this.destDumps(services, out, 0, false);
      return out;
    });
  }

  /** The service dump on `transport` (the client's own for a caller that holds the queue), in slices of sliceMs. */
  private async serviceDump(transport = this.transport): Promise<ServiceEntry[]> {
    const services: ServiceEntry[] = [];
    await this.dumpWith(transport, { cmd: 'GET_SERVICE' }, (part) => decodeServiceDumpPart(part, services), this.sliceMs);
    return services;
  }

  /**
   * listServices({ interleave: true }): the service dump, then the destination dumps in slices of about
   * SYNC_SLICE_MS, each slice one turn of the queue, so that changes queued meanwhile wait for one slice,
   * not for the whole table (seconds at thousands of services).
   */
  private async listInterleaved(): Promise<ServiceState[]> {
    const services = await this.dumpServices();
    const out = new Array<ServiceState>(services.length);
    let done = 0;
    while (done < services.length) {
      const from = done;
      done = await this.enqueue(() => this.destDumps(services, out, from, true));
      // A turn of the event loop too: the callers whose calls are to queue up meanwhile may be waiting on I/O.
      if (done < services.length) await yieldToEventLoop();
    }
    return out;
  }

  /**
   * The destination dumps of services[from...] into `out`, read synchronously while the socket allows it.
   * Every SYNC_SLICE_MS it lets the event loop run, or with `release` returns (how many are done) so that
   * the caller gives the queue up.
   */
  private async destDumps(services: readonly ServiceEntry[], out: ServiceState[], from: number, release: boolean): Promise<number> {
    let done = from;
    if (done < services.length) {
      const familyId = await this.family();
      const t = this.dumper(0);
      let slice = performance.now() + this.sliceMs;
      while (done < services.length) {
        const { service, stats } = services[done] as ServiceEntry;
        const destinations: DestinationEntry[] = [];
        const sync = this.syncDump(t, { cmd: 'GET_DEST', service }, familyId, (part) => decodeDestDumpPart(part, service.af, destinations));
        if (sync === false) break;
        if (sync !== true) await sync;
        out[done++] = { service, stats, destinations };
        if ((done & 7) === 0 && performance.now() >= slice) {
          if (release) return done;
          await yieldToEventLoop();
          slice = performance.now() + this.sliceMs;
        }
      }
    }
    if (done < services.length) await this.destDumpsAsync(services, out, done);
    return services.length;
  }

  /** The destination dumps of services[from...] without SyncIo: `dumpConcurrency` sockets in parallel. */
  private async destDumpsAsync(services: readonly ServiceEntry[], out: ServiceState[], from: number): Promise<void> {
    const sockets = Array.from({ length: Math.min(this.dumpConcurrency, services.length - from) }, (_, i) => this.dumper(i));
    let nextIndex = from;
    let failed = false;
    const worker = async (t: NetlinkTransport): Promise<void> => {
      while (!failed && nextIndex < services.length) {
        const i = nextIndex++;
        const { service, stats } = services[i] as ServiceEntry;
        try {
          const raw = await this.sendDump({ cmd: 'GET_DEST', service }, t);
          out[i] = { service, stats, destinations: decodeDestDump(raw, service.af) };
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    for (const t of sockets) t.hold();
    // Wait for every worker, not just the first failure: the next queued call may use these sockets.
    const ends = await Promise.allSettled(sockets.map(worker));
    for (const t of sockets) t.release();
    for (const e of ends) if (e.status === 'rejected') throw e.reason;
  }

  // ---------------------------------------------------------------- bulk

  /**
   * Applies many changes in order, pipelined: `pipelineBatch` requests per sendmsg, at most
   * `pipelineWindow` unconfirmed (see NetlinkTransport.pipeline). One result per op (undefined = done); ops that fail do not stop the
   * rest, so order dependent ops (add service, then its destinations) accordingly.
   */
  apply(ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    return this.enqueue(async () => {
      const results = new Array<IpvsOpResult>(ops.length);
      let familyId: number;
      try {
        familyId = await this.family();
      } catch (e) {
        const err = e as IpvsError;
        return ops.map((op) => {
          const req = opToRequest(op);
          return new IpvsError(err.errno ?? 5, req.cmd, requestTarget(req), err.message);
        });
      }
      const msgs: OutgoingMessage[] = [];
      const index: number[] = [];
      ops.forEach((op, i) => {
        const req = opToRequest(op);
        try {
          msgs.push({ buf: encodeRequest(req, { familyId }), command: req.cmd, target: () => requestTarget(req) });
          index.push(i);
          this.count(req.cmd);
        } catch (e) {
          results[i] = isIpvsError(e) ? e : IpvsError.fromCode('EINVAL', req.cmd, requestTarget(req), String(e));
        }
      });
      const sent = await this.transport.pipeline(msgs, this.window, this.batch);
      sent.forEach((r, j) => (results[index[j] as number] = r));
      return results;
    });
  }

  // ---------------------------------------------------------------- stats, daemons, flush

  /** Zeroes the counters of one service (and its destinations), or of everything. */
  async zero(key?: ServiceKey): Promise<void> {
    await this.call({ cmd: 'ZERO', service: key });
  }

  async startSyncDaemon(cfg: SyncDaemonConfig): Promise<void> {
    await this.call({ cmd: 'NEW_DAEMON', daemon: cfg });
  }

  async stopSyncDaemon(role: SyncDaemonRole): Promise<void> {
    await this.call({ cmd: 'DEL_DAEMON', role });
  }

  async listSyncDaemons(): Promise<SyncDaemon[]> {
    const parts = await this.call({ cmd: 'GET_DAEMON' });
    return parts.map((m) => decodeDaemonReply(m.payload));
  }

  /**
   * FLUSH: deletes every service of this network namespace, including ones this agent does not own
   * (kube-proxy, docker, keepalived share the table). Never part of reconciliation.
   */
  async flushAllServices(): Promise<void> {
    await this.call({ cmd: 'FLUSH' });
  }

  /** Closes the sockets; later calls fail with ECONNRESET. */
  close(): void {
    this.transport.close();
    for (const d of this.dumpers) d.close();
    this.tableDumper?.close();
  }
}
