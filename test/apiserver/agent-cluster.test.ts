// The agent's cluster mode against the real apiserver: it watches only its node's NodePlan shards, runs
// their merged plan (here into the in-memory IPVS fake), and reports on each shard's status subresource.
import { jest } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { ClusterSource, NODEPLANS, REPORT_WRITES_IN_FLIGHT } from '../../src/agent/cluster.ts';
import { Writer } from '../../src/kube/writer.ts';
import { Agent } from '../../src/agent/agent.ts';
import { DirectorReconciler } from '../../src/agent/director/reconciler.ts';
import { RealServerReconciler } from '../../src/agent/realserver/reconciler.ts';
import { HealthChecker } from '../../src/agent/health/checker.ts';
import { MemoryStateStore } from '../../src/agent/state.ts';
import { FakeIpvs } from '../../src/ipvs/fake.ts';
import { FakeNetif } from '../../src/netif/fake.ts';
import { FakeSysctl, defaultSysctls } from '../../src/sysctl/fake.ts';
import { CustomObjects } from '../../src/kube/status.ts';
import { shardPlan } from '../../src/model/shards.ts';
import type { NodePlan as NodePlanObject } from '../../src/api/v1alpha1/nodeplan.ts';
import type { PlannedService } from '../../src/model/plan.ts';
import { createLogger } from '../../src/util/log.ts';
import { ENV } from './harness.ts';
import { kubectlOk, uniqueName } from './util.ts';
import { eventually } from '../support/eventually.ts';

jest.setTimeout(120_000);

const svc = (id: string, vip: string, weight = 1): PlannedService => ({
  id, generation: 4, vip, port: 80, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false, forwarding: 'DirectRouting', holdVip: true, pool: 'lab',
  healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 0,
  destinations: [{ realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight, upperThreshold: 0, lowerThreshold: 0 }],
});

