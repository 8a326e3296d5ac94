/**
 * The agent loop: holds the node's current plan, reconciles director and realserver parts whenever the
 * plan or a health verdict changes and on a periodic resync (which repairs drift such as `ipvsadm -C`),
 * one reconcile at a time. Stopping never tears anything down: a restarting agent must not drop traffic.
 */
import type { NodePlan, PlannedService } from '../model/plan.ts';
import { emptyPlan } from '../model/plan.ts';
import type { Logger } from '../util/log.ts';
import type { HealthChecker } from './health/checker.ts';
import type { HealthTarget } from './health/types.ts';
import type { DirectorReconciler, DirectorReport } from './director/reconciler.ts';
import type { RealServerReconciler, RealServerVipReport } from './realserver/reconciler.ts';

export interface AgentReport {
  node: string;
  /** ISO time the reconcile finished. */
  time: string;
  durationMs: number;
  director: DirectorReport;
  realServer: RealServerVipReport[];
  /** Health verdict per destination: `${service}|${address}|${port}` → healthy. */
  health: Record<string, boolean>;
}

export interface AgentHooks {
  onReport?: (report: AgentReport) => void;
  onError?: (err: Error) => void;
  onHealthChange?: (id: string, healthy: boolean, reason: string) => void;
}

export interface AgentOptions extends AgentHooks {
  node: string;
  director: DirectorReconciler;
  realServer: RealServerReconciler;
  health: HealthChecker;
  log: Logger;
  /** Seconds between full resyncs (drift repair, drain progress). */
  resyncSeconds?: number;
}

export const healthId = (service: string, address: string, port: number): string => `${service}|${address}|${port}`;

export function healthTargets(services: PlannedService[]): HealthTarget[] {
  return services.flatMap((s) =>
    s.destinations.map((d) => ({
      id: healthId(s.id, d.address, d.port),
      address: d.address,
      port: d.port,
      // HTTP checks ask for the service's name, as a client of the VIP would.
      check: { ...s.healthCheck, host: s.healthCheck.host ?? s.vip },
    })),
  );
}

export class Agent {
  readonly #o: AgentOptions;
  #plan: NodePlan;
  #running: Promise<AgentReport> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #last: AgentReport | undefined;
  /** The next reconcile dumps the kernel (set by the periodic resync). */
  #resync = true;
  /** Bumped on every health verdict change: effective weights must be derived again. */
  #healthEpoch = 0;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#plan = emptyPlan(options.node);
    options.health.on('change', (id, healthy, reason) => {
      this.#healthEpoch++;
      options.log.info({ destination: id, healthy, reason }, healthy ? 'realserver healthy' : 'realserver unhealthy');
      options.onHealthChange?.(id, healthy, reason);
      this.trigger();
    });
  }

  get plan(): NodePlan {
    return this.#plan;
  }

  get lastReport(): AgentReport | undefined {
    return this.#last;
  }

  setPlan(plan: NodePlan): void {
    this.#plan = plan;
    this.#o.health.setTargets(healthTargets(plan.director));
    this.trigger();
  }

  start(): void {
    const every = (this.#o.resyncSeconds ?? 10) * 1000;
    this.#timer = setInterval(() => {
      this.#resync = true;
      this.trigger();
    }, every);
    this.#timer.unref();
  }

  /** Reconciles soon; calls while a reconcile runs coalesce into one more run. */
  trigger(): void {
    this.reconcile().catch((e: unknown) => {
      this.#o.log.error({ err: (e as Error).message }, 'reconcile failed');
      this.#o.onError?.(e as Error);
    });
  }

  /** Runs a reconcile now (or joins the one in flight and runs once more after it). */
  async reconcile(): Promise<AgentReport> {
    if (this.#running) {
      this.#again = true;
      return this.#running.then(() => this.#running ?? this.reconcile());
    }
    this.#running = this.#once().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.trigger();
      }
    });
    return this.#running;
  }

  async #once(): Promise<AgentReport> {
    const started = performance.now();
    const plan = this.#plan;
    const health = this.#o.health;
    const resync = this.#resync;
    this.#resync = false;
    const director = await this.#o.director.reconcile(
      plan.director,
      (svc, address, port) => {
        const s = health.state(healthId(svc, address, port));
        return s === 'unknown' ? undefined : s === 'healthy';
      },
      { resync, healthEpoch: this.#healthEpoch },
    );
    const realServer = await this.#o.realServer.reconcile(plan.realServer);
    const verdicts: Record<string, boolean> = {};
    for (const t of healthTargets(plan.director)) verdicts[t.id] = health.state(t.id) !== 'unhealthy';
    const report: AgentReport = {
      node: plan.node,
      time: new Date().toISOString(),
      durationMs: performance.now() - started,
      director,
      realServer,
      health: verdicts,
    };
    this.#last = report;
    const failed = director.services.filter((s) => !s.ok).length + realServer.filter((r) => !r.ok).length;
    this.#o.log[failed > 0 ? 'warn' : 'debug']({ ops: director.ops, drift: director.drift, failed, ms: Math.round(report.durationMs) }, 'reconciled');
    this.#o.onReport?.(report);
    return report;
  }

  /** Stops timers and health checks; leaves the kernel as it is. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#o.health.stop();
  }

  /** Removes everything this agent added and restores the sysctls it changed. */
  async teardown(): Promise<AgentReport> {
    this.setPlan(emptyPlan(this.#o.node));
    return this.reconcile();
  }
}
