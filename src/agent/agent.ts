/**
 * The agent loop: holds the node's current plan, reconciles director and realserver parts whenever the
 * plan or a health verdict changes and on a periodic resync (which repairs drift such as `ipvsadm -C`),
 * one reconcile at a time. Stopping never tears anything down: a restarting agent must not drop traffic.
 *
 * A plan change costs work in proportion to the change: setPlan finds the services that differ from the
 * previous plan (by identity, then by value), updates only their health checks, and the next run hands
 * the director reconciler only those services and the ids that left. The first run (and the one after a
 * failed run) is a full run over the whole plan that reads the kernel. The periodic resync does the same
 * work as a sweep: the kernel's services are read ahead, outside any run, then the plan is compared with the
 * kernel slice by slice, each slice a short run of its own (which reads its services' destinations) with a
 * pause after it, so that a plan change meanwhile waits for one slice at most, not for all of it.
 */
import type { NodePlan, PlannedService } from '../model/plan.ts';
import { emptyPlan } from '../model/plan.ts';
import type { Logger } from '../util/log.ts';
import type { HealthChecker } from './health/checker.ts';
import type { HealthTarget } from './health/types.ts';
import type { DirectorReconciler, DirectorReport, HealthLookup, ServiceReport } from './director/reconciler.ts';
import type { RealServerReconciler, RealServerVipReport } from './realserver/reconciler.ts';
import { deepEqual, planDelta, swappedDelta } from './plandelta.ts';

/** One run of the agent as the hooks see it: live tables plus what this run changed in them. */
export interface AgentRun {
  node: string;
  /** ISO time the reconcile finished. */
  time: string;
  durationMs: number;
  /** A full run (whole plan, kernel read): every director report counts as changed. */
  full: boolean;
  director: DirectorReport;
  realServer: readonly RealServerVipReport[];
  /** Whether `realServer` was reconciled in this run. */
  realServerChanged: boolean;
  /** Health verdict per destination (`${service}|${address}|${port}` → healthy): the agent's live table. */
  health: ReadonlyMap<string, boolean>;
  /** Verdicts set, changed or dropped since the previous run (dropped ones are absent from `health`). */
  healthChanged: readonly string[];
}

/** A run as plain JSON (the status file, `--once`, teardown): whole tables, so it costs O(plan) to build. */
export interface AgentReport {
  node: string;
  time: string;
  durationMs: number;
  full: boolean;
  director: { services: ServiceReport[]; failed: number; ops: number; drift: number };
  realServer: RealServerVipReport[];
  /** Health verdict per destination: `${service}|${address}|${port}` → healthy. */
  health: Record<string, boolean>;
}

export function reportOf(run: AgentRun): AgentReport {
  const { services, failed, ops, drift } = run.director;
  return {
    node: run.node,
    time: run.time,
    durationMs: run.durationMs,
    full: run.full,
    director: { services: [...services.values()], failed, ops, drift },
    realServer: [...run.realServer],
    health: Object.fromEntries(run.health),
  };
}

/** Services and realserver VIPs not fully programmed after `run`. */
export const failedCount = (run: AgentRun): number => run.director.failed + run.realServer.filter((r) => !r.ok).length;

export interface AgentHooks {
  onReport?: (run: AgentRun) => void;
  onError?: (err: Error) => void;
  onHealthChange?: (id: string, healthy: boolean, reason: string) => void;
  /** Every plan given to setPlan, before the run it triggers (director failover keeps its elections in step). */
  onPlan?: (plan: NodePlan) => void;
}

