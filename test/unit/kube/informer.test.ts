import { FakeClock } from '../../../src/kube/clock.ts';
import { Informer, keyOf, resourcePath, splitKey } from '../../../src/kube/informer.ts';
import type { InformerOptions } from '../../../src/kube/informer.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeListWatch, statusError } from './fake-listwatch.ts';
import type { Obj } from './fake-listwatch.ts';

const logger = createLogger('test', 'silent');

function setup(o: Partial<InformerOptions> = {}) {
  const clock = new FakeClock();
  const api = new FakeListWatch(clock);
  const inf = new Informer<Obj>(api, { path: '/api/v1/configmaps', clock, logger, random: () => 0, watchTimeoutSeconds: 60, ...o });
  const events: string[] = [];
  inf.on('add', (x) => events.push(`add:${keyOf(x)}`));
  inf.on('update', (x, old) => events.push(`update:${keyOf(x)}:${old.metadata.resourceVersion}->${x.metadata.resourceVersion}`));
  inf.on('delete', (x) => events.push(`delete:${keyOf(x)}`));
  let changes = 0;
  inf.onChange(() => changes++);
  return { clock, api, inf, events, changes: () => changes };
}

const names = (inf: Informer<Obj>): string[] => inf.list().map(keyOf).sort();

describe('resource paths and keys', () => {
  it('builds core, apps and custom resource paths', () => {
    expect(resourcePath({ group: '', version: 'v1', plural: 'nodes' })).toBe('/api/v1/nodes');
    expect(resourcePath({ group: 'apps', version: 'v1', plural: 'daemonsets', namespace: 'kube-system' })).toBe('/apis/apps/v1/namespaces/kube-system/daemonsets');
    expect(resourcePath({ group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'nodeplans' }, 'web1.0')).toBe('/apis/lvs.operator.dev/v1alpha1/nodeplans/web1.0');
  });
  it('keys are namespace/name or name', () => {
    expect(keyOf({ metadata: { name: 'a', namespace: 'ns' } })).toBe('ns/a');
    expect(keyOf({ metadata: { name: 'n1' } })).toBe('n1');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('n1')).toEqual({ name: 'n1' });
  });
});

