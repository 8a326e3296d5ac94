// The controller's own writes coming back through the watch (src/controller/own-writes.ts): the echo may
// arrive before or after the write's answer; either way it costs nothing, and no other event is lost.
import { OwnWrites } from '../../../src/controller/own-writes.ts';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
const written = (rv: string): { metadata: { resourceVersion: string } } => ({ metadata: { resourceVersion: rv } });

/** An OwnWrites with a log of what was marked and how often a pass was asked for. */
function setup(): { echoes: OwnWrites; marked: string[]; passes: () => number; mark: (what: string) => () => void } {
  const marked: string[] = [];
  let passes = 0;
  const echoes = new OwnWrites(() => passes++);
  return { echoes, marked, passes: () => passes, mark: (what) => () => marked.push(what) };
}

describe('OwnWrites', () => {
  it('drops the echo of a write that arrives before the write answers', async () => {
    const { echoes, marked, passes, mark } = setup();
    const answer = deferred<ReturnType<typeof written>>();
    const w = echoes.write('ns/a', () => answer.promise);
    // The watch delivers resourceVersion 5 while the PATCH is still on its way back.
    expect(echoes.event('ns/a', '5', mark('echo 5'))).toBe(false);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 1, held: 1 });
    answer.resolve(written('5'));
    await w;
    expect(marked).toEqual([]);
    expect(passes()).toBe(0);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
  });

  it('drops the echo of a write that arrives after the write answered, once', async () => {
    const { echoes, marked, passes, mark } = setup();
    await echoes.write('ns/a', async () => written('6'));
    expect(echoes.sizes).toEqual({ expected: 1, inflight: 0, held: 0 });
    expect(echoes.event('ns/a', '6', mark('echo 6'))).toBe(false);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
    // The same version again (a relist) is no longer ours to drop: it counts.
    expect(echoes.event('ns/a', '6', mark('relist 6'))).toBe(true);
    expect(marked).toEqual(['relist 6']);
    expect(passes()).toBe(1);
  });

  it('applies a foreign change that arrived during the write once the write answered, and drops only the echo', async () => {
    const { echoes, marked, passes, mark } = setup();
    const answer = deferred<ReturnType<typeof written>>();
    const w = echoes.write('ns/a', () => answer.promise);
    echoes.event('ns/a', '7', mark('user 7'));
    echoes.event('ns/a', '8', mark('echo 8'));
    // Other objects are not held back.
    expect(echoes.event('ns/b', '9', mark('b 9'))).toBe(true);
    expect(marked).toEqual(['b 9']);
    answer.resolve(written('8'));
    await w;
    expect(marked).toEqual(['b 9', 'user 7']);
    expect(passes()).toBe(2);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
  });

  it('the echo after a foreign change that arrived after the answer', async () => {
    const { echoes, marked, mark } = setup();
    await echoes.write('ns/a', async () => written('11'));
    // Events per object arrive in order, but a change made before our write may still be on its way.
    echoes.event('ns/a', '10', mark('user 10'));
    echoes.event('ns/a', '11', mark('echo 11'));
    expect(marked).toEqual(['user 10']);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
  });

  it('releases what it held when the write fails, and the error reaches the caller', async () => {
    const { echoes, marked, passes, mark } = setup();
    const answer = deferred<ReturnType<typeof written>>();
    const w = echoes.write('ns/a', () => answer.promise);
    echoes.event('ns/a', '12', mark('user 12'));
    answer.reject(new Error('409 conflict'));
    await expect(w).rejects.toThrow('409 conflict');
    // A write that fails names no version: whatever came meanwhile is work, even if the write did land.
    expect(marked).toEqual(['user 12']);
    expect(passes()).toBe(1);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
  });

  it('a write answering with nothing (the object was gone) releases what it held', async () => {
    const { echoes, marked, mark } = setup();
    const answer = deferred<undefined>();
    const w = echoes.write('ns/a', () => answer.promise);
    echoes.event('ns/a', '13', mark('user 13'));
    answer.resolve(undefined);
    await w;
    expect(marked).toEqual(['user 13']);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
  });

  it('holds events until every write in flight to the object answered', async () => {
    const { echoes, marked, mark } = setup();
    const first = deferred<ReturnType<typeof written>>();
    const second = deferred<ReturnType<typeof written>>();
    const w1 = echoes.write('ns/a', () => first.promise);
    const w2 = echoes.write('ns/a', () => second.promise);
    echoes.event('ns/a', '20', mark('echo 20'));
    echoes.event('ns/a', '21', mark('user 21'));
    first.resolve(written('20'));
    await w1;
    // The second write may still produce the held 21: nothing is applied yet.
    expect(marked).toEqual([]);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 1, held: 1 });
    echoes.event('ns/a', '22', mark('echo 22'));
    second.resolve(written('22'));
    await w2;
    expect(marked).toEqual(['user 21']);
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
  });

  it('counts events without a resourceVersion (adds, deletes) even during a write', async () => {
    const { echoes, marked, mark } = setup();
    const answer = deferred<ReturnType<typeof written>>();
    const w = echoes.write('ns/a', () => answer.promise);
    expect(echoes.event('ns/a', undefined, mark('delete'))).toBe(true);
    answer.resolve(written('30'));
    await w;
    expect(marked).toEqual(['delete']);
  });

  it('forgets expected echoes of a deleted object, on a full pass, and beyond the cap per object', async () => {
    const { echoes } = setup();
    await echoes.write('ns/a', async () => written('40'));
    echoes.forget('ns/a');
    await echoes.write('ns/b', async () => written('41'));
    echoes.clear();
    expect(echoes.sizes).toEqual({ expected: 0, inflight: 0, held: 0 });
    const capped = new OwnWrites(() => undefined, 3);
    for (const rv of ['50', '51', '52', '53']) await capped.write('ns/c', async () => written(rv));
    expect(capped.sizes.expected).toBe(3);
    // The oldest went: its event would count as a change, the newest are still recognised.
    expect(capped.event('ns/c', '50', () => undefined)).toBe(true);
    expect(capped.event('ns/c', '53', () => undefined)).toBe(false);
  });
});