export interface AgentOptions extends AgentHooks {
  node: string;
  director: DirectorReconciler;
  realServer: RealServerReconciler;
  health: HealthChecker;
  log: Logger;
  /** Seconds between full resyncs (drift repair, drain progress): the least gap from one's end to the next. */
  resyncSeconds?: number;
  /**
   * The gap is also at least this many times the last full run's duration (a sweep's: its read and its
   * runs; default 10): at 5,000 services a full run reads 55,000 kernel objects, and on a slow node (15–22 s
   * in the emulated lab VM) a fixed 10 s gap kept the agent in full runs 60% of the time, every plan change
   * meeting one waiting for its end.
   */
  resyncDutyFactor?: number;
  /** Services per slice of a periodic resync, at most (default 150). */
  sweepSlice?: number;
  /**
   * The time a slice should take, in ms (default 25; 0: every slice has sweepSlice services). A change that
   * meets a resync waits for the slice in flight, and what a service costs differs a hundredfold between
   * nodes (150 services took 3–4 ms natively, 40–200 ms in the emulated lab VM): each slice is sized from the
   * time the last one took per service, between 10 services and sweepSlice. The first slice, with nothing
   * measured yet, takes 10 (it took sweepSlice: 150 services, 1.3 s in the lab VM, a change waiting behind
   * it), and a slice at most twice its predecessor (one quick slice is not a measure of the next).
   */
  sweepSliceMs?: number;
  /**
   * How the sweep paces itself (default 3): after each slice (which reads its services' destinations from
   * the kernel, then compares), it waits this many times as long as the slice took (at most
   * MAX_SWEEP_PAUSE_MS), so that it keeps to about 1 / (1 + sweepPause) of a CPU; 0 runs it at full speed.
   * At 5,000 services the sweep is 5–7 s of CPU in the emulated lab VM: at full speed that took one of the
   * host's two cores from the changes (and from kubectl) that met it, and on a real director it competes
   * with health checks and the node's other work.
   */
  sweepPause?: number;
}

/** The longest wait between two slices of a paced sweep. */
const MAX_SWEEP_PAUSE_MS = 1000;

/** The fewest services a sweep's slice takes, however slow they are. */
const MIN_SLICE = 10;

export const healthId = (service: string, address: string, port: number): string => `${service}|${address}|${port}`;
/** The service id of a health target id (VirtualService ids never contain '|'). */
const serviceOfHealthId = (id: string): string => id.slice(0, id.indexOf('|'));

export function serviceHealthTargets(s: PlannedService): HealthTarget[] {
  return s.destinations.map((d) => ({
    id: healthId(s.id, d.address, d.port),
    address: d.address,
    port: d.port,
    // HTTP checks ask for the service's name, as a client of the VIP would.
    check: { ...s.healthCheck, host: s.healthCheck.host ?? s.vip },
  }));
}

export function healthTargets(services: readonly PlannedService[]): HealthTarget[] {
  return services.flatMap(serviceHealthTargets);
}

export class Agent {
  readonly #o: AgentOptions;
  #plan: NodePlan;
  /** The plan's director services by id, kept in step with #plan. */
  readonly #byId = new Map<string, PlannedService>();
  /** Service ids changed (in the plan or in health) since the last run started. */
  #dirty = new Set<string>();
  #realServerDirty = true;
  #realServer: readonly RealServerVipReport[] = [];
  /** Health target ids of each planned service. */
  readonly #targets = new Map<string, string[]>();
  /** Health verdict per target id (no verdict yet counts as healthy). */
  readonly #verdicts = new Map<string, boolean>();
  #healthChanged = new Set<string>();
  #running: Promise<AgentRun> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  /** start() was called and stop() not: periodic resyncs are on. */
  #periodic = false;
  #fullRunning = false;
  /** stop() was called. */
  #stopped = false;
  /** Full runs started so far. */
  #fullRuns = 0;
  /** Duration of the last full run, ms (sizes the gap before the next one). */
  #lastFullMs = 0;
  #last: AgentRun | undefined;
  /** The next run is a full one (the first, the periodic resync, and after a failed run). */
  #resync = true;
  /** A periodic resync in progress: the plan's ids when it began, how far it got, who waits for its end. */
  #sweep: { ids: string[]; next: number; slices: number; started: number; readMs: number; lockedMs: number; resumeAt: number; done: (run: AgentRun | undefined) => void } | undefined;
  /** The paced sweep's next step (a timer while it pauses). */
  #sweepTimer: NodeJS.Timeout | undefined;
  /** Services in a sweep's next slice (sized by sweepSliceMs; kept from one sweep to the next). */
  #sliceSize: number | undefined;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#plan = emptyPlan(options.node);
    options.health.on('change', (id, healthy, reason) => {
      const service = serviceOfHealthId(id);
      if (!this.#verdicts.has(id)) return; // a target that was just removed
      this.#verdicts.set(id, healthy);
      this.#healthChanged.add(id);
      this.#dirty.add(service);
      options.log.info({ destination: id, healthy, reason }, healthy ? 'realserver healthy' : 'realserver unhealthy');
      options.onHealthChange?.(id, healthy, reason);
      this.trigger();
    });
  }

