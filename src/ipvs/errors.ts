// The two error classes of the IPVS client: IpvsError (the kernel, or the transport, refused a
// command) and IpvsDecodeError (a reply could not be parsed). Nothing else escapes the client.

import { constants } from 'node:os';

const errnoByName: Readonly<Record<string, number>> = constants.errno;
const nameByErrno = new Map<number, string>(Object.entries(errnoByName).map(([k, v]) => [v, k]));

export function errnoName(errno: number): string {
  return nameByErrno.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

export function errnoNumber(name: string): number | undefined {
  return errnoByName[name];
}

/** Human reason for an errno, specialised per command where IPVS gives it a specific meaning (§5, §6). */
function reason(command: string, code: string): string {
  const isDest = command.endsWith('_DEST');
  const isDaemon = command.endsWith('_DAEMON');
  switch (code) {
    case 'EEXIST':
      if (isDaemon) return 'sync daemon already running';
      return isDest ? 'destination already exists' : 'service already exists';
    case 'ESRCH':
      return isDaemon ? 'sync daemon not running' : 'service does not exist';
    case 'ENOENT':
      if (isDest) return 'destination does not exist';
      if (command === 'NEW_SERVICE' || command === 'SET_SERVICE') return 'unknown scheduler or persistence engine';
      if (command === 'GETFAMILY') return 'IPVS generic netlink family not found (ip_vs not loaded?)';
      return 'no such entry';
    case 'ENODEV':
      return 'no such interface';
    case 'EINVAL':
      return 'invalid argument';
    case 'ERANGE':
      return isDest ? 'weight or threshold out of range' : 'value out of range';
    case 'EPERM':
      return 'operation not permitted (needs CAP_NET_ADMIN in the initial user namespace)';
    case 'EBUSY':
      return 'another dump is in progress on this socket';
    case 'EAFNOSUPPORT':
      return 'address family not supported';
    case 'EOPNOTSUPP':
      return 'operation not supported';
    case 'ETIMEDOUT':
      return 'no reply from the kernel in time';
    case 'ENOBUFS':
      return 'netlink receive buffer overrun, replies were lost';
    case 'ECONNRESET':
      return 'netlink socket closed before the reply arrived';
    default:
      return code;
  }
}

export class IpvsError extends Error {
  override readonly name = 'IpvsError';
  /** errno name, e.g. "EEXIST". */
  readonly code: string;
  /** Positive errno number, e.g. 17. */
  readonly errno: number;
  /** IPVS command, e.g. "NEW_SERVICE" (or "GETFAMILY" for the family lookup). */
  readonly command: string;
  /** The object the command concerned, e.g. "192.168.56.40:80/TCP" or "192.168.56.40:80/TCP -> 10.0.0.1:80". */
  readonly target: string | undefined;

  constructor(errno: number, command: string, target?: string, detail?: string) {
    const code = errnoName(errno);
    super(`${code}: ${command}${target ? ` ${target}` : ''}: ${detail ?? reason(command, code)}`);
    this.code = code;
    this.errno = Math.abs(errno);
    this.command = command;
    this.target = target;
  }

  static fromCode(code: string, command: string, target?: string, detail?: string): IpvsError {
    return new IpvsError(errnoNumber(code) ?? 0, command, target, detail);
  }
}

/** A reply that cannot be parsed: truncated, wrong lengths, garbage. The only exception the decoder throws. */
export class IpvsDecodeError extends Error {
  override readonly name = 'IpvsDecodeError';
  constructor(message: string) {
    super(message);
  }
}

export function isIpvsError(err: unknown, code?: string): err is IpvsError {
  return err instanceof IpvsError && (code === undefined || err.code === code);
}

/**
 * Recover the errno from errors thrown by netlink@0.3.0: its request() rejects with a plain
 * `Error("Request rejected: ENOENT")` (no errno property), and its socket emits ErrnoExceptions
 * (`{ errno, code }`). Returns undefined for anything else.
 */
export function errnoFromNetlinkError(err: unknown): number | undefined {
  if (!(err instanceof Error)) return undefined;
  const m = /^Request rejected: (E[A-Z0-9]+|-?\d+)$/.exec(err.message);
  if (m) {
    const token = m[1] as string;
    return /^-?\d+$/.test(token) ? Math.abs(Number(token)) : errnoNumber(token);
  }
  const e = err as Error & { errno?: unknown; code?: unknown };
  if (typeof e.code === 'string' && errnoNumber(e.code) !== undefined) return errnoNumber(e.code);
  if (typeof e.errno === 'number' && e.errno !== 0) return Math.abs(e.errno);
  return undefined;
}

/** Wrap any error from a netlink call into an IpvsError for `command`/`target` (EIO when unknown). */
export function toIpvsError(err: unknown, command: string, target?: string): IpvsError {
  if (err instanceof IpvsError) return err;
  const errno = errnoFromNetlinkError(err);
  if (errno !== undefined) return new IpvsError(errno, command, target);
  const detail = err instanceof Error ? err.message : String(err);
  return new IpvsError(errnoNumber('EIO') ?? 5, command, target, detail);
}
