/**
 * Which planned services a new plan changes, so that a plan change costs work in proportion to the
 * change. Unchanged services are recognised by object identity first (cluster mode keeps the objects of
 * unchanged shards; the benchmark and tests keep theirs), then by value (standalone mode re-plans every
 * object on each reload).
 */
import type { PlannedService } from '../model/plan.ts';

/** Structural equality of JSON-like values (plans are plain data: no dates, maps or cycles). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (x[k] === undefined) continue; // an absent optional field and an undefined one are the same
    if (!deepEqual(x[k], y[k])) return false;
    n++;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}

export interface PlanDelta {
  /** Services that are new or differ from the previous plan's entry with the same id. */
  changed: PlannedService[];
  /** Ids of the previous plan that the new one no longer has. */
  removed: string[];
}

/**
 * Compares `next` with the previous plan (`prev`, indexed by id in `byId`) and updates `byId` to `next`.
 * Cost: one identity check per service when the services sit where they sat; a map lookup (and, when the
 * object is new, a value compare) otherwise; a pass over the ids only when some were removed.
 * Ids are unique within a plan (the planner's invariant).
 */
export function planDelta(byId: Map<string, PlannedService>, prev: readonly PlannedService[], next: readonly PlannedService[], compare: 'value' | 'identity' = 'value'): PlanDelta {
  const changed: PlannedService[] = [];
  let kept = 0;
  let added = 0;
  for (let i = 0; i < next.length; i++) {
    const s = next[i]!;
    if (prev[i] === s) {
      kept++;
      continue;
    }
    const old = byId.get(s.id);
    if (old === undefined) added++;
    else kept++;
    if (old === s) continue;
    byId.set(s.id, s);
    if (old === undefined || compare === 'identity' || !deepEqual(old, s)) changed.push(s);
  }
  const removed: string[] = [];
  if (byId.size - added > kept) {
    const ids = new Set(next.map((s) => s.id));
    for (const id of byId.keys()) {
      if (!ids.has(id)) {
        removed.push(id);
        byId.delete(id);
      }
    }
  }
  return { changed, removed };
}

/**
 * planDelta for a plan that differs from the previous one only in `swapped` (entries put where the entries
 * with their ids were): work in proportion to them. undefined when an id was not in the previous plan (the
 * caller compares the whole plans then); `byId` is left untouched in that case.
 */
export function swappedDelta(byId: Map<string, PlannedService>, swapped: readonly PlannedService[]): PlanDelta | undefined {
  if (!swapped.every((s) => byId.has(s.id))) return undefined;
  const changed: PlannedService[] = [];
  for (const s of swapped) {
    const old = byId.get(s.id);
    if (old === s) continue;
    byId.set(s.id, s);
    if (!deepEqual(old, s)) changed.push(s);
  }
  return { changed, removed: [] };
}
