import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { HEALTH_LABELS, type HealthLabel } from './labels.ts';
import type { FailoverMetrics } from '../failover/director-failover.ts';

/** A realserver as the health gauge names it. */
export interface BackendRef {
  /** "namespace/name" of the VirtualService. */
  virtualService: string;
  address: string;
  port: number;
}

export interface AgentMetrics extends FailoverMetrics {
  readonly reconcileDuration: Histogram;
  readonly reconciles: Counter;
  readonly reconcileErrors: Counter<'reason'>;
  readonly driftRepairs: Counter<'kind'>;
  readonly managedServices: Gauge;
  readonly backendHealthy: Gauge<HealthLabel>;
  readonly vipHolder: Gauge<'vip' | 'virtual_service'>;
  readonly vipFailovers: Counter<'vip' | 'cause'>;
  readonly vipReleases: Counter<'vip' | 'reason'>;
  /**
   * Records one reconcile pass: its duration, and its failure reason if it failed. Keep reasons to a small
   * fixed set (e.g. an errno name), each one is a series.
   */
  recordReconcile(seconds: number, errorReason?: string): void;
  /** lvs_backend_healthy: 1 healthy, 0 not; fed from the health checker's change events. */
  setBackendHealthy(backend: BackendRef, healthy: boolean): void;
  /** Drops the health series of a realserver that is no longer checked. */
  deleteBackendHealthy(backend: BackendRef): void;
}

const healthLabels = (b: BackendRef): Record<HealthLabel, string> =>
  ({ virtual_service: b.virtualService, remote_address: b.address, remote_port: String(b.port) });

/** The agent's own metrics, set by the reconcile loop and the health checker. */
export function registerAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  const reconcileDuration = new Histogram({
    name: 'lvs_agent_reconcile_duration_seconds',
    help: 'Duration of reconcile passes of the IPVS table.',
    // A pass is a netlink dump plus a diff: milliseconds normally, seconds with thousands of services.
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const reconciles = new Counter({ name: 'lvs_agent_reconciles_total', help: 'Reconcile passes, failed ones included.', registers });
  const reconcileErrors = new Counter({
    name: 'lvs_agent_reconcile_errors_total', help: 'Failed reconcile passes by reason.', labelNames: ['reason'] as const, registers,
  });
  const driftRepairs = new Counter({
    name: 'lvs_agent_drift_repairs_total',
    help: 'Changes made to bring the kernel back to the desired state, by kind.',
    labelNames: ['kind'] as const,
    registers,
  });
  const managedServices = new Gauge({ name: 'lvs_agent_managed_services', help: 'Virtual services this agent programs.', registers });
  const backendHealthy = new Gauge({
    name: 'lvs_backend_healthy',
    help: 'Whether the realserver passes its health check (1) or not (0).',
    labelNames: HEALTH_LABELS,
    registers,
  });

  // Director failover (src/agent/failover), with --vip-election. A VIP has few services and failovers are
  // rare: the series stay few.
  const vipHolder = new Gauge({
    name: 'lvs_vip_holder',
    help: 'Whether this director has the VIP bound for the VirtualService (1: it holds the VIP Lease, or keeps the VIP while the API server is unreachable) or stands by (0).',
    labelNames: ['vip', 'virtual_service'] as const,
    registers,
  });
  const vipFailovers = new Counter({
    name: 'lvs_vip_failovers_total',
    help: 'VIPs this director took over from another director, by cause: expired (the holder stopped renewing its Lease: dead or cut off), released (the holder handed it over).',
    labelNames: ['vip', 'cause'] as const,
    registers,
  });
  const vipReleases = new Counter({
    name: 'lvs_vip_releases_total',
    help: 'VIPs this director gave up, by reason: lost (another director holds the Lease), conflict (another director answered ARP for a VIP kept without a Lease), stopped (no longer planned here, or shutdown), renew-deadline.',
    labelNames: ['vip', 'reason'] as const,
    registers,
  });

  return {
    vipHolder,
    vipFailovers,
    vipReleases,
    setVipHolder(vip, service, holds) {
      vipHolder.set({ vip, virtual_service: service }, holds ? 1 : 0);
    },
    deleteVipHolder(vip, service) {
      vipHolder.remove({ vip, virtual_service: service });
    },
    countTakeover(vip, cause) {
      // A first acquisition (no previous holder) moves no VIP: not a failover.
      if (cause !== 'initial') vipFailovers.inc({ vip, cause });
    },
    countRelease(vip, reason) {
      vipReleases.inc({ vip, reason });
    },
    reconcileDuration,
    reconciles,
    reconcileErrors,
    driftRepairs,
    managedServices,
    backendHealthy,
    recordReconcile(seconds, errorReason) {
      reconciles.inc();
      reconcileDuration.observe(seconds);
      if (errorReason !== undefined) reconcileErrors.inc({ reason: errorReason });
    },
    setBackendHealthy(backend, healthy) {
      backendHealthy.set(healthLabels(backend), healthy ? 1 : 0);
    },
    deleteBackendHealthy(backend) {
      backendHealthy.remove(healthLabels(backend));
    },
  };
}
