/**
 * An EventRecorder writing events.k8s.io/v1 Events.
 *
 * Why events.k8s.io/v1 and not core v1: both are views of the same stored object (kubectl describe lists
 * them either way: `regarding` is core's involvedObject, `note` its message), but only events.k8s.io/v1
 * makes the fields this recorder relies on first-class and validated: reportingController and
 * reportingInstance (who said it), action, and `series` (count + lastObservedTime) for repeats, which is
 * how client-go's current events library aggregates. Core v1's count/firstTimestamp/lastTimestamp are the
 * deprecated form of the same thing.
 *
 * Aggregation: an event identical to one recorded in the last `seriesWindowMs` (same regarding object,
 * type, reason, action and note) does not create a new Event; it bumps the series of the existing one, and
 * series updates of one Event are written at most once per `seriesFlushMs`. New Events about one object are
 * rate-limited by a token bucket (burst 25, one more per 5 minutes, as client-go's spam filter), so a
 * flapping condition makes a handful of Events with growing counts, not thousands.
 *
 * Recording never throws and never blocks: failures are logged.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { realClock } from './clock.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { describeError, isNotFound } from './errors.ts';
import { resourcePath, type KubeObject } from './informer.ts';
import { formatMicroTime } from './leader.ts';
import { Writer } from './writer.ts';
import { createLogger } from '../util/log.ts';
import type { Logger } from '../util/log.ts';

export type EventType = 'Normal' | 'Warning';

export interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

/** The Event body this recorder writes (what the sink receives). */
export interface EventBody {
  name: string;
  namespace: string;
  eventTime: Date;
  type: EventType;
  reason: string;
  action: string;
  note: string;
  regarding: ObjectReference;
  related?: ObjectReference;
  reportingController: string;
  reportingInstance: string;
  series?: { count: number; lastObservedTime: Date };
}

/** Where Events go; `eventsV1Sink` writes them to the API, tests record them. */
export interface EventSink {
  create(e: EventBody): Promise<void>;
  /** Update the series of an existing Event; rejects with a 404 (isNotFound) if it is gone (Events expire after 1 h). */
  updateSeries(namespace: string, name: string, series: { count: number; lastObservedTime: Date }): Promise<void>;
  /** Releases connections (called by the recorder's close). */
  close?(): void;
}

export interface EventsSinkOptions {
  /** Per request, from when it is sent (default 10 s). */
  timeoutMs?: number;
  /** Requests in flight (default 8). */
  concurrency?: number;
  /** Events waiting for a slot; beyond that new ones are dropped, as client-go's broadcaster does (default 1,000). */
  maxQueued?: number;
  logger?: Logger;
}

/**
 * Writes Events over the keep-alive connections of a Writer, a few at a time. client-node's EventsV1Api opened
 * a new TLS connection per request: a controller's initial sync at 5,000 services records thousands of Events
 * at once, and those handshakes cost more CPU than the sync itself. Events are best effort: when more than
 * `maxQueued` wait, new ones are dropped (counted, logged at most every 10 s) rather than held in memory.
 */
