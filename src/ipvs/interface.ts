// The narrow IPVS surface the agent's reconcile loop depends on (kube-proxy's utilipvs.Interface
// model): implemented by the netlink IpvsClient and by the in-memory FakeIpvs for unit tests.

import type { IpvsError } from './errors.ts';
import type { Destination, DestinationEntry, DestinationKey, IpvsInfo, Service, ServiceEntry, ServiceKey, ServiceState } from './types.ts';

/** One table change, for `apply()` (sent pipelined by the netlink client). */
export type IpvsOp =
  | { readonly op: 'addService'; readonly service: Service }
  | { readonly op: 'updateService'; readonly service: Service }
  | { readonly op: 'deleteService'; readonly service: ServiceKey }
  | { readonly op: 'addDestination'; readonly service: ServiceKey; readonly destination: Destination }
  | { readonly op: 'updateDestination'; readonly service: ServiceKey; readonly destination: Destination }
  | { readonly op: 'deleteDestination'; readonly service: ServiceKey; readonly destination: DestinationKey };

export type IpvsOpName = IpvsOp['op'];

/** Per op: undefined when it succeeded, else why not. */
export type IpvsOpResult = IpvsError | undefined;

export interface ListOptions {
  /**
   * Let this process's other IPVS calls run between parts of the read (a table of thousands of services
   * takes seconds to read). The result is then no snapshot even of our own changes: a service changed
   * meanwhile may show either state.
   */
  interleave?: boolean;
}

export interface IpvsInterface {
  /** Version and connection table size; doubles as an "is IPVS there" probe. */
  info(): Promise<IpvsInfo>;
  /** Every service of this netns with its destinations, counters and 64-bit stats. */
  listServices(opts?: ListOptions): Promise<ServiceState[]>;
  /**
   * Every service of this netns without its destinations (one dump). Not ordered with this interface's other
   * calls: writes made while it runs may or may not show.
   */
  dumpServices(): Promise<ServiceEntry[]>;
  /**
   * The destinations of each of `keys`, in order (empty for a service that does not exist), read in one turn
   * of the queue: with dumpServices, a table read service by service, whose destination objects need not
   * outlive the part of the work that looks at them.
   */
  listDestinationsOf(keys: readonly ServiceKey[]): Promise<DestinationEntry[][]>;
  /** One service, or undefined when it does not exist. */
  getService(key: ServiceKey): Promise<ServiceEntry | undefined>;
  /** Destinations of a service (empty when the service does not exist: the kernel does not say). */
  listDestinations(key: ServiceKey): Promise<DestinationEntry[]>;
  /** NEW_SERVICE; IpvsError EEXIST when present. */
  addService(svc: Service): Promise<void>;
  /** SET_SERVICE (scheduler, flags, timeout, netmask, pe); ESRCH when missing. */
  updateService(svc: Service): Promise<void>;
  /** DEL_SERVICE with its destinations; ESRCH when missing. */
  deleteService(key: ServiceKey): Promise<void>;
  /** NEW_DEST; ESRCH (service missing) or EEXIST. */
  addDestination(key: ServiceKey, dest: Destination): Promise<void>;
  /** SET_DEST with the full destination (tunnel fields included); ENOENT when missing. */
  updateDestination(key: ServiceKey, dest: Destination): Promise<void>;
  /** DEL_DEST; ENOENT when missing. */
  deleteDestination(key: ServiceKey, dest: DestinationKey): Promise<void>;
  /** Many changes in order, as fast as the implementation can; one result per op, never throws for an op. */
  apply(ops: readonly IpvsOp[]): Promise<IpvsOpResult[]>;
}