  get #pause(): number {
    return Math.max(0, this.#o.sweepPause ?? 3);
  }

  get plan(): NodePlan {
    return this.#plan;
  }

  get lastReport(): AgentRun | undefined {
    return this.#last;
  }

  /**
   * `swapped` (optional): `plan` is `swapped.base` (a plan given before) with exactly these director entries
   * put where the entries with their ids were, nothing else replaced. Taken only when `base` is the current
   * plan: the delta then looks at those entries instead of comparing all the plan's services.
   */
  setPlan(plan: NodePlan, swapped?: { base: NodePlan; director: readonly PlannedService[] }): void {
    const fromSwapped = swapped?.base === this.#plan && plan.director.length === this.#plan.director.length ? swappedDelta(this.#byId, swapped.director) : undefined;
    const delta = fromSwapped ?? planDelta(this.#byId, this.#plan.director, plan.director);
    if (plan.realServer !== this.#plan.realServer && !deepEqual(plan.realServer, this.#plan.realServer)) this.#realServerDirty = true;
    this.#plan = plan;
    this.#o.onPlan?.(plan);
    for (const s of delta.changed) this.#updateTargets(s.id, s);
    for (const id of delta.removed) this.#updateTargets(id, undefined);
    this.trigger();
  }

  /** Brings one service's health targets (and verdicts) in line with its planned object. */
  #updateTargets(id: string, s: PlannedService | undefined): void {
    const health = this.#o.health;
    this.#dirty.add(id);
    const next = s ? serviceHealthTargets(s) : [];
    const ids = new Set(next.map((t) => t.id));
    for (const old of this.#targets.get(id) ?? []) {
      if (ids.has(old)) continue;
      health.removeTarget(old);
      this.#verdicts.delete(old);
      this.#healthChanged.add(old);
    }
    for (const t of next) {
      health.setTarget(t);
      const verdict = health.state(t.id) !== 'unhealthy';
      if (this.#verdicts.get(t.id) === verdict) continue;
      this.#verdicts.set(t.id, verdict);
      this.#healthChanged.add(t.id);
    }
    if (s) this.#targets.set(id, [...ids]);
    else this.#targets.delete(id);
  }

  start(): void {
    this.#stopped = false;
    this.#periodic = true;
    this.#armResync();
  }

  /**
   * The next periodic resync, counted from the end of the last full run: a full run takes seconds at
   * 5,000 services (longer on a starved host), and counted from its start every run became a full one,
   * with each plan change waiting for one or two of them. The gap grows with the run's duration
   * (resyncDutyFactor), so full runs take at most about a tenth of the agent's time.
   */
  #armResync(): void {
    if (!this.#periodic) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      // A full run in flight does the resync's work and arms the next one when it ends.
      if (this.#fullRunning) return;
      this.periodicResync().catch(this.#runFailed);
    }, this.nextResyncMs);
    this.#timer.unref();
  }

  /** Services in a sweep's next slice: sweepSlice, or when slices are timed (sweepSliceMs) as sized by the last one. */
  #nextSliceSize(): number {
    const most = this.#o.sweepSlice ?? 150;
    if ((this.#o.sweepSliceMs ?? 25) <= 0) return most;
    return this.#sliceSize ?? Math.min(MIN_SLICE, most);
  }

  /** The gap from the end of the last full run to the next periodic one. */
  get nextResyncMs(): number {
    return Math.max((this.#o.resyncSeconds ?? 10) * 1000, (this.#o.resyncDutyFactor ?? 10) * this.#lastFullMs);
  }

  /**
   * The periodic resync (drift repair, drain progress) as a sweep: reads the kernel's services first, outside
   * any run, then compares the plan with the kernel in slices of `sweepSlice` services, each slice a run of
   * its own (paced: sweepPause), and ends with a run for what is not per service (orphans, sysctl claims and
   * VIPs nobody needs). Plan changes go first whenever one waits, so a change that meets a resync waits for
   * one slice, not for the whole comparison (1–3 s at 5,000 services in the emulated lab VM). Resolves with
   * the last run (a full one), or with none when the agent was stopped or a full run came first (that one
   * did the work).
   */
  async periodicResync(): Promise<AgentRun | undefined> {
    if (this.#sweep) return undefined;
    const fullRuns = this.#fullRuns;
    const started = performance.now();
    const swept = await this.#o.director.beginSweep();
    const readMs = performance.now() - started;
    if (this.#stopped || this.#fullRuns !== fullRuns || this.#sweep) return undefined;
    if (!swept) return this.resync();
    this.#fullRuns += 1;
    this.#fullRunning = true;
    return new Promise((done) => {
      this.#sweep = { ids: [...this.#byId.keys()], next: 0, slices: 0, started, readMs, lockedMs: 0, resumeAt: 0, done };
      this.trigger();
    });
  }

  /** Runs a full reconcile now: reads the kernel (under the run lock), repairs drift. */
  async resync(): Promise<AgentRun> {
    this.#resync = true;
    return this.reconcile();
  }

  /**
   * These services must be looked at again although their plan did not change (their VIP was taken or given
   * up by the election): a change-driven run over them, not a full one (which reads the whole kernel and at
   * thousands of services takes seconds, all of them added to a takeover).
   */
  touch(ids: readonly string[]): Promise<AgentRun> {
    for (const id of ids) this.#dirty.add(id);
    return this.reconcile();
  }

  /** Reconciles soon; calls while a reconcile runs coalesce into one more run. */
  trigger(): void {
    this.reconcile().catch(this.#runFailed);
  }

  /** A run nobody awaits failed: logged and handed to the onError hook. */
  readonly #runFailed = (e: unknown): void => {
    this.#o.log.error({ err: (e as Error).message }, 'reconcile failed');
    this.#o.onError?.(e as Error);
  };

  /** Runs a reconcile now (or joins the one in flight and runs once more after it). */
  async reconcile(): Promise<AgentRun> {
    if (this.#running) {
      this.#again = true;
      return this.#running.then(() => this.#running ?? this.reconcile());
    }
    this.#running = this.#once().finally(() => {
      this.#running = undefined;
      clearTimeout(this.#sweepTimer);
      this.#sweepTimer = undefined;
      if (this.#again) {
        this.#again = false;
        this.trigger();
      } else if (this.#sweep) {
        // The sweep's next step, after the event loop has run (a slice with nothing to change never waits
        // for I/O, and run after run in microtasks the sweep would keep a plan change out), or after its pause.
        const wait = this.#sweep.resumeAt - performance.now();
        if (wait > 0) {
          const sweep = this.#sweep;
          this.#sweepTimer = setTimeout(() => {
            sweep.resumeAt = 0; // over, whatever the clocks say (timers round to whole ms)
            this.trigger();
          }, wait);
          this.#sweepTimer.unref();
        } else setImmediate(() => this.trigger());
      }
    });
    return this.#running;
  }

  async #once(): Promise<AgentRun> {
    const started = performance.now();
    const plan = this.#plan;
    const health = this.#o.health;
    const full = this.#resync;
    const dirty = this.#dirty;
    const healthChanged = this.#healthChanged;
    const realServerDirty = this.#realServerDirty;
    // A full run does a sweep's work (it reads the kernel itself): the sweep ends with it. So does stop().
    let sweep = this.#sweep;
    if (sweep && (full || this.#stopped)) {
      this.#sweep = undefined;
      if (!full) {
        this.#fullRunning = false;
        sweep.done(undefined);
        sweep = undefined;
      }
    }
    // A sweep's step runs when no plan change waits and its pause is over.
    const step = !full && sweep && dirty.size === 0 && !realServerDirty && started >= sweep.resumeAt ? (sweep.next < sweep.ids.length ? 'slice' : 'finish') : undefined;
    this.#resync = false;
    if (full) {
      this.#fullRunning = true;
      this.#fullRuns += 1;
    }
    this.#dirty = new Set();
    this.#healthChanged = new Set();
    this.#realServerDirty = false;
    const healthy: HealthLookup = (svc, address, port) => {
      const s = health.state(healthId(svc, address, port));
      return s === 'unknown' ? undefined : s === 'healthy';
    };
    let director: DirectorReport;
    /** Services in this run's slice. */
    let sliced = 0;
    try {
      if (full) {
        director = await this.#o.director.reconcile(plan.director, healthy, { resync: true });
      } else if (step === 'slice') {
        const ids = sweep!.ids.slice(sweep!.next, sweep!.next + this.#nextSliceSize());
        sweep!.next += ids.length;
        sliced = ids.length;
        sweep!.slices += 1;
        director = await this.#o.director.sweepSlice(ids.flatMap((id) => this.#byId.get(id) ?? []), healthy);
      } else if (step === 'finish') {
        director = await this.#o.director.finishSweep((id) => this.#byId.has(id), healthy);
      } else {
        const upsert: PlannedService[] = [];
        const remove: string[] = [];
        for (const id of dirty) {
          const s = this.#byId.get(id);
          if (s) upsert.push(s);
          else remove.push(id);
        }
        director = await this.#o.director.reconcileChanges({ upsert, remove }, healthy);
      }
      if (full || step === 'finish' || realServerDirty) this.#realServer = await this.#o.realServer.reconcile(plan.realServer);
    } catch (e) {
      // What this run was to do is not lost: the next run is a full one (a sweep in progress ends with it).
      this.#resync = true;
      for (const id of healthChanged) this.#healthChanged.add(id);
      if (full || step === 'finish') sweep?.done(undefined);
      throw e;
    } finally {
      if (sweep && step) {
        const ms = performance.now() - started;
        sweep.lockedMs += ms;
        sweep.resumeAt = performance.now() + Math.min(MAX_SWEEP_PAUSE_MS, ms * this.#pause);
        const target = this.#o.sweepSliceMs ?? 25;
        if (step === 'slice' && target > 0 && sliced > 0) {
          const fits = Math.round((target * sliced) / Math.max(ms, 0.01));
          this.#sliceSize = Math.max(MIN_SLICE, Math.min(this.#o.sweepSlice ?? 150, fits, 2 * sliced));
        }
      }
      if (full || step === 'finish') {
        this.#fullRunning = false;
        // A sweep counts its read and its runs, not the plan changes' runs in between: the read is as much
        // the agent's (and an emulated VM's host's) CPU as the comparison.
        this.#lastFullMs = step === 'finish' ? sweep!.readMs + sweep!.lockedMs : performance.now() - started;
        if (step === 'finish') this.#sweep = undefined;
        this.#armResync();
      }
    }
    const run: AgentRun = {
      node: plan.node,
      time: new Date().toISOString(),
      durationMs: performance.now() - started,
      full: full || step === 'finish',
      director,
      realServer: this.#realServer,
      realServerChanged: full || step === 'finish' || realServerDirty,
      health: this.#verdicts,
      // Verdicts only change through the checker's events and plan changes, so a full run has no others.
      healthChanged: [...healthChanged],
    };
    this.#last = run;
    const failed = failedCount(run);
    const swept = step === 'finish' ? { sweep: { slices: sweep!.slices, ms: Math.round(performance.now() - sweep!.started), readMs: Math.round(sweep!.readMs), runsMs: Math.round(sweep!.lockedMs) } } : {};
    this.#o.log[failed > 0 ? 'warn' : 'debug']({ full: run.full, ...(step ? { step } : {}), ...(sliced ? { services: sliced } : {}), ops: director.ops, drift: director.drift, failed, ms: Math.round(run.durationMs), ...swept, ...(run.full ? { nextFullInMs: Math.round(this.nextResyncMs) } : {}) }, 'reconciled');
    this.#o.onReport?.(run);
    if (full || step === 'finish') sweep?.done(run);
    return run;
  }

  /** Stops timers and health checks; leaves the kernel as it is. */
  stop(): void {
    this.#stopped = true;
    this.#periodic = false;
    clearTimeout(this.#timer);
    // A sweep that pauses ends at its next step, now rather than after the pause.
    if (this.#sweepTimer) {
      clearTimeout(this.#sweepTimer);
      this.#sweepTimer = undefined;
      this.trigger();
    }
    this.#o.health.stop();
  }

  /** Removes everything this agent added and restores the sysctls it changed. */
  async teardown(): Promise<AgentRun> {
    this.setPlan(emptyPlan(this.#o.node));
    return this.reconcile();
  }
}
