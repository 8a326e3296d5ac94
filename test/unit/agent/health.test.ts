import { HealthChecker } from '../../../src/agent/health/checker.ts';
import { RiseFall } from '../../../src/agent/health/state.ts';
import type { Clock, HealthCheckSpec, HealthTarget, ProbeResult, TimerHandle } from '../../../src/agent/health/types.ts';
import { createLogger } from '../../../src/util/log.ts';

const log = createLogger('test', 'silent');
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Manual clock: advance() fires due timers in order and lets the promises they start settle. */
class FakeClock implements Clock {
  t = 0;
  private seq = 0;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    this.timers.set(++this.seq, { at: this.t + ms, fn });
    return this.seq;
  }
  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** Probe scripted per target: `ok` decides the answer, `hang` never answers; every call is recorded. */
class ScriptedProbe {
  ok = new Map<string, boolean>();
  hang = new Set<string>();
  calls: Array<{ id: string; at: number; signal: AbortSignal }> = [];
  private readonly clock: FakeClock;
  constructor(clock: FakeClock) {
    this.clock = clock;
  }
  probe = (target: HealthTarget, signal: AbortSignal): Promise<ProbeResult> => {
    this.calls.push({ id: target.id, at: this.clock.t, signal });
    if (this.hang.has(target.id)) return new Promise(() => undefined);
    const ok = this.ok.get(target.id) ?? true;
    return Promise.resolve(ok ? { ok, reason: 'HTTP 200' } : { ok, reason: 'HTTP 503 (expected 200)' });
  };
}

