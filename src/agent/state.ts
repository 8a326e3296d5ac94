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
  save(state: AgentState): void;
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

  save(state: AgentState): void {
    this.#state = state;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(state, null, 1));
    fs.renameSync(tmp, this.file);
  }
}

export class MemoryStateStore implements StateStore {
  state: AgentState;
  constructor(state: AgentState = emptyState()) {
    this.state = state;
  }
  load(): AgentState {
    return JSON.parse(JSON.stringify(this.state)) as AgentState;
  }
  save(state: AgentState): void {
    this.state = JSON.parse(JSON.stringify(state)) as AgentState;
  }
}
