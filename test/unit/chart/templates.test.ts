import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/controller/config.ts';
import type { ControllerConfig } from '../../../src/controller/config.ts';
import { agentDaemonSet } from '../../../src/controller/daemonsets.ts';
import { CUSTOM_VALUES, find, grants, render, rulesOf } from './helm.ts';
import type { K8sObject, PolicyRule } from './helm.ts';

interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  command: string[];
  env: Array<{ name: string; value?: string }>;
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: Array<{ name: string; configMap?: { name: string }; emptyDir?: unknown }>;
  hostNetwork?: boolean;
  priorityClassName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: Record<string, unknown>;
}
interface Deployment extends K8sObject {
  spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: PodSpec } };
}

/** config.json as the controller loads it (defaults, checks), written to a file like the ConfigMap mount. */
function loadedConfig(objs: K8sObject[], name = 'lvs-operator-config'): ControllerConfig {
  const file = join(mkdtempSync(join(tmpdir(), 'lvs-config-')), 'config.json');
  writeFileSync(file, JSON.stringify(configOf(objs, name)));
  return loadConfig(file);
}

/** The director agent's arguments in the DaemonSet the controller builds from the chart's config. */
const directorArgs = (objs: K8sObject[], name?: string): string[] =>
  agentDaemonSet('director', 'lvs-system', loadedConfig(objs, name).agent).spec!.template.spec!.containers[0]!.args!;

const configOf = (objs: K8sObject[], name = 'lvs-operator-config'): Record<string, unknown> =>
  JSON.parse((find(objs, 'ConfigMap', name)['data'] as Record<string, string>)['config.json']!) as Record<string, unknown>;

