// In-memory IpvsInterface with the kernel's semantics (ip_vs_ctl.c), for the agent's unit tests:
// the same errno for the same mistake, HASHED on every service read back, SET_DEST overwriting the
// tunnel fields, GET_DEST of a missing service answering an empty list, newest destination listed
// first. Counts one "request" per kernel round trip the netlink client would make, so tests can
// assert e.g. that a weight change costs exactly one request.

import { normalizeAddress, parseIPv4, parseIPv6 } from './addr.ts';
import { SCHEDULERS, SvcFlag, INT_MAX } from './constants.ts';
import { IpvsError } from './errors.ts';
import type { IpvsInterface, IpvsOp, IpvsOpName, IpvsOpResult, ListOptions } from './interface.ts';
import { destKey, keyOf, serviceKey } from './keys.ts';
import type {
  Destination,
  DestinationCounters,
  DestinationEntry,
  DestinationKey,
  IpvsInfo,
  Service,
  ServiceEntry,
  ServiceKey,
  ServiceState,
  Stats,
} from './types.ts';
import { ZERO_COUNTERS, ZERO_STATS } from './types.ts';

export type FakeCallName = IpvsOpName | 'info' | 'listServices' | 'dumpServices' | 'getService' | 'listDestinations' | 'zero' | 'flushAllServices';

interface DestRecord {
  destination: Destination;
  counters: DestinationCounters;
  stats: Stats;
}

interface ServiceRecord {
  service: Service;
  stats: Stats;
  /** Kernel list order: NEW_DEST inserts at the head. */
  dests: DestRecord[];
}

export interface FakeIpvsOptions {
  /** Scheduler names the "kernel" knows (default: every in-tree one plus `none`). */
  readonly schedulers?: readonly string[];
  /** Persistence engines the "kernel" knows (default: `sip`). */
  readonly persistenceEngines?: readonly string[];
}

const COMMAND: Record<IpvsOpName, string> = {
  addService: 'NEW_SERVICE',
  updateService: 'SET_SERVICE',
  deleteService: 'DEL_SERVICE',
  addDestination: 'NEW_DEST',
  updateDestination: 'SET_DEST',
  deleteDestination: 'DEL_DEST',
};

function fail(code: string, command: string, target: string): never {
  throw IpvsError.fromCode(code, command, target);
}

/** inet_addr_type()/ipv6_addr_type() approximations: the kernel refuses non-unicast real servers. */
function unicast(d: DestinationKey): boolean {
  if (d.af === 'ipv4') {
    const b = parseIPv4(d.address);
    if (!b) return false;
    const first = b[0] as number;
    const all = b.every((x) => x === 0) || b.every((x) => x === 255);
    return !all && first < 224;
  }
  const b = parseIPv6(d.address);
  if (!b) return false;
  if (b[0] === 0xff) return false; // multicast
  if (b[0] === 0xfe && ((b[1] as number) & 0xc0) === 0x80) return false; // link-local
  return !b.every((x) => x === 0);
}

export class FakeIpvs implements IpvsInterface {
  private readonly services = new Map<string, ServiceRecord>();
  private readonly schedulers: ReadonlySet<string>;
  private readonly engines: ReadonlySet<string>;
  private readonly injected: Array<{ call: FakeCallName; code: string; times: number }> = [];
  /** Calls per method (apply counts each op under its own name). */
  readonly calls: Record<FakeCallName, number> = {
    addService: 0,
    updateService: 0,
    deleteService: 0,
    addDestination: 0,
    updateDestination: 0,
    deleteDestination: 0,
    info: 0,
    listServices: 0,
    dumpServices: 0,
    getService: 0,
    listDestinations: 0,
    zero: 0,
    flushAllServices: 0,
  };
  /** Kernel round trips the netlink client would have made (a listServices costs 1 + services). */
  requestCount = 0;
  /** What info() answers. */
  infoReply: IpvsInfo = { version: '1.2.1', versionCode: 0x010201, connTableSize: 4096 };
  /** Awaited by dumpServices() before it returns the services as they were when it was called. */
  serviceDumpGate: (() => Promise<void>) | undefined;
  /** When true, mixed-family destinations are refused as with a running sync daemon. */
  syncDaemonRunning = false;

  constructor(opts: FakeIpvsOptions = {}) {
    this.schedulers = new Set(opts.schedulers ?? [...SCHEDULERS, 'none']);
    this.engines = new Set(opts.persistenceEngines ?? ['sip']);
  }

  // ------------------------------------------------------------------ test helpers

  resetCalls(): void {
    for (const k of Object.keys(this.calls) as FakeCallName[]) this.calls[k] = 0;
    this.requestCount = 0;
  }

