// A fake API server for one resource: objects with resourceVersions, an event history that can be
// compacted (410 Gone), paged lists, watches that end on the server's timeout, and fault injection.
import { ApiException } from '@kubernetes/client-node';
import type { Clock } from '../../../src/kube/clock.ts';
import type { ListPage, ListWatchClient, WatchEvent } from '../../../src/kube/informer.ts';
import type { Query } from '../../../src/kube/http.ts';

export interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

export const statusError = (code: number, reason: string, message = reason): ApiException<string> =>
  new ApiException<string>(code, message, JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }), {});

interface Watcher {
  onEvent: (e: WatchEvent) => void;
  onData: () => void;
  end: () => void;
}

export class FakeListWatch implements ListWatchClient {
  rv = 100;
  objects = new Map<string, Obj>();
  history: Array<{ rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; obj: Obj }> = [];
  compactedBelow = 0;
  listCalls: Query[] = [];
  watchCalls: Query[] = [];
  listErrors: unknown[] = [];
  watchErrors: unknown[] = [];
  /** 'silent': accept the watch but never send a byte; 'end': end it at once. */
  watchMode: 'normal' | 'silent' | 'end' = 'normal';
  expireContinue = false;
  private watchers = new Set<Watcher>();

  private readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  private key(ns: string | undefined, name: string): string {
    return ns ? `${ns}/${name}` : name;
  }

  private record(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: Obj): void {
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    this.history.push({ rv, type, obj: structuredClone(obj) });
    for (const w of this.watchers) {
      w.onData();
      w.onEvent({ type, object: structuredClone(obj) });
    }
  }

  put(name: string, data: Record<string, string> = {}, namespace?: string): void {
    const k = this.key(namespace, name);
    const exists = this.objects.has(k);
    const obj: Obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...(namespace ? { namespace } : {}) }, data };
    this.objects.set(k, obj);
    this.record(exists ? 'MODIFIED' : 'ADDED', obj);
  }

  remove(name: string, namespace?: string): void {
    const k = this.key(namespace, name);
    const obj = this.objects.get(k);
    if (!obj) return;
    this.objects.delete(k);
    this.record('DELETED', structuredClone(obj));
  }

  /** Compact at the current revision: watches from any older resourceVersion get 410. */
  compact(): void {
    this.compactedBelow = this.rv;
    this.history = [];
  }

  /** End every open watch cleanly (like the server's timeout). */
  endWatches(): void {
    for (const w of [...this.watchers]) w.end();
  }

  bookmark(): void {
    for (const w of this.watchers) {
      w.onData();
      w.onEvent({ type: 'BOOKMARK', object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  openWatches(): number {
    return this.watchers.size;
  }

  async list(_path: string, q: Query, signal: AbortSignal): Promise<ListPage> {
    this.listCalls.push(q);
    await Promise.resolve();
    if (signal.aborted) throw signal.reason;
    const err = this.listErrors.shift();
    if (err) throw err;
    const all = [...this.objects.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map((o) => structuredClone(o));
    const limit = Number(q['limit'] ?? 0);
    if (q['continue'] && this.expireContinue) {
      this.expireContinue = false;
      throw statusError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
    }
    const start = q['continue'] ? Number(q['continue']) : 0;
    const items = limit > 0 ? all.slice(start, start + limit) : all;
    const next = limit > 0 && start + limit < all.length ? String(start + limit) : undefined;
    return { metadata: { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) }, items };
  }

  watch(_path: string, q: Query, onEvent: (e: WatchEvent) => void, signal: AbortSignal, onData: () => void): Promise<void> {
    this.watchCalls.push(q);
    return new Promise<void>((resolve, reject) => {
      const err = this.watchErrors.shift();
      if (err) {
        reject(err);
        return;
      }
      const since = Number(q['resourceVersion']);
      const w: Watcher = { onEvent, onData, end: () => finish() };
      let timer: ReturnType<Clock['setTimeout']> | undefined;
      const finish = (e?: unknown): void => {
        this.watchers.delete(w);
        this.clock.clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        if (e) reject(e);
        else resolve();
      };
      const onAbort = (): void => finish(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      if (this.watchMode === 'end') {
        queueMicrotask(() => finish());
        return;
      }
      if (this.watchMode === 'silent') {
        this.watchers.add({ onEvent: () => undefined, onData: () => undefined, end: () => finish() });
        return;
      }
      if (since < this.compactedBelow) {
        onData();
        onEvent({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message: `too old resource version: ${since} (${this.compactedBelow})` } });
        queueMicrotask(() => finish());
        return;
      }
      for (const h of this.history) {
        if (h.rv > since) {
          onData();
          onEvent({ type: h.type, object: structuredClone(h.obj) });
        }
      }
      this.watchers.add(w);
      const t = Number(q['timeoutSeconds'] ?? 0);
      if (t > 0) timer = this.clock.setTimeout(() => finish(), t * 1000);
    });
  }
}
