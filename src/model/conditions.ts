/** Kubernetes condition bookkeeping (Gateway API rules: merge by type, keep foreign conditions). */
import { ConditionReady, ReasonPending } from '../api/v1alpha1/conditions.ts';
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

export interface ConditionEvent {
  type: 'Normal' | 'Warning';
  /** The condition type, with the status appended unless True (`Programmed`, `AcceptedFalse`). */
  reason: string;
  note: string;
}

/**
 * The Events for a status change: one per transition, except a condition that first appears as Pending.
 * Every new object starts so and the outcome follows (its own Event); at 5,000 new VirtualServices those
 * were two of every five Events and crowded the sink into dropping thousands. Pending is Normal wherever it
 * appears (a new generation being applied is no fault); other False conditions are Warnings, except Ready,
 * which is False while a service starts.
 */
export function conditionEvents(before: Condition[] | undefined, after: Condition[]): ConditionEvent[] {
  return transitions(before, after)
    .filter((c) => c.reason !== ReasonPending || before?.some((b) => b.type === c.type))
    .map((c) => ({
      type: c.status === 'False' && c.type !== ConditionReady && c.reason !== ReasonPending ? 'Warning' : 'Normal',
      reason: `${c.type}${c.status === 'True' ? '' : c.status}`,
      note: c.message,
    }));
}
