// An in-memory Lease store with the API server's optimistic concurrency, and per-candidate views that can be
// partitioned or slowed down, for the leader election state machine tests.
import { ApiException } from '@kubernetes/client-node';
import type { LeaseApi, LeaseObject, LeaseRecord } from '../../../src/kube/leader.ts';

const status = (code: number, reason: string, message: string): ApiException<string> =>
  new ApiException<string>(code, message, JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }), {});

export class FakeLeaseStore {
  rv = 100;
  leases = new Map<string, LeaseObject>();
  writes: Array<{ op: 'create' | 'update'; by: string; record: LeaseRecord }> = [];
  /** Watchers: called with every created or updated Lease, as a watch would deliver it. */
  readonly watchers: Array<(name: string, l: LeaseObject) => void> = [];

  key(ns: string, name: string): string {
    return `${ns}/${name}`;
  }

  read(ns: string, name: string): LeaseObject | undefined {
    const l = this.leases.get(this.key(ns, name));
    return l && structuredClone(l);
  }

  /** Someone else (kubectl) touches the lease: new resourceVersion, same record. */
  touch(ns: string, name: string): void {
    const l = this.leases.get(this.key(ns, name));
    if (l) l.resourceVersion = String(++this.rv);
  }

  /** A per-candidate view; `partitioned` makes every call fail like a dead network. */
  view(by: string): LeaseApi & { partitioned: boolean; calls: number; reads: string[] } {
    const store = (): FakeLeaseStore => this;
    const api = {
      partitioned: false,
      calls: 0,
      /** Names read, in order. */
      reads: [] as string[],
      async get(ns: string, name: string, signal: AbortSignal) {
        check(api, signal);
        api.reads.push(name);
        return store().read(ns, name);
      },
      async create(ns: string, name: string, record: LeaseRecord, signal: AbortSignal) {
        check(api, signal);
        validate(record);
        if (store().leases.has(store().key(ns, name))) throw status(409, 'AlreadyExists', `leases.coordination.k8s.io "${name}" already exists`);
        const l: LeaseObject = { record: structuredClone(record), resourceVersion: String(++store().rv) };
        store().leases.set(store().key(ns, name), l);
        store().writes.push({ op: 'create', by, record: structuredClone(record) });
        for (const w of store().watchers) w(name, structuredClone(l));
        return structuredClone(l);
      },
      async update(ns: string, name: string, record: LeaseRecord, prev: LeaseObject, signal: AbortSignal) {
        check(api, signal);
        validate(record);
        const cur = store().leases.get(store().key(ns, name));
        if (!cur) throw status(404, 'NotFound', `leases.coordination.k8s.io "${name}" not found`);
        if (cur.resourceVersion !== prev.resourceVersion) {
          throw status(409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
        }
        cur.record = structuredClone(record);
        cur.resourceVersion = String(++store().rv);
        store().writes.push({ op: 'update', by, record: structuredClone(record) });
        for (const w of store().watchers) w(name, structuredClone(cur));
        return structuredClone(cur);
      },
    };
    return api;
  }
}

function check(api: { partitioned: boolean; calls: number }, signal: AbortSignal): void {
  api.calls++;
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
  if (api.partitioned) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
}

/** What the real server checks: MicroTime with 6 fractional digits. */
function validate(r: LeaseRecord): void {
  for (const t of [r.acquireTime, r.renewTime]) {
    if (t !== undefined && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(t)) {
      throw status(400, 'BadRequest', `Lease in version "v1" cannot be handled as a Lease: parsing time "${t}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse`);
    }
  }
}
