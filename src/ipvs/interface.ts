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
  /**
   * With `interleave`: after each part of the read, wait this many times as long as the part took (at most
   * MAX_READ_PAUSE_MS), so that the read keeps to about 1 / (1 + pause) of a CPU (default 0: a turn of the
   * event loop only). For background reads such as the agent's periodic sweep: on a busy node a
   * seconds-long read at full speed takes a core from everything else, the node's next change included.
   */
  pause?: number;
}

/** The longest wait between two parts of a paced read (ListOptions.pause). */
export const MAX_READ_PAUSE_MS = 1000;

export interface IpvsInterface {
  /** Version and connection table size; doubles as an "is IPVS there" probe. */
  info(): Promise<IpvsInfo>;
  /** Every service of this netns with its destinations, counters and 64-bit stats. */
  listServices(opts?: ListOptions): Promise<ServiceState[]>;
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
