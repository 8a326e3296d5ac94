// The controller's write pool (src/controller/controller.ts): after a failure it starts nothing new and
// rethrows only once the writes in flight ended, so a failed pass leaves no write running into the next.
import { pool } from '../../../src/controller/controller.ts';

describe('pool', () => {
  it('runs every item with at most n in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const done: number[] = [];
    await pool([1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      done.push(x);
    });
    expect(done.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
  });

  it('stops starting items after a failure and throws once the others ended', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const run = pool([1, 2, 3, 4, 5, 6], 2, async (x) => {
      started.push(x);
      if (x === 1) throw new Error('write 1 failed');
      await new Promise((r) => setTimeout(r, 20));
      ended.push(x);
    });
    await expect(run).rejects.toThrow('write 1 failed');
    // 1 failed at once; 2 was in flight and finished before the error surfaced; nothing after it started.
    expect(started).toEqual([1, 2]);
    expect(ended).toEqual([2]);
  });
});
