/**
 * A keyed work queue with client-go's guarantees: a key is queued at most once however often it is added
 * (dedupe), a key is processed by one worker at a time (added again while in flight, it is queued after
 * `done`), failed keys come back after a per-key exponential backoff, and `addAfter` schedules a key (an
 * earlier schedule wins). Reconcilers are level-based: the key says what to look at, the cache says what
 * it looks like now.
 *
 *   const q = new WorkQueue({ name: 'virtualservices', onDepth: (n) => depthGauge.set(n) });
 *   informer.on('add', (o) => q.add(keyOf(o)));
 *   await q.run(async (key) => reconcile(key), { concurrency: 2 });
 */
import { realClock } from './clock.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { describeError } from './errors.ts';
import { createLogger } from '../util/log.ts';
import type { Logger } from '../util/log.ts';

export interface WorkQueueOptions {
  name?: string;
  /** First retry delay (default 5 ms), doubled per failure of the same key. */
  baseDelayMs?: number;
  /** Retry delay cap (default 5 min). */
  maxDelayMs?: number;
  /** Called with the number of queued (ready, not in flight) keys whenever it changes. */
  onDepth?: (depth: number) => void;
  clock?: Clock;
  logger?: Logger;
}

export interface WorkQueueStats {
  depth: number;
  inFlight: number;
  waiting: number;
  adds: number;
  retries: number;
}

/** What a handler may return: come back after a delay even though it succeeded. */
export interface HandlerResult {
  requeueAfterMs?: number;
}

/** A failure that retrying cannot fix: logged, not requeued (controller-runtime's TerminalError). */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

let moduleLogger: Logger | undefined;

export class WorkQueue<K extends string = string> {
  readonly name: string;
  private readonly queue: K[] = [];
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly waiting = new Map<K, { at: number; timer: TimerHandle }>();
  private readonly failures = new Map<K, number>();
  private readonly getters: Array<(k: K | undefined) => void> = [];
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly onDepth: ((n: number) => void) | undefined;
  private shutdown = false;
  private adds = 0;
  private retries = 0;
  private lastDepth = -1;

  constructor(opts: WorkQueueOptions = {}) {
    this.name = opts.name ?? 'queue';
    this.clock = opts.clock ?? realClock;
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 5 * 60_000;
    this.onDepth = opts.onDepth;
    this.log = (opts.logger ?? (moduleLogger ??= createLogger('kube.workqueue'))).child({ queue: this.name });
  }

  /** Queue `key` unless it is already queued; if it is in flight, it is queued when `done` is called. */
  add(key: K): void {
    if (this.shutdown || this.dirty.has(key)) return;
    this.adds++;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const getter = this.getters.shift();
    if (getter) {
      this.dirty.delete(key);
      this.processing.add(key);
      getter(key);
      return;
    }
    this.queue.push(key);
    this.depthChanged();
  }

  /** Queue `key` after `delayMs` (at once if ≤ 0). An earlier pending schedule of the key wins. */
  addAfter(key: K, delayMs: number): void {
    if (this.shutdown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + delayMs;
    const w = this.waiting.get(key);
    if (w && w.at <= at) return;
    if (w) this.clock.clearTimeout(w.timer);
    const timer = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { at, timer });
  }

  /** Queue `key` after its backoff: baseDelay × 2^(failures so far), capped; counts one more failure. */
  addRateLimited(key: K): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.retries++;
    this.addAfter(key, Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** n));
  }

  /** Reset the failure count of `key` (after a success). */
  forget(key: K): void {
    this.failures.delete(key);
  }

  numRequeues(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key (marked in flight until `done`), or undefined once the queue is shut down. */
  get(): Promise<K | undefined> {
    if (this.shutdown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      this.depthChanged();
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Processing of `key` finished; if it was added meanwhile, it is queued again. */
  done(key: K): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  /** Queued keys (ready, not in flight). */
  len(): number {
    return this.queue.length;
  }

  stats(): WorkQueueStats {
    return { depth: this.queue.length, inFlight: this.processing.size, waiting: this.waiting.size, adds: this.adds, retries: this.retries };
  }

  isShutDown(): boolean {
    return this.shutdown;
  }

  /** Stop handing out keys: waiting `get`s resolve undefined, scheduled adds are dropped. Queued keys are not drained. */
  shutDown(): void {
    if (this.shutdown) return;
    this.shutdown = true;
    for (const w of this.waiting.values()) this.clock.clearTimeout(w.timer);
    this.waiting.clear();
    for (const g of this.getters.splice(0)) g(undefined);
  }

  /**
   * Run `concurrency` workers until shut down (or `signal` aborts, which shuts the queue down). A handler
   * that throws gets its key retried with backoff (not for TerminalError); success forgets the failures;
   * `requeueAfterMs` schedules it again. Resolves when every worker finished its current key.
   */
  async run(handler: (key: K) => Promise<HandlerResult | void>, opts: { concurrency?: number; signal?: AbortSignal } = {}): Promise<void> {
    const onAbort = (): void => this.shutDown();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) this.shutDown();
    const worker = async (): Promise<void> => {
      for (;;) {
        const key = await this.get();
        if (key === undefined) return;
        try {
          const r = await handler(key);
          this.forget(key);
          if (r && r.requeueAfterMs !== undefined) this.addAfter(key, r.requeueAfterMs);
        } catch (e) {
          if (e instanceof TerminalError) {
            this.forget(key);
            this.log.error({ key, err: describeError(e) }, 'reconcile failed terminally; not retrying');
          } else {
            this.log.warn({ key, err: describeError(e), failures: this.numRequeues(key) + 1 }, 'reconcile failed; retrying with backoff');
            this.addRateLimited(key);
          }
        } finally {
          this.done(key);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, worker));
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  private depthChanged(): void {
    const n = this.queue.length;
    if (n === this.lastDepth) return;
    this.lastDepth = n;
    try {
      this.onDepth?.(n);
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'onDepth hook threw');
    }
  }
}
