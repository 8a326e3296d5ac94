/**
 * SysctlOps over a SysctlStore (normally /proc/sys) with a persisted ledger of originals.
 *
 * Rules:
 * - A desired value is exact. "Stronger" values are not accepted instead: arp_ignore is not an ordered scale
 *   (2 also demands the sender be in the interface's subnet, 8 refuses every ARP), nor is arp_announce or
 *   rp_filter for what LVS needs. An exact value is the simple rule that is always correct; the original
 *   comes back on release.
 * - The ledger is saved before a value is written, so a crash in between leaves an entry whose original is
 *   still the kernel's value — never a lost original.
 * - On release, a value is restored only if it still holds the value set here: if someone changed it since,
 *   that change wins and is left alone.
 * - A ledger written before the last reboot is void: the kernel reset every sysctl to its boot value.
 */
import type { Logger } from '../util/log.ts';
import { SysctlError } from './errors.ts';
import { normalizeValue, sysctlKey, type SysctlKey } from './keys.ts';
import { FileLedgerStore, type Ledger, type LedgerEntry, type LedgerStore } from './ledger.ts';
import { ProcSysctlStore, type SysctlStore } from './store.ts';
import type { SysctlOps, SysctlSetting } from './types.ts';

export interface SysctlManagerOptions {
  store?: SysctlStore;
  /** Default: FileLedgerStore at /var/lib/lvs-operator/sysctl-ledger.json. */
  ledger?: LedgerStore;
  logger?: Logger;
}

const BOOT_ID = 'kernel/random/boot_id';

interface Entry {
  readonly original: string;
  value: string;
  readonly owners: Set<string>;
}

