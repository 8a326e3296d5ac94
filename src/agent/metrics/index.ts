export { registerAgentMetrics, type AgentMetrics, type BackendRef } from './agent.ts';
export { registerIpvsMetrics, type IpvsMetrics } from './ipvs.ts';
export { BACKEND_LABELS, HEALTH_LABELS, SERVICE_LABELS, backendLabels, serviceLabels, toFloat } from './labels.ts';
export { createLvsMetrics, type LvsMetrics, type LvsMetricsOptions } from './registry.ts';
export { startMetricsServer, type MetricsServer, type MetricsServerOptions } from './server.ts';
export type { DestinationSnapshot, IpvsStats, ServiceSnapshot, SnapshotProtocol, SnapshotReader } from './types.ts';
