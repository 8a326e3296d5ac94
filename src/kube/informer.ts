/**
 * A typed cache + watch of one resource (a reflector, in client-go's words), written on our raw client
 * instead of client-node's ListWatch because that one stops for good on any non-410 error, reports
 * "started" before the first list succeeded and cannot abort a watch whose connection went silent.
 *
 *   const vs = new Informer<VirtualService>(kc, { resource: { group: GROUP, version: VERSION, plural: 'virtualservices' } });
 *   vs.onChange(() => queue.add('plan'));          // level-based consumers
 *   vs.on('delete', (o) => ...);                   // or per-object events
 *   await vs.start();                              // resolves once the first list is in the cache
 *   vs.list(); vs.get('web', 'lab');
 *
 * Behaviour: list (paged) → watch from the list's resourceVersion with bookmarks and a server-side timeout
 * (jittered); a clean end of the watch re-watches from the last resourceVersion; 410 Gone (HTTP or watch
 * ERROR event) relists and turns the difference into add/update/delete events; ANY other error (network,
 * 5xx, 403, a handler bug in the stream) restarts the loop after an exponential backoff with jitter; a
 * watchdog aborts a watch that has been silent for longer than ~2× its timeout (half-open TCP) and
 * re-watches. Objects are kept as the server's JSON: timestamps are strings even where a client-node
 * model type (V1Node…) says Date.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { Backoff, jittered } from './backoff.ts';
import type { BackoffOptions } from './backoff.ts';
import { realClock, sleep } from './clock.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { apiError, describeError, errorCode, isGone } from './errors.ts';
import { KubeHttp } from './http.ts';
import type { Query } from './http.ts';
import { createLogger } from '../util/log.ts';
import type { Logger } from '../util/log.ts';

/** The least an object must have to be cached: name, namespace, resourceVersion. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string };
}

/** Where a resource lives. `group: ''` is the core group (/api/v1). Leave `namespace` out for all namespaces or cluster-scoped kinds. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  namespace?: string;
}

/** /api/v1/nodes, /apis/apps/v1/namespaces/kube-system/daemonsets, /apis/lvs.operator.dev/v1alpha1/nodeplans … */
export function resourcePath(r: ResourceRef, name?: string): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = r.namespace ? `/namespaces/${encodeURIComponent(r.namespace)}` : '';
  return `${base}${ns}/${r.plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

/** "namespace/name", or "name" for cluster-scoped objects (client-go's MetaNamespaceKeyFunc). */
export function keyOf(o: KubeObject): string {
  const ns = o.metadata?.namespace;
  const name = o.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  object: unknown;
}

export interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

/** What the informer needs from the API server; `KubeHttp` provides it, unit tests fake it. */
export interface ListWatchClient {
  list(path: string, query: Query, signal: AbortSignal): Promise<ListPage>;
  /** Resolves when the server ends the watch; rejects on any error (or with the signal's reason). */
  watch(path: string, query: Query, onEvent: (e: WatchEvent) => void, signal: AbortSignal, onData: () => void): Promise<void>;
}

export function httpListWatchClient(kc: KubeConfig, requestTimeoutMs = 60_000): ListWatchClient {
  const h = new KubeHttp(kc);
  return {
    list: (path, query, signal) => h.json<ListPage>('GET', path, { query, signal, timeoutMs: requestTimeoutMs }),
    watch: (path, query, onEvent, signal, onData) =>
      h.stream(path, { query, signal, onData, onLine: (line) => onEvent(JSON.parse(line) as WatchEvent) }),
  };
}

export interface InformerOptions {
  /** The resource; or give `path` (a list URL path) directly. */
  resource?: ResourceRef;
  path?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** For logs and metrics (default: the path). */
  name?: string;
  /** Server-side watch timeout; each watch asks for a random value in [t, 1.25·t] (default 60 s). */
  watchTimeoutSeconds?: number;
  /** Abort a watch silent for this long (default: 2 × the watch's timeout). */
  idleTimeoutMs?: number;
  /** Page size of lists (default 500; 0 = unpaged). */
  pageSize?: number;
  /** Timeout of one list request (default 60 s). */
  requestTimeoutMs?: number;
  /** Restart backoff (default 500 ms doubling to 30 s, +20 % jitter). */
  backoff?: BackoffOptions;
  /** After this many failed watches in a row, relist instead of re-watching from the same resourceVersion (default 5). */
  relistAfterFailures?: number;
  clock?: Clock;
  logger?: Logger;
  random?: () => number;
}

export type InformerEventType = 'add' | 'update' | 'delete';

export interface InformerStats {
  /** Restarts of the list/watch loop after an error or a watchdog timeout. */
  restarts: number;
  /** Lists after the initial one (410 Gone, or repeated failures). */
  relists: number;
  /** 410 Gone answers (expired resourceVersion or continue token). */
  expired: number;
  /** Watch requests opened. */
  watches: number;
  /** Watches aborted because they were silent too long. */
  watchdogTimeouts: number;
  /** Watch events applied (bookmarks excluded). */
  events: number;
  /** clock.now() of the last byte received, or undefined. */
  lastActivity?: number;
  synced: boolean;
  resourceVersion: string;
  size: number;
}

type Handler<T> = (obj: T, old: T) => void;

class WatchdogTimeout extends Error {
  constructor(ms: number) {
    super(`watch silent for ${ms} ms`);
    this.name = 'WatchdogTimeout';
  }
}

class StoppedError extends Error {
  constructor() {
    super('informer stopped');
    this.name = 'StoppedError';
  }
}

const defaultLogger = (): Logger => createLogger('kube.informer');

export class Informer<T extends KubeObject> {
  readonly path: string;
  readonly name: string;
  private readonly client: ListWatchClient;
  private readonly opts: InformerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly backoff: Backoff;

  private cache = new Map<string, T>();
  private rv = '';
  private synced = false;
  private readonly handlers: Record<InformerEventType, Set<Handler<T>>> = { add: new Set(), update: new Set(), delete: new Set() };
  private readonly changeHandlers = new Set<() => void>();
  private changePending = false;
  private readonly counters = { restarts: 0, relists: 0, expired: 0, watches: 0, watchdogTimeouts: 0, events: 0, lists: 0 };
  private lastActivity: number | undefined;

  private running: Promise<void> | undefined;
  private stopCtl: AbortController | undefined;
  private syncWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  /** `kc`: a KubeConfig, or a ListWatchClient (tests). */
  constructor(kc: KubeConfig | ListWatchClient, opts: InformerOptions) {
    if (!opts.path && !opts.resource) throw new Error('Informer: give `resource` or `path`');
    this.path = opts.path ?? resourcePath(opts.resource!);
    this.name = opts.name ?? this.path;
    this.opts = opts;
    this.client = isListWatchClient(kc) ? kc : httpListWatchClient(kc, opts.requestTimeoutMs);
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.log = (opts.logger ?? defaultLogger()).child({ informer: this.name });
    this.backoff = new Backoff({ random: this.random, ...opts.backoff });
  }

  /** Start (idempotent); resolves once the initial list is in the cache (HasSynced). Rejects if stopped first. */
  start(): Promise<void> {
    if (!this.running || this.stopCtl?.signal.aborted) {
      // (Re)start; after a stop() that has not finished yet, the new loop begins when the old one has exited.
      const previous = this.running ?? Promise.resolve();
      const ctl = new AbortController();
      this.stopCtl = ctl;
      const running: Promise<void> = previous.then(() => this.run(ctl.signal)).finally(() => {
        if (this.running === running) this.running = undefined;
      });
      this.running = running;
    }
    if (this.synced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
  }

  /** Stop watching; the cache keeps its contents. Resolves when the loop has exited. */
  async stop(): Promise<void> {
    this.stopCtl?.abort(new StoppedError());
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const w of waiters) w.reject(new Error(`informer ${this.name} stopped before it synced`));
    await this.running;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** The resourceVersion the cache is at. */
  resourceVersion(): string {
    return this.rv;
  }

  /** Every cached object (of one namespace, if given). */
  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => (o.metadata?.namespace ?? '') === namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  /** Per-object events; `update` also gets the previous object. Returns an unsubscribe function. */
  on(event: 'add' | 'delete', cb: (obj: T) => void): () => void;
  on(event: 'update', cb: (obj: T, old: T) => void): () => void;
  on(event: InformerEventType, cb: Handler<T>): () => void {
    this.handlers[event].add(cb);
    return () => this.handlers[event].delete(cb);
  }

  /** Level-based: called (at most once per microtask turn) after the cache changed in any way. */
  onChange(cb: () => void): () => void {
    this.changeHandlers.add(cb);
    return () => this.changeHandlers.delete(cb);
  }

  stats(): InformerStats {
    const { restarts, relists, expired, watches, watchdogTimeouts, events } = this.counters;
    return { restarts, relists, expired, watches, watchdogTimeouts, events, lastActivity: this.lastActivity, synced: this.synced, resourceVersion: this.rv, size: this.cache.size };
  }

  // ---------------------------------------------------------------------------------------------------

  private selectors(): Query {
    return { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector };
  }

  private async run(stop: AbortSignal): Promise<void> {
    let failures = 0;
    let goneInARow = 0;
    const relistAfter = this.opts.relistAfterFailures ?? 5;
    while (!stop.aborted) {
      try {
        if (!this.rv) await this.relist(stop);
        const started = this.clock.now();
        const sawEvents = await this.watchOnce(stop);
        goneInARow = 0;
        if (sawEvents || this.clock.now() - started >= 1000) {
          failures = 0;
          this.backoff.reset();
        } else {
          // A watch that ends at once with nothing in it: do not spin (client-node 1.x did, 3,000 req/s).
          await sleep(this.clock, this.backoff.next(), stop);
        }
      } catch (e) {
        if (stop.aborted) break;
        if (isGone(e)) {
          this.counters.expired++;
          // Our resourceVersion was compacted away: list again. One in a row is normal; more means trouble.
          this.log.info({ rv: this.rv, err: describeError(e) }, 'resourceVersion expired (410 Gone); relisting');
          this.rv = '';
          if (goneInARow++ > 0) await sleep(this.clock, this.backoff.next(), stop).catch(() => undefined);
          continue;
        }
        failures++;
        this.counters.restarts++;
        if (e instanceof WatchdogTimeout) this.counters.watchdogTimeouts++;
        if (failures >= relistAfter && this.rv) {
          this.log.warn({ failures }, 'watch keeps failing; will relist');
          this.rv = '';
        }
        const delay = this.backoff.next();
        this.log.warn({ err: describeError(e), code: errorCode(e), attempt: failures, delayMs: delay, synced: this.synced }, 'list/watch failed; restarting after backoff');
        await sleep(this.clock, delay, stop).catch(() => undefined);
      }
    }
  }

  private async relist(stop: AbortSignal): Promise<void> {
    const pageSize = this.opts.pageSize ?? 500;
    let items: unknown[] = [];
    let rv = '';
    let cont: string | undefined;
    let paged = pageSize > 0;
    for (;;) {
      const q: Query = { ...this.selectors(), limit: paged ? pageSize : undefined, continue: cont };
      let page: ListPage;
      try {
        page = await this.client.list(this.path, q, stop);
      } catch (e) {
        if (isGone(e) && cont) {
          this.counters.expired++;
          // The continue token expired mid-list: take it all in one consistent, unpaged read.
          this.log.info('continue token expired; listing without pagination');
          items = [];
          cont = undefined;
          paged = false;
          continue;
        }
        throw e;
      }
      this.lastActivity = this.clock.now();
      items.push(...(page.items ?? []));
      rv = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue || undefined;
      if (!cont) break;
    }
    if (stop.aborted) throw new StoppedError();
    if (this.counters.lists++ > 0) this.counters.relists++;
    this.replace(items as T[], rv);
  }

  private replace(items: T[], rv: string): void {
    const next = new Map<string, T>();
    for (const o of items) next.set(keyOf(o), o);
    const old = this.cache;
    this.cache = next;
    this.rv = rv;
    let changed = false;
    for (const [k, o] of next) {
      const prev = old.get(k);
      if (!prev) {
        changed = true;
        this.emit('add', o);
      } else if (prev.metadata?.resourceVersion !== o.metadata?.resourceVersion) {
        changed = true;
        this.emit('update', o, prev);
      }
    }
    for (const [k, o] of old) {
      if (!next.has(k)) {
        changed = true;
        this.emit('delete', o);
      }
    }
    const first = !this.synced;
    if (first) {
      this.synced = true;
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      for (const w of waiters) w.resolve();
      this.log.info({ objects: next.size, rv }, 'synced');
    } else {
      this.log.debug({ objects: next.size, rv }, 'relisted');
    }
    if (changed || first) this.changed();
  }

  /** One watch; resolves true if it delivered at least one event. */
  private async watchOnce(stop: AbortSignal): Promise<boolean> {
    const base = this.opts.watchTimeoutSeconds ?? 60;
    const timeoutSeconds = Math.max(1, Math.round(jittered(base, 0.25, this.random)));
    const idleMs = this.opts.idleTimeoutMs ?? 2 * timeoutSeconds * 1000;
    const ctl = new AbortController();
    const onStop = (): void => ctl.abort(stop.reason);
    stop.addEventListener('abort', onStop, { once: true });
    let timer: TimerHandle | undefined;
    const arm = (): void => {
      this.clock.clearTimeout(timer);
      timer = this.clock.setTimeout(() => ctl.abort(new WatchdogTimeout(idleMs)), idleMs);
    };
    let sawEvents = false;
    let watchError: unknown;
    const onEvent = (ev: WatchEvent): void => {
      arm();
      if (ev.type === 'ERROR') {
        const s = (ev.object ?? {}) as { code?: number; reason?: string; message?: string };
        watchError = apiError(typeof s.code === 'number' ? s.code : 500, JSON.stringify(ev.object ?? {}));
        ctl.abort(watchError);
        return;
      }
      const obj = ev.object as T;
      const rv = obj?.metadata?.resourceVersion;
      if (ev.type === 'BOOKMARK') {
        if (rv) this.rv = rv;
        return;
      }
      if (ev.type !== 'ADDED' && ev.type !== 'MODIFIED' && ev.type !== 'DELETED') return;
      sawEvents = true;
      this.counters.events++;
      this.apply(ev.type, obj);
      if (rv) this.rv = rv;
    };
    const onData = (): void => {
      this.lastActivity = this.clock.now();
      arm();
    };
    this.counters.watches++;
    arm();
    try {
      await this.client.watch(this.path, {
        watch: true,
        resourceVersion: this.rv,
        allowWatchBookmarks: true,
        timeoutSeconds,
        ...this.selectors(),
      }, onEvent, ctl.signal, onData);
      if (watchError) throw watchError;
      return sawEvents;
    } catch (e) {
      // Prefer the reason we aborted with (watch ERROR event, watchdog, stop) over the socket's AbortError.
      const reason: unknown = ctl.signal.aborted ? ctl.signal.reason : undefined;
      throw watchError ?? (reason instanceof Error ? reason : e);
    } finally {
      this.clock.clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
    }
  }

  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T): void {
    const key = keyOf(obj);
    const prev = this.cache.get(key);
    if (type === 'DELETED') {
      if (!prev) return;
      this.cache.delete(key);
      this.emit('delete', obj);
    } else if (!prev) {
      this.cache.set(key, obj);
      this.emit('add', obj);
    } else {
      if (prev.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
      this.cache.set(key, obj);
      this.emit('update', obj, prev);
    }
    this.changed();
  }

  private emit(event: InformerEventType, obj: T, old?: T): void {
    for (const cb of this.handlers[event]) {
      try {
        cb(obj, old as T);
      } catch (e) {
        this.log.error({ err: describeError(e), event, key: keyOf(obj) }, 'informer event handler threw');
      }
    }
  }

  private changed(): void {
    if (this.changePending || this.changeHandlers.size === 0) return;
    this.changePending = true;
    queueMicrotask(() => {
      this.changePending = false;
      for (const cb of this.changeHandlers) {
        try {
          cb();
        } catch (e) {
          this.log.error({ err: describeError(e) }, 'informer change handler threw');
        }
      }
    });
  }
}

function isListWatchClient(x: unknown): x is ListWatchClient {
  return typeof x === 'object' && x !== null && typeof (x as ListWatchClient).list === 'function' && typeof (x as ListWatchClient).watch === 'function';
}