export class SysctlManager implements SysctlOps {
  readonly #store: SysctlStore;
  readonly #ledger: LedgerStore;
  readonly #log: Logger | undefined;
  #entries: Map<SysctlKey, Entry> | undefined;
  #bootId: string | undefined;
  // Claims and releases run one at a time: each is a read-modify-write of the ledger and the kernel.
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: SysctlManagerOptions = {}) {
    this.#store = options.store ?? new ProcSysctlStore();
    this.#ledger = options.ledger ?? new FileLedgerStore();
    this.#log = options.logger;
  }

  read(key: SysctlKey): Promise<string> {
    return this.#store.read(sysctlKey(key));
  }

  claim(owner: string, settings: readonly SysctlSetting[]): Promise<void> {
    return this.#exclusive(async (entries) => {
      const wanted = wantedValues(owner, settings);
      for (const [key, value] of wanted) {
        const e = entries.get(key);
        const others = e ? [...e.owners].filter((o) => o !== owner) : [];
        if (e && e.value !== value && others.length > 0) {
          throw new SysctlError('EBUSY', 'claim', key, `${owner} needs ${value} but ${others.join(', ')} hold it at ${e.value}`);
        }
      }
      // Read everything first: a missing sysctl fails the claim before anything is changed.
      const current = new Map<SysctlKey, string>();
      for (const key of wanted.keys()) current.set(key, await this.#store.read(key));

      for (const [key, value] of wanted) {
        const e = entries.get(key) ?? { original: current.get(key) ?? value, value, owners: new Set<string>() };
        e.value = value;
        e.owners.add(owner);
        entries.set(key, e);
      }
      for (const [key, e] of entries) if (!wanted.has(key)) e.owners.delete(owner);
      await this.#save(entries);

      for (const [key, value] of wanted) {
        const from = current.get(key);
        if (from === value) continue;
        await this.#store.write(key, value);
        this.#log?.info({ key, from, to: value, owner }, 'sysctl set');
      }
      await this.#restoreUnclaimed(entries);
    });
  }

  release(owner: string): Promise<void> {
    return this.#exclusive(async (entries) => {
      let changed = false;
      for (const e of entries.values()) changed = e.owners.delete(owner) || changed;
      if (changed) await this.#save(entries);
      await this.#restoreUnclaimed(entries);
    });
  }

  releaseAll(): Promise<void> {
    return this.#exclusive(async (entries) => {
      for (const e of entries.values()) e.owners.clear();
      await this.#save(entries);
      await this.#restoreUnclaimed(entries);
    });
  }

  owners(): Promise<string[]> {
    return this.#exclusive(async (entries) => [...new Set([...entries.values()].flatMap((e) => [...e.owners]))].sort());
  }

  /** A copy of the ledger as it stands (for status and tests). */
  snapshot(): Promise<Ledger> {
    return this.#exclusive(async (entries) => toLedger(entries, this.#bootId));
  }

  /**
   * Restores entries nobody claims and drops them from the ledger. Failed restores stay in the ledger and
   * are retried by the next claim or release.
   */
  async #restoreUnclaimed(entries: Map<SysctlKey, Entry>): Promise<void> {
    const errors: SysctlError[] = [];
    let changed = false;
    for (const [key, e] of entries) {
      if (e.owners.size > 0) continue;
      try {
        const now = await this.#store.read(key);
        if (now === e.value && now !== e.original) {
          await this.#store.write(key, e.original);
          this.#log?.info({ key, from: now, to: e.original }, 'sysctl restored');
        } else if (now !== e.original) {
          this.#log?.warn({ key, set: e.value, now, original: e.original }, 'sysctl changed by someone else since it was set; left as is');
        }
      } catch (err) {
        if (!(err instanceof SysctlError && err.errno === 'ENOENT')) {
          errors.push(err instanceof SysctlError ? err : new SysctlError('EIO', 'restore', key, String(err), { cause: err }));
          continue;
        }
        // The sysctl went away with its interface or module: nothing left to restore.
        this.#log?.info({ key }, 'sysctl gone; nothing to restore');
      }
      entries.delete(key);
      changed = true;
    }
    if (changed) await this.#save(entries);
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `failed to restore ${errors.length} sysctls: ${errors.map((e) => e.message).join('; ')}`);
  }

  async #save(entries: Map<SysctlKey, Entry>): Promise<void> {
    await this.#ledger.save(toLedger(entries, this.#bootId));
  }

  #exclusive<T>(fn: (entries: Map<SysctlKey, Entry>) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => fn(this.#entries ?? (this.#entries = await this.#load()));
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  async #load(): Promise<Map<SysctlKey, Entry>> {
    const saved = await this.#ledger.load();
    this.#bootId = await this.#store.read(BOOT_ID).catch(() => undefined);
    const entries = new Map<SysctlKey, Entry>();
    if (!saved) return entries;
    if (saved.bootId !== undefined && this.#bootId !== undefined && saved.bootId !== this.#bootId) {
      this.#log?.warn({ saved: saved.bootId, now: this.#bootId }, 'sysctl ledger is from a previous boot; kernel values were reset, starting afresh');
      return entries;
    }
    for (const [key, e] of Object.entries(saved.entries)) {
      entries.set(key, { original: e.original, value: e.value, owners: new Set(e.owners) });
    }
    return entries;
  }
}

function wantedValues(owner: string, settings: readonly SysctlSetting[]): Map<SysctlKey, string> {
  if (!owner) throw new SysctlError('EINVAL', 'claim', '(no key)', 'owner must not be empty');
  const wanted = new Map<SysctlKey, string>();
  for (const s of settings) {
    const key = sysctlKey(s.key);
    const value = normalizeValue(s.value);
    const prev = wanted.get(key);
    if (prev !== undefined && prev !== value) throw new SysctlError('EINVAL', 'claim', key, `${owner} asks for both ${prev} and ${value}`);
    wanted.set(key, value);
  }
  return wanted;
}

function toLedger(entries: Map<SysctlKey, Entry>, bootId: string | undefined): Ledger {
  const out: Record<SysctlKey, LedgerEntry> = {};
  for (const [key, e] of [...entries].sort(([a], [b]) => a.localeCompare(b))) {
    out[key] = { original: e.original, value: e.value, owners: [...e.owners].sort() };
  }
  return { version: 1, bootId, entries: out };
}
