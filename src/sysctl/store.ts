/** Where sysctl values live: /proc/sys (or a directory laid out like it), or memory for tests. */
import { constants } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SysctlError } from './errors.ts';
import { normalizeValue, type SysctlKey } from './keys.ts';

export interface SysctlStore {
  /** The normalized value; SysctlError ENOENT when the sysctl does not exist. */
  read(key: SysctlKey): Promise<string>;
  write(key: SysctlKey, value: string): Promise<void>;
}

export const PROC_SYS = '/proc/sys';

const MISSING_HINT =
  'no such sysctl: its module is not loaded (ip_vs for net/ipv4/vs/*), the kernel lacks the option ' +
  '(CONFIG_IP_VS_NFCT for vs/conntrack), the interface does not exist, or the netns hides it';

export class ProcSysctlStore implements SysctlStore {
  readonly root: string;

  constructor(root: string = PROC_SYS) {
    this.root = root;
  }

  async read(key: SysctlKey): Promise<string> {
    try {
      return normalizeValue(await readFile(this.#path(key), 'utf8'));
    } catch (err) {
      throw fsError(err, 'read', key);
    }
  }

  async write(key: SysctlKey, value: string): Promise<void> {
    try {
      // No O_CREAT: writing a sysctl that does not exist must fail as in /proc, also under a test root.
      await writeFile(this.#path(key), `${value}\n`, { flag: constants.O_WRONLY | constants.O_TRUNC });
    } catch (err) {
      throw fsError(err, 'write', key, value);
    }
  }

  #path(key: SysctlKey): string {
    return path.join(this.root, key);
  }
}

function fsError(err: unknown, op: string, key: SysctlKey, value?: string): SysctlError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  const detail =
    code === 'ENOENT' ? MISSING_HINT
    : code === 'EINVAL' && value !== undefined ? `kernel rejected value ${JSON.stringify(value)}`
    : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'not permitted: needs root and a writable /proc/sys (privileged container)'
    : (err as Error).message;
  return new SysctlError(code, op, key, detail, { cause: err });
}

/** The kernel as a map, for tests: missing keys fail like /proc. */
export class MemorySysctlStore implements SysctlStore {
  readonly values: Map<SysctlKey, string>;
  /** Every write, in order, as `key=value`. */
  readonly writes: string[] = [];

  constructor(initial: Iterable<[SysctlKey, string | number]> = []) {
    this.values = new Map([...initial].map(([k, v]) => [k, normalizeValue(v)]));
  }

  async read(key: SysctlKey): Promise<string> {
    const v = this.values.get(key);
    if (v === undefined) throw new SysctlError('ENOENT', 'read', key, MISSING_HINT);
    return v;
  }

  async write(key: SysctlKey, value: string): Promise<void> {
    if (!this.values.has(key)) throw new SysctlError('ENOENT', 'write', key, MISSING_HINT);
    this.values.set(key, normalizeValue(value));
    this.writes.push(`${key}=${value}`);
  }
}
