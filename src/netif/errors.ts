/** Errors of the host-networking layer, always naming the errno and the object (`EEXIST: add 192.168.56.40/32 dev eth0`). */

export class NetifError extends Error {
  /** errno name as Node spells it (`getSystemErrorName`): ENODEV, EEXIST, EPERM, ENOTSUP, ... */
  readonly errno: string;
  /** What was attempted: add, del, get, up, create, announce. */
  readonly op: string;
  /** The object acted on, e.g. `192.168.56.40/32 dev eth0` or `dev tunl0`. */
  readonly object: string;

  constructor(errno: string, op: string, object: string, detail?: string, options?: ErrorOptions) {
    super(`${errno}: ${op} ${object}${detail ? ` (${detail})` : ''}`, options);
    this.name = 'NetifError';
    this.errno = errno;
    this.op = op;
    this.object = object;
  }
}

/**
 * The errno name of a netlink@0.3.0 rejection. The library throws plain Errors whose message is
 * `Request rejected: EEXIST` (no code property); socket-level errors carry `code`.
 */
export function errnoOf(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const m = /^Request rejected: (E[A-Z0-9]+)$/.exec(err.message);
  if (m) return m[1];
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' ? code : undefined;
}

/** Wraps any failure as a NetifError (keeping an existing one). */
export function toNetifError(err: unknown, op: string, object: string): NetifError {
  if (err instanceof NetifError) return err;
  const errno = errnoOf(err) ?? 'EUNKNOWN';
  const detail = errnoOf(err) ? undefined : err instanceof Error ? err.message : String(err);
  return new NetifError(errno, op, object, detail, { cause: err });
}
