// The chart's RBAC on a real kube-apiserver: deploy/lvs-operator.yaml (the chart rendered with default
// values into lvs-system) is applied with the admin kubeconfig; then the harness identities
// system:serviceaccount:lvs-system:lvs-operator-{controller,agent} — the chart's ServiceAccounts —
// ask `kubectl auth can-i` with their own tokens and make real requests. What each needs is allowed;
// secrets, other namespaces, pods and the agent writing VirtualServices are denied.
import { describe, expect, test, beforeAll, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { DEPLOY_FILE } from '../../scripts/render-deploy.ts';
import { sharedApiServer } from './harness.ts';
import { credentials, kubectl, kubectlOk, rawRequest, uniqueName } from './util.ts';
import type { RunResult } from './util.ts';
import { eventually } from '../support/eventually.ts';

const NS = 'lvs-system';
const TIMEOUT = 120_000;
// Each test runs several kubectl processes: on a loaded 2-core box one can take seconds (jest's default is 5 s).
jest.setTimeout(TIMEOUT);

type Who = 'controller' | 'agent';
/** [verb, resource (with group and /subresource), namespace or '' for cluster scope] */
type Access = [string, string, string];

function canIArgs([verb, resource, ns]: Access): string[] {
  const [res, sub] = resource.split('/');
  return ['auth', 'can-i', verb, res!, ...(sub ? [`--subresource=${sub}`] : []), ...(ns === '*' ? ['--all-namespaces'] : ns ? ['-n', ns] : [])];
}
const label = ([verb, resource, ns]: Access) => `${verb} ${resource}${ns === '*' ? ' (all namespaces)' : ns ? ` in ${ns}` : ''}`;

const allowed: Record<Who, Access[]> = {
  controller: [
    ['get', 'virtualservices.lvs.operator.dev', 'default'],
    ['watch', 'virtualservices.lvs.operator.dev', '*'],
    ['update', 'virtualservices.lvs.operator.dev', 'default'],
    ['patch', 'virtualservices.lvs.operator.dev/status', 'default'],
    ['update', 'virtualservices.lvs.operator.dev/finalizers', 'default'],
    ['list', 'realservers.lvs.operator.dev', '*'],
    ['patch', 'realservers.lvs.operator.dev/status', 'team-a'],
    ['create', 'nodeplans.lvs.operator.dev', ''],
    ['update', 'nodeplans.lvs.operator.dev', ''],
    ['delete', 'nodeplans.lvs.operator.dev', ''],
    ['watch', 'nodeplans.lvs.operator.dev', ''],
    ['get', 'nodeplans.lvs.operator.dev/status', ''],
    ['patch', 'nodes', ''],
    ['watch', 'nodes', ''],
    ['list', 'vippools.lvs.operator.dev', ''],
    ['watch', 'vippools.lvs.operator.dev', ''],
    ['patch', 'vippools.lvs.operator.dev/status', ''],
    ['list', 'namespaces', ''],
    ['watch', 'namespaces', ''],
    ['create', 'events', 'default'],
    ['patch', 'events.events.k8s.io', 'default'],
    ['create', 'daemonsets.apps', NS],
    ['delete', 'daemonsets.apps', NS],
    ['create', 'leases.coordination.k8s.io', NS],
    ['update', 'leases.coordination.k8s.io', NS],
    ['watch', 'configmaps', NS],
  ],
  agent: [
    ['get', 'nodeplans.lvs.operator.dev', ''],
    ['list', 'nodeplans.lvs.operator.dev', ''],
    ['watch', 'nodeplans.lvs.operator.dev', ''],
    ['patch', 'nodeplans.lvs.operator.dev/status', ''],
    ['update', 'nodeplans.lvs.operator.dev/status', ''],
    // VIP election (src/agent/failover): read, create and renew one Lease per VIP (and read the per-service
    // Leases of agents before 0.2 during an upgrade).
    ['get', 'leases.coordination.k8s.io', NS],
    ['create', 'leases.coordination.k8s.io', NS],
    ['update', 'leases.coordination.k8s.io', NS],
    ['delete', 'leases.coordination.k8s.io', NS],
    ['watch', 'leases.coordination.k8s.io', NS],
    ['get', 'nodes', ''],
    ['create', 'events', 'default'],
    ['create', 'events.events.k8s.io', NS],
  ],
};

const denied: Record<Who, Access[]> = {
  controller: [
    ['get', 'secrets', NS],
    ['list', 'secrets', '*'],
    ['create', 'pods', NS],
    ['create', 'virtualservices.lvs.operator.dev', 'default'],
    ['delete', 'virtualservices.lvs.operator.dev', 'default'],
    ['delete', 'realservers.lvs.operator.dev', 'default'],
    ['patch', 'nodeplans.lvs.operator.dev/status', ''],
    ['delete', 'nodes', ''],
    ['create', 'daemonsets.apps', 'default'],
    ['create', 'deployments.apps', NS],
    ['create', 'leases.coordination.k8s.io', 'default'],
    ['delete', 'leases.coordination.k8s.io', NS],
    ['update', 'configmaps', NS],
    ['create', 'clusterrolebindings.rbac.authorization.k8s.io', ''],
    ['impersonate', 'serviceaccounts', NS],
    // Pools are the administrator's: the controller reads them and writes only their status.
    ['create', 'vippools.lvs.operator.dev', ''],
    ['update', 'vippools.lvs.operator.dev', ''],
    ['delete', 'vippools.lvs.operator.dev', ''],
    ['patch', 'namespaces', ''],
    // Services and EndpointSlices only by the name "kubernetes" (the API server's).
    ['list', 'services', 'default'],
    ['list', 'endpointslices.discovery.k8s.io', 'default'],
  ],
  agent: [
    ['update', 'virtualservices.lvs.operator.dev', 'default'],
    ['patch', 'virtualservices.lvs.operator.dev', 'default'],
    ['patch', 'virtualservices.lvs.operator.dev/status', 'default'],
    ['get', 'virtualservices.lvs.operator.dev', 'default'],
    ['update', 'realservers.lvs.operator.dev', 'default'],
    ['get', 'secrets', NS],
    ['list', 'secrets', '*'],
    ['create', 'daemonsets.apps', NS],
    ['create', 'pods', NS],
    ['create', 'nodeplans.lvs.operator.dev', ''],
    ['update', 'nodeplans.lvs.operator.dev', ''],
    ['delete', 'nodeplans.lvs.operator.dev', ''],
    ['patch', 'nodes', ''],
    ['create', 'leases.coordination.k8s.io', 'default'],
    ['get', 'configmaps', NS],
    ['list', 'vippools.lvs.operator.dev', ''],
    ['list', 'namespaces', ''],
  ],
};

describe('chart RBAC on a real apiserver (deploy/lvs-operator.yaml)', () => {
  const api = sharedApiServer();
  const kc: Record<Who | 'admin', string> = { admin: api.kubeconfigs.admin, controller: api.kubeconfigs.controller, agent: api.kubeconfigs.agent };
  const as = (who: Who | 'admin', args: string[], input?: string): Promise<RunResult> =>
    kubectl(args, { kubeconfig: kc[who], ...(input === undefined ? {} : { input }) });
  const userNs = uniqueName('rbac');

  beforeAll(async () => {
    // Server-side apply: idempotent, and no create race with other suites that apply the same CRDs.
    await kubectlOk(['apply', '--server-side', '--force-conflicts', '--field-manager=lvs-rbac-test', '-f', DEPLOY_FILE], { kubeconfig: kc.admin, timeoutMs: TIMEOUT });
    const crds = parseAllDocuments(readFileSync(DEPLOY_FILE, 'utf8'))
      .map((d) => d.toJS() as { kind?: string; metadata?: { name: string } } | null)
      .filter((o) => o?.kind === 'CustomResourceDefinition')
      .map((o) => `crd/${o!.metadata!.name}`);
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', ...crds], { kubeconfig: kc.admin });
    await kubectlOk(['create', 'namespace', userNs], { kubeconfig: kc.admin });
  }, TIMEOUT);

  test('the harness identities are the chart ServiceAccounts', async () => {
    const sas = (await kubectlOk(['get', 'serviceaccounts', '-n', NS, '-o', 'name'], { kubeconfig: kc.admin })).split('\n');
    expect(sas).toEqual(expect.arrayContaining(['serviceaccount/lvs-operator-controller', 'serviceaccount/lvs-operator-agent']));
    for (const who of ['controller', 'agent'] as const) {
      const r = await as(who, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
      expect(r.stdout).toBe(`system:serviceaccount:${NS}:lvs-operator-${who}`);
    }
  });

  describe.each(['controller', 'agent'] as const)('%s', (who) => {
    test.each(allowed[who].map((a) => [label(a), a] as const))('may %s', async (_l, access) => {
      const r = await as(who, canIArgs(access));
      // (stderr may warn that a cluster-scoped resource ignores the kubeconfig's namespace)
      expect(r.stdout.trim()).toBe('yes');
      expect(r.code).toBe(0);
    });
    test.each(denied[who].map((a) => [label(a), a] as const))('may not %s', async (_l, access) => {
      const r = await as(who, canIArgs(access));
      expect(r.stdout.trim()).toBe('no');
      expect(r.code).toBe(1);
    });
    test('its rules in lvs-system name no secrets and no wildcard', async () => {
      const out = await kubectlOk(['auth', 'can-i', '--list', '-n', NS], { kubeconfig: kc[who] });
      const rows = out.trim().split('\n').slice(1).map((l) => l.split(/\s{2,}/));
      expect(rows.length).toBeGreaterThan(3);
      for (const [resource, , , verbs] of rows) {
        expect(resource).not.toMatch(/^secrets|^\*/);
        expect(verbs).not.toContain('*');
      }
    });
  });

  describe('real requests', () => {
    const vs = 'web';
    beforeAll(async () => {
      const manifest = {
        apiVersion: 'lvs.operator.dev/v1alpha1',
        kind: 'VirtualService',
        metadata: { name: vs, namespace: userNs },
        spec: { vip: '192.0.2.10', port: 80, realServerSelector: { matchLabels: { app: 'web' } } },
      };
      await kubectlOk(['apply', '-f', '-'], { kubeconfig: kc.admin, input: JSON.stringify(manifest) });
    }, TIMEOUT);

    const forbidden = (r: RunResult, who: Who, what: string) => {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('Forbidden');
      expect(r.stderr).toContain(`User "system:serviceaccount:${NS}:lvs-operator-${who}" cannot ${what}`);
    };

    test('controller patches VirtualService status and adds a finalizer', async () => {
      const s = await as('controller', ['patch', 'virtualservice', vs, '-n', userNs, '--subresource=status', '--type=merge', '-p', '{"status":{"activeDirector":"director-1"}}', '-o', 'jsonpath={.status.activeDirector}']);
      expect(s.stderr).toBe('');
      expect(s.stdout).toBe('director-1');
      const f = await as('controller', ['patch', 'virtualservice', vs, '-n', userNs, '--type=merge', '-p', '{"metadata":{"finalizers":["lvs.operator.dev/cleanup"]}}']);
      expect(f.stderr).toBe('');
      await kubectlOk(['patch', 'virtualservice', vs, '-n', userNs, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { kubeconfig: kc.admin });
    });

    test('controller may create NodePlans (the server validates the body, RBAC lets it through)', async () => {
      const plan = { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'NodePlan', metadata: { name: 'rbac-probe' }, spec: {} };
      const c = await as('controller', ['create', '--dry-run=server', '-f', '-'], JSON.stringify(plan));
      expect(c.stderr).not.toContain('Forbidden');
      const a = await as('agent', ['create', '--dry-run=server', '-f', '-'], JSON.stringify(plan));
      forbidden(a, 'agent', 'create resource "nodeplans" in API group "lvs.operator.dev" at the cluster scope');
    });

    test('agent lists NodePlans and reaches NodePlan status (404, not 403)', async () => {
      const l = await as('agent', ['get', 'nodeplans.lvs.operator.dev', '-o', 'name']);
      expect(l.stderr).toBe('');
      expect(l.code).toBe(0);
      const p = await as('agent', ['patch', 'nodeplans.lvs.operator.dev', 'no-such-node', '--subresource=status', '--type=merge', '-p', '{"status":{}}']);
      expect(p.stderr).toContain('NotFound');
      expect(p.stderr).not.toContain('Forbidden');
    });

    test('controller creates an agent DaemonSet in lvs-system, the agent may not', async () => {
      const ds = {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name: 'lvs-agent-probe', namespace: NS },
        spec: {
          selector: { matchLabels: { app: 'probe' } },
          template: { metadata: { labels: { app: 'probe' } }, spec: { containers: [{ name: 'agent', image: 'example.invalid/agent:1' }] } },
        },
      };
      const c = await as('controller', ['create', '--dry-run=server', '-o', 'name', '-f', '-'], JSON.stringify(ds));
      expect(c.stderr).toBe('');
      expect(c.stdout.trim()).toBe('daemonset.apps/lvs-agent-probe');
      forbidden(await as('agent', ['create', '--dry-run=server', '-f', '-'], JSON.stringify(ds)), 'agent', 'create resource "daemonsets" in API group "apps" in the namespace "lvs-system"');
    });

    test('both create Leases in lvs-system; only the agent deletes them', async () => {
      for (const who of ['controller', 'agent'] as const) {
        const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: `probe-${who}-${userNs}`, namespace: NS }, spec: { holderIdentity: who, leaseDurationSeconds: 2 } };
        const c = await as(who, ['create', '-o', 'name', '-f', '-'], JSON.stringify(lease));
        expect(c.stderr).toBe('');
        expect(c.stdout.trim()).toBe(`lease.coordination.k8s.io/probe-${who}-${userNs}`);
      }
      forbidden(await as('controller', ['delete', 'lease', `probe-controller-${userNs}`, '-n', NS]), 'controller', 'delete resource "leases"');
      const d = await as('agent', ['delete', 'lease', `probe-agent-${userNs}`, `probe-controller-${userNs}`, '-n', NS]);
      expect(d.stderr).toBe('');
      expect(d.code).toBe(0);
    });

    test('agent cannot read or change VirtualServices, RealServers or their status', async () => {
      // Raw requests, so each verb is checked as such (kubectl patch would fail on its GET first).
      const agent = credentials(kc.agent);
      const base = `/apis/lvs.operator.dev/v1alpha1/namespaces/${userNs}`;
      const cases: Array<[string, string, string]> = [
        ['GET', `${base}/virtualservices/${vs}`, 'get resource "virtualservices"'],
        ['PATCH', `${base}/virtualservices/${vs}`, 'patch resource "virtualservices"'],
        ['PUT', `${base}/virtualservices/${vs}`, 'update resource "virtualservices"'],
        ['DELETE', `${base}/virtualservices/${vs}`, 'delete resource "virtualservices"'],
        ['PATCH', `${base}/virtualservices/${vs}/status`, 'patch resource "virtualservices/status"'],
        ['PUT', `${base}/realservers/web1`, 'update resource "realservers"'],
        ['POST', `${base}/realservers`, 'create resource "realservers"'],
      ];
      for (const [method, path, what] of cases) {
        const r = await rawRequest(agent, method, path, method === 'GET' || method === 'DELETE' ? undefined : { spec: { port: 81 } });
        expect([method, path, r.status]).toEqual([method, path, 403]);
        expect(String(r.json()['message'])).toContain(`User "system:serviceaccount:${NS}:lvs-operator-agent" cannot ${what}`);
      }
    });

    test('neither reads secrets nor creates pods', async () => {
      for (const who of ['controller', 'agent'] as const) {
        forbidden(await as(who, ['get', 'secrets', '-n', NS]), who, 'list resource "secrets" in API group "" in the namespace "lvs-system"');
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probe', namespace: NS }, spec: { containers: [{ name: 'c', image: 'example.invalid/x:1' }] } };
        forbidden(await as(who, ['create', '--dry-run=server', '-f', '-'], JSON.stringify(pod)), who, 'create resource "pods"');
      }
    });

    test("controller reads the API server's own Service and EndpointSlice by name, no other", async () => {
      for (const [resource, ok] of [['services/kubernetes', 'yes'], ['endpointslices.discovery.k8s.io/kubernetes', 'yes'], ['services/web', 'no'], ['endpointslices.discovery.k8s.io/web', 'no']] as const) {
        const r = await as('controller', ['auth', 'can-i', 'get', resource, '-n', 'default']);
        expect([resource, r.stdout.trim()]).toEqual([resource, ok]);
      }
      // The informer's requests: list and watch with the name as field selector are allowed.
      const controller = credentials(kc.controller);
      const l = await rawRequest(controller, 'GET', '/api/v1/namespaces/default/services?fieldSelector=metadata.name%3Dkubernetes');
      expect(l.status).toBe(200);
      expect((l.json()['items'] as Array<{ metadata: { name: string } }>).map((i) => i.metadata.name)).toEqual(['kubernetes']);
      expect((await rawRequest(controller, 'GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?fieldSelector=metadata.name%3Dkubernetes')).status).toBe(200);
      expect((await rawRequest(controller, 'GET', '/api/v1/namespaces/default/services')).status).toBe(403);
    });

    test('controller reads VIPPools and cannot create or change them', async () => {
      // Right after the CRD is established the server may answer 429 while its watch cache fills.
      const l = await eventually('VIPPool list served', async () => {
        const r = await rawRequest(credentials(kc.controller), 'GET', '/apis/lvs.operator.dev/v1alpha1/vippools');
        return r.status === 429 ? undefined : r;
      });
      expect(l.status).toBe(200);
      const pool = { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VIPPool', metadata: { name: `rbac-probe-${userNs}` }, spec: { addresses: ['192.0.2.0/28'], namespaceSelector: {} } };
      forbidden(await as('controller', ['create', '--dry-run=server', '-f', '-'], JSON.stringify(pool)), 'controller', 'create resource "vippools" in API group "lvs.operator.dev" at the cluster scope');
    });

    test('controller reads its ConfigMap and cannot change it', async () => {
      const g = await as('controller', ['get', 'configmap', 'lvs-operator-config', '-n', NS, '-o', 'jsonpath={.data.config\\.json}']);
      expect(g.stderr).toBe('');
      const config = JSON.parse(g.stdout) as { agent: { serviceAccountName: string } };
      expect(config.agent.serviceAccountName).toBe('lvs-operator-agent');
      forbidden(await as('controller', ['label', 'configmap', 'lvs-operator-config', '-n', NS, 'x=y']), 'controller', 'patch resource "configmaps"');
    });
  });
});
