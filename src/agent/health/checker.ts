import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../../util/log.ts';
import { realClock } from './clock.ts';
import { defaultProbe } from './probes.ts';
import { RiseFall } from './state.ts';
import type { Clock, HealthState, HealthTarget, Probe, ProbeResult, TimerHandle } from './types.ts';

export interface HealthCheckerOptions {
  /** Runs one check; defaults to the real TCP/HTTP/HTTPS probes. */
  probe?: Probe;
  clock?: Clock;
  /** In [0, 1): spreads each target's first check over its interval. */
  random?: () => number;
  log?: Logger;
}

/** Events of the checker: 'change' fires only when a target flips between healthy and unhealthy. */
export interface HealthCheckerEvents {
  change: [id: string, healthy: boolean, reason: string];
}

interface Entry {
  target: HealthTarget;
  health: RiseFall;
  timer?: TimerHandle;
  /** Aborts the check in flight, if any; identity also tells a stale result from a current one. */
  inflight?: AbortController;
  stopped: boolean;
}

/**
 * Active health checking of realservers, like keepalived's checkers. Every target is checked on its own
 * timer, concurrently, one check in flight per target; the caller is never blocked.
 *
 * A target starts healthy (keepalived's `alpha` off) so a new service serves at once; it turns unhealthy
 * after `fall` consecutive failed checks and healthy again after `rise` consecutive good ones. `None`
 * checks are always healthy. Removing a target emits nothing.
 */
export class HealthChecker extends EventEmitter<HealthCheckerEvents> {
  private readonly entries = new Map<string, Entry>();
  private readonly probe: Probe;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;

  constructor(options: HealthCheckerOptions = {}) {
    super();
    this.probe = options.probe ?? defaultProbe;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log = options.log ?? createLogger('health');
  }

  /**
   * Reconciles the checked set: new targets start, missing ones stop. A target whose address, port or
   * check kind/port/path/host/statuses changed restarts from scratch (healthy); one whose only change is
   * interval, timeout, rise or fall keeps its state and counters.
   */
  setTargets(targets: readonly HealthTarget[]): void {
    const next = new Map(targets.map((t) => [t.id, t]));
    for (const [id, entry] of this.entries) {
      if (!next.has(id)) this.remove(id, entry);
    }
    for (const target of next.values()) this.setTarget(target);
  }

  /** Adds or updates one target, as setTargets does for each of its targets; the others are left alone. */
  setTarget(target: HealthTarget): void {
    const entry = this.entries.get(target.id);
    if (!entry) {
      this.add(target);
    } else if (!sameProbe(entry.target, target)) {
      const wasHealthy = entry.health.healthy;
      this.remove(target.id, entry);
      this.add(target);
      if (!wasHealthy) this.emitChange(target.id, true, 'health check changed');
    } else if (!sameTiming(entry.target, target)) {
      const intervalChanged = entry.target.check.intervalSeconds !== target.check.intervalSeconds;
      entry.target = target;
      // A pending check is re-spread over the new interval; one in flight reschedules itself when done.
      if (intervalChanged && entry.timer !== undefined) {
        this.clock.clearTimeout(entry.timer);
        this.schedule(entry, this.jitter(target));
      }
    } else {
      entry.target = target;
    }
  }

  /** Stops checking one target (emits nothing); unknown ids are ignored. */
  removeTarget(id: string): void {
    const entry = this.entries.get(id);
    if (entry) this.remove(id, entry);
  }

  /** Current state of a target; 'unknown' if it is not checked by this checker. */
  state(id: string): HealthState {
    const entry = this.entries.get(id);
    if (!entry) return 'unknown';
    return entry.health.healthy ? 'healthy' : 'unhealthy';
  }

  /** Stops every check, aborting those in flight. The checker may be given targets again afterwards. */
  stop(): void {
    for (const [id, entry] of this.entries) this.remove(id, entry);
  }

  private add(target: HealthTarget): void {
    const entry: Entry = { target, health: new RiseFall(), stopped: false };
    this.entries.set(target.id, entry);
    if (target.check.type !== 'None') this.schedule(entry, this.jitter(target));
  }

  private remove(id: string, entry: Entry): void {
    entry.stopped = true;
    if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.inflight?.abort();
    entry.inflight = undefined;
    this.entries.delete(id);
  }

  private jitter(target: HealthTarget): number {
    return Math.floor(this.random() * target.check.intervalSeconds * 1000);
  }

  private schedule(entry: Entry, delayMs: number): void {
    entry.timer = this.clock.setTimeout(() => {
      entry.timer = undefined;
      void this.run(entry);
    }, delayMs);
  }

  private async run(entry: Entry): Promise<void> {
    const target = entry.target;
    const started = this.clock.now();
    const controller = new AbortController();
    entry.inflight = controller;
    const result = await this.checkOnce(target, controller);
    if (entry.stopped || entry.inflight !== controller) return; // removed or restarted meanwhile
    entry.inflight = undefined;

    const { rise, fall, intervalSeconds } = entry.target.check; // may have changed while in flight
    this.log.debug({ target: target.id, ok: result.ok, reason: result.reason }, 'health check');
    if (entry.health.record(result.ok, rise, fall)) this.emitChange(target.id, entry.health.healthy, result.reason);
    const elapsed = this.clock.now() - started;
    this.schedule(entry, Math.max(0, intervalSeconds * 1000 - elapsed));
  }

  /** One probe, bounded by the timeout whether or not the probe honours its abort signal. */
  private async checkOnce(target: HealthTarget, controller: AbortController): Promise<ProbeResult> {
    const { timeoutSeconds } = target.check;
    let timer: TimerHandle | undefined;
    const timeout = new Promise<ProbeResult>((resolve) => {
      timer = this.clock.setTimeout(() => {
        controller.abort();
        resolve({ ok: false, reason: `timeout after ${timeoutSeconds}s` });
      }, timeoutSeconds * 1000);
    });
    try {
      return await Promise.race([this.probe(target, controller.signal), timeout]);
    } catch (err) {
      return { ok: false, reason: `probe failed: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  private emitChange(id: string, healthy: boolean, reason: string): void {
    this.log.info({ target: id, healthy, reason }, healthy ? 'realserver healthy' : 'realserver unhealthy');
    try {
      this.emit('change', id, healthy, reason);
    } catch (err) {
      // A failing listener must not kill the check loop of this target.
      this.log.error({ target: id, err }, 'health change listener failed');
    }
  }
}

function sameProbe(a: HealthTarget, b: HealthTarget): boolean {
  const x = a.check;
  const y = b.check;
  return a.address === b.address && a.port === b.port && x.type === y.type && x.port === y.port
    && x.path === y.path && x.host === y.host && sameStatuses(x.expectedStatuses, y.expectedStatuses);
}

function sameTiming(a: HealthTarget, b: HealthTarget): boolean {
  const x = a.check;
  const y = b.check;
  return x.intervalSeconds === y.intervalSeconds && x.timeoutSeconds === y.timeoutSeconds && x.rise === y.rise
    && x.fall === y.fall;
}

/** Statuses are a set, and absent or empty means [200]: compare what the probe will accept. */
function sameStatuses(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  const norm = (s: readonly number[] | undefined): number[] => [...new Set(s?.length ? s : [200])].sort((p, q) => p - q);
  const sa = norm(a);
  const sb = norm(b);
  return sa.length === sb.length && sa.every((v, i) => v === sb[i]);
}
