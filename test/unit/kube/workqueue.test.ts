import { FakeClock } from '../../../src/kube/clock.ts';
import { TerminalError, WorkQueue } from '../../../src/kube/workqueue.ts';
import { createLogger } from '../../../src/util/log.ts';

const logger = createLogger('test', 'silent');

describe('WorkQueue', () => {
  it('dedupes queued keys and hands them out in order', async () => {
    const depths: number[] = [];
    const q = new WorkQueue({ logger, onDepth: (n) => depths.push(n) });
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.len()).toBe(0);
    expect(depths).toEqual([1, 2, 1, 0]);
  });

  it('one in flight per key: a key added while processed is queued again after done()', async () => {
    const q = new WorkQueue({ logger });
    q.add('a');
    const k = await q.get();
    q.add('a');
    q.add('a');
    expect(q.len()).toBe(0); // not handed to a second worker
    q.done(k!);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    expect(q.len()).toBe(0);
  });

  it('a waiting get() receives the next added key', async () => {
    const q = new WorkQueue({ logger });
    const p = q.get();
    q.add('x');
    expect(await p).toBe('x');
    expect(q.stats()).toMatchObject({ depth: 0, inFlight: 1 });
  });

  it('addRateLimited backs off per key exponentially; forget() resets', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ logger, clock, baseDelayMs: 10, maxDelayMs: 50 });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = clock.now();
      q.addRateLimited('a');
      while (q.len() === 0) await clock.advance(1);
      delays.push(clock.now() - t0);
      q.done((await q.get())!);
    }
    expect(delays).toEqual([10, 20, 40, 50, 50]);
    expect(q.numRequeues('a')).toBe(5);
    q.forget('a');
    expect(q.numRequeues('a')).toBe(0);
  });

  it('addAfter: the earlier schedule wins; adds are dropped after shutdown', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ logger, clock });
    q.addAfter('a', 1_000);
    q.addAfter('a', 300);
    q.addAfter('a', 2_000);
    await clock.advance(299);
    expect(q.len()).toBe(0);
    await clock.advance(1);
    expect(q.len()).toBe(1);
    await clock.advance(5_000);
    expect(q.len()).toBe(1);
    q.addAfter('b', 100);
    const waiting = q.get();
    q.shutDown();
    expect(await q.get()).toBeUndefined();
    expect(await waiting).toBe('a'); // handed out before shutdown
    await clock.advance(200);
    q.add('c');
    expect(q.stats()).toMatchObject({ depth: 0, waiting: 0 }); // 'b' was dropped, 'c' refused
  });

  it('run(): retries failures with backoff, not TerminalErrors; requeueAfterMs schedules; abort stops', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ logger, clock, baseDelayMs: 100 });
    const seen: Array<[string, number]> = [];
    let failA = 2;
    const ctl = new AbortController();
    const running = q.run(async (key) => {
      seen.push([key, clock.now() - 1_000_000]);
      if (key === 'a' && failA-- > 0) throw new Error('transient');
      if (key === 't') throw new TerminalError('bad spec');
      if (key === 'r' && seen.filter(([k]) => k === 'r').length === 1) return { requeueAfterMs: 5_000 };
      return undefined;
    }, { concurrency: 2, signal: ctl.signal });
    q.add('a');
    q.add('t');
    q.add('r');
    await clock.advance(10_000);
    expect(seen).toEqual([['a', 0], ['t', 0], ['r', 0], ['a', 100], ['a', 300], ['r', 5_000]]);
    expect(q.numRequeues('a')).toBe(0);
    expect(q.stats().retries).toBe(2);
    ctl.abort();
    await running;
    expect(q.isShutDown()).toBe(true);
  });
});
