import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { reservedRanges, serverAddress } from '../../../src/controller/vippools.ts';
import { statusPatch, virtualServiceStatus, vipPoolStatus, indexReports } from '../../../src/controller/status.ts';
import { plan } from '../../../src/model/planner.ts';
import type { AdmissionInput } from '../../../src/model/pools.ts';

import { nodes, pool, vs } from './admission-fixtures.ts';

describe('reserved ranges', () => {
  it('config ranges, the kubernetes Service, its endpoints and the kubeconfig host', () => {
    const svc = { spec: { clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1', 'fd00:96::1'] } } as V1Service;
    const slice = { addressType: 'IPv4', endpoints: [{ addresses: ['192.168.56.2'] }] } as V1EndpointSlice;
    expect(reservedRanges({ serviceCIDRs: ['10.96.0.0/12'], podCIDRs: ['10.244.0.0/16'], addresses: ['192.168.56.1'] }, { services: [svc], slices: [slice], server: 'https://[2001:db8::6443]:6443' })).toEqual([
      { range: '10.96.0.0/12', what: 'the service CIDR 10.96.0.0/12' },
      { range: '10.244.0.0/16', what: 'the pod CIDR 10.244.0.0/16' },
      { range: '192.168.56.1', what: "reserved by the operator's configuration (192.168.56.1)" },
      { range: '10.96.0.1', what: "the API server's Service address" },
      { range: 'fd00:96::1', what: "the API server's Service address" },
      { range: '192.168.56.2', what: 'an API server endpoint' },
      { range: '2001:db8::6443', what: "the API server's address" },
    ]);
  });

  it('a kubeconfig host that is a name is no address', () => {
    expect(serverAddress('https://kubernetes.default.svc')).toBeUndefined();
    expect(serverAddress('https://10.0.0.1:6443')).toBe('10.0.0.1');
    expect(serverAddress('not a url')).toBeUndefined();
  });
});

describe('status', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const admission: AdmissionInput = { pools: [pool('lab', ['10.7.0.0/30'])], namespaces: [] };

  it('an admitted VirtualService records its VIP and pool; a refused one records neither', () => {
    const auto = vs('lab', 'auto', undefined, '2026-01-01T00:00:01Z');
    const bad = vs('lab', 'bad', '10.9.9.9', '2026-01-01T00:00:02Z');
    const p = plan({ virtualServices: [auto, bad], realServers: [], nodes, admission });
    const reports = indexReports([]);
    expect(virtualServiceStatus(auto, p, reports, now)).toMatchObject({ vip: '10.7.0.0', vipPool: 'lab' });
    const refused = virtualServiceStatus(bad, p, reports, now);
    expect(refused.vip).toBeUndefined();
    expect(refused.conditions?.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'False', reason: 'VIPNotAllowed', message: 'VIP 10.9.9.9 is not allowed in namespace lab: no VIPPool that selects the namespace contains it' });
    expect(refused.conditions?.find((c) => c.type === 'Programmed')).toMatchObject({ status: 'False', reason: 'NotAccepted' });
    expect(vipPoolStatus(admission.pools[0]!, p.pools?.get('lab'))).toEqual({ observedGeneration: 2, virtualServices: 1, addressesInUse: 1, allocated: 1, available: 3 });
  });

  it('a merge patch drops the fields the new status no longer has', () => {
    expect(statusPatch({ vip: '10.7.0.0', vipPool: 'lab', observedGeneration: 1 }, { observedGeneration: 2 })).toEqual({ observedGeneration: 2, vip: null, vipPool: null });
    expect(statusPatch(undefined, { observedGeneration: 2 })).toEqual({ observedGeneration: 2 });
  });
});