function target(id: string, check: Partial<HealthCheckSpec> = {}): HealthTarget {
  return {
    id,
    address: '10.0.0.2',
    port: 80,
    check: { type: 'HTTP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2, ...check },
  };
}

function setup(random = 0): { clock: FakeClock; probe: ScriptedProbe; checker: HealthChecker; events: Array<[string, boolean, string]> } {
  const clock = new FakeClock();
  const probe = new ScriptedProbe(clock);
  const checker = new HealthChecker({ clock, probe: probe.probe, random: () => random, log });
  const events: Array<[string, boolean, string]> = [];
  checker.on('change', (id, healthy, reason) => events.push([id, healthy, reason]));
  return { clock, probe, checker, events };
}

describe('RiseFall', () => {
  it('starts healthy, falls after `fall` failures in a row and rises after `rise` successes in a row', () => {
    const s = new RiseFall();
    const run = (oks: boolean[]): boolean[] => oks.map((ok) => s.record(ok, 3, 2));
    expect(s.healthy).toBe(true);
    expect(run([false, true, false])).toEqual([false, false, false]); // a success in between resets the streak
    expect(run([false])).toEqual([true]);
    expect(s.healthy).toBe(false);
    expect(run([false, true, true, false, true, true])).toEqual([false, false, false, false, false, false]);
    expect(run([true])).toEqual([true]);
    expect(s.healthy).toBe(true);
  });

  it('flips on the first contrary result when rise and fall are 1', () => {
    const s = new RiseFall();
    expect([false, false, true, true].map((ok) => s.record(ok, 1, 1))).toEqual([true, false, true, false]);
  });
});

describe('HealthChecker', () => {
  it('starts targets healthy, jitters the first check and keeps the interval', async () => {
    const { clock, probe, checker } = setup(0.5);
    checker.setTargets([target('a'), target('b', { intervalSeconds: 10 })]);
    expect(checker.state('a')).toBe('healthy');
    expect(checker.state('b')).toBe('healthy');
    expect(checker.state('zzz')).toBe('unknown');
    await clock.advance(20_000);
    expect(probe.calls.filter((c) => c.id === 'a').map((c) => c.at)).toEqual([1500, 4500, 7500, 10500, 13500, 16500, 19500]);
    expect(probe.calls.filter((c) => c.id === 'b').map((c) => c.at)).toEqual([5000, 15000]);
    checker.stop();
  });

  it('fires change only on transitions, after fall failures and rise successes', async () => {
    const { clock, probe, checker, events } = setup();
    checker.setTargets([target('a', { rise: 3, fall: 2 })]);
    await clock.advance(0); // check at t=0: healthy, no event
    probe.ok.set('a', false);
    await clock.advance(3000);
    expect(checker.state('a')).toBe('healthy'); // one failure of two
    await clock.advance(3000);
    expect(checker.state('a')).toBe('unhealthy');
    expect(events).toEqual([['a', false, 'HTTP 503 (expected 200)']]);
    await clock.advance(9000); // more failures: no more events
    expect(events).toHaveLength(1);
    probe.ok.set('a', true);
    await clock.advance(6000);
    expect(checker.state('a')).toBe('unhealthy'); // two successes of three
    await clock.advance(3000);
    expect(checker.state('a')).toBe('healthy');
    expect(events).toEqual([['a', false, 'HTTP 503 (expected 200)'], ['a', true, 'HTTP 200']]);
    checker.stop();
  });

  it('counts a probe that does not answer within timeoutSeconds as failed and aborts it', async () => {
    const { clock, probe, checker, events } = setup();
    probe.hang.add('a');
    checker.setTargets([target('a', { fall: 1, timeoutSeconds: 2, intervalSeconds: 5 })]);
    await clock.advance(1999);
    expect(checker.state('a')).toBe('healthy');
    expect(probe.calls[0]?.signal.aborted).toBe(false);
    await clock.advance(1);
    expect(probe.calls[0]?.signal.aborted).toBe(true);
    expect(events).toEqual([['a', false, 'timeout after 2s']]);
    await clock.advance(3000); // next check at start + interval, not timeout + interval
    expect(probe.calls.map((c) => c.at)).toEqual([0, 5000]);
    checker.stop();
  });

  it('counts a throwing probe as failed', async () => {
    const clock = new FakeClock();
    const checker = new HealthChecker({ clock, probe: () => Promise.reject(new Error('boom')), random: () => 0, log });
    const events: unknown[] = [];
    checker.on('change', (...args) => events.push(args));
    checker.setTargets([target('a', { fall: 1 })]);
    await clock.advance(0);
    expect(events).toEqual([['a', false, 'probe failed: boom']]);
    checker.stop();
  });

  it('never probes None targets and keeps them healthy', async () => {
    const { clock, probe, checker } = setup();
    checker.setTargets([target('a', { type: 'None' })]);
    await clock.advance(60_000);
    expect(probe.calls).toEqual([]);
    expect(clock.timers.size).toBe(0);
    expect(checker.state('a')).toBe('healthy');
  });

  it('stops removed targets silently and aborts their check in flight', async () => {
    const { clock, probe, checker, events } = setup();
    probe.hang.add('a');
    checker.setTargets([target('a'), target('b')]);
    await clock.advance(0);
    checker.setTargets([target('b')]);
    expect(probe.calls[0]?.signal.aborted).toBe(true);
    expect(checker.state('a')).toBe('unknown');
    await clock.advance(30_000);
    expect(probe.calls.filter((c) => c.id === 'a')).toHaveLength(1);
    expect(events).toEqual([]);
    checker.stop();
    expect(clock.timers.size).toBe(0);
  });

  it('keeps state and streaks when only timing changes, and re-spreads the next check', async () => {
    const { clock, probe, checker, events } = setup();
    probe.ok.set('a', false);
    checker.setTargets([target('a', { fall: 3 })]);
    await clock.advance(3000); // failures at 0 and 3000
    checker.setTargets([target('a', { fall: 3, intervalSeconds: 10, timeoutSeconds: 5 })]);
    await clock.advance(0);
    expect(probe.calls.map((c) => c.at)).toEqual([0, 3000, 3000]); // random() = 0: re-spread to now
    expect(events).toEqual([['a', false, 'HTTP 503 (expected 200)']]); // third failure in a row
    checker.setTargets([target('a', { fall: 3, rise: 1, intervalSeconds: 10, timeoutSeconds: 5 })]);
    expect(checker.state('a')).toBe('unhealthy');
    probe.ok.set('a', true);
    await clock.advance(10_000);
    expect(probe.calls.map((c) => c.at)).toEqual([0, 3000, 3000, 13_000]);
    expect(checker.state('a')).toBe('healthy');
    checker.stop();
  });

  it('restarts a target healthy when what is checked changes', async () => {
    const { clock, probe, checker, events } = setup();
    probe.ok.set('a', false);
    checker.setTargets([target('a', { fall: 1, path: '/wrong' })]);
    await clock.advance(0);
    expect(checker.state('a')).toBe('unhealthy');
    checker.setTargets([target('a', { fall: 1, path: '/healthz', expectedStatuses: [200] })]);
    expect(checker.state('a')).toBe('healthy');
    expect(events).toEqual([['a', false, 'HTTP 503 (expected 200)'], ['a', true, 'health check changed']]);
    await clock.advance(0);
    expect(checker.state('a')).toBe('unhealthy');
    // Absent statuses mean [200]: no change, so no restart and no event.
    checker.setTargets([target('a', { fall: 1, path: '/healthz' })]);
    expect(checker.state('a')).toBe('unhealthy');
    expect(events).toHaveLength(3);
    expect(probe.calls).toHaveLength(2);
    checker.stop();
  });

  it('survives a throwing listener', async () => {
    const { clock, probe, checker } = setup();
    checker.on('change', () => {
      throw new Error('listener bug');
    });
    probe.ok.set('a', false);
    checker.setTargets([target('a', { fall: 1 })]);
    await clock.advance(6000);
    expect(probe.calls).toHaveLength(3);
    expect(checker.state('a')).toBe('unhealthy');
    checker.stop();
  });

  it('ignores results that arrive after stop()', async () => {
    const clock = new FakeClock();
    let answer: ((r: ProbeResult) => void) | undefined;
    const checker = new HealthChecker({ clock, probe: () => new Promise((resolve) => (answer = resolve)), random: () => 0, log });
    const events: unknown[] = [];
    checker.on('change', (...args) => events.push(args));
    checker.setTargets([target('a', { fall: 1 })]);
    await clock.advance(0);
    checker.stop();
    answer?.({ ok: false, reason: 'late' });
    await clock.advance(10_000);
    expect(events).toEqual([]);
    expect(clock.timers.size).toBe(0);
    expect(checker.state('a')).toBe('unknown');
  });
});
