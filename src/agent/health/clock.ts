import type { Clock, TimerHandle } from './types.ts';

/** Wall clock whose timers never keep the process alive: the agent lives on its servers and watches. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return setTimeout(fn, ms).unref();
  },
  clearTimeout(handle: TimerHandle): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};