  /** Make the next `times` calls of `call` fail with `code` (before any other check). */
  injectError(call: FakeCallName, code: string, times = 1): void {
    this.injected.push({ call, code, times });
  }

  /** Pretend traffic: set a destination's connection counters and/or stats. */
  setDestinationState(key: ServiceKey, dest: DestinationKey, state: { counters?: Partial<DestinationCounters>; stats?: Partial<Stats> }): void {
    const rec = this.services.get(serviceKey(key))?.dests.find((d) => destKey(d.destination) === destKey(dest));
    if (!rec) throw new Error(`no destination ${destKey(dest)} in ${serviceKey(key)}`);
    rec.counters = { ...rec.counters, ...state.counters };
    rec.stats = { ...rec.stats, ...state.stats };
  }

  setServiceStats(key: ServiceKey, stats: Partial<Stats>): void {
    const rec = this.services.get(serviceKey(key));
    if (!rec) throw new Error(`no service ${serviceKey(key)}`);
    rec.stats = { ...rec.stats, ...stats };
  }

  private enter(call: FakeCallName, command: string, target: string | undefined, requests = 1): void {
    this.calls[call]++;
    this.requestCount += requests;
    const i = this.injected.findIndex((x) => x.call === call);
    if (i === -1) return;
    const inj = this.injected[i] as { code: string; times: number };
    if (--inj.times <= 0) this.injected.splice(i, 1);
    throw IpvsError.fromCode(inj.code, command, target);
  }

  // ------------------------------------------------------------------ IpvsInterface

  async info(): Promise<IpvsInfo> {
    this.enter('info', 'GET_INFO', undefined);
    return { ...this.infoReply };
  }

  /** Reads in one piece, interleaved or not (ListOptions only affect how the client reads). */
  async listServices(_opts: ListOptions = {}): Promise<ServiceState[]> {
    this.enter('listServices', 'GET_SERVICE', undefined, 1 + this.services.size);
    return this.ordered().map((r) => ({ service: { ...r.service }, stats: { ...r.stats }, destinations: r.dests.map(copyDest) }));
  }

  async dumpServices(): Promise<ServiceEntry[]> {
    this.enter('dumpServices', 'GET_SERVICE', undefined);
    const entries = this.ordered().map((r) => ({ service: { ...r.service }, stats: { ...r.stats } }));
    if (this.serviceDumpGate) await this.serviceDumpGate();
    return entries;
  }

  /** As the client: one GET_DEST per key (each counted and failing as listDestinations). */
  async listDestinationsOf(keys: readonly ServiceKey[]): Promise<DestinationEntry[][]> {
    const out: DestinationEntry[][] = [];
    for (const key of keys) {
      const k = serviceKey(key);
      this.enter('listDestinations', 'GET_DEST', k);
      out.push((this.services.get(k)?.dests ?? []).map(copyDest));
    }
    return out;
  }

  async getService(key: ServiceKey): Promise<ServiceEntry | undefined> {
    const k = serviceKey(key);
    this.enter('getService', 'GET_SERVICE', k);
    const r = this.services.get(k);
    return r ? { service: { ...r.service }, stats: { ...r.stats } } : undefined;
  }

  async listDestinations(key: ServiceKey): Promise<DestinationEntry[]> {
    const k = serviceKey(key);
    this.enter('listDestinations', 'GET_DEST', k);
    return (this.services.get(k)?.dests ?? []).map(copyDest); // kernel: empty, not ESRCH
  }

  async addService(svc: Service): Promise<void> {
    this.run({ op: 'addService', service: svc });
  }

  async updateService(svc: Service): Promise<void> {
    this.run({ op: 'updateService', service: svc });
  }

  async deleteService(key: ServiceKey): Promise<void> {
    this.run({ op: 'deleteService', service: key });
  }

  async addDestination(key: ServiceKey, dest: Destination): Promise<void> {
    this.run({ op: 'addDestination', service: key, destination: dest });
  }

  async updateDestination(key: ServiceKey, dest: Destination): Promise<void> {
    this.run({ op: 'updateDestination', service: key, destination: dest });
  }

  async deleteDestination(key: ServiceKey, dest: DestinationKey): Promise<void> {
    this.run({ op: 'deleteDestination', service: key, destination: dest });
  }

  async apply(ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    return ops.map((op) => {
      try {
        this.run(op);
        return undefined;
      } catch (e) {
        if (e instanceof IpvsError) return e;
        throw e;
      }
    });
  }

  async zero(key?: ServiceKey): Promise<void> {
    const k = key ? serviceKey(key) : undefined;
    this.enter('zero', 'ZERO', k);
    const targets = k ? [this.services.get(k) ?? fail('ESRCH', 'ZERO', k)] : [...this.services.values()];
    for (const r of targets) {
      r.stats = ZERO_STATS;
      for (const d of r.dests) d.stats = ZERO_STATS;
    }
  }

