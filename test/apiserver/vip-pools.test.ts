// VIP pools against the real kube-apiserver, with the real controller in-process: who may claim which VIP.
// VIPs are default-deny; a tenant namespace cannot claim another pool's VIP, a node's address or the API
// server's; namespaces sharing a pool get distinct allocated VIPs that survive a controller restart;
// deleting a pool withdraws its VirtualServices (conditions, NodePlans), re-creating it restores them.
// The shared apiserver holds other suites' pools too, so every address here is this run's own and
// allocations name their pool.
import { jest } from '@jest/globals';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { Controller } from '../../src/controller/controller.ts';
import { defaultConfig } from '../../src/controller/config.ts';
import { CustomObjects } from '../../src/kube/status.ts';
import { createLogger } from '../../src/util/log.ts';
import type { NodePlan, VirtualService, VIPPool } from '../../src/api/v1alpha1/index.ts';
import { ENV } from './harness.ts';
import { kubectlOk, uniqueName, sleep } from './util.ts';
import { eventually } from '../support/eventually.ts';

jest.setTimeout(180_000);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const admin = (): string => process.env[ENV.admin] ?? '';
const R = {
  vs: { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'virtualservices' },
  pools: { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'vippools' },
};

describe('VIP pools on a real apiserver', () => {
  const run = uniqueName('vp');
  const sfx = run.slice(-6);
  const octet = parseInt(sfx.slice(0, 2), 16);
  const net = `10.125.${octet}`;
  const ns = { a: `${run}-a`, b: `${run}-b`, c: `${run}-c` };
  const node = { director: `vp-director-${sfx}`, web1: `vp-web1-${sfx}` };
  const pool = { a: `${run}-a`, b: `${run}-b`, shared: `${run}-shared`, api: `${run}-api` };
  const directorIp = `${net}.4`;
  let kc: KubeConfig;
  let objects: CustomObjects;
  let controller: Controller;

  const k = (args: string[], input?: string): Promise<string> => kubectlOk(args, { kubeconfig: admin(), ...(input === undefined ? {} : { input }) });
  const apply = (o: object): Promise<string> => k(['apply', '-f', '-'], JSON.stringify(o));
  const vipPool = (name: string, addresses: string[], namespaces: string[]): object => ({
    apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VIPPool', metadata: { name },
    spec: { addresses, namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: namespaces }] } },
  });
  const virtualService = (namespace: string, name: string, spec: Record<string, unknown>): object => ({
    apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', metadata: { name, namespace },
    spec: { port: 80, realServerSelector: { matchLabels: { app: name } }, ...spec },
  });
  const getVs = (namespace: string, name: string): Promise<VirtualService> => objects.get<VirtualService & { metadata: { name: string } }>(R.vs, { name, namespace });
  const accepted = (v: VirtualService) => v.status?.conditions?.find((c) => c.type === 'Accepted');
  /** The VirtualService once its Accepted condition describes its current generation with this status. */
  const settled = (namespace: string, name: string, status: 'True' | 'False'): Promise<VirtualService> => eventually(`${namespace}/${name} Accepted=${status}`, async () => {
    const v = await getVs(namespace, name);
    const c = accepted(v);
    return c?.status === status && c.observedGeneration === v.metadata.generation ? v : undefined;
  });
  const plannedEverywhere = async (): Promise<{ director: NodePlan['spec']['director']; realServer: NodePlan['spec']['realServer'] }> => {
    const plans = (JSON.parse(await k(['get', 'nodeplans', '-l', `lvs.operator.dev/node in (${node.director},${node.web1})`, '-o', 'json'])) as { items: NodePlan[] }).items;
    return { director: plans.flatMap((p) => p.spec.director), realServer: plans.flatMap((p) => p.spec.realServer) };
  };
  const start = async (): Promise<Controller> => {
    const c = new Controller({
      kc, namespace: run, config: { ...defaultConfig(), defaultDirectorSelector: { 'lvs-test/vp-director': sfx } },
      log: createLogger('controller', process.env.LVS_TEST_LOG ?? 'silent'), manageDaemonSets: false,
    });
    await c.start();
    c.setLeading(true);
    return c;
  };

  beforeAll(async () => {
    kc = new KubeConfig();
    kc.loadFromFile(admin());
    objects = new CustomObjects(kc);
    await k(['apply', '--server-side', '-f', join(ROOT, 'crds')]);
    await k(['wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualservices.lvs.operator.dev', 'crd/realservers.lvs.operator.dev', 'crd/nodeplans.lvs.operator.dev', 'crd/vippools.lvs.operator.dev']);
    for (const n of [run, ...Object.values(ns)]) await k(['create', 'namespace', n]);
    for (const [name, ip, director] of [[node.director, directorIp, true], [node.web1, `${net}.7`, false]] as const) {
      await k(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: director ? { 'lvs-test/vp-director': sfx } : {} } }));
      await k(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: ip }] } })]);
    }
    // Team a's pool holds the director's own address; team b's is next to it; a and c share a range.
    await apply(vipPool(pool.a, [`${net}.0/28`], [ns.a]));
    await apply(vipPool(pool.b, [`${net}.16/28`], [ns.b]));
    await apply(vipPool(pool.shared, [`${net}.32-${net}.35`], [ns.a, ns.c]));
    controller = await start();
  });

  afterAll(async () => {
    await controller?.stop();
    // Nothing runs the teardown handshake for this suite's VirtualServices any more: release them.
    for (const n of Object.values(ns)) {
      const names = await k(['get', 'virtualservices', '-n', n, '-o', 'name']).catch(() => '');
      for (const x of names.split('\n').filter(Boolean)) await k(['patch', x, '-n', n, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']).catch(() => undefined);
    }
    await k(['delete', 'vippool', ...Object.values(pool), '--ignore-not-found']).catch(() => undefined);
    await k(['delete', 'node', ...Object.values(node), '--ignore-not-found']).catch(() => undefined);
    for (const n of [run, ...Object.values(ns)]) await k(['delete', 'namespace', n, '--wait=false']).catch(() => undefined);
  });

  it("a tenant's VIP from its own pool is accepted and planned with that pool", async () => {
    await apply(virtualService(ns.a, 'web', { vip: `${net}.5` }));
    const v = await settled(ns.a, 'web', 'True');
    expect(v.status).toMatchObject({ vip: `${net}.5`, vipPool: pool.a });
    const svc = await eventually('planned', async () => (await plannedEverywhere()).director.find((s) => s.id === `${ns.a}/web`));
    expect(svc).toMatchObject({ vip: `${net}.5`, pool: pool.a, holdVip: true });
  });

  it("a tenant cannot claim another pool's VIP: VIPNotAllowed naming VIP and namespace, nothing planned", async () => {
    await apply(virtualService(ns.a, 'steal', { vip: `${net}.17` }));
    const v = await settled(ns.a, 'steal', 'False');
    expect(accepted(v)).toMatchObject({ reason: 'VIPNotAllowed', message: `VIP ${net}.17 is not allowed in namespace ${ns.a}: no VIPPool that selects the namespace contains it` });
    expect(v.status?.conditions?.find((c) => c.type === 'Programmed')).toMatchObject({ status: 'False', reason: 'NotAccepted' });
    expect(v.status?.vip).toBeUndefined();
    // Naming the other team's pool does not help either.
    await apply(virtualService(ns.a, 'steal-named', { vip: `${net}.17`, vipPool: pool.b }));
    expect(accepted(await settled(ns.a, 'steal-named', 'False'))).toMatchObject({ reason: 'VIPNotAllowed', message: expect.stringContaining(`VIPPool ${pool.b} does not select the namespace`) });
    // Team b takes the same address from its own pool.
    await apply(virtualService(ns.b, 'web', { vip: `${net}.17` }));
    expect((await settled(ns.b, 'web', 'True')).status?.vipPool).toBe(pool.b);
    const planned = await plannedEverywhere();
    expect(planned.director.map((s) => s.id)).toContain(`${ns.b}/web`);
    expect(planned.director.map((s) => s.id)).not.toContain(`${ns.a}/steal`);
    expect(planned.director.map((s) => s.id)).not.toContain(`${ns.a}/steal-named`);
  });

  it("a node's address is refused even inside the tenant's pool, and so is the API server's Service address", async () => {
    await apply(virtualService(ns.a, 'node', { vip: directorIp }));
    expect(accepted(await settled(ns.a, 'node', 'False'))).toMatchObject({ reason: 'VIPIsNodeAddress', message: `VIP ${directorIp} is an address of node ${node.director}` });
    const apiIp = (await k(['get', 'service', 'kubernetes', '-n', 'default', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    await apply(vipPool(pool.api, [`${apiIp}/32`], [ns.a]));
    await apply(virtualService(ns.a, 'api', { vip: apiIp }));
    expect(accepted(await settled(ns.a, 'api', 'False'))).toMatchObject({ reason: 'VIPReserved', message: `VIP ${apiIp} is reserved: it is the API server's Service address` });
    const ids = (await plannedEverywhere()).director.map((s) => s.id);
    expect(ids).not.toContain(`${ns.a}/node`);
    expect(ids).not.toContain(`${ns.a}/api`);
    await k(['delete', 'vippool', pool.api]);
  });

  it('two namespaces sharing a pool get distinct allocated VIPs, kept across a controller restart', async () => {
    await apply(virtualService(ns.a, 'auto', { vipPool: pool.shared }));
    await apply(virtualService(ns.c, 'auto', { vipPool: pool.shared }));
    // A realserver on web1 for c's service: its VIP is planned on the realserver node too.
    await apply({ apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name: 'web1', namespace: ns.c, labels: { app: 'auto' } }, spec: { nodeName: node.web1 } });
    const a = await settled(ns.a, 'auto', 'True');
    const c = await settled(ns.c, 'auto', 'True');
    const shared = [`${net}.32`, `${net}.33`, `${net}.34`, `${net}.35`];
    expect(shared).toContain(a.status?.vip);
    expect(shared).toContain(c.status?.vip);
    expect(a.status?.vip).not.toBe(c.status?.vip);
    expect([a.status?.vipPool, c.status?.vipPool]).toEqual([pool.shared, pool.shared]);
    // Created first, a got the lowest address.
    expect([a.status?.vip, c.status?.vip]).toEqual([`${net}.32`, `${net}.33`]);
    const planned = await eventually('both planned', async () => {
      const p = await plannedEverywhere();
      return p.director.some((s) => s.id === `${ns.c}/auto`) && p.realServer.some((v) => v.service === `${ns.c}/auto`) ? p : undefined;
    });
    expect(planned.director.filter((s) => s.id.endsWith('/auto')).map((s) => [s.id, s.vip, s.pool]).sort()).toEqual([[`${ns.a}/auto`, `${net}.32`, pool.shared], [`${ns.c}/auto`, `${net}.33`, pool.shared]].sort());
    expect(planned.realServer).toContainEqual({ service: `${ns.c}/auto`, vip: `${net}.33`, forwarding: 'DirectRouting', pool: pool.shared });
    const status = await eventually('pool status', async () => {
      const p = await objects.get<VIPPool & { metadata: { name: string } }>(R.pools, { name: pool.shared });
      return p.status?.virtualServices === 2 ? p.status : undefined;
    });
    expect(status).toEqual({ observedGeneration: 1, virtualServices: 2, addressesInUse: 2, allocated: 2, available: 2 });
    expect(await k(['get', 'lvsvp', pool.shared])).toMatch(new RegExp(`${pool.shared}\\s+\\["${net.replaceAll('.', '\\.')}\\.32-${net.replaceAll('.', '\\.')}\\.35"\\]\\s+true\\s+2\\s+2\\s+2\\s`));

    // A restarted controller reads the allocations back from status. While it was down, a's service went
    // and another came: c's keeps its address rather than moving down to the freed lowest one.
    const versions = async (): Promise<string[]> => Promise.all([[ns.c, 'auto'], [ns.a, 'web'], [ns.b, 'web']].map(async ([n, name]) => `${n}/${name}=${(await getVs(n!, name!)).metadata.resourceVersion}`));
    await sleep(2000);
    const before = await versions();
    await controller.stop();
    await k(['delete', 'virtualservice', 'auto', '-n', ns.a, '--wait=false']);
    await apply(virtualService(ns.c, 'late', { vipPool: pool.shared }));
    controller = await start();
    expect((await settled(ns.c, 'late', 'True')).status?.vip).toBe(`${net}.32`);
    await eventually(`${ns.a}/auto released`, async () => getVs(ns.a, 'auto').then(() => false, () => true));
    expect((await getVs(ns.c, 'auto')).status?.vip).toBe(`${net}.33`);
    await sleep(2000);
    expect(await versions()).toEqual(before);
  });

  it('deleting a pool withdraws its VirtualServices (conditions and NodePlans); re-creating it restores them', async () => {
    await k(['delete', 'vippool', pool.shared]);
    for (const name of ['auto', 'late']) {
      const v = await settled(ns.c, name, 'False');
      expect(accepted(v)).toMatchObject({ reason: 'VIPNotAllowed', message: `no VIP can be allocated in namespace ${ns.c}: VIPPool ${pool.shared} does not exist` });
      expect(v.status?.vip).toBeUndefined();
      expect(v.status?.vipPool).toBeUndefined();
    }
    const gone = await eventually('withdrawn from every NodePlan', async () => {
      const p = await plannedEverywhere();
      return [...p.director.map((s) => s.id), ...p.realServer.map((x) => x.service)].some((id) => id.startsWith(`${ns.c}/`)) ? undefined : p;
    });
    // The other pools' services stay planned; web1 has no realserver VIP left.
    expect(gone.director.map((s) => s.id).sort()).toEqual([`${ns.a}/web`, `${ns.b}/web`].sort());
    expect(gone.realServer).toEqual([]);

    await apply(vipPool(pool.shared, [`${net}.32-${net}.35`], [ns.a, ns.c]));
    const back = [await settled(ns.c, 'auto', 'True'), await settled(ns.c, 'late', 'True')];
    // Allocated again, in creation order.
    expect(back.map((v) => [v.status?.vip, v.status?.vipPool])).toEqual([[`${net}.32`, pool.shared], [`${net}.33`, pool.shared]]);
    const planned = await eventually('planned again', async () => {
      const p = await plannedEverywhere();
      return p.director.filter((s) => s.id.startsWith(`${ns.c}/`)).length === 2 && p.realServer.length === 1 ? p : undefined;
    });
    expect(planned.realServer).toEqual([{ service: `${ns.c}/auto`, vip: `${net}.32`, forwarding: 'DirectRouting', pool: pool.shared }]);
  });
});
