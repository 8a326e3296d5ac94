/** Condition types and reasons (Gateway API style: typed constants with documented polarity). */

/** The spec is valid and the object may be served. False reasons: InvalidRealServer, VIPConflict, ... */
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
export const ReasonProgrammed = 'Programmed';
export const ReasonProgrammingFailed = 'ProgrammingFailed';
export const ReasonReady = 'Ready';
export const ReasonNoHealthyRealServers = 'NoHealthyRealServers';
