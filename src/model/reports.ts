/** Reading the agents' reports (NodePlan status), shared by the controller and the CLI. */
import type { ServiceReport } from '../api/v1alpha1/nodeplan.ts';
import { canonicalIP } from './planner.ts';

/**
 * Whether a director's report counts the realserver at address:port healthy: it lists only those whose
 * checks fail. Undefined without a report.
 */
export function reportedHealthy(report: ServiceReport | undefined, address: string, port: number): boolean | undefined {
  if (!report) return undefined;
  if (!report.unhealthy?.length) return true;
  const ip = canonicalIP(address);
  return !report.unhealthy.some((u) => u.port === port && canonicalIP(u.address) === ip);
}