describe('chart with default values (release lvs-operator in lvs-system)', () => {
  const objs = render();
  const deploy = find(objs, 'Deployment', 'lvs-operator-controller') as Deployment;
  const pod = deploy.spec.template.spec;
  const c = pod.containers[0]!;

  it('uses the ServiceAccount names the apiserver harness authenticates', () => {
    expect(objs.filter((o) => o.kind === 'ServiceAccount').map((o) => `${o.metadata.namespace}/${o.metadata.name}`).sort()).toEqual([
      'lvs-system/lvs-operator-agent',
      'lvs-system/lvs-operator-controller',
    ]);
    expect(pod.serviceAccountName).toBe('lvs-operator-controller');
  });

  it('creates no Namespace, DaemonSet or monitors by default', () => {
    const kinds = new Set(objs.map((o) => o.kind));
    for (const k of ['Namespace', 'DaemonSet', 'ServiceMonitor', 'PodMonitor', 'CustomResourceDefinition']) expect(kinds.has(k)).toBe(false);
  });

  it('runs lvs-controller with leader election and its config file, 2 replicas', () => {
    expect(deploy.spec.replicas).toBe(2);
    expect(c.command).toEqual(['lvs-controller', '--namespace', '$(POD_NAMESPACE)', '--config', '/etc/lvs-operator/config.json', '--leader-elect']);
    expect(c.env.map((e) => e.name)).toEqual(expect.arrayContaining(['POD_NAMESPACE', 'POD_NAME', 'LVS_LOG_LEVEL']));
    expect(c.image).toBe('ghcr.io/lvs-operator/lvs-operator:0.1.0');
    expect(c.volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/lvs-operator', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'config', configMap: { name: 'lvs-operator-config' } });
  });

  it('probes /healthz and /readyz on 8081, metrics on 8080', () => {
    expect(c.ports).toEqual([
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
      { name: 'health', containerPort: 8081, protocol: 'TCP' },
    ]);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    const svc = find(objs, 'Service', 'lvs-operator-controller-metrics');
    expect(svc['spec']).toMatchObject({ selector: deploy.spec.selector.matchLabels, ports: [{ name: 'metrics', port: 8080, targetPort: 'metrics' }] });
  });

  it('meets the restricted Pod Security profile', () => {
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext['capabilities']).not.toHaveProperty('add');
    for (const v of pod.volumes) expect(Object.keys(v).filter((k) => k !== 'name')).toEqual([expect.stringMatching(/^(configMap|emptyDir)$/)]);
  });

  it('refuses director heartbeats slower than a fifth of the lease duration, with the reason', () => {
    expect(() => render(['--set', 'failover.heartbeatIntervalMilliseconds=500'])).toThrow(/failover\.heartbeatIntervalMilliseconds \(500\) must be 0 \(off\) or at most a fifth of failover\.leaseDurationSeconds \(2 s\)/);
    expect(directorArgs(render(['--set', 'failover.heartbeatIntervalMilliseconds=400']))).toEqual(expect.arrayContaining(['--failover-heartbeat-ms', '400']));
  });

  it('restarts the controller when its configuration changes', () => {
    const other = render(['--set', 'failover.leaseDurationSeconds=3']);
    const sum = (o: K8sObject[]) => (find(o, 'Deployment', 'lvs-operator-controller') as Deployment).spec.template.metadata.annotations['checksum/config'];
    expect(sum(objs)).toMatch(/^[0-9a-f]{64}$/);
    expect(sum(other)).not.toBe(sum(objs));
  });

  it('writes the agent settings into config.json', () => {
    expect(configOf(objs)).toEqual({
      agent: {
        image: 'ghcr.io/lvs-operator/lvs-operator:0.1.0',
        imagePullPolicy: 'IfNotPresent',
        directorNodeSelector: { 'lvs.operator.dev/director': 'true' },
        realServerNodeSelector: { 'lvs.operator.dev/realserver': 'true' },
        tolerations: [{ operator: 'Exists' }],
        resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '768Mi' } },
        metricsPort: 9120,
        priorityClassName: 'system-node-critical',
        serviceAccountName: 'lvs-operator-agent',
      },
      defaultDirectorSelector: { 'lvs.operator.dev/director': 'true' },
      failover: { enabled: true, leaseDurationSeconds: 2, renewIntervalMilliseconds: 500, syncId: 1, heartbeatIntervalMilliseconds: 100 },
      reserved: { serviceCIDRs: [], podCIDRs: [], addresses: [] },
    });
  });

  it('runs the director agents with VIP election by default, and without it when failover.enabled is false', () => {
    expect(directorArgs(objs)).toEqual(expect.arrayContaining(['--vip-election', '--failover-lease-seconds', '2', '--failover-renew-ms', '500', '--sync-id', '1', '--failover-heartbeat-ms', '100']));
    expect(agentDaemonSet('realserver', 'lvs-system', loadedConfig(objs).agent).spec!.template.spec!.containers[0]!.args).not.toContain('--vip-election');
    const off = directorArgs(render(['--set', 'failover.enabled=false']));
    expect(off).not.toContain('--vip-election');
    expect(off.filter((a) => a.startsWith('--failover') || a === '--sync-id')).toEqual([]);
  });
});

