/**
 * Status as a pure function: from the planner's outcome and the agents' reports (NodePlan status) to the
 * conditions and summaries of every VirtualService and RealServer. The controller writes only what changed.
 */
import type { VirtualService, VirtualServiceStatus } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer, RealServerStatus } from '../api/v1alpha1/realserver.ts';
import type { NodePlan as NodePlanObject, ServiceReport, RealServerVipReport } from '../api/v1alpha1/nodeplan.ts';
import type { VIPPool, VIPPoolStatus } from '../api/v1alpha1/vippool.ts';
import type { PoolUsage } from '../model/pools.ts';
import * as C from '../api/v1alpha1/conditions.ts';
import type { Plan } from '../model/planner.ts';
import { idOf } from '../model/planner.ts';
import { mergeConditions, type ConditionInput } from '../model/conditions.ts';
import { reportedHealthy } from '../model/reports.ts';

/** The agents' reports, indexed: node → service id → report. */
export interface Reports {
  services: Map<string, Map<string, ServiceReport>>;
  realServer: Map<string, Map<string, RealServerVipReport>>;
}

export function indexReports(objects: NodePlanObject[]): Reports {
  const services = new Map<string, Map<string, ServiceReport>>();
  const realServer = new Map<string, Map<string, RealServerVipReport>>();
  for (const o of objects) {
    const node = o.spec.node;
    for (const r of o.status?.services ?? []) {
      if (!services.has(node)) services.set(node, new Map());
      services.get(node)!.set(r.id, r);
    }
    for (const r of o.status?.realServer ?? []) {
      if (!realServer.has(node)) realServer.set(node, new Map());
      realServer.get(node)!.set(`${r.service}|${r.vip}`, r);
    }
  }
  return { services, realServer };
}

const cond = (type: string, ok: boolean | undefined, reason: string, message: string): ConditionInput => ({
  type,
  status: ok === undefined ? 'Unknown' : ok ? 'True' : 'False',
  reason,
  message,
});

export function virtualServiceStatus(vs: VirtualService, plan: Plan, reports: Reports, now: Date): VirtualServiceStatus {
  const id = idOf(vs);
  const generation = vs.metadata.generation ?? 0;
  const outcome = plan.services.get(id);
  const updates: ConditionInput[] = [];
  const status: VirtualServiceStatus = { observedGeneration: generation };

  if (!outcome || outcome.rejected) {
    const r = outcome?.rejected ?? { reason: C.ReasonPending, message: 'not planned yet' };
    updates.push(cond(C.ConditionAccepted, false, r.reason, r.message));
    updates.push(cond(C.ConditionProgrammed, false, 'NotAccepted', 'the service is not accepted, so nothing is programmed'));
    updates.push(cond(C.ConditionReady, false, 'NotAccepted', 'the service is not accepted'));
    status.realServers = { total: 0, healthy: 0, ready: '0/0' };
    status.conditions = mergeConditions(vs.status?.conditions, updates, generation, now);
    return status;
  }

  if (outcome.vip !== undefined) status.vip = outcome.vip;
  if (outcome.pool !== undefined) status.vipPool = outcome.pool;
  const skipped = outcome.skipped.map((s) => `${s.realServer} (${s.reason}: ${s.message})`);
  updates.push(cond(C.ConditionAccepted, true, C.ReasonAccepted, skipped.length ? `${skipped.length} selected RealServer(s) cannot serve and are left out: ${skipped.join('; ')}` : 'the service is valid and its VIP is free'));

  // Programmed: every director applied this generation.
  const pending: string[] = [];
  const failures: string[] = [];
  let holder: string | undefined;
  let holderSince = '';
  for (const d of outcome.directors) {
    const r = reports.services.get(d)?.get(id);
    if (!r || r.generation !== generation) pending.push(d);
    else if (!r.programmed) failures.push(`${d}: ${(r.errors ?? []).join('; ') || 'not programmed'}`);
    // The most recent holder: a director that died (or lost its link) keeps reporting the VIP it held until
    // its agent writes again, while the one that took it over reports a later vipHeldSince.
    if (r?.holdsVip && (holder === undefined || (r.vipHeldSince ?? '') > holderSince)) {
      holder = d;
      holderSince = r.vipHeldSince ?? '';
    }
  }
  if (outcome.directors.length === 0) updates.push(cond(C.ConditionProgrammed, false, C.ReasonNoDirectors, 'no node matches the director node selector'));
  else if (failures.length) updates.push(cond(C.ConditionProgrammed, false, C.ReasonProgrammingFailed, failures.join(' | ')));
  else if (pending.length) updates.push(cond(C.ConditionProgrammed, false, C.ReasonPending, `waiting for director(s) ${pending.join(', ')} to apply generation ${generation}`));
  else updates.push(cond(C.ConditionProgrammed, true, C.ReasonProgrammed, `programmed on ${outcome.directors.join(', ')}`));

  // Health as the VIP holder sees it (any director's report when none holds it yet).
  const healthFrom = reports.services.get(holder ?? outcome.directors.find((d) => reports.services.get(d)?.has(id)) ?? '')?.get(id);
  const healthyOf = (address: string, port: number): boolean | undefined => reportedHealthy(healthFrom, address, port);
  const total = outcome.destinations.length;
  const healthy = outcome.destinations.filter((d) => d.weight > 0 && healthyOf(d.address, d.port) === true).length;
  status.realServers = { total, healthy, ready: `${healthy}/${total}` };
  if (holder) status.activeDirector = holder;

  const programmed = outcome.directors.length > 0 && !failures.length && !pending.length;
  // Node-backed DR/Tunnel realservers are planned at weight 0 until their node has bound the VIP.
  const waiting = outcome.unprepared?.length ? `; waiting for the node of ${outcome.unprepared.join(', ')} to prepare the VIP` : '';
  if (!programmed) updates.push(cond(C.ConditionReady, false, C.ReasonPending, 'not programmed on every director yet'));
  else if (!holder) updates.push(cond(C.ConditionReady, false, C.ReasonPending, 'no director holds the VIP yet'));
  else if (healthy === 0) updates.push(cond(C.ConditionReady, false, C.ReasonNoHealthyRealServers, `${total ? 'no realserver passes its health check' : 'the selector matches no usable RealServer'}${waiting}`));
  else updates.push(cond(C.ConditionReady, true, C.ReasonReady, `${outcome.vip ?? vs.spec.vip ?? ''}:${vs.spec.port} held by ${holder}, ${healthy}/${total} realservers healthy${waiting}`));
  status.conditions = mergeConditions(vs.status?.conditions, updates, generation, now);
  return status;
}

