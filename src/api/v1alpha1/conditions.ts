/** Condition types and reasons (Gateway API style: typed constants with documented polarity). */

/**
 * The spec is valid and the object may be served. False reasons: InvalidRealServer, VIPConflict,
 * VIPNotAllowed, VIPIsNodeAddress, VIPReserved, VIPInUse, NoVIPAvailable, ...
 */
export const ConditionAccepted = 'Accepted';
/** Every director (or, for a RealServer, its node agent) applied the current generation. */
export const ConditionProgrammed = 'Programmed';
/** The VIP is held and at least one realserver is healthy. */
export const ConditionReady = 'Ready';
/** RealServer: the node agent holds the VIP and the sysctls the forwarding method needs. */
export const ConditionPrepared = 'Prepared';
/** RealServer: the directors' health checks pass. */
export const ConditionHealthy = 'Healthy';

export const ReasonAccepted = 'Accepted';
export const ReasonPending = 'Pending';
export const ReasonInvalidRealServer = 'InvalidRealServer';
export const ReasonVIPConflict = 'VIPConflict';
export const ReasonNoDirectors = 'NoDirectors';
/** The VIP lies in no VIPPool that selects the VirtualService's namespace (or not in the pool it names). */
export const ReasonVIPNotAllowed = 'VIPNotAllowed';
/** The VIP is an address of a Node (status.addresses). */
export const ReasonVIPIsNodeAddress = 'VIPIsNodeAddress';
/** The VIP is the API server's address or lies in the cluster's service or pod ranges. */
export const ReasonVIPReserved = 'VIPReserved';
/** The VIP is already used by a VirtualService of another namespace (the older one keeps it). */
export const ReasonVIPInUse = 'VIPInUse';
/** No allowed pool has a free address for a VirtualService without spec.vip. */
export const ReasonNoVIPAvailable = 'NoVIPAvailable';
/** A VirtualService without spec.vip where no pools exist to allocate from (standalone mode). */
export const ReasonVIPRequired = 'VIPRequired';
export const ReasonProgrammed = 'Programmed';
export const ReasonProgrammingFailed = 'ProgrammingFailed';
export const ReasonReady = 'Ready';
export const ReasonNoHealthyRealServers = 'NoHealthyRealServers';
