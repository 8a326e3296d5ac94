import { reportedHealthy } from '../../../src/model/reports.ts';
import type { ServiceReport } from '../../../src/api/v1alpha1/nodeplan.ts';

const report = (unhealthy?: ServiceReport['unhealthy']): ServiceReport => ({ id: 'lab/web', generation: 1, programmed: true, holdsVip: true, ...(unhealthy ? { unhealthy } : {}) });

describe('reportedHealthy', () => {
  it('is unknown without a report, and healthy unless the report lists the realserver as failing', () => {
    expect(reportedHealthy(undefined, '10.0.0.1', 80)).toBeUndefined();
    expect(reportedHealthy(report(), '10.0.0.1', 80)).toBe(true);
    const r = report([{ address: '10.0.0.2', port: 80 }]);
    expect(reportedHealthy(r, '10.0.0.2', 80)).toBe(false);
    expect(reportedHealthy(r, '10.0.0.1', 80)).toBe(true);
    // Same address, another port: another realserver.
    expect(reportedHealthy(r, '10.0.0.2', 8080)).toBe(true);
  });

  it('compares IPv6 addresses in canonical form', () => {
    const r = report([{ address: '2001:db8:0:0::100', port: 53 }]);
    expect(reportedHealthy(r, '2001:db8::100', 53)).toBe(false);
    expect(reportedHealthy(r, '2001:DB8::101', 53)).toBe(true);
  });
});
