// src/kube/informer.ts against a real kube-apiserver with faults injected: cut watches (FIN and RST), an
// apiserver restart, a silent (paused) network with changes made behind the informer's back, and 410 Gone
// after etcd compaction. In every case the cache must converge to exactly what the server holds.
// Uses its own apiserver (startApiServer) so the faults never disturb other suites.
import { jest } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type { V1ConfigMap, V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { Informer, keyOf } from '../../src/kube/informer.ts';
import type { InformerOptions, KubeObject } from '../../src/kube/informer.ts';
import { isAlreadyExists } from '../../src/kube/errors.ts';
import { createLogger } from '../../src/util/log.ts';
import { startApiServer } from './harness.ts';
import type { ApiServer } from './harness.ts';
import { sleep, uniqueName } from './util.ts';

jest.setTimeout(240_000);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const GROUP = 'lvs.operator.dev';
const VERSION = 'v1alpha1';
const logger = createLogger('kube-informer-test', process.env['LVS_LOG_LEVEL'] ?? 'silent');

function kubeConfig(file: string, server?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  if (server) {
    kc.loadFromOptions({
      clusters: kc.getClusters().map((c) => ({ ...c, server })),
      contexts: kc.getContexts(),
      users: kc.getUsers(),
      currentContext: kc.getCurrentContext(),
    });
  }
  return kc;
}

async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
  return Date.now() - t0;
}

const sorted = (inf: Informer<KubeObject>): string[] => inf.list().map(keyOf).sort();

/** Fast timings so faults are detected within seconds. */
const fast: Partial<InformerOptions> = {
  watchTimeoutSeconds: 20,
  idleTimeoutMs: 3_000,
  requestTimeoutMs: 3_000,
  backoff: { initialMs: 200, maxMs: 2_000 },
  logger,
};