describe('RBAC (least privilege)', () => {
  const objs = render();
  const role = (kind: string, name: string): string[] => grants(rulesOf(find(objs, kind, name)));

  it('controller ClusterRole grants exactly what the controller needs', () => {
    const crud = (res: string, verbs: string[]) => verbs.map((v) => `lvs.operator.dev/${res}:${v}`);
    expect(role('ClusterRole', 'lvs-operator-controller')).toEqual([
      'core/events:create', 'core/events:patch',
      'core/namespaces:get', 'core/namespaces:list', 'core/namespaces:watch',
      'core/nodes:get', 'core/nodes:list', 'core/nodes:patch', 'core/nodes:watch',
      'core/services:get', 'core/services:list', 'core/services:watch',
      'discovery.k8s.io/endpointslices:get', 'discovery.k8s.io/endpointslices:list', 'discovery.k8s.io/endpointslices:watch',
      'events.k8s.io/events:create', 'events.k8s.io/events:patch',
      ...crud('nodeplans', ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']),
      ...crud('nodeplans/status', ['get', 'list', 'watch']),
      ...crud('realservers', ['get', 'list', 'patch', 'update', 'watch']),
      ...crud('realservers/finalizers', ['update']),
      ...crud('realservers/status', ['get', 'patch', 'update']),
      ...crud('virtualservices', ['get', 'list', 'patch', 'update', 'watch']),
      ...crud('virtualservices/finalizers', ['update']),
      ...crud('virtualservices/status', ['get', 'patch', 'update']),
      ...crud('vippools', ['get', 'list', 'watch']),
      ...crud('vippools/status', ['get', 'patch', 'update']),
    ].sort());
    // Services and EndpointSlices: the API server's own, by name only.
    const byName = rulesOf(find(objs, 'ClusterRole', 'lvs-operator-controller')).filter((r) => r.resources.includes('services') || r.resources.includes('endpointslices'));
    expect(byName.map((r) => r.resourceNames)).toEqual([['kubernetes'], ['kubernetes']]);
  });

  it('vipPools: none by default (VIPs are default-deny); each entry becomes a VIPPool', () => {
    expect(objs.filter((o) => o.kind === 'VIPPool')).toEqual([]);
    const pools = render(['--set-json', 'vipPools=[{"name":"lab","addresses":["192.168.56.40/29"],"namespaceSelector":{}},{"name":"team-a","addresses":["10.0.0.0/28"],"namespaceSelector":{"matchLabels":{"team":"a"}},"autoAssign":false}]']).filter((o) => o.kind === 'VIPPool');
    expect(pools.map((o) => [o.metadata.name, o['spec']])).toEqual([
      ['lab', { addresses: ['192.168.56.40/29'], namespaceSelector: {} }],
      ['team-a', { addresses: ['10.0.0.0/28'], namespaceSelector: { matchLabels: { team: 'a' } }, autoAssign: false }],
    ]);
  });

  it('controller Role: leases, agent DaemonSets, its ConfigMap (read-only)', () => {
    expect(role('Role', 'lvs-operator-controller')).toEqual([
      'apps/daemonsets:create', 'apps/daemonsets:delete', 'apps/daemonsets:get', 'apps/daemonsets:list', 'apps/daemonsets:patch', 'apps/daemonsets:update', 'apps/daemonsets:watch',
      'coordination.k8s.io/leases:create', 'coordination.k8s.io/leases:get', 'coordination.k8s.io/leases:list', 'coordination.k8s.io/leases:patch', 'coordination.k8s.io/leases:update', 'coordination.k8s.io/leases:watch',
      'core/configmaps:get', 'core/configmaps:list', 'core/configmaps:watch',
    ]);
  });

  it('agent ClusterRole: reads NodePlans and Nodes, writes only NodePlan status and events', () => {
    expect(role('ClusterRole', 'lvs-operator-agent')).toEqual([
      'core/events:create', 'core/events:patch',
      'core/nodes:get', 'core/nodes:list', 'core/nodes:watch',
      'events.k8s.io/events:create', 'events.k8s.io/events:patch',
      'lvs.operator.dev/nodeplans/status:get', 'lvs.operator.dev/nodeplans/status:patch', 'lvs.operator.dev/nodeplans/status:update',
      'lvs.operator.dev/nodeplans:get', 'lvs.operator.dev/nodeplans:list', 'lvs.operator.dev/nodeplans:watch',
    ]);
  });

  it('agent Role: VIP election leases in the release namespace', () => {
    expect(role('Role', 'lvs-operator-agent')).toEqual(
      ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'].map((v) => `coordination.k8s.io/leases:${v}`),
    );
  });

  it('binds each role to its own ServiceAccount', () => {
    for (const who of ['controller', 'agent']) {
      for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
        const b = find(objs, kind, `lvs-operator-${who}`);
        expect(b['roleRef']).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: kind.replace('Binding', ''), name: `lvs-operator-${who}` });
        expect(b['subjects']).toEqual([{ kind: 'ServiceAccount', name: `lvs-operator-${who}`, namespace: 'lvs-system' }]);
      }
    }
  });

  it('no role grants secrets, wildcards, escalation or impersonation', () => {
    const all: PolicyRule[] = objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap(rulesOf);
    expect(all.length).toBeGreaterThan(0);
    for (const r of all) {
      expect(r.apiGroups).not.toContain('*');
      expect(r.resources).not.toContain('*');
      expect(r.resources).not.toContain('secrets');
      expect(r.verbs).not.toContain('*');
      for (const v of ['escalate', 'bind', 'impersonate']) expect(r.verbs).not.toContain(v);
    }
  });

  it('aggregated user roles cover VirtualServices and RealServers only, and can be turned off', () => {
    expect(find(objs, 'ClusterRole', 'lvs-operator-view').metadata.labels).toMatchObject({ 'rbac.authorization.k8s.io/aggregate-to-view': 'true' });
    expect(role('ClusterRole', 'lvs-operator-edit').every((g) => /^lvs\.operator\.dev\/(virtualservices|realservers):/.test(g))).toBe(true);
    const off = render(['--set', 'rbac.aggregateToDefaultRoles=false']);
    expect(off.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name).sort()).toEqual(['lvs-operator-agent', 'lvs-operator-controller']);
  });
});

