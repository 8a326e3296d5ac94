import type { LabelSelector } from '../api/v1alpha1/meta.ts';

/** Kubernetes label selector semantics: matchLabels and matchExpressions ANDed; empty matches all. */
export function matchesSelector(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In': if (!has || !values.includes(l[e.key] as string)) return false; break;
      case 'NotIn': if (has && values.includes(l[e.key] as string)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

/** A plain map selector (nodeSelector style). */
export function matchesLabels(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return matchesSelector({ matchLabels: selector ?? {} }, labels);
}
