/**
 * What this agent owns on the host, persisted so that a restarted agent adopts its own objects (and
 * nothing else) without removing and re-adding them. Written as a snapshot (temp file + rename) plus a
 * journal of the changes since, so a write costs in proportion to the change.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface OwnedVip {
  ifname: string;
  vip: string;
  /** Owners (e.g. "director:ns/name", "realserver:ns/name") that need this address bound. */
  owners: string[];
}

export interface AgentState {
  version: 1;
  /** IPVS serviceKey → owner (namespace/name of the VirtualService). */
  services: Record<string, string>;
  /** Addresses this agent bound (never ones it found already bound). */
  vips: OwnedVip[];
  /** `${serviceKey}|${destKey}` → epoch ms when draining began. */
  draining: Record<string, number>;
}

export const emptyState = (): AgentState => ({ version: 1, services: {}, vips: [], draining: {} });

/** What a save changed, so the file store can write only that. */
export interface StateChanges {
  /** serviceKeys whose owner was set or removed. */
  services?: Iterable<string>;
  /** state.vips changed. */
  vips?: boolean;
  /** state.draining changed. */
  draining?: boolean;
}

export interface StateStore {
  load(): AgentState;
  /**
   * Persists soon (writes are coalesced). `changes` names what changed; without it, anything may have
   * changed and the whole state is written.
   */
  save(state: AgentState, changes?: StateChanges): void;
  /** Persists now (before exit). */
  flush(): void;
}

/** One journal line: the changes of one flush, numbered. */
interface JournalEntry {
  seq: number;
  /** serviceKey → owner, or null when removed. */
  services?: Record<string, string | null>;
  vips?: OwnedVip[];
  draining?: Record<string, number>;
}

/** Journal lines after which the next flush writes a whole snapshot again. */
const COMPACT_AFTER = 1000;

/**
 * The file is read once; afterwards every reconciler shares the same in-memory state, and save()
 * writes it out (only callers that changed something call it).
 *
 * Writes cost in proportion to the change: a flush appends the changed entries as one line to
 * `<file>.journal`; every COMPACT_AFTER lines (and when a caller did not say what changed) the whole state
 * is written as a snapshot instead (temp file + rename). Snapshot and lines carry a sequence number, so a
 * crash between writing a snapshot and dropping the journal never replays old lines over newer state; a
 * torn last line is ignored.
 */
export class FileStateStore implements StateStore {
  readonly file: string;
  readonly journal: string;
  #state: AgentState | undefined;
  /** Sequence number of the last snapshot or journal line written (or read). */
  #seq = 0;
  #journalLines = 0;
  #timer: NodeJS.Timeout | undefined;
  #dirty = false;
  #all = false;
  readonly #services = new Set<string>();
  #vips = false;
  #draining = false;

  constructor(file: string) {
    this.file = file;
    this.journal = `${file}.journal`;
  }

  load(): AgentState {
    this.#state ??= this.#read();
    return this.#state;
  }

  #read(): AgentState {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read agent state ${this.file}: ${(e as Error).message}`);
      text = '';
    }
    let state = emptyState();
    if (text) {
      const { seq, ...parsed } = JSON.parse(text) as Partial<AgentState> & { seq?: number };
      if (parsed.version !== 1) throw new Error(`agent state ${this.file} has unknown version ${String(parsed.version)}`);
      state = { ...emptyState(), ...parsed } as AgentState;
      this.#seq = seq ?? 0;
    }
    let lines: string[] = [];
    try {
      lines = fs.readFileSync(this.journal, 'utf8').split('\n');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read agent state journal ${this.journal}: ${(e as Error).message}`);
    }
    for (const line of lines) {
      if (!line) continue;
      let entry: JournalEntry;
      try {
        entry = JSON.parse(line) as JournalEntry;
      } catch {
        break; // torn by a crash mid-write: nothing after it was written either
      }
      this.#journalLines++;
      if (entry.seq <= this.#seq) continue; // already in the snapshot
      for (const [k, owner] of Object.entries(entry.services ?? {})) {
        if (owner === null) delete state.services[k];
        else state.services[k] = owner;
      }
      if (entry.vips) state.vips = entry.vips;
      if (entry.draining) state.draining = entry.draining;
      this.#seq = entry.seq;
    }
    return state;
  }

  /**
   * Coalesced: written within 100 ms. A crash inside that window can leave a just-created service
   * unrecorded; the restarted agent then reports it as a conflict instead of touching it (safe side).
   */
  save(state: AgentState, changes?: StateChanges): void {
    this.#state = state;
    this.#dirty = true;
    if (!changes) this.#all = true;
    else {
      for (const k of changes.services ?? []) this.#services.add(k);
      this.#vips ||= changes.vips ?? false;
      this.#draining ||= changes.draining ?? false;
    }
    this.#timer ??= setTimeout(() => this.flush(), 100);
    this.#timer.unref?.();
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#dirty || !this.#state) return;
    const state = this.#state;
    this.#seq++;
    if (this.#all || this.#journalLines >= COMPACT_AFTER) this.#snapshot(state);
    else this.#append(state);
    this.#dirty = false;
    this.#all = false;
    this.#services.clear();
    this.#vips = false;
    this.#draining = false;
  }

  #append(state: AgentState): void {
    const entry: JournalEntry = { seq: this.#seq };
    if (this.#services.size) entry.services = Object.fromEntries([...this.#services].map((k) => [k, state.services[k] ?? null]));
    if (this.#vips) entry.vips = state.vips;
    if (this.#draining) entry.draining = state.draining;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.appendFileSync(this.journal, JSON.stringify(entry) + '\n');
    this.#journalLines++;
  }

  #snapshot(state: AgentState): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ ...state, seq: this.#seq }, null, 1));
    fs.renameSync(tmp, this.file);
    // Lines up to #seq are in the snapshot now (and skipped on load should this unlink not happen).
    fs.rmSync(this.journal, { force: true });
    this.#journalLines = 0;
  }
}

/** In-memory store (tests, benchmarks): shares one object with its users, like FileStateStore does. */
export class MemoryStateStore implements StateStore {
  state: AgentState;
  saves = 0;
  constructor(state: AgentState = emptyState()) {
    this.state = state;
  }
  load(): AgentState {
    return this.state;
  }
  save(state: AgentState): void {
    this.state = state;
    this.saves++;
  }
  flush(): void {}
}
