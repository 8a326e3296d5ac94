// `helm install` of charts/lvs-operator into a real kube-apiserver: the CRDs become Established, every
// templated object is created, an upgrade rolls the config, invalid values are refused before anything
// is sent, and `helm uninstall` removes the release (CRDs stay, as Helm never deletes crds/).
// The release gets its own name and namespace, so it does not collide with rbac.test.ts, which applies
// deploy/lvs-operator.yaml as release "lvs-operator" into lvs-system. No kubelet or controller-manager
// runs here, so the Deployment never gets pods; nothing waits for it.
import { describe, expect, test, afterAll } from '@jest/globals';
import { CHART_DIR } from '../../scripts/render-deploy.ts';
import { sharedApiServer } from './harness.ts';
import { helm, kubectl, kubectlOk, uniqueName } from './util.ts';

const TIMEOUT = 180_000;

describe('helm install / upgrade / uninstall on a real apiserver', () => {
  const kubeconfig = sharedApiServer().kubeconfigs.admin;
  const release = uniqueName('lvs-chart');
  const ns = release;
  const full = `${release}-lvs-operator`;
  const k = (args: string[]) => kubectlOk(args, { kubeconfig });
  const h = (args: string[]) => helm(args, { kubeconfig, timeoutMs: TIMEOUT });
  const json = async <T>(args: string[]): Promise<T> => JSON.parse(await k([...args, '-o', 'json'])) as T;

  afterAll(async () => {
    await h(['uninstall', release, '-n', ns, '--ignore-not-found']);
    await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false'], { kubeconfig });
  }, TIMEOUT);

  test('invalid values are refused with the schema error, before anything is created', async () => {
    const r = await h(['install', release, CHART_DIR, '-n', ns, '--create-namespace', '--set', 'controller.replicas=two']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("at '/controller/replicas': got string, want integer");
    const nsr = await kubectl(['get', 'namespace', ns], { kubeconfig });
    expect(nsr.stderr).toContain('NotFound');
  }, TIMEOUT);

  test('helm install succeeds and prints the NOTES', async () => {
    const r = await h(['install', release, CHART_DIR, '-n', ns, '--create-namespace']);
    expect(r.stderr.split('\n').filter((l) => l && !/^(W|I)\d{4}|^creating \d+ resource/.test(l))).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('STATUS: deployed');
    expect(r.stdout).toContain('kubectl label node NODE lvs.operator.dev/director=true');
    expect(r.stdout).toContain('kubectl apply -f deploy/examples/dr-lab.yaml');
    // VIPs are default-deny and the default values create no pool: the NOTES say how to add one.
    expect(r.stdout).toContain('There is no pool yet');
    expect(r.stdout).toContain('kubectl apply -f deploy/examples/vip-pool-lab.yaml');
    expect(r.stdout).toContain('kubectl get lvsvs');
    // installed with --create-namespace: the NOTES warn that the namespace lacks the Pod Security label
    expect(r.stdout).toContain(`kubectl label namespace ${ns} pod-security.kubernetes.io/enforce=privileged`);
  }, TIMEOUT);

  test('the CRDs become Established', async () => {
    const crds = ['virtualservices', 'realservers', 'nodeplans', 'vippools'].map((p) => `crd/${p}.lvs.operator.dev`);
    await k(['wait', '--for=condition=Established', '--timeout=60s', ...crds]);
    const lvsnp = await json<{ spec: { scope: string; names: { shortNames: string[] } } }>(['get', 'crd', 'nodeplans.lvs.operator.dev']);
    expect(lvsnp.spec.scope).toBe('Cluster');
    expect(lvsnp.spec.names.shortNames).toContain('lvsnp');
    // the API resolves the short names
    expect((await kubectl(['get', 'lvsvs,lvsrs', '-A'], { kubeconfig })).code).toBe(0);
  }, TIMEOUT);

  test('every object of the release exists', async () => {
    const names = (await k(['get', 'deployment,configmap,serviceaccount,role,rolebinding,service,poddisruptionbudget', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name'])).trim().split('\n').sort();
    expect(names).toEqual([
      `configmap/${full}-config`,
      `deployment.apps/${full}-controller`,
      `poddisruptionbudget.policy/${full}-controller`,
      `role.rbac.authorization.k8s.io/${full}-agent`,
      `role.rbac.authorization.k8s.io/${full}-controller`,
      `rolebinding.rbac.authorization.k8s.io/${full}-agent`,
      `rolebinding.rbac.authorization.k8s.io/${full}-controller`,
      `service/${full}-controller-metrics`,
      `serviceaccount/${full}-agent`,
      `serviceaccount/${full}-controller`,
    ]);
    const cluster = (await k(['get', 'clusterrole,clusterrolebinding', '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name'])).trim().split('\n').sort();
    expect(cluster).toEqual([
      `clusterrole.rbac.authorization.k8s.io/${full}-agent`,
      `clusterrole.rbac.authorization.k8s.io/${full}-controller`,
      `clusterrole.rbac.authorization.k8s.io/${full}-edit`,
      `clusterrole.rbac.authorization.k8s.io/${full}-view`,
      `clusterrolebinding.rbac.authorization.k8s.io/${full}-agent`,
      `clusterrolebinding.rbac.authorization.k8s.io/${full}-controller`,
    ]);
    const cm = await json<{ data: Record<string, string> }>(['get', 'configmap', `${full}-config`, '-n', ns]);
    expect(JSON.parse(cm.data['config.json']!)).toMatchObject({ agent: { serviceAccountName: `${full}-agent`, metricsPort: 9120 } });
  }, TIMEOUT);

  test("the release's ServiceAccounts get the chart's permissions (impersonated)", async () => {
    const can = async (sa: string, args: string[]) =>
      (await kubectl(['auth', 'can-i', ...args, `--as=system:serviceaccount:${ns}:${full}-${sa}`], { kubeconfig })).stdout.trim();
    expect(await can('controller', ['patch', 'virtualservices.lvs.operator.dev', '--subresource=status', '-n', 'default'])).toBe('yes');
    expect(await can('controller', ['create', 'daemonsets.apps', '-n', ns])).toBe('yes');
    expect(await can('agent', ['patch', 'nodeplans.lvs.operator.dev', '--subresource=status'])).toBe('yes');
    expect(await can('agent', ['create', 'leases.coordination.k8s.io', '-n', ns])).toBe('yes');
    expect(await can('agent', ['get', 'secrets', '-n', ns])).toBe('no');
    expect(await can('agent', ['update', 'virtualservices.lvs.operator.dev', '-n', 'default'])).toBe('no');
  }, TIMEOUT);

  test('the user-facing roles: -view reads VirtualServices, -edit writes them; both aggregate into the defaults', async () => {
    // No controller-manager runs here, so the ClusterRole aggregation controller does not merge them into
    // view/edit/admin; bind the chart's roles directly and check the aggregation labels.
    type Role = { metadata: { labels: Record<string, string> } };
    const view = await json<Role>(['get', 'clusterrole', `${full}-view`]);
    expect(view.metadata.labels).toMatchObject({ 'rbac.authorization.k8s.io/aggregate-to-view': 'true', 'rbac.authorization.k8s.io/aggregate-to-edit': 'true', 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' });
    const edit = await json<Role>(['get', 'clusterrole', `${full}-edit`]);
    expect(edit.metadata.labels).toMatchObject({ 'rbac.authorization.k8s.io/aggregate-to-edit': 'true', 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' });
    expect(edit.metadata.labels).not.toHaveProperty(['rbac.authorization.k8s.io/aggregate-to-view']);
    await k(['create', 'rolebinding', `${release}-view`, '-n', ns, `--clusterrole=${full}-view`, '--user=jane']);
    await k(['create', 'rolebinding', `${release}-edit`, '-n', ns, `--clusterrole=${full}-edit`, '--user=joe']);
    const can = async (user: string, verb: string, res = 'virtualservices.lvs.operator.dev') =>
      (await kubectl(['auth', 'can-i', verb, res, '-n', ns, `--as=${user}`], { kubeconfig })).stdout.trim();
    expect(await can('jane', 'list')).toBe('yes');
    expect(await can('jane', 'watch', 'realservers.lvs.operator.dev')).toBe('yes');
    expect(await can('jane', 'create')).toBe('no');
    expect(await can('joe', 'create')).toBe('yes');
    expect(await can('joe', 'delete', 'realservers.lvs.operator.dev')).toBe('yes');
    expect(await can('joe', 'patch', 'nodeplans.lvs.operator.dev')).toBe('no');
    expect(await can('joe', 'get', 'secrets')).toBe('no');
  }, TIMEOUT);

  test('helm upgrade changes replicas and rolls the config checksum', async () => {
    type Dep = { spec: { replicas: number; template: { metadata: { annotations: Record<string, string> } } } };
    const before = await json<Dep>(['get', 'deployment', `${full}-controller`, '-n', ns]);
    // ... and adds a VIP pool from the values (validated by the API server like any VIPPool).
    const pools = JSON.stringify([{ name: `${release}-pool`, addresses: ['192.0.2.16/28', '2001:db8:2::10-2001:db8:2::1f'], namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } }]);
    const r = await h(['upgrade', release, CHART_DIR, '-n', ns, '--reuse-values', '--set', 'controller.replicas=3', '--set', 'failover.leaseDurationSeconds=3', '--set-json', `vipPools=${pools}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('REVISION: 2');
    expect(r.stdout).toContain(`VIPPools: ${release}-pool (192.0.2.16/28 2001:db8:2::10-2001:db8:2::1f)`);
    const pool = await json<{ metadata: { labels: Record<string, string> }; spec: Record<string, unknown> }>(['get', 'vippool', `${release}-pool`]);
    expect(pool.metadata.labels).toMatchObject({ 'app.kubernetes.io/instance': release });
    expect(pool.spec).toEqual({ addresses: ['192.0.2.16/28', '2001:db8:2::10-2001:db8:2::1f'], namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } }, autoAssign: true });
    const after = await json<Dep>(['get', 'deployment', `${full}-controller`, '-n', ns]);
    expect(after.spec.replicas).toBe(3);
    expect(after.spec.template.metadata.annotations['checksum/config']).not.toBe(before.spec.template.metadata.annotations['checksum/config']);
    const cm = await json<{ data: Record<string, string> }>(['get', 'configmap', `${full}-config`, '-n', ns]);
    expect(JSON.parse(cm.data['config.json']!)).toMatchObject({ failover: { leaseDurationSeconds: 3, renewIntervalMilliseconds: 500 } });
  }, TIMEOUT);

  test('helm uninstall removes the release and keeps the CRDs', async () => {
    const r = await h(['uninstall', release, '-n', ns, '--wait', '--timeout', '2m']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await k(['get', 'clusterrole,clusterrolebinding,vippools', '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name'])).trim()).toBe('');
    expect((await k(['get', 'deployment,configmap,serviceaccount,role,rolebinding,service', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name'])).trim()).toBe('');
    expect((await h(['status', release, '-n', ns])).stderr).toContain('release: not found');
    await k(['get', 'crd', 'virtualservices.lvs.operator.dev', 'realservers.lvs.operator.dev', 'nodeplans.lvs.operator.dev', 'vippools.lvs.operator.dev']);
  }, TIMEOUT);

  test('namespace.create=true into the release namespace fails: Helm stores the release there first', async () => {
    const rel2 = uniqueName('lvs-ns');
    const r = await h(['install', rel2, CHART_DIR, '-n', rel2, '--set', 'namespace.create=true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`namespaces "${rel2}" not found`);
  }, TIMEOUT);

  test('namespace.create=true with namespace.name creates the namespace with the Pod Security labels', async () => {
    const rel2 = uniqueName('lvs-ns');
    try {
      const r = await h(['install', rel2, CHART_DIR, '-n', 'default', '--set', 'namespace.create=true', '--set', `namespace.name=${rel2}`, '--set', 'rbac.aggregateToDefaultRoles=false']);
      expect(r.stderr.split('\n').filter((l) => l && !/^(W|I)\d{4}|^creating \d+ resource/.test(l))).toEqual([]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('WARNING: the agent pods are privileged');
      const n = await json<{ metadata: { labels: Record<string, string> } }>(['get', 'namespace', rel2]);
      expect(n.metadata.labels).toMatchObject({
        'pod-security.kubernetes.io/enforce': 'privileged',
        'pod-security.kubernetes.io/audit': 'privileged',
        'pod-security.kubernetes.io/warn': 'privileged',
      });
      expect((await k(['get', 'serviceaccount', '-n', rel2, '-o', 'name'])).trim().split('\n').sort()).toEqual([
        `serviceaccount/${rel2}-lvs-operator-agent`,
        `serviceaccount/${rel2}-lvs-operator-controller`,
      ]);
      // uninstall deletes the namespace with everything in it
      const u = await h(['uninstall', rel2, '-n', 'default']);
      expect(u.code).toBe(0);
      const gone = await kubectl(['get', 'namespace', rel2, '-o', 'jsonpath={.status.phase}'], { kubeconfig });
      expect(gone.stderr.includes('NotFound') || gone.stdout === 'Terminating').toBe(true);
    } finally {
      await h(['uninstall', rel2, '-n', 'default', '--ignore-not-found']);
      await kubectl(['delete', 'namespace', rel2, '--ignore-not-found', '--wait=false'], { kubeconfig });
    }
  }, TIMEOUT);
});

