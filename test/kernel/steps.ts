// Whole-stack suites run their cases in order on one lab; each case is a step, and afterAll prints the
// processes' logs when a step did not run to its end.
import { it } from '@jest/globals';

export interface TrackedSteps {
  /** `it(name, fn)`, counted. */
  step(name: string, fn: () => Promise<void>): void;
  /** Whether a step started and did not finish (failed or timed out). */
  someFailed(): boolean;
}

export function trackedSteps(): TrackedSteps {
  let completed = 0;
  let started = 0;
  return {
    step(name, fn) {
      it(name, async () => {
        started++;
        await fn();
        completed++;
      });
    },
    someFailed: () => completed < started,
  };
}
