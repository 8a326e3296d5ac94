/**
 * Time as the kube layer sees it: a monotonic clock for durations (leases are judged by locally observed
 * time, never by timestamps written by other machines), the wall clock for timestamps written to the API,
 * and timers. Injected so that the leader election, the work queue and the event recorder run under a
 * fake clock in unit tests.
 */

export interface TimerHandle {
  /** Opaque. */
  readonly id: number;
}

export interface Clock {
  /** Monotonic milliseconds (arbitrary origin). Use for durations and expiry. */
  now(): number;
  /** Wall-clock time, for timestamps written to the API server. */
  wallNow(): Date;
  setTimeout(cb: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

let nextId = 1;

/** The process clock: performance.now() (monotonic) and Date. Timers are unref'd so they never keep the process alive. */
export const realClock: Clock = (() => {
  const timers = new Map<number, NodeJS.Timeout>();
  return {
    now: () => performance.now(),
    wallNow: () => new Date(),
    setTimeout(cb: () => void, ms: number): TimerHandle {
      const id = nextId++;
      const t = setTimeout(() => {
        timers.delete(id);
        cb();
      }, Math.max(0, ms));
      t.unref();
      timers.set(id, t);
      return { id };
    },
    clearTimeout(handle: TimerHandle | undefined): void {
      if (!handle) return;
      const t = timers.get(handle.id);
      if (t) clearTimeout(t);
      timers.delete(handle.id);
    },
  };
})();

/** Resolves after `ms` on `clock`, or rejects with the signal's reason when it aborts first. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(abortReason(signal!));
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error(String(r ?? 'aborted'));
}

interface FakeTimer {
  id: number;
  at: number;
  seq: number;
  cb: () => void;
}

/**
 * A manual clock for tests. `advance(ms)` fires due timers in order and lets promise chains settle between
 * them (a macrotask turn per timer), so async code driven by timers runs as it would in real time.
 */
export class FakeClock implements Clock {
  private t: number;
  private readonly wallOrigin: number;
  private readonly timers = new Map<number, FakeTimer>();
  private seq = 0;

  constructor(startMs = 1_000_000, wallOrigin = Date.UTC(2025, 0, 1, 0, 0, 0)) {
    this.t = startMs;
    this.wallOrigin = wallOrigin - startMs;
  }

  now(): number {
    return this.t;
  }

  wallNow(): Date {
    return new Date(this.wallOrigin + this.t);
  }

  setTimeout(cb: () => void, ms: number): TimerHandle {
    const id = nextId++;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), seq: this.seq++, cb });
    return { id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle) this.timers.delete(handle.id);
  }

  /** Number of pending timers. */
  pending(): number {
    return this.timers.size;
  }

  /** Let queued promise callbacks and I/O-free async code run (a few macrotask turns). */
  async settle(turns = 5): Promise<void> {
    for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
  }

  /** A stall (GC pause, starved process): time jumps by `ms` with no timer firing, then the due ones fire late. */
  async stall(ms: number): Promise<void> {
    this.t += ms;
    await this.advance(0);
  }

  /** Move time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    await this.settle();
    for (;;) {
      let next: FakeTimer | undefined;
      for (const timer of this.timers.values()) {
        if (timer.at <= target && (!next || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) next = timer;
      }
      if (!next) break;
      this.timers.delete(next.id);
      this.t = Math.max(this.t, next.at);
      next.cb();
      await this.settle();
    }
    this.t = target;
    await this.settle();
  }
}