describe('chart with a non-default value set', () => {
  const objs = render(['--values', CUSTOM_VALUES], { release: 'lvs-x', namespace: 'net' });
  const deploy = find(objs, 'Deployment', 'lvs-x-lvs-operator-controller') as Deployment;
  const pod = deploy.spec.template.spec;

  it('prefixes names with the release when it does not contain the chart name', () => {
    expect(objs.filter((o) => o.kind === 'ServiceAccount').map((o) => o.metadata.name).sort()).toEqual(['lvs-x-lvs-operator-agent', 'lvs-x-lvs-operator-controller']);
    for (const o of objs) if (o.metadata.namespace !== undefined) expect(o.metadata.namespace).toBe('net');
  });

  it('creates the namespace with the Pod Security labels', () => {
    expect(find(objs, 'Namespace', 'net').metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'privileged',
      'pod-security.kubernetes.io/warn': 'privileged',
      'pod-security.kubernetes.io/audit': 'privileged',
    });
  });

  it('applies controller scheduling, image, log level and pod labels (selector labels win)', () => {
    expect(deploy.spec.replicas).toBe(1);
    expect(pod.containers[0]!.image).toBe('registry.example.com:5000/net/lvs-operator:v0.2.0-rc.1');
    expect(pod.containers[0]!.env).toContainEqual({ name: 'LVS_LOG_LEVEL', value: 'debug' });
    expect(pod.nodeSelector).toEqual({ 'node-role.kubernetes.io/control-plane': '' });
    expect(pod.tolerations).toHaveLength(1);
    expect(pod.affinity).toHaveProperty('nodeAffinity');
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(deploy.spec.template.metadata.labels).toMatchObject({ team: 'net', ...deploy.spec.selector.matchLabels });
    // one replica: no PodDisruptionBudget (it would block every drain)
    expect(objs.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
  });

  it('puts the pull secret on both ServiceAccounts', () => {
    for (const o of objs.filter((x) => x.kind === 'ServiceAccount')) expect(o['imagePullSecrets']).toEqual([{ name: 'regcred' }]);
  });

  it('passes the agent overrides to the controller config', () => {
    expect(configOf(objs, 'lvs-x-lvs-operator-config')).toEqual({
      agent: {
        image: 'registry.example.com:5000/net/lvs-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
        imagePullPolicy: 'Always',
        directorNodeSelector: { 'example.com/lb': 'director' },
        realServerNodeSelector: { 'lvs.operator.dev/realserver': 'true' },
        tolerations: [],
        resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
        metricsPort: 9300,
        // "" (not absent), so that the controller's default (system-node-critical) does not apply
        priorityClassName: '',
        serviceAccountName: 'lvs-x-lvs-operator-agent',
      },
      defaultDirectorSelector: { 'lvs.operator.dev/director': 'true' },
      failover: { enabled: true, leaseDurationSeconds: 5, renewIntervalMilliseconds: 1000, syncId: 42, heartbeatIntervalMilliseconds: 0 },
      reserved: { serviceCIDRs: ['10.96.0.0/12', 'fd00:10:96::/112'], podCIDRs: ['10.244.0.0/16'], addresses: ['192.168.56.1'] },
    });
  });

  it('passes the failover overrides to the director agents', () => {
    const args = directorArgs(objs, 'lvs-x-lvs-operator-config');
    expect(args.slice(args.indexOf('--vip-election'))).toEqual(['--vip-election', '--failover-lease-seconds', '5', '--failover-renew-ms', '1000', '--sync-id', '42', '--failover-heartbeat-ms', '0']);
  });

  it('creates the VIPPools of the values', () => {
    expect(find(objs, 'VIPPool', 'lab')['spec']).toEqual({
      addresses: ['192.168.56.40/29', '2001:db8:56::40-2001:db8:56::4f'],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'lab' } },
      directors: { interface: 'eth1' },
    });
  });

  it('renders the ServiceMonitor and the agents PodMonitor', () => {
    const sm = find(objs, 'ServiceMonitor', 'lvs-x-lvs-operator-controller');
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels).toMatchObject({ release: 'prometheus' });
    expect(sm['spec']).toMatchObject({ selector: { matchLabels: deploy.spec.selector.matchLabels }, endpoints: [{ port: 'metrics', interval: '15s' }] });
    const pm = find(objs, 'PodMonitor', 'lvs-x-lvs-operator-agent');
    expect(pm['spec']).toMatchObject({
      namespaceSelector: { matchNames: ['net'] },
      // the labels src/controller/daemonsets.ts puts on both agent DaemonSets' pods
      selector: { matchLabels: { 'app.kubernetes.io/name': 'lvs-agent' } },
      podMetricsEndpoints: [{ port: 'metrics' }],
    });
  });
});

