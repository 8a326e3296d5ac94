export { vipLeaseName } from './lease-name.ts';
export { LeaseVipElection, electionTiming } from './election.ts';
export type { ElectionTiming, FailoverSettings, LeaseVipElectionOptions, VipElection, VipHoldEvent, VipReleaseEvent, VipState } from './election.ts';
export { VipElections } from './elections.ts';
export type { ElectedService, VipElectionsOptions } from './elections.ts';
