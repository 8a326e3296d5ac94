import { collectDefaultMetrics, Registry } from 'prom-client';
import { createLogger, type Logger } from '../../util/log.ts';
import { registerAgentMetrics, type AgentMetrics } from './agent.ts';
import { registerIpvsMetrics, type IpvsMetrics } from './ipvs.ts';
import type { SnapshotReader } from './types.ts';

export interface LvsMetricsOptions {
  /** Dumps the IPVS table at scrape time. */
  readSnapshot: SnapshotReader;
  /** A kernel read slower than this fails the scrape's IPVS part; default 5000 (below Prometheus' 10 s). */
  readTimeoutMs?: number;
  /** Node.js process metrics (process_*, nodejs_*); on by default. */
  defaultMetrics?: boolean;
  log?: Logger;
}

export interface LvsMetrics extends AgentMetrics, IpvsMetrics {
  /** The agent's own registry (never prom-client's global one). */
  readonly registry: Registry;
}

/** Builds the agent's registry with its IPVS, self and (optionally) process metrics. */
export function createLvsMetrics(options: LvsMetricsOptions): LvsMetrics {
  const registry = new Registry();
  const log = options.log ?? createLogger('metrics');
  const ipvs = registerIpvsMetrics(registry, options.readSnapshot, log, options.readTimeoutMs);
  const agent = registerAgentMetrics(registry);
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return { registry, ...ipvs, ...agent };
}
