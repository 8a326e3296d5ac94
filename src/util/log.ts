import { pino, type Logger } from 'pino';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

/** The one structured (JSON, levelled) logger of the product. Children carry context: service, node, errno. */
export type { Logger };

export function createLogger(component: string, level: string = process.env.LVS_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/**
 * Logs garbage-collection pauses of at least `minMs` at debug level (nothing is observed at other levels):
 * a change that waited for no run may have waited for a major GC of a large heap, which takes a second and
 * more on a slow (or emulated) node. The metrics carry the same pauses as nodejs_gc_duration_seconds, but
 * without the moment they happened. Returns the stop function.
 */
export function logLongGcPauses(log: Logger, minMs = 50): () => void {
  if (!log.isLevelEnabled('debug')) return () => undefined;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration < minMs) continue;
      const kind = ((e as PerformanceEntry & { detail?: { kind?: number } | null }).detail)?.kind;
      log.debug({ gc: kind === undefined ? 'unknown' : (GC_KINDS[kind] ?? String(kind)), ms: Math.round(e.duration) }, 'long GC pause');
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}

/**
 * Logs, at debug level (nothing runs at other levels), each time the event loop was held for at least
 * `minMs`: a timer due every `everyMs` that fired that much late (`lateMs`, a lower bound of the hold).
 * A plan change that came meanwhile waited for it, whatever held the loop (a synchronous kernel dump, a
 * long comparison, a GC pause); the log line's time is when the loop was free again. Returns the stop
 * function.
 */
export function logEventLoopStalls(log: Logger, minMs = 100, everyMs = 20): () => void {
  if (!log.isLevelEnabled('debug')) return () => undefined;
  let due = performance.now() + everyMs;
  const timer = setInterval(() => {
    const now = performance.now();
    const lateMs = now - due;
    due = now + everyMs;
    if (lateMs >= minMs) log.debug({ lateMs: Math.round(lateMs) }, 'event loop held');
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
