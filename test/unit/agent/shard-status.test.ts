// The agent's NodePlan status comparison (cluster mode): a status equal to the one the shard carries, apart
// from condition timestamps, is not written again.
import { sameStatus } from '../../../src/agent/cluster.ts';
import type { NodePlanStatus } from '../../../src/api/v1alpha1/nodeplan.ts';

const status = (over: Partial<NodePlanStatus> = {}, at = '2026-12-03T10:00:00Z'): NodePlanStatus => ({
  observedGeneration: 3,
  conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed', message: '2 service(s) and 0 realserver VIP(s) applied on d', lastTransitionTime: at, observedGeneration: 3 }],
  services: [
    { id: 'lab/a', generation: 3, programmed: true, holdsVip: true, vipHeldSince: '2026-12-03T09:00:00.000Z' },
    { id: 'lab/b', generation: 2, programmed: true, holdsVip: false, unhealthy: [{ address: '10.0.0.2', port: 80 }] },
  ],
  realServer: [],
  ...over,
});

describe('sameStatus', () => {
  it('is equal apart from condition timestamps and key order (the API server returns keys sorted)', () => {
    const held = status({}, '2026-12-01T00:00:00Z');
    const reordered = JSON.parse(JSON.stringify(held, Object.keys(held).sort())) as NodePlanStatus;
    expect(sameStatus(held, status())).toBe(true);
    expect(sameStatus({ ...reordered, services: held.services, conditions: held.conditions }, status())).toBe(true);
    // An optional field left undefined is the same as one left out.
    expect(sameStatus(held, { ...status(), realServer: [] })).toBe(true);
  });

  it('differs when anything else differs, and when the shard has no status yet', () => {
    const base = status();
    expect(sameStatus(undefined, base)).toBe(false);
    expect(sameStatus(base, status({ observedGeneration: 4 }))).toBe(false);
    const failed = structuredClone(base);
    failed.services![0]!.programmed = false;
    expect(sameStatus(base, failed)).toBe(false);
    const unhealthy = structuredClone(base);
    unhealthy.services![0]!.unhealthy = [{ address: '10.0.0.1', port: 80 }];
    expect(sameStatus(base, unhealthy)).toBe(false);
    const recovered = structuredClone(base);
    delete recovered.services![1]!.unhealthy;
    expect(sameStatus(base, recovered)).toBe(false);
    const message = structuredClone(base);
    message.conditions![0]!.message = '1 entry failed on d';
    expect(sameStatus(base, message)).toBe(false);
    expect(sameStatus(base, status({ services: base.services!.slice(0, 1) }))).toBe(false);
  });
});
