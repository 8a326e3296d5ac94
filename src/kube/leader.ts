/**
 * Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics:
 *
 * - acquire or renew by `replace` with the resourceVersion read (optimistic concurrency); a 409 means
 *   someone else wrote first: re-read and judge again;
 * - a lease held by someone else is expired only when its (holderIdentity, renewTime) has not changed for
 *   leaseDurationSeconds of LOCALLY observed time: the renewTime written by another machine is never
 *   compared with our clock (clock skew). A candidate whose own request failed starts that count again
 *   at its next successful read: while it could not read, it could not see renewals (an apiserver outage
 *   that hit everyone must not look like a dead holder to a standby once it reconnects);
 * - a standby sleeps until exactly the moment the observed lease expires (not the next retry tick) and
 *   then writes with the resourceVersion it read (one request; a 409 means the holder renewed after all),
 *   so a dead holder is replaced in about leaseDuration + one request after the last renew it was seen to make;
 * - a leader that cannot renew within renewDeadline steps down (renewDeadline < leaseDuration, so it stops
 *   acting before anyone else may take over); it measures from the start of its last successful renew;
 * - release() writes an empty holderIdentity so a standby takes over at its next retry, not after expiry;
 * - timestamps are MicroTime with 6 fractional digits (the server rejects Date#toISOString()'s 3 with 400).
 *
 * Many electors can share one LeaseApi (one HTTP client): the controller runs one, the agents one per VIP
 * with sub-second periods (retryPeriodMs 500, leaseDurationSeconds 2, renewDeadlineMs 1500).
 */
