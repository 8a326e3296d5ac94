import type { PlannedHealthCheck } from '../../api/v1alpha1/nodeplan.ts';

/** A resolved health check: the planned check, every default applied (the same type the plan carries). */
export type HealthCheckSpec = PlannedHealthCheck;

/** One realserver to check. */
export interface HealthTarget {
  /** Stable key, e.g. "ns/vs|10.0.0.2:80". */
  id: string;
  /** IPv4 or IPv6 literal (no DNS: the director checks what it programs into IPVS). */
  address: string;
  port: number;
  check: HealthCheckSpec;
}

/** unknown means "not a target of this checker". */
export type HealthState = 'healthy' | 'unhealthy' | 'unknown';

/** Outcome of one check; reason is human readable, e.g. "connect ECONNREFUSED 10.0.0.2:80". */
export interface ProbeResult {
  ok: boolean;
  reason: string;
}

/**
 * Runs one check. Must honour `signal` (abort = the timeout expired) by releasing its sockets; the
 * checker counts an aborted probe as "timeout after Ns" whatever the probe resolves to afterwards.
 */
export type Probe = (target: HealthTarget, signal: AbortSignal) => Promise<ProbeResult>;

/** Opaque handle of a Clock timer. */
export type TimerHandle = unknown;

/** Time source of the checker, injectable so the rise/fall machine is tested without real time. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Listener signature of the checker's 'change' event. */
export type HealthChangeListener = (id: string, healthy: boolean, reason: string) => void;
