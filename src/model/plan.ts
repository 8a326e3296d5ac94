/**
 * The node plan: everything one node's agent must do, computed by the planner from the API objects.
 * Its parts are API types (src/api/v1alpha1/nodeplan.ts) because they travel in NodePlan objects.
 */
import type { PlannedService, PlannedRealServerVip } from '../api/v1alpha1/nodeplan.ts';

export type { PlannedDestination, PlannedHealthCheck, PlannedService, PlannedRealServerVip } from '../api/v1alpha1/nodeplan.ts';

/** A node's whole plan (all NodePlan shards merged). */
export interface NodePlan {
  node: string;
  /** Services this node directs (empty when it is not a director). */
  director: PlannedService[];
  /** VIPs this node serves as a prepared realserver. */
  realServer: PlannedRealServerVip[];
}

export const emptyPlan = (node: string): NodePlan => ({ node, director: [], realServer: [] });
