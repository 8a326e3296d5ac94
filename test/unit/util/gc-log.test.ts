import { Writable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pino } from 'pino';
import { logEventLoopStalls, logLongGcPauses } from '../../../src/util/log.ts';

/** A logger writing JSON lines into `lines`. */
function capture(level: string): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level }, stream), lines };
}

/** A full (major) collection, as V8 does it when asked through --expose-gc. */
function majorGc(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

describe('logLongGcPauses', () => {
  it('logs each pause of at least minMs at debug level, with its kind', async () => {
    const { log, lines } = capture('debug');
    const stop = logLongGcPauses(log, 0);
    majorGc();
    // Performance entries reach observers asynchronously.
    for (let i = 0; i < 50 && !lines.some((l) => l.gc === 'major'); i++) await new Promise((r) => setTimeout(r, 10));
    stop();
    const pause = lines.find((l) => l.msg === 'long GC pause' && l.gc === 'major');
    expect(pause).toBeDefined();
    expect(typeof pause!.ms).toBe('number');
  });

  it('observes nothing above debug level, and nothing shorter than minMs', async () => {
    const quiet = capture('info');
    const stopQuiet = logLongGcPauses(quiet.log, 0);
    const loud = capture('debug');
    const stopLoud = logLongGcPauses(loud.log, 60_000);
    majorGc();
    await new Promise((r) => setTimeout(r, 100));
    stopQuiet();
    stopLoud();
    expect(quiet.lines).toEqual([]);
    expect(loud.lines).toEqual([]);
  });
});

describe('logEventLoopStalls', () => {
  it('logs a hold of the event loop of at least minMs at debug level, and nothing at other levels', async () => {
    const loud = capture('debug');
    const quiet = capture('info');
    const stopLoud = logEventLoopStalls(loud.log, 100, 10);
    const stopQuiet = logEventLoopStalls(quiet.log, 100, 10);
    await new Promise((r) => setTimeout(r, 30));
    // Hold the loop for 250 ms, as a synchronous dump of a large table would.
    const until = performance.now() + 250;
    while (performance.now() < until);
    await new Promise((r) => setTimeout(r, 50));
    stopLoud();
    stopQuiet();
    // (A loaded machine may add holds of its own; the 250 ms one must be there.)
    const held = loud.lines.filter((l) => l.msg === 'event loop held').map((l) => l.lateMs as number);
    expect(Math.max(...held)).toBeGreaterThanOrEqual(200);
    expect(quiet.lines).toEqual([]);
  });
});
