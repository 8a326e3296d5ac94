// Typed, promise-based IPVS client over generic netlink. One socket; operations run one at a time
// through a promise queue (the kernel allows a single dump per socket, and a stable order keeps
// the table's evolution predictable); bulk changes go through apply(), which pipelines them.

import { IPVS_FAMILY_NAME } from './constants.ts';
import {
  decodeDaemonReply,
  decodeDestReply,
  decodeFamilyReply,
  decodeInfoReply,
  decodeServiceReply,
  decodeTimeoutsReply,
  encodeGetFamily,
  encodeRequest,
  isDump,
  requestTarget,
  type IpvsRequest,
} from './codec.ts';
import { IpvsError, isIpvsError } from './errors.ts';
import type { IpvsInterface, IpvsOp, IpvsOpResult } from './interface.ts';
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
   * Sockets used in parallel for the per-service destination dumps of listServices() (default 16).
   * A socket runs one dump at a time, so this is what overlaps the round trips.
   */
  readonly dumpConcurrency?: number;
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

export class IpvsClient implements IpvsInterface {
  private readonly transport: NetlinkTransport;
  /** Extra sockets for concurrent destination dumps, opened on first use. */
  private readonly dumpers: NetlinkTransport[] = [];
  private readonly dumpConcurrency: number;
  private readonly transportOptions: TransportOptions;

  private readonly window: number;
  private readonly batch: number;
  private readonly log: Logger | undefined;
  private familyId: number | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  /** Netlink requests sent, per command (GETFAMILY included). */
  readonly requestCounts: Record<string, number> = {};

  constructor(opts: IpvsClientOptions = {}) {
    this.window = opts.pipelineWindow ?? 128;
    this.batch = opts.pipelineBatch ?? 128;
    this.log = opts.logger;
    this.dumpConcurrency = Math.max(1, opts.dumpConcurrency ?? 16);

    this.transportOptions = {
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      socketFactory: opts.socketFactory ?? openGenericNetlinkSocket,
      onReset: (reason) => {
        // A new socket may talk to a reloaded ip_vs: look the family up again.
        this.familyId = undefined;
        if (reason.command !== 'CLOSE') this.log?.warn({ errno: reason.code, err: reason.message }, 'ipvs netlink socket reset');
      },
    };
    this.transport = new NetlinkTransport(this.transportOptions);
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

  private async family(): Promise<number> {
    if (this.familyId !== undefined) return this.familyId;
    this.count('GETFAMILY');
    const parts = await this.transport.request({ buf: encodeGetFamily(IPVS_FAMILY_NAME), command: 'GETFAMILY', target: IPVS_FAMILY_NAME }, false);
    const first = parts[0];
    if (!first) throw IpvsError.fromCode('ENOENT', 'GETFAMILY', IPVS_FAMILY_NAME, 'empty reply to the family lookup');
    this.familyId = decodeFamilyReply(first.payload);
    this.log?.debug({ familyId: this.familyId }, 'resolved IPVS generic netlink family');
    return this.familyId;
  }

  private send(req: IpvsRequest, transport = this.transport): Promise<NetlinkMessage[]> {
    const sendWith = (familyId: number): Promise<NetlinkMessage[]> => {
      const buf = encodeRequest(req, { familyId });
      this.count(req.cmd);
      return transport.request({ buf, command: req.cmd, target: () => requestTarget(req) }, isDump(req));
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

  /** GET_SERVICE dump: every service of this netns (without destinations). */
  async dumpServices(): Promise<ServiceEntry[]> {
    const parts = await this.call({ cmd: 'GET_SERVICE' });
    return parts.map((m) => decodeServiceReply(m.payload));
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

  async listDestinations(key: ServiceKey): Promise<DestinationEntry[]> {
    const parts = await this.call({ cmd: 'GET_DEST', service: key });
    return parts.map((m) => decodeDestReply(m.payload, key.af));
  }

  /**
   * All services with their destinations: one service dump, then one destination dump per service,
   * `dumpConcurrency` at a time on separate sockets. Holds the queue, so no change of ours lands
   * in the middle (other programs' changes still can: IPVS dumps are not snapshots).
   */
  listServices(): Promise<ServiceState[]> {
    return this.enqueue(async () => {
      const services = (await this.send({ cmd: 'GET_SERVICE' })).map((m) => decodeServiceReply(m.payload));
      const out = new Array<ServiceState>(services.length);
      while (this.dumpers.length < Math.min(this.dumpConcurrency, services.length) - 1) {
        this.dumpers.push(new NetlinkTransport(this.transportOptions));
      }
      const sockets = [this.transport, ...this.dumpers].slice(0, Math.max(1, Math.min(this.dumpConcurrency, services.length)));
      let nextIndex = 0;
      let failed = false;
      const worker = async (t: NetlinkTransport): Promise<void> => {
        while (!failed && nextIndex < services.length) {
          const i = nextIndex++;
          const entry = services[i] as ServiceEntry;
          try {
            const parts = await this.send({ cmd: 'GET_DEST', service: entry.service }, t);
            out[i] = { ...entry, destinations: parts.map((m) => decodeDestReply(m.payload, entry.service.af)) };
          } catch (e) {
            failed = true;
            throw e;
          }
        }
      };
      await Promise.all(sockets.map(worker));
      return out;
    });
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
  }
}
