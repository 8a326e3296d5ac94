// The controller against the real kube-apiserver: VirtualServices, RealServers and Nodes in, NodePlan
// shards, node labels, DaemonSets, finalizers, statuses and Events out. The agents' side is played by
// writing NodePlan status as the agent identity would.
import { jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { Controller, FINALIZER } from '../../src/controller/controller.ts';
import { defaultConfig } from '../../src/controller/config.ts';
import { CustomObjects } from '../../src/kube/status.ts';
import { Informer } from '../../src/kube/informer.ts';
import { shardName, shardOf, SHARDS } from '../../src/model/shards.ts';
import { EventRecorder, eventsV1Sink } from '../../src/kube/events.ts';
import { createLogger } from '../../src/util/log.ts';
import type { NodePlan, VirtualService, RealServer } from '../../src/api/v1alpha1/index.ts';
import { ENV } from './harness.ts';
import { kubectlOk, uniqueName, sleep } from './util.ts';
import { eventually } from '../support/eventually.ts';

jest.setTimeout(180_000);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const admin = (): string => process.env[ENV.admin] ?? '';
const R = {
  vs: { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'virtualservices' },
  rs: { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'realservers' },
  np: { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'nodeplans' },
};

describe('controller against a real apiserver', () => {
  const ns = uniqueName('lvs-ctl');
  const sfx = ns.slice(-6);
  const node = { director: `director-${sfx}`, web1: `web1-${sfx}`, web2: `web2-${sfx}` };
  let kc: KubeConfig;
  let objects: CustomObjects;
  let controller: Controller;
  let registry: Registry;

  const start = async (): Promise<Controller> => {
    registry = new Registry();
    const events = new EventRecorder({ sink: eventsV1Sink(kc), reportingInstance: 'test', logger: createLogger('events', 'silent') });
    const c = new Controller({ kc, namespace: ns, config: { ...defaultConfig(), defaultDirectorSelector: { 'lvs-test/director': sfx } }, log: createLogger('controller', process.env.LVS_TEST_LOG ?? 'silent'), registry, events });
    await c.start();
    c.setLeading(true);
    return c;
  };

  const plansOf = async (n: string): Promise<NodePlan[]> => {
    const out = await kubectlOk(['get', 'nodeplans', '-l', `lvs.operator.dev/node=${n}`, '-o', 'json'], { kubeconfig: admin() });
    return (JSON.parse(out) as { items: NodePlan[] }).items;
  };
  const directorServices = async (): Promise<NodePlan['spec']['director']> => (await plansOf(node.director)).flatMap((p) => p.spec.director);
  const getVs = (name: string): Promise<VirtualService> => objects.get<VirtualService & { metadata: { name: string } }>(R.vs, { name, namespace: ns });

  beforeAll(async () => {
    kc = new KubeConfig();
    kc.loadFromFile(admin());
    objects = new CustomObjects(kc);
    await kubectlOk(['apply', '--server-side', '-f', join(ROOT, 'crds')], { kubeconfig: admin() });
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualservices.lvs.operator.dev', 'crd/realservers.lvs.operator.dev', 'crd/nodeplans.lvs.operator.dev', 'crd/vippools.lvs.operator.dev'], { kubeconfig: admin() });
    await kubectlOk(['create', 'namespace', ns], { kubeconfig: admin() });
    // VIPs are default-deny: this suite's VIPs (10.77.0.40, .41) in a pool for its namespace only.
    await kubectlOk(['apply', '-f', '-'], { kubeconfig: admin(), input: JSON.stringify({
      apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VIPPool', metadata: { name: ns },
      spec: { addresses: ['10.77.0.40/30'], namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } },
    }) });
    const nodeDoc = (name: string, ip: string, director: boolean): string => JSON.stringify({
      apiVersion: 'v1', kind: 'Node', metadata: { name, labels: director ? { 'lvs-test/director': sfx } : {} },
      status: { addresses: [{ type: 'InternalIP', address: ip }] },
    });
    for (const [name, ip, d] of [[node.director, '192.168.56.34', true], [node.web1, '192.168.56.37', false], [node.web2, '192.168.56.38', false]] as const) {
      await kubectlOk(['create', '-f', '-'], { kubeconfig: admin(), input: nodeDoc(name, ip, d) });
      // Node status is a subresource: set the addresses the way a kubelet does.
      await kubectlOk(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: ip }] } })], { kubeconfig: admin() });
    }
    const example = readFileSync(join(ROOT, 'deploy/examples/dr-lab.yaml'), 'utf8')
      .replaceAll('192.168.56.40', '10.77.0.40')
      .replace('nodeName: web1', `nodeName: ${node.web1}`)
      .replace('nodeName: web2', `nodeName: ${node.web2}`);
    // A second service keeps the director's plan non-empty while 'web' is deleted later.
    const keep = JSON.stringify({ apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', metadata: { name: 'keep' }, spec: { vip: '10.77.0.41', port: 443, realServerSelector: { matchLabels: { app: 'none' } } } });
    controller = await start();
    await kubectlOk(['apply', '-n', ns, '-f', '-'], { kubeconfig: admin(), input: example });
    await kubectlOk(['apply', '-n', ns, '-f', '-'], { kubeconfig: admin(), input: keep });
  });

  afterAll(async () => {
    await controller?.stop();
    await kubectlOk(['delete', 'node', node.director, node.web1, node.web2, '--ignore-not-found'], { kubeconfig: admin() }).catch(() => undefined);
    await kubectlOk(['delete', 'vippool', ns, '--ignore-not-found'], { kubeconfig: admin() }).catch(() => undefined);
    await kubectlOk(['delete', 'namespace', ns, '--wait=false'], { kubeconfig: admin() }).catch(() => undefined);
  });

  it('writes one NodePlan per node with work, labels realserver nodes, runs the agent DaemonSets', async () => {
    const svc = await eventually('director plan', async () => (await directorServices()).find((s) => s.id === `${ns}/web`));
    expect(svc).toMatchObject({ vip: '10.77.0.40', port: 80, scheduler: 'rr', forwarding: 'DirectRouting', holdVip: true, pool: ns });
    // DR realservers on nodes: weight 0 until their node's agent reports the VIP prepared (next test).
    expect(svc.destinations.map((d) => `${d.address}:${d.port}/${d.weight}`).sort()).toEqual(['192.168.56.37:80/0', '192.168.56.38:80/0']);
    const w1 = await eventually('web1 plan', async () => (await plansOf(node.web1))[0]);
    expect(w1.spec.realServer).toEqual([{ service: `${ns}/web`, vip: '10.77.0.40', forwarding: 'DirectRouting', pool: ns }]);
    await eventually('realserver label', async () => (await kubectlOk(['get', 'node', node.web1, '-o', 'jsonpath={.metadata.labels}'], { kubeconfig: admin() })).includes('lvs.operator.dev/realserver'));
    const ds = await kubectlOk(['get', 'daemonsets', '-n', ns, '-o', 'jsonpath={.items[*].metadata.name}'], { kubeconfig: admin() });
    expect(ds.split(' ').sort()).toEqual(['lvs-agent-director', 'lvs-agent-realserver']);
    const vs = await getVs('web');
    expect(vs.metadata.finalizers).toContain(FINALIZER);
  });

  it('status: Accepted, then Programmed and Ready once the agents report', async () => {
    let vs = await eventually('accepted', async () => {
      const v = await getVs('web');
      return v.status?.conditions?.find((c) => c.type === 'Accepted' && c.status === 'True') ? v : undefined;
    });
    expect(vs.status?.conditions?.find((c) => c.type === 'Programmed')).toMatchObject({ status: 'False', reason: 'Pending' });
    const generation = vs.metadata.generation ?? 0;
    const dplan = (await plansOf(node.director)).find((p) => p.spec.director.some((s) => s.id === `${ns}/web`))!;
    await objects.patchStatus(R.np, { name: dplan.metadata.name ?? '' }, {
      services: [{ id: `${ns}/web`, generation, programmed: true, holdsVip: true }],
    });
    for (const n of [node.web1, node.web2]) {
      const [p] = await plansOf(n);
      await objects.patchStatus(R.np, { name: p!.metadata.name ?? '' }, { realServer: [{ service: `${ns}/web`, vip: '10.77.0.40', prepared: true }] });
    }
    // Prepared: the director gets both realservers at their weight.
    const weights = await eventually('weights once prepared', async () => {
      const w = (await directorServices()).find((s) => s.id === `${ns}/web`)?.destinations.map((d) => d.weight);
      return w?.every((x) => x === 1) ? w : undefined;
    });
    expect(weights).toEqual([1, 1]);
    vs = await eventually('ready', async () => {
      const v = await getVs('web');
      return v.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True') && v.status.realServers?.ready === '2/2' ? v : undefined;
    });
    expect(vs.status).toMatchObject({ observedGeneration: generation, realServers: { total: 2, healthy: 2, ready: '2/2' }, activeDirector: node.director, vip: '10.77.0.40', vipPool: ns });
    expect(vs.status?.conditions?.every((c) => c.observedGeneration === generation)).toBe(true);
    const table = await kubectlOk(['get', 'lvsvs', '-n', ns], { kubeconfig: admin() });
    expect(table).toMatch(/NAME\s+VIP\s+PORT\s+MODE\s+SCHEDULER\s+READY\s+DIRECTOR\s+AGE/);
    expect(table).toMatch(new RegExp(`web\\s+10\\.77\\.0\\.40\\s+80\\s+DirectRouting\\s+rr\\s+2/2\\s+${node.director}`));
    const rs = await objects.get<RealServer & { metadata: { name: string } }>(R.rs, { name: 'web1', namespace: ns });
    expect(rs.status?.conditions?.find((c) => c.type === 'Prepared')).toMatchObject({ status: 'True' });
    await eventually('a Ready event', async () => /Ready/.test(await kubectlOk(['get', 'events.events.k8s.io', '-n', ns, '-o', 'jsonpath={.items[*].reason}'], { kubeconfig: admin() })));
  });

  it('a weight change reaches the director plan; Programmed waits for the new generation', async () => {
    await kubectlOk(['patch', 'realserver', 'web2', '-n', ns, '--type=merge', '-p', '{"spec":{"weight":5}}'], { kubeconfig: admin() });
    await eventually('weight 5 planned', async () => (await directorServices()).find((s) => s.id === `${ns}/web`)?.destinations.some((d) => d.weight === 5));
    await kubectlOk(['patch', 'virtualservice', 'web', '-n', ns, '--type=merge', '-p', '{"spec":{"scheduler":"wrr"}}'], { kubeconfig: admin() });
    const v = await eventually('pending new generation', async () => {
      const x = await getVs('web');
      return x.status?.observedGeneration === x.metadata.generation && x.status?.conditions?.find((c) => c.type === 'Programmed' && c.status === 'False') ? x : undefined;
    });
    expect(v.status?.conditions?.find((c) => c.type === 'Programmed')?.message).toContain(`generation ${v.metadata.generation}`);
  });

  it('a second VirtualService on the same VIP:port is rejected with VIPConflict and not planned', async () => {
    await kubectlOk(['apply', '-n', ns, '-f', '-'], { kubeconfig: admin(), input: JSON.stringify({ apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', metadata: { name: 'twin' }, spec: { vip: '10.77.0.40', port: 80, realServerSelector: {} } }) });
    const twin = await eventually('conflict', async () => {
      const v = await getVs('twin');
      return v.status?.conditions?.find((c) => c.type === 'Accepted' && c.status === 'False') ? v : undefined;
    });
    expect(twin.status?.conditions?.find((c) => c.type === 'Accepted')).toMatchObject({ reason: 'VIPConflict' });
    expect((await directorServices()).map((s) => s.id)).not.toContain(`${ns}/twin`);
    await kubectlOk(['delete', 'virtualservice', 'twin', '-n', ns, '--wait=false'], { kubeconfig: admin() });
  });

  it('a restarted controller resumes without writing anything', async () => {
    // Let the writes the previous tests caused (the twin's deletion) settle first.
    await sleep(4000);
    // Other test files' objects share this apiserver and may legitimately change (their namespaces are
    // being deleted), so the proof is that none of this test's objects gets a new resourceVersion.
    const versions = async (): Promise<string> => {
      const mine = await kubectlOk(['get', 'virtualservices,realservers', '-n', ns, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}'], { kubeconfig: admin() });
      const plans = (await Promise.all(Object.values(node).map(plansOf))).flat().map((p) => `${p.metadata.name}=${p.metadata.resourceVersion}`);
      return `${mine} ${plans.sort().join(' ')}`;
    };
    const before = await versions();
    await controller.stop();
    controller = await start();
    await sleep(3000);
    expect(await versions()).toBe(before);
    expect(await registry.getSingleMetricAsString('lvs_controller_writes_total')).not.toMatch(/writes_total\{kind="(nodeplan|daemonset|finalizer|node-label)"\} [1-9]/);
  });

  it('an entry moving to another shard (as after the shard count changed) is on one of them at every step', async () => {
    const id = `${ns}/web`;
    const right = shardName(node.director, shardOf(id));
    const have = (await plansOf(node.director)).find((p) => p.metadata.name === right);
    expect(have?.spec.director.some((s) => s.id === id)).toBe(true);
    const names = new Set((await plansOf(node.director)).map((p) => p.metadata.name));
    let shard = shardOf(id);
    do shard = (shard + 1) % SHARDS; while (names.has(shardName(node.director, shard)));
    const old = shardName(node.director, shard);
    // The old layout, written while the controller is down: the entry on another shard, none on its own.
    await controller.stop();
    await kubectlOk(['delete', 'nodeplan', right], { kubeconfig: admin() });
    await objects.create<NodePlan>(R.np, { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'NodePlan', metadata: { name: old, labels: have!.metadata.labels }, spec: { ...have!.spec, shard } });
    // What the node's agent sees, in order: after every event the entry must be on some shard. (A full pass
    // lists the new shard's write first anyway; the controller also waits for it before it removes the old
    // one, so the two writes cannot race.)
    const carriers = new Map<string, boolean>();
    let synced = false;
    const gaps: string[] = [];
    const seen = (o: NodePlan, gone = false): void => {
      carriers.set(o.metadata.name ?? '', !gone && o.spec.director.some((s) => s.id === id));
      if (synced && ![...carriers.values()].some(Boolean)) gaps.push(`${gone ? 'deleted' : 'written'} ${o.metadata.name}`);
    };
    const watch = new Informer<NodePlan>(kc, { resource: R.np, labelSelector: `lvs.operator.dev/node=${node.director}`, logger: createLogger('watch', 'silent') });
    watch.on('add', (o) => seen(o));
    watch.on('update', (o) => seen(o));
    watch.on('delete', (o) => seen(o, true));
    await watch.start();
    synced = true;
    try {
      controller = await start();
      await eventually('moved back to its shard', async () => carriers.get(right) === true && carriers.get(old) === false);
    } finally {
      await watch.stop();
    }
    expect(gaps).toEqual([]);
    expect((await plansOf(node.director)).map((p) => p.metadata.name)).not.toContain(old);
    // The director's report again, on the recreated shard (the next test needs the service held).
    const now = await objects.get<NodePlan & { metadata: { name: string } }>(R.np, { name: right });
    await objects.patchStatus(R.np, { name: right }, { ...have!.status, observedGeneration: now.metadata.generation });
  });

  it('deleting a VirtualService: planned away at once, gone only when no director holds it', async () => {
    await kubectlOk(['delete', 'virtualservice', 'web', '-n', ns, '--wait=false'], { kubeconfig: admin() });
    await eventually('unplanned', async () => !(await directorServices()).some((s) => s.id === `${ns}/web`));
    await sleep(1000);
    // The director still reports it programmed: the finalizer holds the object.
    expect((await getVs('web')).metadata.deletionTimestamp).toBeDefined();
    // The director agent reports it no longer holds the service.
    for (const p of await plansOf(node.director)) await objects.patchStatus(R.np, { name: p.metadata.name ?? '' }, { services: [] });
    await eventually('finalizer released', async () => {
      try {
        await getVs('web');
        return false;
      } catch {
        return true;
      }
    });
  });
});
