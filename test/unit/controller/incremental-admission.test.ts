// VIP admission in the incremental planner (src/controller/incremental.ts): it decides admission over all
// VirtualServices on every update and replans those whose decision changed.
import { IncrementalPlanner } from '../../../src/controller/incremental.ts';
import { plan } from '../../../src/model/planner.ts';
import type { AdmissionInput } from '../../../src/model/pools.ts';

import { nodes, pool, vs } from './admission-fixtures.ts';

describe('incremental planning with admission', () => {
  it('equals a full plan after pools come and go, and replans only what admission changed', () => {
    const services = [
      vs('a', 'one', '10.7.0.1', '2026-01-01T00:00:01Z'),
      vs('b', 'two', undefined, '2026-01-01T00:00:02Z'),
      vs('c', 'other', '10.50.0.1', '2026-01-01T00:00:03Z'),
    ];
    let admission: AdmissionInput = { pools: [], namespaces: [] };
    const byId = new Map(services.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
    const inc = new IncrementalPlanner({
      getVirtualService: (id) => byId.get(id), getRealServer: () => undefined,
      virtualServices: () => [...byId.values()], realServers: () => [], nodes: () => nodes, admission: () => admission,
    });
    const full = (): ReturnType<typeof plan> => plan({ virtualServices: [...byId.values()], realServers: [], nodes, admission });
    const same = (): void => {
      const p = inc.plan!;
      expect(JSON.stringify([...p.nodes])).toBe(JSON.stringify([...full().nodes]));
      expect(JSON.stringify([...p.services].sort())).toBe(JSON.stringify([...full().services].sort()));
      expect(JSON.stringify([...(p.pools ?? [])])).toBe(JSON.stringify([...(full().pools ?? [])]));
    };
    inc.update([], []);
    same();
    expect(inc.plan!.nodes.get('director')!.director).toEqual([]);

    // A pool arrives: a and b are admitted (b allocated); c's VIP stays outside.
    admission = { pools: [pool('lab', ['10.7.0.0/29'])], namespaces: [] };
    const up = inc.update([], []);
    expect(up.full).toBe(false);
    expect([...up.services].sort()).toEqual(['a/one', 'b/two']);
    same();
    expect(inc.plan!.nodes.get('director')!.director.map((s) => [s.id, s.vip, s.pool])).toEqual([['a/one', '10.7.0.1', 'lab'], ['b/two', '10.7.0.0', 'lab']]);

    // The pool goes: both are withdrawn.
    admission = { pools: [], namespaces: [] };
    inc.update([], []);
    same();
    expect(inc.plan!.nodes.get('director')!.director).toEqual([]);
  });
});
