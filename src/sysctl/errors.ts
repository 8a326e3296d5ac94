/** Errors of the sysctl layer: errno name, operation and key (`ENOENT: read net/ipv4/vs/conntrack (...)`). */

export class SysctlError extends Error {
  readonly errno: string;
  readonly op: string;
  readonly key: string;

  constructor(errno: string, op: string, key: string, detail?: string, options?: ErrorOptions) {
    super(`${errno}: ${op} ${key}${detail ? ` (${detail})` : ''}`, options);
    this.name = 'SysctlError';
    this.errno = errno;
    this.op = op;
    this.key = key;
  }
}
