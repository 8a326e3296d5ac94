export { HealthChecker, type HealthCheckerEvents, type HealthCheckerOptions } from './checker.ts';
export { realClock } from './clock.ts';
export { checkPort, defaultProbe, hostPort, httpProbe, tcpProbe } from './probes.ts';
export { RiseFall } from './state.ts';
export type {
  Clock, HealthChangeListener, HealthCheckSpec, HealthState, HealthTarget, Probe, ProbeResult, TimerHandle,
} from './types.ts';
