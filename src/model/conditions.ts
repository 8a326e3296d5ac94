/** Kubernetes condition bookkeeping (Gateway API rules: merge by type, keep foreign conditions). */
import type { Condition } from '../api/v1alpha1/meta.ts';

export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/** metav1.Time has second precision; a finer time would be a spurious diff after the round trip. */
export const conditionTime = (now: Date): string => `${now.toISOString().slice(0, 19)}Z`;

/**
 * Returns `current` with `updates` merged in by type: lastTransitionTime moves only when the status
 * changes; conditions of other types (someone else's) are kept as they are.
 */
export function mergeConditions(current: Condition[] | undefined, updates: ConditionInput[], generation: number, now: Date): Condition[] {
  const out = [...(current ?? [])];
  for (const u of updates) {
    const i = out.findIndex((c) => c.type === u.type);
    const prev = i >= 0 ? out[i] : undefined;
    const next: Condition = {
      type: u.type,
      status: u.status,
      observedGeneration: generation,
      lastTransitionTime: prev && prev.status === u.status ? prev.lastTransitionTime : conditionTime(now),
      reason: u.reason,
      message: u.message.slice(0, 32768),
    };
    if (i >= 0) out[i] = next;
    else out.push(next);
  }
  return out;
}

/** Condition changes worth an Event: new types and status flips. */
export function transitions(before: Condition[] | undefined, after: Condition[]): Condition[] {
  return after.filter((c) => before?.find((b) => b.type === c.type)?.status !== c.status);
}
