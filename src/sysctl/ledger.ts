/**
 * The ledger of originals: for every sysctl the manager changed, the value it found, the value it set and who
 * needs it. Persisted so that a restarted agent restores the true originals rather than its own values.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { SysctlError } from './errors.ts';
import type { SysctlKey } from './keys.ts';

export interface LedgerEntry {
  /** Value found before the first claim. */
  readonly original: string;
  /** Value the claimants need. */
  readonly value: string;
  /** Claimants, e.g. `realserver/default/web` (sorted, unique). */
  readonly owners: readonly string[];
}

export interface Ledger {
  readonly version: 1;
  /** kernel/random/boot_id when written: a reboot resets every sysctl, and with it the ledger's meaning. */
  readonly bootId: string | undefined;
  readonly entries: Readonly<Record<SysctlKey, LedgerEntry>>;
}

export interface LedgerStore {
  /** undefined when nothing was ever saved. */
  load(): Promise<Ledger | undefined>;
  save(ledger: Ledger): Promise<void>;
}

export const DEFAULT_LEDGER_PATH = '/var/lib/lvs-operator/sysctl-ledger.json';

export class FileLedgerStore implements LedgerStore {
  readonly path: string;

  constructor(file: string = DEFAULT_LEDGER_PATH) {
    this.path = file;
  }

  async load(): Promise<Ledger | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new SysctlError((err as NodeJS.ErrnoException).code ?? 'EIO', 'load', this.path, (err as Error).message, { cause: err });
    }
    // A ledger that cannot be read must stop the agent: guessing would record its own values as originals.
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new SysctlError('EINVAL', 'load', this.path, `corrupt ledger: ${(err as Error).message}`, { cause: err });
    }
    return parseLedger(parsed, this.path);
  }

  async save(ledger: Ledger): Promise<void> {
    // Write-then-rename with fsync: a crash leaves the old or the new ledger, never half of one.
    const dir = path.dirname(this.path);
    const tmp = `${this.path}.tmp`;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(ledger, null, 2)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      throw new SysctlError((err as NodeJS.ErrnoException).code ?? 'EIO', 'save', this.path, (err as Error).message, { cause: err });
    }
  }
}

export class MemoryLedgerStore implements LedgerStore {
  saved: Ledger | undefined;

  async load(): Promise<Ledger | undefined> {
    return this.saved;
  }

  async save(ledger: Ledger): Promise<void> {
    this.saved = structuredClone(ledger);
  }
}

function parseLedger(x: unknown, where: string): Ledger {
  const fail = (why: string): never => {
    throw new SysctlError('EINVAL', 'load', where, `corrupt ledger: ${why}`);
  };
  if (!isRecord(x) || x.version !== 1 || !isRecord(x.entries)) return fail('expected {"version":1,"entries":{...}}');
  const bootId = x.bootId === undefined ? undefined : typeof x.bootId === 'string' ? x.bootId : fail('bootId is not a string');
  const entries: Record<SysctlKey, LedgerEntry> = {};
  for (const [key, e] of Object.entries(x.entries)) {
    if (!isRecord(e) || typeof e.original !== 'string' || typeof e.value !== 'string' || !Array.isArray(e.owners) || !e.owners.every((o) => typeof o === 'string')) {
      return fail(`bad entry ${key}`);
    }
    entries[key] = { original: e.original, value: e.value, owners: e.owners as string[] };
  }
  return { version: 1, bootId, entries };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