export function realServerStatus(rs: RealServer, plan: Plan, reports: Reports, now: Date): RealServerStatus {
  const id = idOf(rs);
  const generation = rs.metadata.generation ?? 0;
  const outcome = plan.realServers.get(id);
  const status: RealServerStatus = { observedGeneration: generation };
  const updates: ConditionInput[] = [];
  if (outcome?.address) status.address = outcome.address;

  const problems = outcome?.problems ?? [];
  if (problems.length) updates.push(cond(C.ConditionAccepted, false, C.ReasonInvalidRealServer, problems.map((p) => `${p.virtualService ?? ''}: ${p.reason}: ${p.message}`).join('; ')));
  else updates.push(cond(C.ConditionAccepted, true, C.ReasonAccepted, outcome?.selectedBy.length ? `selected by ${outcome.selectedBy.join(', ')}` : 'not selected by any VirtualService'));

  const bindings: NonNullable<RealServerStatus['virtualServices']> = [];
  const unhealthy: string[] = [];
  let known = false;
  for (const svcId of outcome?.selectedBy ?? []) {
    const svc = plan.services.get(svcId);
    const dest = svc?.destinations.find((d) => d.realServer === id);
    if (!svc || !dest) continue;
    let verdict: boolean | undefined;
    for (const d of svc.directors) {
      const r = reports.services.get(d)?.get(svcId);
      const h = reportedHealthy(r, dest.address, dest.port);
      if (h !== undefined && (r?.holdsVip || verdict === undefined)) verdict = h;
    }
    if (verdict !== undefined) known = true;
    if (verdict === false) unhealthy.push(svcId);
    bindings.push({ virtualService: svcId.split('/')[1] ?? svcId, healthy: verdict === true });
  }
  status.virtualServices = bindings;
  if (!bindings.length) updates.push(cond(C.ConditionHealthy, undefined, 'NotSelected', 'no VirtualService uses this realserver'));
  else if (unhealthy.length) updates.push(cond(C.ConditionHealthy, false, 'HealthCheckFailed', `health check fails for ${unhealthy.join(', ')}`));
  else if (!known) updates.push(cond(C.ConditionHealthy, undefined, C.ReasonPending, 'no director has reported yet'));
  else updates.push(cond(C.ConditionHealthy, true, 'HealthCheckPassed', 'the health checks pass'));

  // Prepared: a node-backed DR/Tunnel realserver needs its agent to hold the VIP.
  if (rs.spec.nodeName) {
    const wants = [...plan.nodes.get(rs.spec.nodeName)?.realServer ?? []].filter((v) => outcome?.selectedBy.includes(v.service));
    if (wants.length) {
      const reps = wants.map((v) => reports.realServer.get(rs.spec.nodeName!)?.get(`${v.service}|${v.vip}`));
      const bad = reps.filter((r) => r && !r.prepared).map((r) => `${r!.vip}: ${(r!.errors ?? []).join('; ')}`);
      if (bad.length) updates.push(cond(C.ConditionPrepared, false, 'PreparationFailed', bad.join(' | ')));
      else if (reps.some((r) => !r)) updates.push(cond(C.ConditionPrepared, false, C.ReasonPending, `waiting for the agent on ${rs.spec.nodeName}`));
      else updates.push(cond(C.ConditionPrepared, true, 'Prepared', `VIP(s) ${wants.map((w) => w.vip).join(', ')} bound with ARP suppression on ${rs.spec.nodeName}`));
    }
  }
  status.conditions = mergeConditions(rs.status?.conditions, updates, generation, now);
  return status;
}

/** A VIPPool's status from the planner's usage count (a pool the plan does not know counts as unused). */
export function vipPoolStatus(pool: VIPPool, usage: PoolUsage | undefined): VIPPoolStatus {
  return {
    observedGeneration: pool.metadata.generation ?? 0,
    virtualServices: usage?.virtualServices ?? 0,
    addressesInUse: usage?.addressesInUse ?? 0,
    allocated: usage?.allocated ?? 0,
    available: usage?.available ?? 0,
  };
}

/**
 * The JSON merge patch of `.status` that turns `current` into `next`: top-level fields `next` no longer
 * has become null, so the server drops them (a plain merge patch would keep them).
 */
export function statusPatch(current: object | undefined, next: object): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const k of Object.keys(current ?? {})) if (!(k in next)) patch[k] = null;
  return patch;
}
