/**
 * Defence in depth for cluster mode: the controller admits every VIP through a VIPPool and names the pool
 * in the plan. A planned service or realserver VIP without one did not come from that admission (an old
 * controller, a hand-written or forged NodePlan), so the agent neither binds nor programs it, and reports
 * the refusal on the shard's status instead.
 */
import type { NodePlan, PlannedRealServerVip, PlannedService } from '../model/plan.ts';

/** Reason prefix of the refusal, in ServiceReport/RealServerVipReport errors. */
export const VIP_NOT_ADMITTED = 'VIPNotAdmitted';

export const refusalOf = (entry: PlannedService | PlannedRealServerVip): string | undefined =>
  entry.pool ? undefined : `${VIP_NOT_ADMITTED}: VIP ${entry.vip} is not attributed to a VIPPool in the node plan; not bound, not programmed`;

/** The plan without unadmitted entries, and those entries' refusals (`director:<id>` / `realServer:<service>|<vip>`). */
export function admittedPlan(plan: NodePlan): { plan: NodePlan; refused: Map<string, string> } {
  const refused = new Map<string, string>();
  // The usual case, checked without copying the plan (it runs at every plan change, over every entry).
  if (plan.director.every((s) => !refusalOf(s)) && plan.realServer.every((v) => !refusalOf(v))) return { plan, refused };
  const director = plan.director.filter((s) => {
    const why = refusalOf(s);
    if (why) refused.set(`director:${s.id}`, why);
    return !why;
  });
  const realServer = plan.realServer.filter((v) => {
    const why = refusalOf(v);
    if (why) refused.set(`realServer:${v.service}|${v.vip}`, why);
    return !why;
  });
  if (refused.size === 0) return { plan, refused };
  return { plan: { ...plan, director, realServer }, refused };
}
