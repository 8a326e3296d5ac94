import { Counter, Gauge, type LabelValues, type Registry } from 'prom-client';
import type { Logger } from '../../util/log.ts';
import {
  BACKEND_LABELS, backendLabels, SERVICE_LABELS, serviceLabels, toFloat, type BackendLabel, type ServiceLabel,
} from './labels.ts';
import type { DestinationSnapshot, IpvsStats, ServiceSnapshot, SnapshotReader } from './types.ts';

/**
 * One kernel dump per scrape: prom-client calls every metric's collect() in the same tick, so they all
 * share the read in flight. A failed or timed-out read yields undefined (the IPVS series are then left
 * out, not stale). The timeout matters: a read that never settles would otherwise be shared by every
 * later scrape and hang them all.
 */
class ScrapeOnce {
  private pending: Promise<readonly ServiceSnapshot[] | undefined> | undefined;
  private readonly read: SnapshotReader;
  private readonly timeoutMs: number;
  private readonly onError: (err: unknown) => void;

  constructor(read: SnapshotReader, timeoutMs: number, onError: (err: unknown) => void) {
    this.read = read;
    this.timeoutMs = timeoutMs;
    this.onError = onError;
  }

  get(): Promise<readonly ServiceSnapshot[] | undefined> {
    this.pending ??= this.readWithTimeout()
      .then((snaps): readonly ServiceSnapshot[] | undefined => snaps, (err: unknown) => {
        this.onError(err);
        return undefined;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }

  private readWithTimeout(): Promise<ServiceSnapshot[]> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`IPVS read timed out after ${this.timeoutMs}ms`)), this.timeoutMs).unref();
    });
    // new Promise(...) turns a reader that throws synchronously into a rejection.
    return Promise.race([new Promise<ServiceSnapshot[]>((resolve) => resolve(this.read())), timeout])
      .finally(() => clearTimeout(timer));
  }
}

type StatKey = keyof IpvsStats;

// [suffix, kernel field, help]. Names mirror node_exporter's node_ipvs_* with the lvs_ prefix.
const COUNTERS: ReadonlyArray<[string, StatKey, string]> = [
  ['connections_total', 'conns', 'Connections scheduled'],
  ['incoming_packets_total', 'inpkts', 'Packets received'],
  ['outgoing_packets_total', 'outpkts', 'Packets sent'],
  ['incoming_bytes_total', 'inbytes', 'Bytes received'],
  ['outgoing_bytes_total', 'outbytes', 'Bytes sent'],
];
const RATES: ReadonlyArray<[string, StatKey, string]> = [
  ['connections_per_second', 'cps', 'Connections'],
  ['incoming_packets_per_second', 'inpps', 'Packets received'],
  ['outgoing_packets_per_second', 'outpps', 'Packets sent'],
  ['incoming_bytes_per_second', 'inbps', 'Bytes received'],
  ['outgoing_bytes_per_second', 'outbps', 'Bytes sent'],
];
const BACKEND_GAUGES: ReadonlyArray<[string, (d: DestinationSnapshot) => number, string]> = [
  ['connections_active', (d) => d.activeConns, 'Active (established) connections'],
  ['connections_inactive', (d) => d.inactiveConns, 'Inactive connections'],
  ['weight', (d) => d.weight, 'Weight'],
];

/** The part of Counter and Gauge a snapshot family needs. */
interface Settable<L extends string> {
  reset(): void;
  inc(labels: LabelValues<L>, value: number): void;
}
type Emit<L extends string> = (labels: LabelValues<L>, value: number) => void;

export interface IpvsMetrics {
  /** lvs_agent_scrape_errors_total: scrapes whose kernel read failed. */
  readonly scrapeErrors: Counter;
}

/**
 * Registers the per-service and per-backend IPVS series, computed from `read()` at scrape time. The
 * kernel's counters are the source of truth, so they are exposed as they are (reset at every scrape and
 * refilled), not accumulated here.
 */
export function registerIpvsMetrics(registry: Registry, read: SnapshotReader, log: Logger, readTimeoutMs = 5000): IpvsMetrics {
  const scrapeErrors: Counter = new Counter({
    name: 'lvs_agent_scrape_errors_total',
    help: 'Scrapes that could not read the IPVS table from the kernel.',
    registers: [registry],
    // Waits for this scrape's read, so a failure shows in the same scrape.
    collect: async () => void (await once.get()),
  });
  const once = new ScrapeOnce(read, readTimeoutMs, (err) => {
    scrapeErrors.inc();
    log.warn({ err }, 'cannot read IPVS table for metrics');
  });

  const family = <L extends string>(type: 'counter' | 'gauge', name: string, help: string, labelNames: readonly L[],
    fill: (snaps: readonly ServiceSnapshot[], emit: Emit<L>) => void): void => {
    const collect = async (): Promise<void> => {
      const snaps = await once.get();
      metric.reset();
      if (snaps) fill(snaps, (labels, value) => metric.inc(labels, value));
    };
    const config = { name, help, labelNames, registers: [registry], collect };
    const metric: Settable<L> = type === 'counter' ? new Counter<L>(config) : new Gauge<L>(config);
  };

  const perService = (key: StatKey) => (snaps: readonly ServiceSnapshot[], emit: Emit<ServiceLabel>): void => {
    for (const svc of snaps) emit(serviceLabels(svc), toFloat(svc.stats[key]));
  };
  const perBackend = (value: (d: DestinationSnapshot) => bigint | number) =>
    (snaps: readonly ServiceSnapshot[], emit: Emit<BackendLabel>): void => {
      for (const svc of snaps) for (const d of svc.destinations) emit(backendLabels(svc, d), toFloat(value(d)));
    };

  for (const [suffix, key, help] of COUNTERS) {
    family('counter', `lvs_service_${suffix}`, `${help} for the virtual service (kernel counter).`, SERVICE_LABELS, perService(key));
  }
  for (const [suffix, key, help] of RATES) {
    family('gauge', `lvs_service_${suffix}`, `${help} per second for the virtual service (kernel rate estimator).`, SERVICE_LABELS,
      perService(key));
  }
  for (const [suffix, key, help] of COUNTERS) {
    family('counter', `lvs_backend_${suffix}`, `${help} for the realserver of the virtual service (kernel counter).`, BACKEND_LABELS,
      perBackend((d) => d.stats[key]));
  }
  for (const [suffix, value, help] of BACKEND_GAUGES) {
    family('gauge', `lvs_backend_${suffix}`, `${help} of the realserver of the virtual service.`, BACKEND_LABELS, perBackend(value));
  }
  return { scrapeErrors };
}
