/**
 * What this agent owns on the host, persisted so that a restarted agent adopts its own objects (and
 * nothing else) without removing and re-adding them. Written atomically (temp file + rename).
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

export interface StateStore {
  load(): AgentState;
  /** Persists soon (writes are coalesced: at 5,000 services the file is large). */
  save(state: AgentState): void;
  /** Persists now (before exit, and after a full resync). */
  flush(): void;
}

/**
 * The file is read once; afterwards every reconciler shares the same in-memory state, and save()
 * writes it out (only callers that changed something call it).
 */
export class FileStateStore implements StateStore {
  readonly file: string;
  #state: AgentState | undefined;
  constructor(file: string) {
    this.file = file;
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
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new Error(`cannot read agent state ${this.file}: ${(e as Error).message}`);
    }
    const parsed = JSON.parse(text) as Partial<AgentState>;
    if (parsed.version !== 1) throw new Error(`agent state ${this.file} has unknown version ${String(parsed.version)}`);
    return { ...emptyState(), ...parsed } as AgentState;
  }

  #timer: NodeJS.Timeout | undefined;
  #dirty = false;

  /**
   * Coalesced: written within 100 ms. A crash inside that window can leave a just-created service
   * unrecorded; the restarted agent then reports it as a conflict instead of touching it (safe side).
   */
  save(state: AgentState): void {
    this.#state = state;
    this.#dirty = true;
    this.#timer ??= setTimeout(() => this.flush(), 100);
    this.#timer.unref?.();
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#dirty || !this.#state) return;
    this.#dirty = false;
    this.#write(this.#state);
  }

  #write(state: AgentState): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(state, null, 1));
    fs.renameSync(tmp, this.file);
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
