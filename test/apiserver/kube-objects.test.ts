// src/kube/status.ts and src/kube/events.ts against the real apiserver: status merge patches and
// server-side apply on the status subresource, optimistic concurrency (replace, status with a
// resourceVersion, finalizers under a concurrent writer), NotFound/Conflict classification, and
// events.k8s.io/v1 Events with series aggregation as kubectl describe sees them (core v1 view).
import { jest } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, EventsV1Api, KubeConfig } from '@kubernetes/client-node';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { CustomObjects, apiStatus, isAlreadyExists, isConflict, isNotFound } from '../../src/kube/status.ts';
import type { CustomObject, CustomResource } from '../../src/kube/status.ts';
import { EventRecorder, eventsV1Sink } from '../../src/kube/events.ts';
import { createLogger } from '../../src/util/log.ts';
import { sharedApiServer } from './harness.ts';
import { kubectlOk, sleep, uniqueName } from './util.ts';

jest.setTimeout(120_000);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const GROUP = 'lvs.operator.dev';
const VERSION = 'v1alpha1';
const VS: CustomResource = { group: GROUP, version: VERSION, plural: 'virtualservices' };
const NP: CustomResource = { group: GROUP, version: VERSION, plural: 'nodeplans' };
const logger = createLogger('kube-objects-test', process.env['LVS_LOG_LEVEL'] ?? 'silent');

interface VirtualService extends CustomObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; finalizers?: string[]; labels?: Record<string, string> };
  spec: { vip: string; port: number; realServerSelector: Record<string, unknown> };
  status?: { observedGeneration?: number; activeDirector?: string; conditions?: Array<Record<string, unknown>> };
}