describe('namespace.name', () => {
  it('moves every namespaced object, binding subject and the Namespace out of the release namespace', () => {
    const objs = render(['--set', 'namespace.create=true', '--set', 'namespace.name=lvs-system'], { namespace: 'default' });
    expect(find(objs, 'Namespace', 'lvs-system').metadata.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'privileged' });
    const namespaced = objs.filter((o) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind));
    expect(namespaced.length).toBeGreaterThan(8);
    for (const o of namespaced) expect([o.kind, o.metadata.namespace]).toEqual([o.kind, 'lvs-system']);
    for (const b of objs.filter((o) => o.kind.endsWith('Binding'))) {
      for (const s of b['subjects'] as Array<{ namespace: string }>) expect(s.namespace).toBe('lvs-system');
    }
  });
});

describe('chart CRDs', () => {
  it('--include-crds ships the generated CRDs, NodePlan among them', () => {
    const crds = render([], { crds: true }).filter((o) => o.kind === 'CustomResourceDefinition');
    const names = crds.map((o) => o.metadata.name);
    expect(names).toEqual(expect.arrayContaining(['realservers.lvs.operator.dev', 'virtualservices.lvs.operator.dev']));
    const np = crds.find((o) => o.metadata.name === 'nodeplans.lvs.operator.dev');
    if (np) expect(np['spec']).toMatchObject({ scope: 'Cluster', names: { kind: 'NodePlan', shortNames: ['lvsnp'] } });
  });
});
