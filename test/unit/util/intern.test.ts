// The controller's string pool: cached objects share equal strings, values are unchanged, unique fields and
// long strings stay out of the pool, and a full pool starts over without losing anything.
import { StringPool } from '../../../src/util/intern.ts';

/** A fresh copy of a string (JSON.parse makes one per value, as the informers' decoding does). */
const copyOf = (s: string): string => JSON.parse(JSON.stringify(s)) as string;

const realServer = (i: number): Record<string, unknown> => JSON.parse(JSON.stringify({
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer',
  metadata: { name: `rs-${i}`, namespace: 'lab', uid: `uid-${i}`, resourceVersion: String(100 + i), creationTimestamp: '2026-12-02T17:53:43Z', labels: { app: 'web' } },
  spec: { address: `10.0.0.${i}`, weight: 1 },
  status: { address: `10.0.0.${i}`, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'selected by lab/web', lastTransitionTime: '2026-12-02T17:53:43Z' }] },
})) as Record<string, unknown>;

describe('StringPool', () => {
  it('leaves values equal and makes repeated strings one pooled instance', () => {
    const pool = new StringPool();
    const objs = [1, 2, 3].map(realServer);
    const before = JSON.stringify(objs);
    for (const o of objs) pool.internValues(o);
    expect(JSON.stringify(objs)).toBe(before);
    // Every repeated value is now one entry of the pool: interning a fresh copy returns what the objects hold.
    const ts = pool.intern(copyOf('2026-12-02T17:53:43Z'));
    for (const o of objs) {
      const m = o.metadata as Record<string, unknown>;
      expect(m.creationTimestamp).toBe(ts);
      expect(pool.intern(copyOf(String(o.apiVersion)))).toBe(o.apiVersion);
    }
    // Distinct values stay distinct; a realserver's address is pooled once for spec and status.
    expect((objs[0]!.spec as { address: string }).address).toBe('10.0.0.1');
    expect((objs[1]!.status as { address: string }).address).toBe('10.0.0.2');
    // uid, resourceVersion and name are unique per object: not pooled.
    const sizeBefore = pool.size;
    pool.internValues({ metadata: { uid: 'u-new', name: 'n-new', resourceVersion: '999' } });
    expect(pool.size).toBe(sizeBefore);
    // Long strings are not pooled.
    pool.intern('x'.repeat(300));
    expect(pool.size).toBe(sizeBefore);
  });

  it('starts over when full, keeping values intact', () => {
    const pool = new StringPool(10);
    const objs = Array.from({ length: 20 }, (_, i) => realServer(i));
    const before = JSON.stringify(objs);
    for (const o of objs) pool.internValues(o);
    expect(JSON.stringify(objs)).toBe(before);
    expect(pool.resets).toBeGreaterThan(0);
    expect(pool.size).toBeLessThanOrEqual(10);
  });

  it('walks arrays of strings and nested arrays', () => {
    const pool = new StringPool();
    const o = { finalizers: ['lvs.operator.dev/teardown', copyOf('lvs.operator.dev/teardown')], nested: [[copyOf('a')], null, 3] };
    pool.internValues(o);
    expect(o).toEqual({ finalizers: ['lvs.operator.dev/teardown', 'lvs.operator.dev/teardown'], nested: [['a'], null, 3] });
    expect(pool.size).toBe(2);
  });
});
