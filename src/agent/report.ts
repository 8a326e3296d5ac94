/**
 * What the agent does with each run's report: metrics, the optional status file, the cluster's NodePlan
 * status. Each consumer looks only at what the run changed, so a one-service change costs one service's
 * worth of reporting; the status file (a whole-table JSON, for tests and debugging) is written at most
 * every `statusDelayMs`.
 */
import fs from 'node:fs';
import type { AgentMetrics } from './metrics/agent.ts';
import { failedCount, reportOf, type AgentRun } from './agent.ts';

export interface ReportSinkOptions {
  metrics: AgentMetrics;
  /** Where to keep the latest report as JSON (written atomically). */
  statusFile?: string;
  statusDelayMs?: number;
  /** Further consumers (cluster mode writes NodePlan status). */
  also?: (run: AgentRun) => void;
}

export interface ReportSink {
  onReport(run: AgentRun): void;
  /** Writes a pending status file now (before exit). */
  flush(): void;
}

export function createReportSink(o: ReportSinkOptions): ReportSink {
  const { metrics, statusFile } = o;
  let pending: AgentRun | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (!pending || !statusFile) return;
    const run = pending;
    pending = undefined;
    fs.writeFileSync(`${statusFile}.tmp`, JSON.stringify(reportOf(run), null, 1));
    fs.renameSync(`${statusFile}.tmp`, statusFile);
  };
  return {
    onReport(run) {
      metrics.recordReconcile(run.durationMs / 1000, failedCount(run) > 0 ? 'service_failed' : undefined);
      if (run.director.drift > 0) metrics.driftRepairs.inc({ kind: 'ipvs' }, run.director.drift);
      metrics.managedServices.set(run.director.services.size);
      for (const id of run.healthChanged) {
        const [virtualService = '', address = '', port = '0'] = id.split('|');
        const healthy = run.health.get(id);
        const backend = { virtualService, address, port: Number(port) };
        if (healthy === undefined) metrics.deleteBackendHealthy(backend);
        else metrics.setBackendHealthy(backend, healthy);
      }
      if (statusFile) {
        pending = run;
        timer ??= setTimeout(flush, o.statusDelayMs ?? 100);
      }
      o.also?.(run);
    },
    flush,
  };
}