import { V1MicroTime } from '@kubernetes/client-node';
import type { KubeConfig, V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import { realClock, sleep } from './clock.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { describeError, isAlreadyExists, isConflict, isNotFound } from './errors.ts';
import { Writer } from './writer.ts';
import { createLogger } from '../util/log.ts';
import type { Logger } from '../util/log.ts';

/** The election-relevant part of a Lease's spec. Times are MicroTime strings as the server returns them. */
export interface LeaseRecord {
  /** '' when nobody holds the lease (released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

/** A Lease as read or written: its record, resourceVersion, and the whole object (kept for replace). */
export interface LeaseObject {
  record: LeaseRecord;
  resourceVersion: string;
  raw?: unknown;
}

/** Lease storage. Errors: `isConflict` on a stale resourceVersion, `isAlreadyExists` on create races. */
export interface LeaseApi {
  /** undefined when the Lease does not exist. */
  get(namespace: string, name: string, signal: AbortSignal): Promise<LeaseObject | undefined>;
  create(namespace: string, name: string, record: LeaseRecord, signal: AbortSignal): Promise<LeaseObject>;
  /** Replace with `prev.resourceVersion` as the precondition, keeping the rest of `prev` (labels, …). */
  update(namespace: string, name: string, record: LeaseRecord, prev: LeaseObject, signal: AbortSignal): Promise<LeaseObject>;
}

/** "2025-01-01T00:00:00.123000Z": RFC 3339 with exactly 6 fractional digits (metav1.MicroTime). */
export function formatMicroTime(d: Date): string {
  return new V1MicroTime(d.getTime()).toISOString();
}

function microTimeString(v: unknown): string | undefined {
  if (v instanceof Date) return formatMicroTime(v);
  return typeof v === 'string' && v ? v : undefined;
}

function toMicroTime(s: string | undefined): V1MicroTime | undefined {
  if (!s) return undefined;
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? undefined : new V1MicroTime(ms);
}

/** A Lease object as the API returns it (a GET, or a watch event) in the elector's terms. */
export function leaseObject(l: V1Lease): LeaseObject {
  const s: Partial<V1LeaseSpec> = l.spec ?? {};
  return {
    record: {
      holderIdentity: s.holderIdentity ?? '',
      leaseDurationSeconds: s.leaseDurationSeconds ?? 0,
      // client-node does not deserialize V1MicroTime: these arrive as strings, typed as Date.
      acquireTime: microTimeString(s.acquireTime),
      renewTime: microTimeString(s.renewTime),
      leaseTransitions: s.leaseTransitions ?? 0,
    },
    resourceVersion: l.metadata?.resourceVersion ?? '',
    raw: l,
  };
}

function specOf(r: LeaseRecord, prev?: V1LeaseSpec): V1LeaseSpec {
  const spec: V1LeaseSpec = { ...prev, holderIdentity: r.holderIdentity, leaseDurationSeconds: r.leaseDurationSeconds, leaseTransitions: r.leaseTransitions };
  const acquire = toMicroTime(r.acquireTime);
  const renew = toMicroTime(r.renewTime);
  if (acquire) spec.acquireTime = acquire;
  else delete spec.acquireTime;
  if (renew) spec.renewTime = renew;
  else delete spec.renewTime;
  return spec;
}

/**
 * A LeaseApi over one pool of keep-alive connections (src/kube/writer.ts). client-node opens a new TLS
 * connection per request: with a renewal every 500 ms per VIP that is a handshake per renewal, which on a
 * loaded node (or through a slow path to the API server) alone outlasts the 1 s renew deadline. `close()`
 * drops the pool.
 */
export function keepAliveLeaseApi(kc: KubeConfig, fieldManager: string): LeaseApi & { close(): void } {
  const client = new Writer(kc, fieldManager);
  const path = (namespace: string, name?: string): string =>
    `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
  return {
    async get(namespace, name, signal) {
      try {
        return leaseObject(await client.request<V1Lease>('GET', path(namespace, name), { signal }));
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    async create(namespace, name, record, signal) {
      const body: V1Lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: specOf(record) };
      return leaseObject(await client.request<V1Lease>('POST', path(namespace), { body, contentType: 'application/json', signal }));
    },
    async update(namespace, name, record, prev, signal) {
      const raw = (prev.raw ?? {}) as V1Lease;
      const { managedFields: _mf, ...meta } = raw.metadata ?? {};
      const body: V1Lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { ...meta, name, namespace, resourceVersion: prev.resourceVersion }, spec: specOf(record, raw.spec) };
      return leaseObject(await client.request<V1Lease>('PUT', path(namespace, name), { body, contentType: 'application/json', signal }));
    },
    close: () => client.close(),
  };
}

export interface LeaderCallbacks {
  /** We lead; `signal` aborts when we stop leading (lost, released, stopped). */
  onStartedLeading?: (signal: AbortSignal) => void | Promise<void>;
  onStoppedLeading?: () => void;
  /** The observed holder changed (including to ourselves; '' when the lease was released). */
  onNewLeader?: (identity: string) => void;
}

export interface LeaderElectorOptions extends LeaderCallbacks {
  api: LeaseApi;
  namespace: string;
  name: string;
  /** Unique per candidate (pod name, or node name + VIP). */
  identity: string;
  /** How long a standby waits after the last observed change before taking over (default 15; whole seconds, ≥ 1). */
  leaseDurationSeconds?: number;
  /** A leader that has not renewed for this long steps down (default 10 s; < leaseDuration). */
  renewDeadlineMs?: number;
  /** Time between tries (default 2 s; renewDeadline > retryJitter-scaled period). */
  retryPeriodMs?: number;
  /** Acquire retries wait retryPeriod × (1 + retryJitter × random) (default 1.2, as client-go). */
  retryJitter?: number;
  /** Try again after losing (default true); false ends the elector, as client-go's Run returns. */
  reacquire?: boolean;
  /**
   * Asked before taking the lease from another holder or creating it (never before renewing our own):
   * false skips this attempt. For a second lock that must also be free (a migration's old lease).
   */
  mayAcquire?: (signal: AbortSignal) => Promise<boolean>;
  /** After every successful acquire or renew (the lease is ours until at least renewDeadline from now). */
  onRenewed?: () => void;
  /**
   * Early expiry: while this says the holder is down (director heartbeats stopped), its lease expires
   * `earlyExpiryMs` after its last observed change instead of leaseDuration. The takeover is the same
   * conditional write, so a holder that renewed after all keeps the lease. Call recheck() when it changes.
   */
  holderDown?: (identity: string) => boolean;
  earlyExpiryMs?: number;
  /**
   * The other side: while this says the holder is alive (its heartbeats arrive), its lease does not expire
   * until it has been unchanged for `aliveMaxMs` (default 10 lease durations): a holder that only lost the
   * API server, or is slow to renew, keeps serving instead of being replaced (as a VRRP backup that hears its
   * master's adverts never takes over). Past that bound the lease expires anyway: a holder cut off from the
   * API server for long gets no plan changes.
   */
  holderAlive?: (identity: string) => boolean;
  aliveMaxMs?: number;
  clock?: Clock;
  random?: () => number;
  logger?: Logger;
}

export interface LeaderStats {
  acquisitions: number;
  losses: number;
  renewFailures: number;
  conflicts: number;
  releases: number;
}

let moduleLogger: Logger | undefined;

export class LeaderElector {
  readonly identity: string;
  private readonly o: Required<Pick<LeaderElectorOptions, 'leaseDurationSeconds' | 'renewDeadlineMs' | 'retryPeriodMs' | 'retryJitter' | 'reacquire'>> & LeaderElectorOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;

  private observed: LeaseObject | undefined;
  private observedKey = '';
  private observedTime = 0;
  /** The observation is from a successful read after our last failed request (see the module comment). */
  private observedFresh = false;
  private reportedLeader: string | undefined;

  private leading = false;
  private leadCtl: AbortController | undefined;
  /** clock.now() at the START of the last successful acquire/renew. */
  private lastRenew = 0;
  private running: Promise<void> | undefined;
  private wakeAcquire: (() => void) | undefined;
  private recheckTimer: TimerHandle | undefined;
  private stopCtl: AbortController | undefined;
  private readonly counters: LeaderStats = { acquisitions: 0, losses: 0, renewFailures: 0, conflicts: 0, releases: 0 };

  constructor(opts: LeaderElectorOptions) {
    const o = { leaseDurationSeconds: 15, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, retryJitter: 1.2, reacquire: true, ...opts };
    if (!o.identity) throw new Error('LeaderElector: identity is required');
    if (!Number.isInteger(o.leaseDurationSeconds) || o.leaseDurationSeconds < 1) throw new Error('LeaderElector: leaseDurationSeconds must be a whole number ≥ 1');
    if (!(o.leaseDurationSeconds * 1000 > o.renewDeadlineMs)) throw new Error('LeaderElector: leaseDuration must be greater than renewDeadline');
    if (!(o.renewDeadlineMs > o.retryPeriodMs)) throw new Error('LeaderElector: renewDeadline must be greater than retryPeriod');
    if (!(o.retryPeriodMs > 0)) throw new Error('LeaderElector: retryPeriod must be positive');
    if (o.earlyExpiryMs !== undefined && !(o.earlyExpiryMs > 0)) throw new Error('LeaderElector: earlyExpiryMs must be positive');
    this.o = o;
    this.identity = o.identity;
    this.clock = o.clock ?? realClock;
    this.random = o.random ?? Math.random;
    this.log = (o.logger ?? (moduleLogger ??= createLogger('kube.leader'))).child({ lease: `${o.namespace}/${o.name}`, identity: o.identity });
  }

  /**
   * The Lease as seen elsewhere (a watch on Leases) counts as a successful read at this moment: a standby
   * then counts the holder's lease duration from each renewal as it happens, not from its next poll (up to
   * a retry period later), and sees a release at once. Versions not newer than the one we know are ignored.
   */
  observe(l: LeaseObject): void {
    if (!this.running) return;
    if (this.observed && !newerResourceVersion(l.resourceVersion, this.observed.resourceVersion)) return;
    this.setObserved(l, this.clock.now());
    if (!this.leading && l.record.holderIdentity === '') this.wakeAcquire?.();
  }

  /** Start campaigning (idempotent). */
  start(): void {
    if (this.running) return;
    this.stopCtl = new AbortController();
    const stop = this.stopCtl.signal;
    this.running = this.run(stop).finally(() => {
      this.running = undefined;
    });
  }

  /** We hold the lease and renewed it within renewDeadline. */
  isLeader(): boolean {
    return this.leading && this.clock.now() - this.lastRenew < this.o.renewDeadlineMs;
  }

  /** The last observed holder ('' none, undefined not observed yet). */
  leader(): string | undefined {
    return this.observed?.record.holderIdentity;
  }

  stats(): LeaderStats {
    return { ...this.counters };
  }

  /**
   * Milliseconds until the lease, as observed, expires on our clock (≤ 0: expired): undefined when nobody
   * else holds it, or when we have not read it since our last failed request.
   */
  expiresInMs(): number | undefined {
    const rec = this.observed?.record;
    if (!rec || !this.observedFresh || rec.holderIdentity === '' || rec.holderIdentity === this.identity) return undefined;
    return this.observedTime + this.effectiveDurationMs(rec) - this.clock.now();
  }

  /**
   * The holder's state as `holderDown` sees it may have changed: a standby waiting for the lease to expire
   * judges it again now (and wakes when an early expiry comes due), instead of at its next retry.
   */
  recheck(): void {
    this.clock.clearTimeout(this.recheckTimer);
    this.recheckTimer = undefined;
    if (!this.wakeAcquire) return;
    const left = this.expiresInMs();
    if (left === undefined) return;
    if (left <= 0) this.wakeAcquire();
    else this.recheckTimer = this.clock.setTimeout(() => this.recheck(), left);
  }

  /** How long a lease held by someone else lasts from its last observed change (earlyExpiryMs, holderAlive). */
  private effectiveDurationMs(rec: LeaseRecord): number {
    const full = rec.leaseDurationSeconds * 1000;
    const early = this.o.earlyExpiryMs;
    if (early !== undefined && early < full && this.o.holderDown?.(rec.holderIdentity)) return early;
    if (this.o.holderAlive?.(rec.holderIdentity)) return Math.max(full, this.o.aliveMaxMs ?? 10 * full);
    return full;
  }

  /**
   * Stop campaigning. With `release` (default true) a leader hands the lease over at once by writing an
   * empty holder; without it the lease simply expires (what a crash looks like). Resolves when done.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.clock.clearTimeout(this.recheckTimer);
    this.recheckTimer = undefined;
    this.stopCtl?.abort(new Error('leader elector stopped'));
    await this.running;
    if (this.leading) {
      if (opts.release ?? true) await this.releaseLease();
      this.stepDown('stopped');
    }
  }

  /** Stop and release the lease (graceful shutdown). */
  release(): Promise<void> {
    return this.stop({ release: true });
  }

  // ---------------------------------------------------------------------------------------------------

  private async run(stop: AbortSignal): Promise<void> {
    try {
      for (;;) {
        // Acquire.
        // An acquisition may wait longer for its answer than a renewal (which renewDeadline bounds): a late
        // answer is still safe, the write being conditional on the resourceVersion read.
        while (!(await this.tryAcquireOrRenew(stop, Math.max(this.o.retryPeriodMs * 2, this.o.leaseDurationSeconds * 1000)))) {
          // The next retry tick, or the moment the observed holder's lease expires if that comes first.
          const retry = this.o.retryPeriodMs * (1 + this.o.retryJitter * this.random());
          const expiry = this.expiresInMs();
          await this.acquireSleep(expiry !== undefined && expiry > 0 && expiry < retry ? expiry : retry, stop);
        }
        this.becomeLeader();
        // Renew until it fails for renewDeadline, someone else holds the lease, or we stop.
        for (;;) {
          await sleep(this.clock, this.o.retryPeriodMs, stop);
          const left = this.lastRenew + this.o.renewDeadlineMs - this.clock.now();
          if (left > 0 && (await this.tryAcquireOrRenew(stop, left))) continue;
          const other = this.observed?.record.holderIdentity;
          if (other !== this.identity || this.clock.now() - this.lastRenew >= this.o.renewDeadlineMs) {
            this.counters.losses++;
            this.stepDown(other !== this.identity ? `lease now held by ${other || 'nobody'}` : `could not renew within ${this.o.renewDeadlineMs} ms`);
            break;
          }
        }
        if (!this.o.reacquire) return;
      }
    } catch (e) {
      if (!stop.aborted) this.log.error({ err: describeError(e) }, 'leader election loop failed');
    }
  }

  /** The standby's wait between attempts; observe() ends it early when the holder released the Lease. */
  private async acquireSleep(ms: number, stop: AbortSignal): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        this.wakeAcquire = resolve;
        sleep(this.clock, ms, stop).then(resolve, reject);
      });
    } finally {
      this.wakeAcquire = undefined;
    }
  }

  private becomeLeader(): void {
    this.leading = true;
    this.counters.acquisitions++;
    this.leadCtl = new AbortController();
    this.log.info('became leader');
    const signal = this.leadCtl.signal;
    try {
      const r = this.o.onStartedLeading?.(signal);
      if (r instanceof Promise) r.catch((e: unknown) => this.log.error({ err: describeError(e) }, 'onStartedLeading failed'));
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'onStartedLeading threw');
    }
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.leadCtl?.abort(new Error(`leadership lost: ${why}`));
    this.log.warn({ why }, 'stopped leading');
    try {
      this.o.onStoppedLeading?.();
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'onStoppedLeading threw');
    }
  }

  private setObserved(l: LeaseObject, at: number): void {
    const key = `${l.record.holderIdentity}\u0000${l.record.renewTime ?? ''}`;
    if (key !== this.observedKey || !this.observedFresh) {
      this.observedKey = key;
      this.observedTime = at;
    }
    this.observedFresh = true;
    this.observed = l;
    const holder = l.record.holderIdentity;
    if (holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      this.log.info({ leader: holder || null }, 'observed new leader');
      try {
        this.o.onNewLeader?.(holder);
      } catch (e) {
        this.log.error({ err: describeError(e) }, 'onNewLeader threw');
      }
    }
  }

  /** A signal that aborts after `ms` on our clock, or when `stop` aborts. */
  private deadline(stop: AbortSignal, ms: number): { signal: AbortSignal; done: () => void } {
    const ctl = new AbortController();
    const t = this.clock.setTimeout(() => ctl.abort(new Error(`lease request timed out after ${Math.round(ms)} ms`)), ms);
    const onStop = (): void => ctl.abort(stop.reason);
    stop.addEventListener('abort', onStop, { once: true });
    return {
      signal: ctl.signal,
      done: () => {
        this.clock.clearTimeout(t);
        stop.removeEventListener('abort', onStop);
      },
    };
  }

  /** One round of client-go's tryAcquireOrRenew; true when we hold the lease afterwards. */
  private async tryAcquireOrRenew(stop: AbortSignal, timeoutMs: number): Promise<boolean> {
    const { namespace, name, identity, api } = this.o;
    const started = this.clock.now();
    const wall = formatMicroTime(this.clock.wallNow());
    const { signal, done } = this.deadline(stop, timeoutMs);
    const duration = this.o.leaseDurationSeconds;
    try {
      // Fast paths, writing with the cached resourceVersion (one request): we lead and renew, or the
      // lease we observed another holder keep has expired on our clock (or was released) and we take it.
      const obs = this.observed;
      const renewing = this.leading && obs?.record.holderIdentity === identity;
      const expiry = this.expiresInMs();
      const taking = !this.leading && obs !== undefined && this.observedFresh && (obs.record.holderIdentity === '' || (expiry !== undefined && expiry <= 0));
      if (obs && (renewing || (taking && (await this.mayAcquire(signal))))) {
        const rec = obs.record;
        const next: LeaseRecord = renewing
          ? { ...rec, renewTime: wall, leaseDurationSeconds: duration }
          : { holderIdentity: identity, leaseDurationSeconds: duration, acquireTime: wall, renewTime: wall, leaseTransitions: rec.leaseTransitions + 1 };
        try {
          const mine = await api.update(namespace, name, next, obs, signal);
          this.succeeded(mine, started, renewing ? undefined : rec.holderIdentity);
          return true;
        } catch (e) {
          if (!isConflict(e)) throw e;
          this.counters.conflicts++;
          // Someone wrote the lease: fall through to read and judge.
        }
      }
      const cur = await api.get(namespace, name, signal);
      if (!cur) {
        if (!(await this.mayAcquire(signal))) return false;
        try {
          const created = await api.create(namespace, name, { holderIdentity: identity, leaseDurationSeconds: duration, acquireTime: wall, renewTime: wall, leaseTransitions: 0 }, signal);
          this.succeeded(created, started, undefined);
          return true;
        } catch (e) {
          if (isAlreadyExists(e)) return false;
          throw e;
        }
      }
      const now = this.clock.now();
      this.setObserved(cur, now);
      const rec = cur.record;
      const held = rec.holderIdentity !== '' && rec.holderIdentity !== identity;
      if (held && this.observedTime + this.effectiveDurationMs(rec) > now) return false;
      const mineAlready = rec.holderIdentity === identity;
      if (!mineAlready && !(await this.mayAcquire(signal))) return false;
      const next: LeaseRecord = {
        holderIdentity: identity,
        leaseDurationSeconds: duration,
        acquireTime: mineAlready ? rec.acquireTime : wall,
        renewTime: wall,
        leaseTransitions: mineAlready ? rec.leaseTransitions : rec.leaseTransitions + 1,
      };
      try {
        const updated = await api.update(namespace, name, next, cur, signal);
        this.succeeded(updated, started, mineAlready ? undefined : rec.holderIdentity);
        return true;
      } catch (e) {
        if (isConflict(e)) {
          this.counters.conflicts++;
          return false;
        }
        throw e;
      }
    } catch (e) {
      if (stop.aborted) throw e;
      // We may have missed renewals while we could not read: count expiry again from the next good read.
      this.observedFresh = false;
      if (this.leading) this.counters.renewFailures++;
      this.log.warn({ err: describeError(e), leading: this.leading }, 'lease acquire/renew failed');
      return false;
    } finally {
      done();
    }
  }

  /** The lease is ours after a write that started at `started`; `previous` is set when we took it over. */
  private succeeded(l: LeaseObject, started: number, previous: string | undefined): void {
    this.lastRenew = started;
    this.setObserved(l, this.clock.now());
    if (previous !== undefined) this.log.info({ previous: previous || null, transitions: l.record.leaseTransitions }, 'acquired lease');
    try {
      this.o.onRenewed?.();
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'onRenewed threw');
    }
  }

  private async mayAcquire(signal: AbortSignal): Promise<boolean> {
    if (!this.o.mayAcquire) return true;
    const ok = await this.o.mayAcquire(signal);
    if (!ok) this.log.debug('not acquiring: mayAcquire said no');
    return ok;
  }

  private async releaseLease(): Promise<void> {
    const { namespace, name, identity, api } = this.o;
    const stop = new AbortController().signal;
    for (let attempt = 0; attempt < 2; attempt++) {
      const { signal, done } = this.deadline(stop, Math.max(this.o.renewDeadlineMs, 1000));
      try {
        let cur = attempt === 0 ? this.observed : await api.get(namespace, name, signal);
        if (!cur || cur.record.holderIdentity !== identity) return;
        const wall = formatMicroTime(this.clock.wallNow());
        cur = await api.update(namespace, name, { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: wall, renewTime: wall, leaseTransitions: cur.record.leaseTransitions }, cur, signal);
        this.counters.releases++;
        this.setObserved(cur, this.clock.now());
        this.log.info('released lease');
        return;
      } catch (e) {
        if (isConflict(e) && attempt === 0) continue;
        this.log.warn({ err: describeError(e) }, 'could not release lease; it will expire');
        return;
      } finally {
        done();
      }
    }
  }
}

/** resourceVersions are opaque, but etcd's are integers: compare those; any other change counts as newer. */
export function newerResourceVersion(a: string, b: string): boolean {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return a !== b;
}

