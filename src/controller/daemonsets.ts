/**
 * The agent DaemonSets the controller runs: one on director nodes, one on nodes that host DR/Tunnel
 * realservers (which the controller labels). Built as plain objects so tests compare them exactly.
 */
import type { V1DaemonSet } from '@kubernetes/client-node';
import type { AgentConfig, FailoverConfig } from './config.ts';

export type AgentRole = 'director' | 'realserver';

/**
 * The director agents' VIP election flags: the Lease holder binds the VIP, the planner's holdVip is only
 * its preference (src/agent/failover). None when failover is off, or for realserver agents (they hold no VIP).
 */
export function failoverArgs(role: AgentRole, f: FailoverConfig | undefined): string[] {
  if (role !== 'director' || !f?.enabled) return [];
  return [
    '--vip-election',
    '--failover-lease-seconds', String(f.leaseDurationSeconds),
    '--failover-renew-ms', String(f.renewIntervalMilliseconds),
    '--sync-id', String(f.syncId),
    ...(f.heartbeatIntervalMilliseconds !== undefined ? ['--failover-heartbeat-ms', String(f.heartbeatIntervalMilliseconds)] : []),
  ];
}

export function agentDaemonSet(role: AgentRole, namespace: string, cfg: AgentConfig): V1DaemonSet {
  const name = `lvs-agent-${role}`;
  const labels = { 'app.kubernetes.io/name': 'lvs-agent', 'app.kubernetes.io/component': role, 'app.kubernetes.io/managed-by': 'lvs-operator' };
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace, labels },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': 'lvs-agent', 'app.kubernetes.io/component': role } },
      // One node at a time: an agent restart leaves the kernel alone, but be gentle anyway.
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: cfg.serviceAccountName,
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          nodeSelector: role === 'director' ? cfg.directorNodeSelector : cfg.realServerNodeSelector,
          tolerations: cfg.tolerations,
          ...(cfg.priorityClassName ? { priorityClassName: cfg.priorityClassName } : {}),
          terminationGracePeriodSeconds: 10,
          containers: [
            {
              name: 'agent',
              image: cfg.image,
              imagePullPolicy: cfg.imagePullPolicy,
              command: ['lvs-agent'],
              args: ['--cluster', '--node', '$(NODE_NAME)', '--namespace', '$(POD_NAMESPACE)', '--metrics-address', `0.0.0.0:${cfg.metricsPort}`, ...failoverArgs(role, cfg.failover)],
              env: [
                { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              ],
              ports: [{ name: 'metrics', containerPort: cfg.metricsPort }],
              readinessProbe: { httpGet: { path: '/readyz', port: cfg.metricsPort }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/healthz', port: cfg.metricsPort }, periodSeconds: 10, failureThreshold: 6 },
              resources: cfg.resources,
              securityContext: { privileged: true, runAsUser: 0, runAsNonRoot: false },
              volumeMounts: [
                { name: 'state', mountPath: '/var/lib/lvs-operator' },
                { name: 'modules', mountPath: '/lib/modules', readOnly: true },
              ],
            },
          ],
          volumes: [
            // The ownership ledger and original sysctl values must survive pod restarts.
            { name: 'state', hostPath: { path: '/var/lib/lvs-operator', type: 'DirectoryOrCreate' } },
            { name: 'modules', hostPath: { path: '/lib/modules', type: 'Directory' } },
          ],
        },
      },
    },
  };
}