describe('Informer', () => {
  it('start() resolves after the initial list; the cache and events follow the watch', async () => {
    const { clock, api, inf, events, changes } = setup();
    api.put('a', {}, 'ns1');
    api.put('b', {}, 'ns2');
    let started = false;
    const p = inf.start().then(() => (started = true));
    await clock.advance(0);
    expect(started).toBe(true);
    await p;
    expect(inf.hasSynced()).toBe(true);
    expect(names(inf)).toEqual(['ns1/a', 'ns2/b']);
    expect(inf.get('a', 'ns1')?.metadata.name).toBe('a');
    expect(inf.list('ns2').map(keyOf)).toEqual(['ns2/b']);
    expect(events).toEqual(['add:ns1/a', 'add:ns2/b']);
    expect(changes()).toBe(1);
    expect(api.watchCalls[0]).toMatchObject({ watch: true, resourceVersion: '102', allowWatchBookmarks: true, timeoutSeconds: 60 });

    api.put('c', {}, 'ns1');
    api.put('a', { x: '1' }, 'ns1');
    api.remove('b', 'ns2');
    await clock.advance(0);
    expect(events.slice(2)).toEqual(['add:ns1/c', 'update:ns1/a:101->104', 'delete:ns2/b']);
    expect(names(inf)).toEqual(['ns1/a', 'ns1/c']);
    expect(inf.resourceVersion()).toBe('105');
    expect(changes()).toBe(2); // coalesced per turn
    await inf.stop();
  });

  it('a watch the server ends cleanly is resumed from the last resourceVersion, without a relist', async () => {
    const { clock, api, inf } = setup();
    api.put('a');
    await Promise.all([inf.start(), clock.advance(0)]);
    api.put('b');
    await clock.advance(0);
    await clock.advance(60_000); // server-side timeout
    api.put('c');
    await clock.advance(0);
    expect(api.listCalls).toHaveLength(1);
    expect(api.watchCalls.length).toBe(2);
    expect(api.watchCalls[1]!['resourceVersion']).toBe('102');
    expect(names(inf)).toEqual(['a', 'b', 'c']);
    expect(inf.stats()).toMatchObject({ restarts: 0, relists: 0, watches: 2 });
    await inf.stop();
  });

  it('410 Gone relists and turns what happened meanwhile into add/update/delete', async () => {
    const { clock, api, inf, events } = setup();
    api.put('keep');
    api.put('gone');
    api.put('changed');
    await Promise.all([inf.start(), clock.advance(0)]);
    // Disconnect, change things, compact: the resume point is gone.
    api.watchErrors.push(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    api.endWatches();
    api.remove('gone');
    api.put('changed', { v: '2' });
    api.put('new');
    api.compact();
    await clock.advance(10_000);
    expect(names(inf)).toEqual(['changed', 'keep', 'new']);
    expect(events.slice(3).sort()).toEqual(['add:new', 'delete:gone', 'update:changed:103->105']);
    expect(inf.stats()).toMatchObject({ relists: 1, restarts: 1 });
    await inf.stop();
  });

  it('keeps retrying a failing initial list with backoff; start() waits for success', async () => {
    const { clock, api, inf } = setup({ backoff: { initialMs: 100, maxMs: 1_000 } });
    api.put('a');
    api.listErrors.push(statusError(503, 'ServiceUnavailable'), new Error('connect ECONNREFUSED'), statusError(403, 'Forbidden'), statusError(404, 'NotFound'));
    let started = false;
    void inf.start().then(() => (started = true));
    await clock.advance(0);
    expect(started).toBe(false);
    await clock.advance(100 + 200 + 400 - 1);
    expect(api.listCalls).toHaveLength(3);
    await clock.advance(1);
    expect(api.listCalls).toHaveLength(4);
    expect(started).toBe(false);
    await clock.advance(800);
    expect(started).toBe(true);
    expect(names(inf)).toEqual(['a']);
    expect(inf.stats()).toMatchObject({ restarts: 4, relists: 0, synced: true });
    await inf.stop();
  });

  it('a non-410 watch error re-watches from the same resourceVersion after backoff; repeated failures relist', async () => {
    const { clock, api, inf } = setup({ backoff: { initialMs: 100, maxMs: 100 }, relistAfterFailures: 3 });
    api.put('a');
    await Promise.all([inf.start(), clock.advance(0)]);
    api.watchErrors.push(statusError(500, 'InternalError'));
    api.endWatches();
    await clock.advance(2_000);
    expect(api.watchCalls.map((q) => q['resourceVersion'])).toEqual(['101', '101', '101']);
    expect(api.listCalls).toHaveLength(1);
    api.watchErrors.push(new Error('x'), new Error('y'), new Error('z'));
    api.endWatches();
    await clock.advance(2_000);
    expect(api.listCalls).toHaveLength(2);
    expect(inf.stats().relists).toBe(1);
    await inf.stop();
  });

  it('the watchdog aborts a silent watch after 2x its timeout and reconnects', async () => {
    const { clock, api, inf } = setup({ watchTimeoutSeconds: 10 });
    api.put('a');
    api.watchMode = 'silent';
    await Promise.all([inf.start(), clock.advance(0)]);
    await clock.advance(19_999);
    expect(api.watchCalls).toHaveLength(1);
    api.watchMode = 'normal';
    await clock.advance(1 + 500);
    expect(inf.stats()).toMatchObject({ watchdogTimeouts: 1, restarts: 1 });
    expect(api.watchCalls).toHaveLength(2);
    api.put('b');
    await clock.advance(0);
    expect(names(inf)).toEqual(['a', 'b']);
    await inf.stop();
  });

  it('bookmarks advance the resourceVersion without events', async () => {
    const { clock, api, inf, events } = setup();
    await Promise.all([inf.start(), clock.advance(0)]);
    api.put('other');
    api.objects.clear(); // pretend it belongs to another selector: only the rv moves
    api.history = [];
    api.bookmark();
    await clock.advance(0);
    expect(inf.resourceVersion()).toBe(String(api.rv));
    expect(events).toEqual(['add:other']);
    await inf.stop();
  });

  it('does not spin when watches end at once with nothing in them', async () => {
    const { clock, api, inf } = setup({ backoff: { initialMs: 500, maxMs: 30_000 } });
    await Promise.all([inf.start(), clock.advance(0)]);
    api.watchMode = 'end';
    api.endWatches();
    await clock.advance(60_000);
    // 500 + 1000 + 2000 + ... : a handful of requests per minute, not thousands.
    expect(api.watchCalls.length).toBeLessThan(10);
    await inf.stop();
  });

  it('pages the list, and lists unpaged when the continue token expires', async () => {
    const { clock, api, inf } = setup({ pageSize: 2 });
    for (const n of ['a', 'b', 'c', 'd', 'e']) api.put(n);
    await Promise.all([inf.start(), clock.advance(0)]);
    expect(api.listCalls.map((q) => [q['limit'], q['continue']])).toEqual([[2, undefined], [2, '2'], [2, '4']]);
    expect(names(inf)).toEqual(['a', 'b', 'c', 'd', 'e']);
    await inf.stop();

    const s2 = setup({ pageSize: 2 });
    for (const n of ['a', 'b', 'c']) s2.api.put(n);
    s2.api.expireContinue = true;
    await Promise.all([s2.inf.start(), s2.clock.advance(0)]);
    expect(s2.api.listCalls.map((q) => [q['limit'], q['continue']])).toEqual([[2, undefined], [2, '2'], [undefined, undefined]]);
    expect(names(s2.inf)).toEqual(['a', 'b', 'c']);
    await s2.inf.stop();
  });

  it('passes label and field selectors to list and watch', async () => {
    const { clock, api, inf } = setup({ labelSelector: 'app=web', fieldSelector: 'metadata.name=x' });
    await Promise.all([inf.start(), clock.advance(0)]);
    expect(api.listCalls[0]).toMatchObject({ labelSelector: 'app=web', fieldSelector: 'metadata.name=x' });
    expect(api.watchCalls[0]).toMatchObject({ labelSelector: 'app=web', fieldSelector: 'metadata.name=x' });
    await inf.stop();
  });

  it('stop() before the first sync rejects start(); handler errors do not break the informer', async () => {
    const { clock, api, inf } = setup();
    api.listErrors.push(new Error('down'));
    const p = inf.start();
    await clock.advance(0);
    await inf.stop();
    await expect(p).rejects.toThrow(/stopped before it synced/);

    const s = setup();
    s.inf.on('add', () => {
      throw new Error('bug in a handler');
    });
    s.api.put('a');
    await Promise.all([s.inf.start(), s.clock.advance(0)]);
    s.api.put('b');
    await s.clock.advance(0);
    expect(names(s.inf)).toEqual(['a', 'b']);
    expect(s.events).toEqual(['add:a', 'add:b']);
    await s.inf.stop();
  });

  it('can be started again right after stop() and catches up from where it was', async () => {
    const { clock, api, inf, events } = setup();
    api.put('a');
    await Promise.all([inf.start(), clock.advance(0)]);
    const stopping = inf.stop();
    api.put('b');
    const again = inf.start();
    await stopping;
    await clock.advance(0);
    await again;
    api.put('c');
    await clock.advance(0);
    expect(names(inf)).toEqual(['a', 'b', 'c']);
    expect(events).toEqual(['add:a', 'add:b', 'add:c']);
    expect(api.listCalls).toHaveLength(1);
    await inf.stop();
  });
});