async function waitFor(what: string, pred: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('status, finalizers and events on a real apiserver', () => {
  const kc = new KubeConfig();
  kc.loadFromFile(sharedApiServer().kubeconfigs.admin);
  const objects = new CustomObjects(kc, { fieldManager: 'lvs-test', logger });
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const ns = uniqueName('kobj');
  const vs = (name: string): VirtualService => ({
    apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtualService', metadata: { name, namespace: ns },
    spec: { vip: '192.168.56.40', port: 80, realServerSelector: {} },
  });
  const condition = { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', lastTransitionTime: '2025-01-01T00:00:00Z', observedGeneration: 1 };

  beforeAll(async () => {
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    const crdDir = join(ROOT, 'crds');
    for (const f of readdirSync(crdDir).filter((x) => x.endsWith('.yaml'))) {
      for (const d of parseAllDocuments(readFileSync(join(crdDir, f), 'utf8'))) {
        try {
          await ext.createCustomResourceDefinition({ body: d.toJS() as V1CustomResourceDefinition });
        } catch (e) {
          if (!isAlreadyExists(e)) throw e;
        }
      }
    }
    for (const name of ['nodeplans.lvs.operator.dev', 'virtualservices.lvs.operator.dev']) {
      await waitFor(`${name} Established`, async () =>
        ((await ext.readCustomResourceDefinition({ name })).status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True'));
    }
    await core.createNamespace({ body: { metadata: { name: ns } } });
  });

  test('patchStatus is a merge patch of /status; without the Content-Type client-node sends json-patch and gets 400', async () => {
    const created = await objects.create(VS, vs('status'));
    expect(created.metadata.generation).toBe(1);
    const patched = await objects.patchStatus<VirtualService>(VS, { name: 'status', namespace: ns }, { observedGeneration: 1, activeDirector: 'director-1', conditions: [condition] });
    expect(patched.status).toMatchObject({ observedGeneration: 1, activeDirector: 'director-1', conditions: [condition] });
    expect(patched.spec.port).toBe(80);
    // A second merge patch changes only what it names.
    const again = await objects.patchStatus<VirtualService>(VS, { name: 'status', namespace: ns }, { activeDirector: 'director-2' });
    expect(again.status).toMatchObject({ observedGeneration: 1, activeDirector: 'director-2' });
    // With a stale resourceVersion the patch is refused.
    const e1 = await objects.patchStatus(VS, { name: 'status', namespace: ns }, { activeDirector: 'x' }, { resourceVersion: created.metadata.resourceVersion }).catch((e: unknown) => e);
    expect(isConflict(e1)).toBe(true);
    // The pitfall: no Content-Type override.
    const e2 = await custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: 'virtualservices', namespace: ns, name: 'status', body: { status: { activeDirector: 'y' } } }).catch((e: unknown) => e);
    process.stderr.write(`patch without Content-Type -> ${JSON.stringify(apiStatus(e2))}\n`);
    expect(apiStatus(e2).code).toBe(400);
  });

  test('server-side apply of status and of the object; replace with a stale resourceVersion is a conflict', async () => {
    const o = await objects.create(VS, vs('ssa'));
    const applied = await objects.applyStatus<VirtualService>(VS, {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtualService', metadata: { name: 'ssa', namespace: ns },
      status: { observedGeneration: 1, conditions: [condition] },
    });
    expect(applied.status?.conditions).toEqual([condition]);
    const labelled = await objects.apply<VirtualService>(VS, { apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtualService', metadata: { name: 'ssa', namespace: ns, labels: { tier: 'web' } } }, { fieldManager: 'lvs-labeller' });
    expect(labelled.metadata.labels).toEqual({ tier: 'web' });
    const stale = { ...o, spec: { ...o.spec, port: 81 } };
    expect(isConflict(await objects.replace(VS, stale).catch((e: unknown) => e))).toBe(true);
    const fresh = await objects.get<VirtualService>(VS, { name: 'ssa', namespace: ns });
    const replaced = await objects.replace(VS, { ...fresh, spec: { ...fresh.spec, port: 81 } });
    expect(replaced.spec.port).toBe(81);
    expect(replaced.metadata.generation).toBe(2);
    expect(isNotFound(await objects.get(VS, { name: 'nope', namespace: ns }).catch((e: unknown) => e))).toBe(true);
    expect(await objects.tryGet(VS, { name: 'nope', namespace: ns })).toBeUndefined();
  });

  test('finalizers: idempotent add, retry on a concurrent writer (409), remove lets a pending delete finish', async () => {
    await objects.create(VS, vs('fin'));
    // A CustomObjectsApi whose first patch races with another writer (a label change in between).
    let raced = false;
    const racing = new Proxy(custom, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop !== 'patchNamespacedCustomObject' || typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          if (!raced) {
            raced = true;
            await objects.mergePatch(VS, { name: 'fin', namespace: ns }, { metadata: { labels: { touched: 'yes' } } });
          }
          return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const finalizing = new CustomObjects(racing, { fieldManager: 'lvs-test', logger });
    const withF = await finalizing.addFinalizer<VirtualService>(VS, { name: 'fin', namespace: ns }, 'lvs.operator.dev/cleanup');
    expect(raced).toBe(true);
    expect(withF?.metadata.finalizers).toEqual(['lvs.operator.dev/cleanup']);
    expect(withF?.metadata.labels).toEqual({ touched: 'yes' }); // the other writer's change survived
    const same = await objects.addFinalizer<VirtualService>(VS, { name: 'fin', namespace: ns }, 'lvs.operator.dev/cleanup');
    expect(same?.metadata.finalizers).toEqual(['lvs.operator.dev/cleanup']);

    expect(await objects.delete(VS, { name: 'fin', namespace: ns })).toBe(true);
    const pending = await objects.get<VirtualService>(VS, { name: 'fin', namespace: ns });
    expect((pending.metadata as { deletionTimestamp?: string }).deletionTimestamp).toBeTruthy();
    await objects.removeFinalizer(VS, { name: 'fin', namespace: ns }, 'lvs.operator.dev/cleanup');
    expect(await objects.tryGet(VS, { name: 'fin', namespace: ns })).toBeUndefined();
    expect(await objects.removeFinalizer(VS, { name: 'fin', namespace: ns }, 'lvs.operator.dev/cleanup')).toBeUndefined();
  });

  test('cluster-scoped NodePlan: status patch and finalizer', async () => {
    const name = `${uniqueName('node')}.0`;
    await objects.create(NP, { apiVersion: `${GROUP}/${VERSION}`, kind: 'NodePlan', metadata: { name }, spec: { node: 'web1', shard: 0, director: [], realServer: [] } } as CustomObject);
    const p = await objects.patchStatus<CustomObject & { status?: { observedGeneration?: number } }>(NP, { name }, { observedGeneration: 1 });
    expect(p.status?.observedGeneration).toBe(1);
    const f = await objects.addFinalizer(NP, { name }, 'lvs.operator.dev/agent');
    expect(f?.metadata?.finalizers).toEqual(['lvs.operator.dev/agent']);
    await objects.removeFinalizer(NP, { name }, 'lvs.operator.dev/agent');
    expect(await objects.delete(NP, { name })).toBe(true);
  });

  test('Events: events.k8s.io/v1 with a series for repeats; core v1 (kubectl describe) sees message and count', async () => {
    const target = await objects.create(VS, vs('evented'));
    const rec = new EventRecorder({ sink: eventsV1Sink(kc), reportingInstance: 'test-0', seriesFlushMs: 200, logger });
    for (let i = 0; i < 5; i++) {
      rec.warning(target, 'VipConflict', 'VIP 192.168.56.40:80/TCP is also claimed by lab/other');
      await sleep(100);
    }
    rec.normal({ kind: 'NodePlan', apiVersion: `${GROUP}/${VERSION}`, name: 'web1.0' }, 'Programmed', 'applied generation 3');
    await rec.close();
    expect(rec.stats()).toMatchObject({ created: 2, failed: 0 });

    const list = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: ns });
    const ours = list.items.filter((e) => e.regarding?.name === 'evented');
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatchObject({ reason: 'VipConflict', type: 'Warning', action: 'VipConflict', reportingController: 'lvs.operator.dev/controller', reportingInstance: 'test-0' });
    expect(ours[0]!.series?.count).toBe(5);
    const coreView = (await core.listNamespacedEvent({ namespace: ns })).items.find((e) => e.involvedObject.name === 'evented')!;
    process.stderr.write(`core v1 view: ${JSON.stringify({ message: coreView.message, count: coreView.count, series: coreView.series?.count, reason: coreView.reason, involvedObject: coreView.involvedObject.kind, reportingComponent: coreView.reportingComponent })}\n`);
    expect(coreView.message).toBe('VIP 192.168.56.40:80/TCP is also claimed by lab/other');
    expect(coreView.series?.count).toBe(5);
    const described = await kubectlOk(['describe', 'virtualservice', 'evented', '-n', ns], { kubeconfig: sharedApiServer().kubeconfigs.admin });
    const line = described.split('\n').find((l) => l.includes('VipConflict')) ?? '';
    process.stderr.write(`kubectl describe: ${line.trim()}\n`);
    expect(line).toMatch(/Warning\s+VipConflict\s+.*\(x5 over .*\)\s+lvs\.operator\.dev\/controller.*VIP 192\.168\.56\.40:80\/TCP is also claimed by lab\/other/);
    expect(coreView.involvedObject).toMatchObject({ kind: 'VirtualService', name: 'evented', namespace: ns });
    const clusterScoped = (await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: 'default' })).items.filter((e) => e.regarding?.name === 'web1.0');
    expect(clusterScoped.length).toBeGreaterThanOrEqual(1);
  });
});
