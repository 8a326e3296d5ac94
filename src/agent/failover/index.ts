export { vipLeaseName } from './lease-name.ts';
export { LeaseVipElection, electionTiming } from './election.ts';
export type { ElectionTiming, FailoverSettings, LeaseVipElectionOptions, VipElection, VipHoldEvent, VipReleaseEvent, VipState } from './election.ts';
export { VipElections } from './elections.ts';
export type { ElectedService, VipElectionsOptions } from './elections.ts';
export { SyncDaemons } from './syncd.ts';
export type { SyncDaemonOps, SyncDaemonWant, SyncDaemonsOptions, SyncDaemonsResult } from './syncd.ts';
export { DirectorFailover } from './director-failover.ts';
export type { DirectorFailoverOptions, FailoverEvent } from './director-failover.ts';
