import { ApiException } from '@kubernetes/client-node';
import { FakeClock } from '../../../src/kube/clock.ts';
import { EventRecorder } from '../../../src/kube/events.ts';
import type { EventBody, EventRecorderOptions, EventSink } from '../../../src/kube/events.ts';
import { createLogger } from '../../../src/util/log.ts';

const logger = createLogger('test', 'silent');

class FakeSink implements EventSink {
  created: EventBody[] = [];
  series: Array<{ name: string; count: number }> = [];
  failCreate = 0;
  goneOnSeries = false;
  async create(e: EventBody): Promise<void> {
    await Promise.resolve();
    if (this.failCreate > 0) {
      this.failCreate--;
      throw new Error('connect ECONNREFUSED');
    }
    this.created.push(structuredClone(e));
  }
  async updateSeries(_ns: string, name: string, s: { count: number; lastObservedTime: Date }): Promise<void> {
    await Promise.resolve();
    if (this.goneOnSeries) throw new ApiException<string>(404, 'not found', '{"kind":"Status","code":404,"reason":"NotFound"}', {});
    this.series.push({ name, count: s.count });
  }
}

const vs = { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', metadata: { name: 'web', namespace: 'lab', uid: 'u-1', resourceVersion: '7' } };

function setup(o: Partial<EventRecorderOptions> = {}) {
  const clock = new FakeClock();
  const sink = new FakeSink();
  const rec = new EventRecorder({ sink, reportingInstance: 'controller-0', clock, logger, ...o });
  return { clock, sink, rec };
}

describe('EventRecorder', () => {
  it('writes an events.k8s.io/v1 Event about the object', async () => {
    const { sink, rec } = setup();
    rec.warning(vs, 'VipConflict', 'VIP 192.168.56.40:80/TCP is already used by lab/other');
    await rec.flush();
    expect(sink.created).toHaveLength(1);
    const e = sink.created[0]!;
    expect(e).toMatchObject({
      namespace: 'lab', type: 'Warning', reason: 'VipConflict', action: 'VipConflict',
      note: 'VIP 192.168.56.40:80/TCP is already used by lab/other',
      regarding: { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', name: 'web', namespace: 'lab', uid: 'u-1' },
      reportingController: 'lvs.operator.dev/controller', reportingInstance: 'controller-0',
    });
    expect(e.name).toMatch(/^web\.[0-9a-f]{16}$/);
    expect(e.series).toBeUndefined();
  });

  it('cluster-scoped objects get their Events in "default"; long notes are cut to 1 KiB', async () => {
    const { sink, rec } = setup();
    rec.normal({ kind: 'NodePlan', name: 'web1.0' }, 'Programmed', 'x'.repeat(5_000));
    await rec.flush();
    expect(sink.created[0]!.namespace).toBe('default');
    expect(Buffer.byteLength(sink.created[0]!.note)).toBeLessThanOrEqual(1024);
  });

  it('a flapping condition aggregates into a series instead of thousands of Events', async () => {
    const { clock, sink, rec } = setup();
    for (let i = 0; i < 2_000; i++) {
      rec.warning(vs, i % 2 ? 'Unhealthy' : 'Healthy', i % 2 ? 'realserver 10.0.0.1:80 failed 2 checks' : 'realserver 10.0.0.1:80 is back');
      await clock.advance(100); // 200 s of flapping every 100 ms
    }
    await rec.flush();
    expect(sink.created).toHaveLength(2);
    // At most one series write per Event per 30 s.
    expect(sink.series.length).toBeLessThanOrEqual(2 * Math.ceil(200 / 30) + 2);
    const last = (name: string) => sink.series.filter((s) => s.name === name).at(-1)!.count;
    expect(last(sink.created[0]!.name)).toBe(1_000);
    expect(last(sink.created[1]!.name)).toBe(1_000);
    expect(rec.stats()).toMatchObject({ created: 2, aggregated: 1_998 });
  });

  it('a new Event after the series window; per-object rate limit on distinct events', async () => {
    const { clock, sink, rec } = setup({ burst: 3, refillMs: 60_000 });
    rec.normal(vs, 'Synced', 'ok');
    await clock.advance(7 * 60_000);
    rec.normal(vs, 'Synced', 'ok');
    await rec.flush();
    expect(sink.created).toHaveLength(2);
    for (let i = 0; i < 10; i++) rec.normal(vs, 'Step', `step ${i}`);
    await rec.flush();
    // Burst 3: one token left after the first Event, refilled to 3 over 7 minutes, one taken again: two of ten pass.
    expect(sink.created).toHaveLength(4);
    expect(rec.stats().dropped).toBe(8);
    await clock.advance(60_000);
    rec.normal(vs, 'Step', 'one more after a minute');
    await rec.flush();
    expect(sink.created).toHaveLength(5);
  });

  it('never throws; failures are counted; an expired Event is re-created with its series', async () => {
    const { clock, sink, rec } = setup();
    sink.failCreate = 1;
    expect(() => rec.normal(vs, 'A', 'a')).not.toThrow();
    expect(() => rec.normal({ name: '' }, 'B', 'b')).not.toThrow();
    await rec.flush();
    expect(rec.stats().failed).toBe(2);
    rec.normal(vs, 'A', 'a');
    await rec.flush();
    expect(sink.created).toHaveLength(1);
    sink.goneOnSeries = true;
    rec.normal(vs, 'A', 'a');
    await clock.advance(31_000);
    await rec.flush();
    expect(sink.created).toHaveLength(2);
    expect(sink.created[1]!.series?.count).toBe(2);
    await rec.close();
    rec.normal(vs, 'A', 'after close');
    await rec.flush();
    expect(sink.created).toHaveLength(2);
  });
});