describe('Informer on a real apiserver with faults', () => {
  let api: ApiServer;
  let kc: KubeConfig; // through the fault-injection proxy
  let direct: KubeConfig; // straight to kube-apiserver (changes behind the informer's back)
  let core: CoreV1Api;
  let coreDirect: CoreV1Api;
  const informers: Array<Informer<KubeObject>> = [];
  const ns = uniqueName('kinf');

  const cm = (name: string, labels: Record<string, string> = { 'kube-test': '1' }, data: Record<string, string> = {}): V1ConfigMap => ({
    metadata: { name, namespace: ns, labels }, data,
  });
  const serverNames = async (c: CoreV1Api = core): Promise<string[]> =>
    (await c.listNamespacedConfigMap({ namespace: ns, labelSelector: 'kube-test=1' })).items.map((o) => `${ns}/${o.metadata!.name!}`).sort();
  const converged = async (inf: Informer<KubeObject>, c: CoreV1Api = coreDirect): Promise<void> => {
    const want = await serverNames(c);
    await waitFor(`cache == ${JSON.stringify(want)} (cache ${JSON.stringify(sorted(inf))})`, () => JSON.stringify(sorted(inf)) === JSON.stringify(want));
  };
  const informer = (o: Partial<InformerOptions> = {}): Informer<KubeObject> => {
    const inf = new Informer<KubeObject>(kc, { resource: { group: '', version: 'v1', plural: 'configmaps', namespace: ns }, labelSelector: 'kube-test=1', ...fast, ...o });
    informers.push(inf);
    return inf;
  };

  beforeAll(async () => {
    api = await startApiServer({ log: () => undefined });
    kc = kubeConfig(api.kubeconfigs.admin);
    direct = kubeConfig(api.kubeconfigs.admin, api.directUrl);
    core = kc.makeApiClient(CoreV1Api);
    coreDirect = direct.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
  });

  afterAll(async () => {
    await Promise.all(informers.map((i) => i.stop()));
    await api?.stop();
  });

  test('start() resolves with the initial list; add/update/delete follow; selectors apply', async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('a') });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('b') });
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('unlabelled', {}) });
    const inf = informer();
    const events: string[] = [];
    inf.on('add', (o) => events.push(`add:${o.metadata!.name}`));
    inf.on('update', (o, old) => events.push(`update:${o.metadata!.name}:${old.metadata!.resourceVersion !== o.metadata!.resourceVersion}`));
    inf.on('delete', (o) => events.push(`delete:${o.metadata!.name}`));
    let changes = 0;
    inf.onChange(() => changes++);
    await inf.start();
    expect(inf.hasSynced()).toBe(true);
    expect(sorted(inf)).toEqual([`${ns}/a`, `${ns}/b`]);
    expect(inf.get('a', ns)?.metadata?.name).toBe('a');

    await core.createNamespacedConfigMap({ namespace: ns, body: cm('c') });
    await core.replaceNamespacedConfigMap({ namespace: ns, name: 'a', body: cm('a', undefined, { v: '2' }) });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'b' });
    await converged(inf);
    await waitFor('update event', () => events.includes('update:a:true'));
    expect(events.sort()).toEqual(['add:a', 'add:b', 'add:c', 'delete:b', 'update:a:true']);
    expect(changes).toBeGreaterThanOrEqual(2);
    expect((inf.get('a', ns) as V1ConfigMap).data).toEqual({ v: '2' });
  });

  test('cut watches (FIN, then RST) are resumed without a relist and the cache converges', async () => {
    const inf = informer();
    await inf.start();
    for (const rst of [false, true]) {
      const before = inf.stats();
      const closed = await api.proxy.cutAll({ rst });
      expect(closed).toBeGreaterThan(0);
      const n = uniqueName('cut');
      await core.createNamespacedConfigMap({ namespace: ns, body: cm(n) });
      await converged(inf);
      await core.deleteNamespacedConfigMap({ namespace: ns, name: n });
      await converged(inf);
      expect(inf.stats().watches).toBeGreaterThan(before.watches);
    }
    expect(inf.stats().relists).toBe(0);
  });

  test('an apiserver restart: backoff while it is down, then converge (changes made right after it is back)', async () => {
    const inf = informer();
    await inf.start();
    const before = inf.stats();
    const { ms } = await api.restart();
    process.stderr.write(`apiserver restart took ${ms} ms\n`);
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('after-restart') });
    await coreDirect.deleteNamespacedConfigMap({ namespace: ns, name: 'c' });
    await converged(inf);
    expect(inf.stats().watches).toBeGreaterThan(before.watches);
  });

  test('a silent network (paused proxy): the watchdog reconnects; changes made meanwhile arrive', async () => {
    const inf = informer();
    await inf.start();
    await api.proxy.pause();
    try {
      await coreDirect.createNamespacedConfigMap({ namespace: ns, body: cm('while-paused') });
      await coreDirect.deleteNamespacedConfigMap({ namespace: ns, name: 'after-restart' });
      await waitFor('watchdog', () => inf.stats().watchdogTimeouts >= 1, 15_000);
      expect(sorted(inf)).not.toContain(`${ns}/while-paused`);
    } finally {
      await api.proxy.resume();
    }
    await converged(inf);
    expect(sorted(inf)).toContain(`${ns}/while-paused`);
    expect(inf.stats().restarts).toBeGreaterThanOrEqual(1);
  });

  test('410 Gone after compaction: relist, and deletions made while disconnected become delete events', async () => {
    // relistAfterFailures high: the relist must come from the 410, not from failures during the restart.
    const inf = informer({ idleTimeoutMs: 60_000, relistAfterFailures: 1_000 });
    const deleted: string[] = [];
    inf.on('delete', (o) => deleted.push(o.metadata!.name!));
    await inf.start();
    const rv0 = inf.resourceVersion();
    await api.proxy.pause();
    try {
      await coreDirect.createNamespacedConfigMap({ namespace: ns, body: cm('during-410') });
      await coreDirect.deleteNamespacedConfigMap({ namespace: ns, name: 'while-paused' });
      // Compact etcd at head and restart the apiserver (its watch cache would serve old events otherwise).
      await api.expireResourceVersions();
    } finally {
      await api.proxy.resume();
    }
    // The stalled watch is cut (the restart ended the backend side) or the watchdog fires; either way the
    // re-watch from rv0 gets 410 and the informer relists.
    await api.proxy.cutAll();
    await converged(inf);
    await waitFor('a relist after 410', () => inf.stats().relists >= 1 && inf.stats().expired >= 1);
    expect(deleted).toContain('while-paused');
    expect(sorted(inf)).toContain(`${ns}/during-410`);
    expect(Number(inf.resourceVersion())).toBeGreaterThan(Number(rv0));
  });

  test('custom resources (cluster-scoped NodePlans, namespaced VirtualServices), Nodes and DaemonSets', async () => {
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    const crdDir = join(ROOT, 'crds');
    for (const f of readdirSync(crdDir).filter((x) => x.endsWith('.yaml'))) {
      for (const d of parseAllDocuments(readFileSync(join(crdDir, f), 'utf8'))) {
        const body = d.toJS() as V1CustomResourceDefinition;
        try {
          await ext.createCustomResourceDefinition({ body });
        } catch (e) {
          if (!isAlreadyExists(e)) throw e;
        }
      }
    }
    for (const name of ['nodeplans.lvs.operator.dev', 'virtualservices.lvs.operator.dev']) {
      await waitFor(`${name} Established`, async () =>
        ((await ext.readCustomResourceDefinition({ name })).status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True'));
    }
    const custom = kc.makeApiClient(CustomObjectsApi);
    const plans = informer({ resource: { group: GROUP, version: VERSION, plural: 'nodeplans' }, labelSelector: 'lvs.operator.dev/node=web1' });
    const vss = informer({ resource: { group: GROUP, version: VERSION, plural: 'virtualservices' }, labelSelector: undefined });
    const nodes = informer({ resource: { group: '', version: 'v1', plural: 'nodes' }, labelSelector: undefined });
    const dss = informer({ resource: { group: 'apps', version: 'v1', plural: 'daemonsets', namespace: ns }, labelSelector: undefined });
    await Promise.all([plans.start(), vss.start(), nodes.start(), dss.start()]);

    const plan = (node: string, shard: number) => ({
      apiVersion: `${GROUP}/${VERSION}`, kind: 'NodePlan',
      metadata: { name: `${node}.${shard}`, labels: { 'lvs.operator.dev/node': node } },
      spec: { node, shard, director: [], realServer: [] },
    });
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'nodeplans', body: plan('web1', 0) });
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'nodeplans', body: plan('web2', 0) });
    await custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, plural: 'virtualservices', namespace: ns,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtualService', metadata: { name: 'web', namespace: ns }, spec: { vip: '192.168.56.40', port: 80, realServerSelector: {} } },
    });
    await kc.makeApiClient(CoreV1Api).createNode({ body: { metadata: { name: 'web1', labels: { 'lvs.operator.dev/director': 'true' } } } });
    await kc.makeApiClient(AppsV1Api).createNamespacedDaemonSet({
      namespace: ns,
      body: {
        metadata: { name: 'lvs-agent' },
        spec: {
          selector: { matchLabels: { app: 'lvs-agent' } },
          template: { metadata: { labels: { app: 'lvs-agent' } }, spec: { containers: [{ name: 'agent', image: 'example.invalid/lvs-agent:0' }] } },
        },
      },
    });
    await waitFor('all four caches', () =>
      plans.get('web1.0') !== undefined && vss.get('web', ns) !== undefined && nodes.get('web1') !== undefined && dss.get('lvs-agent', ns) !== undefined);
    expect(plans.list().map(keyOf)).toEqual(['web1.0']); // the label selector left web2 out
    expect(nodes.get('web1')?.kind ?? 'Node').toBe('Node');

    // Changes while every watch is cut.
    await api.proxy.cutAll();
    await custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: 'nodeplans', name: 'web1.0' });
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'nodeplans', body: plan('web1', 1) });
    await waitFor('nodeplans converge', () => JSON.stringify(plans.list().map(keyOf)) === JSON.stringify(['web1.1']));
    for (const i of [plans, vss, nodes, dss]) expect(i.stats().synced).toBe(true);
  });
});
