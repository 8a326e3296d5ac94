/**
 * Resource-level metadata of the CRDs (names, scope, printer columns). Field schemas come from the
 * interfaces' doc comments; this object says everything kubebuilder would put in resource markers.
 */
import { GROUP, VERSION } from './meta.ts';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

export interface CrdResource {
  /** Source file (relative to this directory) that declares the kind's interfaces. */
  file: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  categories: string[];
  scope: 'Namespaced' | 'Cluster';
  specType: string;
  statusType: string;
  description: string;
  printerColumns: PrinterColumn[];
}

const condition = (type: string, priority?: number): PrinterColumn => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description: `Status of the ${type} condition`,
  ...(priority === undefined ? {} : { priority }),
});
const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since creation' };

export const resources: CrdResource[] = [
  {
    file: 'virtualservice.ts',
    kind: 'VirtualService',
    plural: 'virtualservices',
    singular: 'virtualservice',
    shortNames: ['lvsvs'],
    categories: ['lvs'],
    scope: 'Namespaced',
    specType: 'VirtualServiceSpec',
    statusType: 'VirtualServiceStatus',
    description: 'VirtualService is an IPVS virtual service (ipvsadm -A): a VIP, port and protocol balanced over the RealServers its selector picks.',
    printerColumns: [
      { name: 'VIP', type: 'string', jsonPath: '.spec.vip', description: 'Virtual IP address' },
      { name: 'Port', type: 'integer', jsonPath: '.spec.port', description: 'Virtual port' },
      { name: 'Protocol', type: 'string', jsonPath: '.spec.protocol', description: 'Transport protocol', priority: 1 },
      { name: 'Mode', type: 'string', jsonPath: '.spec.forwarding', description: 'Forwarding method' },
      { name: 'Scheduler', type: 'string', jsonPath: '.spec.scheduler', description: 'IPVS scheduler' },
      { name: 'Ready', type: 'string', jsonPath: '.status.realServers.ready', description: 'Healthy/selected realservers' },
      { name: 'Director', type: 'string', jsonPath: '.status.activeDirector', description: 'Node holding the VIP' },
      { name: 'Address', type: 'string', jsonPath: '.status.vip', description: 'VIP in use: spec.vip, or the address allocated from a pool', priority: 1 },
      { name: 'Pool', type: 'string', jsonPath: '.status.vipPool', description: 'VIPPool that admitted the VIP', priority: 1 },
      condition('Accepted', 1),
      condition('Programmed', 1),
      age,
    ],
  },
  {
    file: 'realserver.ts',
    kind: 'RealServer',
    plural: 'realservers',
    singular: 'realserver',
    shortNames: ['lvsrs'],
    categories: ['lvs'],
    scope: 'Namespaced',
    specType: 'RealServerSpec',
    statusType: 'RealServerStatus',
    description: 'RealServer is a backend (ipvsadm -a) that VirtualServices select by label.',
    printerColumns: [
      { name: 'Address', type: 'string', jsonPath: '.status.address', description: 'Address in use' },
      { name: 'Node', type: 'string', jsonPath: '.spec.nodeName', description: 'Node prepared by the agent' },
      { name: 'Port', type: 'integer', jsonPath: '.spec.port', description: 'Realserver port' },
      { name: 'Weight', type: 'integer', jsonPath: '.spec.weight', description: 'Scheduling weight' },
      condition('Healthy'),
      condition('Accepted', 1),
      age,
    ],
  },
  {
    file: 'nodeplan.ts',
    kind: 'NodePlan',
    plural: 'nodeplans',
    singular: 'nodeplan',
    shortNames: ['lvsnp'],
    categories: ['lvs'],
    scope: 'Cluster',
    specType: 'NodePlanSpec',
    statusType: 'NodePlanStatus',
    description: 'NodePlan is a shard of what one node\'s lvs-operator agent must do (spec, written by the controller) and what it did (status, written by the agent).',
    printerColumns: [
      { name: 'Node', type: 'string', jsonPath: '.spec.node', description: 'Node the plan is for' },
      { name: 'Shard', type: 'integer', jsonPath: '.spec.shard', description: 'Shard index' },
      condition('Programmed'),
      age,
    ],
  },
  {
    file: 'vippool.ts',
    kind: 'VIPPool',
    plural: 'vippools',
    singular: 'vippool',
    shortNames: ['lvsvp'],
    categories: ['lvs'],
    scope: 'Cluster',
    specType: 'VIPPoolSpec',
    statusType: 'VIPPoolStatus',
    description: 'VIPPool is a set of addresses that VirtualServices in selected namespaces may claim or be given as VIPs. Without any pool no VirtualService is accepted.',
    printerColumns: [
      { name: 'Addresses', type: 'string', jsonPath: '.spec.addresses', description: 'CIDRs and ranges of the pool' },
      { name: 'Auto', type: 'boolean', jsonPath: '.spec.autoAssign', description: 'Whether VirtualServices without spec.vip get addresses from it' },
      { name: 'Services', type: 'integer', jsonPath: '.status.virtualServices', description: 'VirtualServices accepted with a VIP of the pool' },
      { name: 'In Use', type: 'integer', jsonPath: '.status.addressesInUse', description: 'Distinct addresses in use' },
      { name: 'Available', type: 'integer', jsonPath: '.status.available', description: 'Addresses free for allocation' },
      age,
    ],
  },
];

export const crdName = (r: CrdResource): string => `${r.plural}.${GROUP}`;
export { GROUP, VERSION };
