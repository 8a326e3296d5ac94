// Objects for the VIP admission tests of the controller (status, pools, incremental planning).
import type { NodeInfo } from '../../../src/model/planner.ts';
import type { VIPPool, VirtualService } from '../../../src/api/v1alpha1/index.ts';

export const vs = (ns: string, name: string, vip: string | undefined, created: string): VirtualService => ({
  apiVersion: 'lvs.operator.dev/v1alpha1',
  kind: 'VirtualService',
  metadata: { name, namespace: ns, generation: 1, creationTimestamp: created },
  spec: { ...(vip ? { vip } : {}), port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting', realServerSelector: {} },
});

export const pool = (name: string, addresses: string[], namespaceSelector = {}): VIPPool => ({
  apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VIPPool', metadata: { name, generation: 2 }, spec: { addresses, namespaceSelector, autoAssign: true },
});

export const nodes: NodeInfo[] = [{ name: 'director', labels: { 'lvs.operator.dev/director': 'true' }, addresses: [{ type: 'InternalIP', address: '10.1.0.4' }] }];