describe('agent cluster mode', () => {
  const node = uniqueName('agent-node');
  const admin = (): string => process.env[ENV.admin] ?? '';
  let kc: KubeConfig;
  let objects: CustomObjects;
  let source: ClusterSource;
  let agent: Agent;
  /** Plans handed to the agent. */
  let plans = 0;
  const ipvs = new FakeIpvs();
  const netif = new FakeNetif();
  netif.addLink('eth0', { up: true });

  beforeAll(async () => {
    await kubectlOk(['apply', '--server-side', '-f', 'crds/'], { kubeconfig: admin() });
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/nodeplans.lvs.operator.dev'], { kubeconfig: admin() });
    kc = new KubeConfig();
    kc.loadFromFile(admin());
    objects = new CustomObjects(kc);
    const log = createLogger('agent', 'silent');
    const state = new MemoryStateStore();
    const sysctl = new FakeSysctl(defaultSysctls(['eth0']));
    agent = new Agent({
      node, log, health: new HealthChecker({ log }),
      director: new DirectorReconciler({ ipvs, netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
      realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
      onReport: (r) => source.report(r),
      onPlan: () => { plans += 1; },
    });
    source = new ClusterSource({ kc, node, agent, log });
    // Another node's plan must be ignored.
    for (const o of shardPlan({ node: `${node}-other`, director: [svc('lab/other', '10.88.0.99')], realServer: [] })) await objects.create(NODEPLANS, o);
    await source.start();
  });

  /** Counts the agent's listings of all its shards until restore(). */
  const countLists = (): { readonly count: number; restore(): void } => {
    const list = source.informer.list.bind(source.informer);
    const counter = { count: 0, restore: () => void (source.informer.list = list) };
    source.informer.list = (...a: Parameters<typeof list>) => {
      counter.count += 1;
      return list(...a);
    };
    return counter;
  };

  afterAll(async () => {
    agent?.stop();
    await source?.stop();
    await kubectlOk(['delete', 'nodeplans', '-l', `lvs.operator.dev/node in (${node},${node}-other)`, '--ignore-not-found'], { kubeconfig: admin() }).catch(() => undefined);
  });

  it('programs its own shards only and reports Programmed with the applied generation', async () => {
    const shards = shardPlan({ node, director: [svc('lab/a', '10.88.0.1'), svc('lab/b', '10.88.0.2')], realServer: [] });
    for (const o of shards) await objects.create(NODEPLANS, o);
    await eventually('kernel holds both', async () => (await ipvs.listServices()).length === 2);
    expect((await ipvs.listServices()).map((s) => s.service.address).sort()).toEqual(['10.88.0.1', '10.88.0.2']);
    for (const o of shards) {
      const got = await eventually('status', async () => {
        const x = await objects.get<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name: o.metadata.name ?? '' });
        return x.status?.conditions?.find((c) => c.type === 'Programmed' && c.status === 'True') ? x : undefined;
      });
      expect(got.status?.services?.every((s) => s.programmed && s.generation === 4 && s.holdsVip)).toBe(true);
      expect(got.status?.observedGeneration).toBe(got.metadata.generation);
    }
  });

  it('refuses a planned service and a realserver VIP that no VIPPool admitted, and reports them', async () => {
    const { pool: _pool, ...unadmitted } = svc('lab/rogue', '10.88.0.66');
    // The rogue entries may share a shard with the admitted services: write the node's whole plan.
    const shards = shardPlan({ node, director: [svc('lab/a', '10.88.0.1'), svc('lab/b', '10.88.0.2'), unadmitted], realServer: [{ service: 'lab/rogue', vip: '10.88.0.66', forwarding: 'DirectRouting' }] });
    const written = shards.filter((o) => o.spec.director.some((x) => x.id === 'lab/rogue'));
    for (const o of shards) {
      const cur = await objects.tryGet<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name: o.metadata.name ?? '' });
      if (cur) await objects.replace(NODEPLANS, { ...o, metadata: { ...o.metadata, resourceVersion: cur.metadata.resourceVersion } });
      else await objects.create(NODEPLANS, o);
    }
    const reported = await eventually('refusal reported', async () => {
      for (const o of written) {
        const x = await objects.get<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name: o.metadata?.name ?? '' });
        const r = x.status?.services?.find((s) => s.id === 'lab/rogue');
        if (r && x.status?.observedGeneration === x.metadata.generation) return { service: r, realServer: x.status?.realServer?.find((v) => v.service === 'lab/rogue') };
      }
      return undefined;
    });
    expect(reported.service).toMatchObject({ programmed: false, holdsVip: false, errors: [expect.stringMatching(/^VIPNotAdmitted: VIP 10\.88\.0\.66 /)] });
    expect(reported.realServer).toMatchObject({ prepared: false, errors: [expect.stringMatching(/^VIPNotAdmitted/)] });
    // Nothing of it reached the kernel or the interfaces; the admitted services are untouched.
    expect((await ipvs.listServices()).map((s) => s.service.address).sort()).toEqual(['10.88.0.1', '10.88.0.2']);
    for (const ifname of ['eth0', 'lo']) expect((await netif.listAddresses(ifname).catch(() => [])).map((a) => a.address)).not.toContain('10.88.0.66');
  });

  it('a weight change in a shard is one SET_DEST; deleting the shards tears the services down', async () => {
    const shards = shardPlan({ node, director: [svc('lab/a', '10.88.0.1', 9), svc('lab/b', '10.88.0.2')], realServer: [] });
    ipvs.resetCalls();
    const plansBefore = plans;
    for (const o of shards) {
      const cur = await objects.get<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name: o.metadata.name ?? '' });
      await objects.replace(NODEPLANS, { ...o, metadata: { ...o.metadata, resourceVersion: cur.metadata.resourceVersion } });
    }
    await eventually('weight 9', async () => (await ipvs.listServices()).find((s) => s.service.address === '10.88.0.1')?.destinations[0]?.destination.weight === 9);
    expect(ipvs.calls.updateDestination).toBe(1);
    expect(ipvs.calls.addService + ipvs.calls.deleteService).toBe(0);
    // The agent's own status write comes back through its watch: that is no new plan and no run.
    await eventually('reported at the new generation', async () => {
      const xs = await Promise.all(shards.map((o) => objects.get<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name: o.metadata.name ?? '' })));
      return xs.every((x) => x.status?.observedGeneration === x.metadata.generation && x.status?.services?.every((s) => s.generation === 4));
    });
    const plansReported = plans;
    await new Promise((r) => setTimeout(r, 1500));
    expect(plans).toBe(plansReported);
    // A status-only update (same uid and generation) does not even make the agent look at its shards: with
    // thousands of shards, looking at all of them once per echo of its own report was quadratic.
    const name = shards[0]!.metadata.name ?? '';
    const lists = countLists();
    try {
      const generation = source.informer.get(name)?.metadata.generation;
      await objects.patchStatus(NODEPLANS, { name }, { conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed', message: 'written by the test', lastTransitionTime: new Date().toISOString(), observedGeneration: generation ?? 0 }] });
      await eventually('the informer saw the status write', async () => source.informer.get(name)?.status?.conditions?.[0]?.message === 'written by the test');
      await new Promise((r) => setTimeout(r, 200));
      expect(source.informer.get(name)?.metadata.generation).toBe(generation);
      expect(lists.count).toBe(0);
    } finally {
      lists.restore();
    }
    expect(plans).toBe(plansReported);
    expect(plans - plansBefore).toBeGreaterThanOrEqual(1);
    expect(plans - plansBefore).toBeLessThanOrEqual(shards.length);
    await kubectlOk(['delete', 'nodeplans', '-l', `lvs.operator.dev/node=${node}`], { kubeconfig: admin() });
    await eventually('torn down', async () => (await ipvs.listServices()).length === 0);
    expect(await netif.listAddresses('eth0')).toEqual([]);
  });

  it('a report writes its shards a few at a time, every one of them', async () => {
    const services = Array.from({ length: 150 }, (_, i) => svc(`lab/many-${i}`, `10.88.${1 + Math.floor(i / 100)}.${(i % 100) + 1}`));
    const shards = shardPlan({ node, director: services, realServer: [] });
    expect(shards.length).toBeGreaterThan(2 * REPORT_WRITES_IN_FLIGHT);
    // Status writes in flight, counted around the agent's writer.
    const patch = Writer.prototype.patchUnread;
    let inFlight = 0;
    let most = 0;
    Writer.prototype.patchUnread = async function (this: Writer, ...args: Parameters<Writer['patchUnread']>) {
      if (args[3] !== 'status') return patch.apply(this, args);
      most = Math.max(most, ++inFlight);
      try {
        return await patch.apply(this, args);
      } finally {
        inFlight -= 1;
      }
    };
    try {
      for (const o of shards) await objects.create(NODEPLANS, o);
      await eventually('every shard reported Programmed at its generation', async () => {
        const xs = await Promise.all(shards.map((o) => objects.get<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name: o.metadata.name ?? '' })));
        return xs.every((x) => x.status?.observedGeneration === x.metadata.generation && x.status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True') && x.status.services?.length === x.spec.director.length);
      });
    } finally {
      Writer.prototype.patchUnread = patch;
    }
    expect((await ipvs.listServices()).length).toBe(services.length);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(REPORT_WRITES_IN_FLIGHT);
    // A weight change in one of those shards is merged, admitted and reported from that shard alone: the
    // agent never lists all its shards for it (at 5,000 services, ~3,000 shards per change in the VM).
    const one = shards.find((o) => o.spec.director.some((x) => x.id === 'lab/many-7'))!;
    const lists = countLists();
    try {
      const name = one.metadata.name ?? '';
      const cur = await objects.get<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name });
      const spec = { ...one.spec, director: one.spec.director.map((x) => (x.id === 'lab/many-7' ? svc(x.id, x.vip, 5) : x)) };
      const written = await objects.replace(NODEPLANS, { ...one, spec, metadata: { ...one.metadata, resourceVersion: cur.metadata.resourceVersion } });
      await eventually('weight 5', async () => (await ipvs.listServices()).find((x) => x.service.address === '10.88.1.8')?.destinations[0]?.destination.weight === 5);
      await eventually('reported at the new generation', async () => (await objects.get<NodePlanObject & { metadata: { name: string } }>(NODEPLANS, { name })).status?.observedGeneration === written.metadata.generation);
      expect(lists.count).toBe(0);
    } finally {
      lists.restore();
    }
    // --wait=false: kubectl would wait for each of the ~150 deletions in turn (~30 s); the kernel is the check.
    await kubectlOk(['delete', 'nodeplans', '-l', `lvs.operator.dev/node=${node}`, '--wait=false'], { kubeconfig: admin() });
    await eventually('torn down', async () => (await ipvs.listServices()).length === 0);
  });
});