  /** FLUSH: every service goes. */
  async flushAllServices(): Promise<void> {
    this.enter('flushAllServices', 'FLUSH', undefined);
    this.services.clear();
  }

  // ------------------------------------------------------------------ kernel semantics

  private ordered(): ServiceRecord[] {
    const all = [...this.services.values()];
    return [...all.filter((r) => r.service.fwmark === undefined), ...all.filter((r) => r.service.fwmark !== undefined)];
  }

  private run(op: IpvsOp): void {
    const command = COMMAND[op.op];
    const svcName = serviceKey(op.service);
    const target = 'destination' in op ? `${svcName} -> ${destKey(op.destination)}` : svcName;
    this.enter(op.op, command, target);
    const rec = this.services.get(svcName);
    switch (op.op) {
      case 'addService':
        if (rec) fail('EEXIST', command, target);
        this.checkServiceConfig(op.service, command, target);
        this.services.set(svcName, { service: stored(op.service), stats: ZERO_STATS, dests: [] });
        return;
      case 'updateService':
        if (!rec) return fail('ESRCH', command, target);
        this.checkServiceConfig(op.service, command, target);
        rec.service = stored(op.service);
        return;
      case 'deleteService':
        if (!rec) fail('ESRCH', command, target);
        this.services.delete(svcName);
        return;
      default:
        break;
    }
    if (!rec) return fail('ESRCH', command, target);
    const dest = op.destination;
    const key = destKey(dest);
    const index = rec.dests.findIndex((d) => destKey(d.destination) === key);
    if (op.op === 'deleteDestination') {
      if (index === -1) fail('ENOENT', command, target);
      rec.dests.splice(index, 1);
      return;
    }
    const full = withTunnelDefaults(op.destination);
    if (full.af !== rec.service.af) {
      if (this.syncDaemonRunning || full.forwarding !== 'tunnel') fail('EINVAL', command, target);
    }
    if (full.weight > INT_MAX) fail('ERANGE', command, target);
    if (full.lowerThreshold > full.upperThreshold) fail('ERANGE', command, target);
    if (full.tunnelType === 'gue' && full.tunnelPort === 0) fail('EINVAL', command, target);
    if (op.op === 'addDestination') {
      if (index !== -1) fail('EEXIST', command, target);
      if (full.upperThreshold > INT_MAX) fail('EINVAL', command, target);
      if (!unicast(full)) fail('EINVAL', command, target);
      rec.dests.unshift({ destination: full, counters: ZERO_COUNTERS, stats: ZERO_STATS });
      return;
    }
    if (index === -1) fail('ENOENT', command, target);
    const existing = rec.dests[index] as DestRecord;
    existing.destination = full; // SET_DEST replaces every field, tunnel ones included
  }

  private checkServiceConfig(s: Service, command: string, target: string): void {
    if (!this.schedulers.has(s.scheduler)) fail('ENOENT', command, target);
    if (s.pe !== undefined && s.pe !== '' && !this.engines.has(s.pe)) fail('ENOENT', command, target);
    if (s.af === 'ipv6' && (s.netmask < 1 || s.netmask > 128)) fail('EINVAL', command, target);
  }
}

/** What the kernel reports back: canonical address, HASHED set, no empty pe. */
function stored(s: Service): Service {
  const config = {
    scheduler: s.scheduler,
    flags: ((s.flags & ~SvcFlag.HASHED) | SvcFlag.HASHED) >>> 0,
    timeout: s.timeout,
    netmask: s.netmask >>> 0,
    ...(s.pe ? { pe: s.pe } : {}),
  };
  const key = keyOf(s);
  if (key.fwmark !== undefined) return { af: key.af, fwmark: key.fwmark, ...config };
  return { af: key.af, protocol: key.protocol, address: normalizeAddress(key.af, key.address), port: key.port, ...config };
}

/** Absent tunnel fields are zero on the wire, and SET_DEST applies them as zero. */
function withTunnelDefaults(d: Destination): Destination {
  const partial = d as Partial<Destination> & DestinationKey;
  return {
    address: normalizeAddress(d.af, d.address),
    port: d.port,
    af: d.af,
    forwarding: d.forwarding,
    weight: d.weight,
    upperThreshold: partial.upperThreshold ?? 0,
    lowerThreshold: partial.lowerThreshold ?? 0,
    tunnelType: partial.tunnelType ?? 'ipip',
    tunnelPort: partial.tunnelPort ?? 0,
    tunnelFlags: partial.tunnelFlags ?? 0,
  };
}

function copyDest(d: DestRecord): DestinationEntry {
  return { destination: { ...d.destination }, counters: { ...d.counters }, stats: { ...d.stats } };
}
