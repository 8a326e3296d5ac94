// Numeric constants of the IPVS generic-netlink ABI (uapi include/uapi/linux/ip_vs.h) and the
// netlink framing around it. Reference: /work/shared/reference/ipvs-netlink.md §3, §15.

export const NETLINK_GENERIC = 16;
export const GENL_ID_CTRL = 16;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_VERSION = 1;

export const IPVS_FAMILY_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
/** Types below this are netlink control messages; protocol messages (genl families) start here. */
export const NLMSG_MIN_TYPE = 0x10;

export const NLMSG_HDRLEN = 16;
export const GENL_HDRLEN = 4;
export const NLA_HDRLEN = 4;
/** Bits 15 (NESTED) and 14 (NET_BYTEORDER) of nla_type are flags, not part of the type. */
export const NLA_TYPE_MASK = 0x3fff;

export const Cmd = {
  NEW_SERVICE: 1,
  SET_SERVICE: 2,
  DEL_SERVICE: 3,
  GET_SERVICE: 4,
  NEW_DEST: 5,
  SET_DEST: 6,
  DEL_DEST: 7,
  GET_DEST: 8,
  NEW_DAEMON: 9,
  DEL_DAEMON: 10,
  GET_DAEMON: 11,
  SET_CONFIG: 12,
  GET_CONFIG: 13,
  SET_INFO: 14,
  GET_INFO: 15,
  ZERO: 16,
  FLUSH: 17,
} as const;
export type CmdName = keyof typeof Cmd;
export type CmdNumber = (typeof Cmd)[CmdName];

const cmdNames = new Map<number, CmdName>(Object.entries(Cmd).map(([k, v]) => [v, k as CmdName]));
export function cmdName(cmd: number): string {
  return cmdNames.get(cmd) ?? `CMD_${cmd}`;
}

export const CmdAttr = { SERVICE: 1, DEST: 2, DAEMON: 3, TIMEOUT_TCP: 4, TIMEOUT_TCP_FIN: 5, TIMEOUT_UDP: 6 } as const;
/** GET_INFO replies reuse the top level with their own enum (1 and 2 collide with SERVICE/DEST). */
export const InfoAttr = { VERSION: 1, CONN_TAB_SIZE: 2 } as const;

export const SvcAttr = {
  AF: 1,
  PROTOCOL: 2,
  ADDR: 3,
  PORT: 4,
  FWMARK: 5,
  SCHED_NAME: 6,
  FLAGS: 7,
  TIMEOUT: 8,
  NETMASK: 9,
  STATS: 10,
  PE_NAME: 11,
  STATS64: 12,
} as const;

export const DestAttr = {
  ADDR: 1,
  PORT: 2,
  FWD_METHOD: 3,
  WEIGHT: 4,
  U_THRESH: 5,
  L_THRESH: 6,
  ACTIVE_CONNS: 7,
  INACT_CONNS: 8,
  PERSIST_CONNS: 9,
  STATS: 10,
  ADDR_FAMILY: 11,
  STATS64: 12,
  TUN_TYPE: 13,
  TUN_PORT: 14,
  TUN_FLAGS: 15,
} as const;

export const DaemonAttr = {
  STATE: 1,
  MCAST_IFN: 2,
  SYNC_ID: 3,
  SYNC_MAXLEN: 4,
  MCAST_GROUP: 5,
  MCAST_GROUP6: 6,
  MCAST_PORT: 7,
  MCAST_TTL: 8,
} as const;

export const StatsAttr = {
  CONNS: 1,
  INPKTS: 2,
  OUTPKTS: 3,
  INBYTES: 4,
  OUTBYTES: 5,
  CPS: 6,
  INPPS: 7,
  OUTPPS: 8,
  INBPS: 9,
  OUTBPS: 10,
  PAD: 11,
} as const;

/** struct ip_vs_flags.flags bits. SCHED1/2 mean sh-fallback/sh-port for `sh`, mh-fallback/mh-port for `mh`. */
export const SvcFlag = {
  PERSISTENT: 0x1,
  HASHED: 0x2,
  ONEPACKET: 0x4,
  SCHED1: 0x8,
  SCHED2: 0x10,
  SCHED3: 0x20,
  SH_FALLBACK: 0x8,
  SH_PORT: 0x10,
  MH_FALLBACK: 0x8,
  MH_PORT: 0x10,
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

export const FWD_MASK = 0x7;
export const Fwd = { MASQ: 0, LOCALNODE: 1, TUNNEL: 2, DROUTE: 3 } as const;
export const TunType = { IPIP: 0, GUE: 1, GRE: 2 } as const;
/** TUN_FLAGS bits; 0 = no checksum. */
export const TunFlag = { NOCSUM: 0, CSUM: 0x1, REMCSUM: 0x2 } as const;
export const DaemonState = { NONE: 0, MASTER: 1, BACKUP: 2 } as const;

/** Kernel limits: NUL-terminated strings must fit these (without the NUL). */
export const SCHED_NAME_MAX = 15;
export const PE_NAME_MAX = 15;
export const IFNAME_MAX = 15;
export const INT_MAX = 0x7fffffff;

/** The schedulers shipped by Linux (§8); `none` is accepted by modern kernels too. */
export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;