export function eventsV1Sink(kc: KubeConfig, o: EventsSinkOptions = {}): EventSink & { close(): void; readonly dropped: number } {
  const writer = new Writer(kc, 'lvs-events');
  const timeoutMs = o.timeoutMs ?? 10_000;
  const concurrency = o.concurrency ?? 8;
  const maxQueued = o.maxQueued ?? 1000;
  const log = o.logger ?? createLogger('events');
  const waiting: Array<() => void> = [];
  let active = 0;
  let dropped = 0;
  let droppedLogged = 0;
  let lastDropLog = -Infinity;
  /** Runs `fn` in a slot; resolves without running it when the queue is full (the Event is dropped). */
  const inSlot = async (fn: () => Promise<void>): Promise<void> => {
    if (active < concurrency) {
      active++;
    } else if (waiting.length >= maxQueued) {
      dropped++;
      if (Date.now() - lastDropLog >= 10_000) {
        log.warn({ dropped: dropped - droppedLogged, waiting: waiting.length }, 'too many Events waiting to be written: dropping new ones');
        droppedLogged = dropped;
        lastDropLog = Date.now();
      }
      return;
    } else {
      // The slot is handed over by the request that frees it.
      await new Promise<void>((r) => waiting.push(r));
    }
    try {
      await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
  const path = (namespace: string, name?: string): string => resourcePath({ group: 'events.k8s.io', version: 'v1', plural: 'events', namespace }, name);
  return {
    get dropped() {
      return dropped;
    },
    create: (e) => inSlot(async () => {
      const body = {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name: e.name, namespace: e.namespace },
        eventTime: formatMicroTime(e.eventTime),
        type: e.type,
        reason: e.reason,
        action: e.action,
        note: e.note,
        regarding: e.regarding,
        ...(e.related ? { related: e.related } : {}),
        reportingController: e.reportingController,
        reportingInstance: e.reportingInstance,
        ...(e.series ? { series: { count: e.series.count, lastObservedTime: formatMicroTime(e.series.lastObservedTime) } } : {}),
      };
      await writer.request('POST', path(e.namespace), { body, contentType: 'application/json', signal: AbortSignal.timeout(timeoutMs) });
    }),
    updateSeries: (namespace, name, series) => inSlot(async () => {
      const body = { series: { count: series.count, lastObservedTime: formatMicroTime(series.lastObservedTime) } };
      await writer.request('PATCH', path(namespace, name), { body, contentType: 'application/merge-patch+json', signal: AbortSignal.timeout(timeoutMs) });
    }),
    close: () => writer.close(),
  };
}

export interface EventRecorderOptions {
  sink: EventSink;
  /** Who reports (default 'lvs.operator.dev/controller'; the agent uses 'lvs.operator.dev/agent'). */
  reportingController?: string;
  /** Which instance (pod or node name). */
  reportingInstance: string;
  /** Repeats within this window join the existing Event's series (default 6 min, as client-go). */
  seriesWindowMs?: number;
  /** Series updates of one Event are written at most this often (default 30 s). */
  seriesFlushMs?: number;
  /** New Events per regarding object: burst (default 25) and refill interval (default 5 min). */
  burst?: number;
  refillMs?: number;
  /** Aggregation entries kept (default 4096, least recently used evicted). */
  maxEntries?: number;
  clock?: Clock;
  logger?: Logger;
}

export interface EventRecorderStats {
  created: number;
  seriesUpdates: number;
  aggregated: number;
  dropped: number;
  failed: number;
}

interface Entry {
  namespace: string;
  name: string;
  body: EventBody;
  count: number;
  lastObserved: number;
  lastObservedWall: Date;
  /** Count already written. */
  written: number;
  lastWrite: number;
  created: boolean;
  inFlight?: Promise<void>;
  timer?: TimerHandle;
}

interface Bucket {
  tokens: number;
  at: number;
}

const NOTE_LIMIT = 1024;

function truncateBytes(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = s.slice(0, max);
  while (Buffer.byteLength(out) > max - 3) out = out.slice(0, -1);
  return `${out}...`;
}

/** An ObjectReference for a cached object; `kind`/`apiVersion` from the object or the arguments. */
export function referenceOf(o: KubeObject & { metadata?: { uid?: string } }, kind?: string, apiVersion?: string): ObjectReference {
  return {
    apiVersion: o.apiVersion ?? apiVersion,
    kind: o.kind ?? kind,
    name: o.metadata?.name ?? '',
    namespace: o.metadata?.namespace || undefined,
    uid: o.metadata?.uid,
    resourceVersion: o.metadata?.resourceVersion,
  };
}

let moduleLogger: Logger | undefined;

export class EventRecorder {
  private readonly o: EventRecorderOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly entries = new Map<string, Entry>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly counters: EventRecorderStats = { created: 0, seriesUpdates: 0, aggregated: 0, dropped: 0, failed: 0 };
  private closed = false;

  constructor(opts: EventRecorderOptions) {
    this.o = opts;
    this.clock = opts.clock ?? realClock;
    this.log = (opts.logger ?? (moduleLogger ??= createLogger('kube.events'))).child({ reportingInstance: opts.reportingInstance });
  }

  stats(): EventRecorderStats {
    return { ...this.counters };
  }

  normal(regarding: ObjectReference | KubeObject, reason: string, note: string, action?: string): void {
    this.event(regarding, 'Normal', reason, note, action);
  }

  warning(regarding: ObjectReference | KubeObject, reason: string, note: string, action?: string): void {
    this.event(regarding, 'Warning', reason, note, action);
  }

  /** Record an event. Never throws; the write happens in the background. `action` defaults to `reason`. */
  event(regarding: ObjectReference | KubeObject, type: EventType, reason: string, note: string, action?: string, related?: ObjectReference): void {
    try {
      if (this.closed) return;
      const ref = isReference(regarding) ? regarding : referenceOf(regarding);
      if (!ref.name) throw new Error('regarding object has no name');
      const act = (action ?? reason).slice(0, 128);
      const text = truncateBytes(note, NOTE_LIMIT);
      const objKey = `${ref.kind ?? ''}|${ref.namespace ?? ''}|${ref.name}|${ref.uid ?? ''}`;
      const key = `${objKey}|${type}|${reason}|${act}|${text}`;
      const now = this.clock.now();
      const wall = this.clock.wallNow();
      const window = this.o.seriesWindowMs ?? 6 * 60_000;

      const existing = this.entries.get(key);
      if (existing && now - existing.lastObserved < window) {
        existing.count++;
        existing.lastObserved = now;
        existing.lastObservedWall = wall;
        this.counters.aggregated++;
        this.touch(key, existing);
        this.scheduleSeries(existing);
        return;
      }
      if (!this.take(objKey, now)) {
        this.counters.dropped++;
        this.log.debug({ reason, regarding: `${ref.namespace ?? ''}/${ref.name}` }, 'event dropped by the per-object rate limit');
        return;
      }
      const namespace = ref.namespace || 'default';
      const name = `${ref.name.slice(0, 230)}.${randomBytes(8).toString('hex')}`;
      const body: EventBody = {
        name,
        namespace,
        eventTime: wall,
        type,
        reason,
        action: act,
        note: text,
        regarding: ref,
        related,
        reportingController: this.o.reportingController ?? 'lvs.operator.dev/controller',
        reportingInstance: this.o.reportingInstance,
      };
      const entry: Entry = { namespace, name, body, count: 1, lastObserved: now, lastObservedWall: wall, written: 0, lastWrite: now, created: false };
      this.touch(key, entry);
      this.track(entry, this.o.sink.create(body).then(
        () => {
          entry.created = true;
          entry.written = Math.max(entry.written, 1);
          this.counters.created++;
        },
        (e: unknown) => {
          this.counters.failed++;
          this.entries.delete(key);
          this.log.warn({ err: describeError(e), reason, regarding: `${namespace}/${ref.name}` }, 'could not create event');
        },
      ));
    } catch (e) {
      this.counters.failed++;
      this.log.warn({ err: describeError(e), reason }, 'could not record event');
    }
  }

  /** Write every pending series update now and wait for all writes. */
  async flush(): Promise<void> {
    for (const e of this.entries.values()) {
      if (e.count > e.written && e.created) {
        this.clock.clearTimeout(e.timer);
        e.timer = undefined;
        this.writeSeries(e);
      }
    }
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    for (const e of this.entries.values()) {
      if (e.count > e.written && e.created && !e.inFlight) this.writeSeries(e);
    }
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  /** Flush, then ignore further events. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    for (const e of this.entries.values()) this.clock.clearTimeout(e.timer);
    this.o.sink.close?.();
  }

  private touch(key: string, e: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, e);
    const max = this.o.maxEntries ?? 4096;
    while (this.entries.size > max) {
      const [oldest, old] = this.entries.entries().next().value as [string, Entry];
      this.clock.clearTimeout(old.timer);
      this.entries.delete(oldest);
    }
  }

  private take(objKey: string, now: number): boolean {
    const burst = this.o.burst ?? 25;
    const refill = this.o.refillMs ?? 5 * 60_000;
    const b = this.buckets.get(objKey) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + (now - b.at) / refill);
    b.at = now;
    this.buckets.delete(objKey);
    this.buckets.set(objKey, b);
    if (this.buckets.size > (this.o.maxEntries ?? 4096)) this.buckets.delete(this.buckets.keys().next().value as string);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private track(e: Entry, p: Promise<void>): void {
    const q = p.finally(() => {
      this.inFlight.delete(q);
      if (e.inFlight === q) e.inFlight = undefined;
      if (e.count > e.written && e.created) this.scheduleSeries(e);
    });
    e.inFlight = q;
    this.inFlight.add(q);
  }

  private scheduleSeries(e: Entry): void {
    if (e.timer || e.inFlight || !e.created || this.closed) return;
    const wait = Math.max(0, e.lastWrite + (this.o.seriesFlushMs ?? 30_000) - this.clock.now());
    e.timer = this.clock.setTimeout(() => {
      e.timer = undefined;
      this.writeSeries(e);
    }, wait);
  }

  private writeSeries(e: Entry): void {
    if (e.inFlight || e.count <= e.written) return;
    const count = e.count;
    const series = { count, lastObservedTime: e.lastObservedWall };
    e.lastWrite = this.clock.now();
    this.track(e, this.o.sink.updateSeries(e.namespace, e.name, series).then(
      () => {
        e.written = Math.max(e.written, count);
        this.counters.seriesUpdates++;
      },
      async (err: unknown) => {
        if (isNotFound(err)) {
          // The Event expired (TTL): write a new one that carries the series so far.
          e.name = `${e.body.regarding.name.slice(0, 230)}.${randomBytes(8).toString('hex')}`;
          e.body = { ...e.body, name: e.name, eventTime: this.clock.wallNow(), series };
          try {
            await this.o.sink.create(e.body);
            e.written = Math.max(e.written, count);
            this.counters.created++;
            return;
          } catch (e2) {
            err = e2;
          }
        }
        e.written = Math.max(e.written, count); // do not retry forever; the next repeat writes again
        this.counters.failed++;
        this.log.warn({ err: describeError(err), reason: e.body.reason, name: e.name }, 'could not update event series');
      },
    ));
  }
}

function isReference(x: ObjectReference | KubeObject): x is ObjectReference {
  return typeof (x as ObjectReference).name === 'string' && (x as KubeObject).metadata === undefined;
}
