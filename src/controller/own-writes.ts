/**
 * Recognises the controller's own writes when they come back through the watch, so they cost no pass.
 *
 * A write's answer names the resourceVersion it produced, and the watch event carrying that version is ours.
 * The event can arrive before the answer (the watch and the write are different connections): while a write
 * to an object is in flight, that object's events wait, keyed by resourceVersion, until every write to it has
 * answered; the one whose version a write named is dropped, the rest are applied then. A write that fails
 * names no version, so nothing it held back is lost. Versions noted for echoes that never come (the watch
 * relisted past them) are capped per object and forgotten with the object or on a full pass.
 */
export class OwnWrites {
  /** resourceVersions our answered writes produced, per object, whose events have not come yet. */
  readonly #own = new Map<string, Set<string>>();
  /** Writes in flight per object. */
  readonly #inflight = new Map<string, number>();
  /** Events that arrived while a write to their object was in flight: rv → what they mark. */
  readonly #held = new Map<string, Map<string, () => void>>();
  readonly #onMarked: () => void;
  readonly #maxPerObject: number;

  /** `onMarked` runs after marks were applied (the controller schedules a pass). */
  constructor(onMarked: () => void, maxPerObject = 8) {
    this.#onMarked = onMarked;
    this.#maxPerObject = maxPerObject;
  }

  /**
   * An object's watch event: `mark` records the work it needs, unless the event is our own write coming back.
   * Without a resourceVersion (adds, deletes) the event always counts. Returns whether `mark` ran now.
   */
  event(id: string, rv: string | undefined, mark: () => void): boolean {
    if (rv !== undefined && this.#ours(id, rv)) return false;
    if (rv !== undefined && this.#inflight.has(id)) {
      let held = this.#held.get(id);
      if (!held) this.#held.set(id, (held = new Map()));
      held.set(rv, mark);
      return false;
    }
    mark();
    this.#onMarked();
    return true;
  }

  /** Runs a write to object `id` (which resolves to the written object, or undefined when there is none). */
  async write<T extends { metadata?: { resourceVersion?: string } } | undefined | void>(id: string, write: () => Promise<T>): Promise<T> {
    this.#inflight.set(id, (this.#inflight.get(id) ?? 0) + 1);
    let rv: string | undefined;
    try {
      const written = await write();
      rv = written ? written.metadata?.resourceVersion : undefined;
      return written;
    } finally {
      const held = this.#held.get(id);
      // The echo came first: drop it; otherwise expect it.
      if (rv !== undefined && !held?.delete(rv)) this.#note(id, rv);
      const n = (this.#inflight.get(id) ?? 1) - 1;
      if (n > 0) this.#inflight.set(id, n);
      else {
        this.#inflight.delete(id);
        this.#held.delete(id);
        if (held && held.size > 0) {
          for (const mark of held.values()) mark();
          this.#onMarked();
        }
      }
    }
  }

  /** The object is gone: no echo of it will come. */
  forget(id: string): void {
    this.#own.delete(id);
  }

  /** A full pass looks at everything anyway: expected echoes no longer matter. Held events stay held. */
  clear(): void {
    this.#own.clear();
  }

  /** Entries kept (for leak checks): expected echoes, objects with writes in flight, held events. */
  get sizes(): { expected: number; inflight: number; held: number } {
    let expected = 0;
    for (const s of this.#own.values()) expected += s.size;
    let held = 0;
    for (const m of this.#held.values()) held += m.size;
    return { expected, inflight: this.#inflight.size, held };
  }

  /** True (once) when `rv` is the result of one of our own writes to `id`. */
  #ours(id: string, rv: string): boolean {
    const s = this.#own.get(id);
    if (!s?.delete(rv)) return false;
    if (s.size === 0) this.#own.delete(id);
    return true;
  }

  #note(id: string, rv: string): void {
    let s = this.#own.get(id);
    if (!s) this.#own.set(id, (s = new Set()));
    s.add(rv);
    // Oldest first (insertion order): an echo still missing after this many newer writes was relisted past.
    if (s.size > this.#maxPerObject) s.delete(s.values().next().value!);
  }
}
