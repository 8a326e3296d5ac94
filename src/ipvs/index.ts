// Public surface of the IPVS client (see interface.ts for the agent-facing contract).
export * from './types.ts';
export * from './constants.ts';
export { IpvsError, IpvsDecodeError, isIpvsError, errnoFromNetlinkError, toIpvsError, errnoName } from './errors.ts';
export { serviceKey, destKey, formatService, formatDestination, keyOf, sameService, sameDestination, userFlags, serviceFlagNames } from './keys.ts';
export { netmaskFromPrefix, defaultNetmask, normalizeAddress, familyOf } from './addr.ts';
export type { IpvsInterface, IpvsOp, IpvsOpName, IpvsOpResult, ListOptions } from './interface.ts';
export { IpvsClient, type IpvsClientOptions } from './client.ts';
export { FakeIpvs, type FakeIpvsOptions, type FakeCallName } from './fake.ts';
