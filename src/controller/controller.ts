/**
 * The controller: watches VirtualServices, RealServers, Nodes and NodePlans, and after changes runs one
 * pass: plan → NodePlan shards → node labels and agent DaemonSets → statuses and Events. Only the elected
 * leader writes; standbys keep their caches warm for a fast takeover.
 *
 * Passes are incremental: informer events mark what changed (objects the planner reads, statuses, agent
 * reports, shards), the plan is updated for the affected VirtualServices only (incremental.ts), and only the
 * shards, statuses and finalizers those touch are compared and written. The first pass after gaining
 * leadership, and any pass after a node change the planner cares about, does everything. A pass that fails
 * puts what it took back, so nothing is lost; our own writes coming back through the watch are recognised
 * by their resourceVersion and cost nothing.
 */
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1DaemonSet, type V1Node } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { GROUP, VERSION } from '../api/v1alpha1/meta.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import type { NodePlan as NodePlanObject, NodePlanSpec } from '../api/v1alpha1/nodeplan.ts';
import { Informer, type KubeObject } from '../kube/informer.ts';
import { Writer } from '../kube/writer.ts';
import { CustomObjects, isNotFound, isAlreadyExists, isConflict } from '../kube/status.ts';
import type { EventRecorder } from '../kube/events.ts';
import { idOf, type NodeInfo, type Plan } from '../model/planner.ts';
import { shardPlan, shardOf, shardName, addsEntries } from '../model/shards.ts';
import type { PlannedRealServerVip, PlannedService } from '../model/plan.ts';
import { conditionEvents } from '../model/conditions.ts';
import type { Logger } from '../util/log.ts';
import { createHash } from 'node:crypto';
import { canonicalJson, sameJson } from '../util/canonical.ts';
import { StringPool } from '../util/intern.ts';
import { indexReports, realServerStatus, statusPatch, virtualServiceStatus } from './status.ts';
import { AdmissionSources, writePoolStatuses } from './vippools.ts';
import { REALSERVER_NODE_LABEL, type ControllerConfig } from './config.ts';
import { agentDaemonSet } from './daemonsets.ts';
import { IncrementalPlanner } from './incremental.ts';
import { OwnWrites } from './own-writes.ts';

export const FINALIZER = 'lvs.operator.dev/teardown';
const R = {
  virtualservices: { group: GROUP, version: VERSION, plural: 'virtualservices' },
  realservers: { group: GROUP, version: VERSION, plural: 'realservers' },
  nodeplans: { group: GROUP, version: VERSION, plural: 'nodeplans' },
};

export interface ControllerOptions {
  kc: KubeConfig;
  namespace: string;
  config: ControllerConfig;
  log: Logger;
  events?: EventRecorder;
  registry?: Registry;
  /** Manage the agent DaemonSets (off in tests that run agents themselves). */
  manageDaemonSets?: boolean;
  /** Write concurrency for status patches. */
  writeConcurrency?: number;
}

export function nodeInfo(n: V1Node): NodeInfo {
  const info: NodeInfo = { name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {}, addresses: (n.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })) };
  if (n.spec?.podCIDRs?.length) info.podCIDRs = [...n.spec.podCIDRs];
  return info;
}

/**
 * Runs `fn` over `items` with at most `n` in flight. After a failure no new item starts, and the first error
 * is thrown only once the ones in flight ended: a failed pass leaves no write running into the next pass.
 */
export async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  let failed: { e: unknown } | undefined;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (!failed && i < items.length) {
      try {
        await fn(items[i++]!);
      } catch (e) {
        failed ??= { e };
      }
    }
  }));
  if (failed) throw failed.e;
}

/** One pool for the strings of every cached object (slim). */
const cachedStrings = new StringPool();

/**
 * Digest of a planned entry's canonical JSON, kept per object: unchanged entries keep their identity across
 * passes. Digests, not the JSON itself: at 5,000 services the canonical forms of entries and shards were
 * 14 MiB of the heap.
 */
const digestCache = new WeakMap<object, string>();
const entryDigest = (o: PlannedService | PlannedRealServerVip): string => {
  let c = digestCache.get(o);
  if (c === undefined) {
    c = createHash('sha256').update(canonicalJson(o)).digest('base64');
    digestCache.set(o, c);
  }
  return c;
};

/**
 * A NodePlan spec's identity for "does the server hold what we want": equal for specs whose canonical JSON
 * is equal (entry by entry, in order), different otherwise. Composed from the entries' cached digests, so an
 * unchanged shard costs a hash of a few hundred bytes per pass.
 */
export function specDigest(spec: NodePlanSpec): string {
  const h = createHash('sha256').update(JSON.stringify([spec.node, spec.shard]));
  h.update('|d');
  for (const e of spec.director) h.update(entryDigest(e));
  h.update('|r');
  for (const e of spec.realServer) h.update(entryDigest(e));
  return h.digest('base64');
}

/** What changed since the last pass (ids are "namespace/name"; shards by name). */
interface Dirty {
  full: boolean;
  planVs: Set<string>;
  planRs: Set<string>;
  statusVs: Set<string>;
  statusRs: Set<string>;
  /** Services whose agent reports changed (their VirtualService and RealServers need a status look). */
  reports: Set<string>;
  finalizers: Set<string>;
  shards: Map<string, { node: string; shard: number }>;
}
const emptyDirty = (full = false): Dirty => ({
  full, planVs: new Set(), planRs: new Set(), statusVs: new Set(), statusRs: new Set(), reports: new Set(), finalizers: new Set(), shards: new Map(),
});
function mergeDirty(into: Dirty, from: Dirty): void {
  into.full ||= from.full;
  for (const k of ['planVs', 'planRs', 'statusVs', 'statusRs', 'reports', 'finalizers'] as const) for (const x of from[k]) into[k].add(x);
  for (const [k, v] of from.shards) into.shards.set(k, v);
}

const sameLabels = (a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean => {
  const ea = Object.entries(a ?? {});
  return ea.length === Object.keys(b ?? {}).length && ea.every(([k, v]) => b?.[k] === v);
};
const sameReport = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/**
 * Drops what nobody here reads from a cached object (the informers hand their cached object to the
 * handlers): managedFields are most of an object's size, at 55,000 objects hundreds of MiB; kubectl's
 * last-applied copy of the whole object and a Node's image list are large too.
 */
function slim(o: KubeObject): void {
  const m = o.metadata as { managedFields?: unknown; annotations?: Record<string, string> } | undefined;
  if (!m) return;
  delete m.managedFields;
  if (m.annotations?.[LAST_APPLIED] !== undefined) {
    const { [LAST_APPLIED]: _dropped, ...rest } = m.annotations;
    m.annotations = rest;
  }
  const status = (o as { status?: { images?: unknown } }).status;
  if (status?.images !== undefined) delete status.images;
  cachedStrings.internValues(o);
}

const preparedKey = (node: string, service: string, vip: string): string => `${node}|${service}|${vip}`;

/** The realserver VIPs a NodePlan's status reports prepared: key → service id. */
function preparedKeys(o: NodePlanObject | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of o?.status?.realServer ?? []) if (r.prepared) out.set(preparedKey(o!.spec.node, r.service, r.vip), r.service);
  return out;
}

export class Controller {
  readonly #o: ControllerOptions;
  readonly vs: Informer<VirtualService>;
  readonly rs: Informer<RealServer>;
  readonly nodes: Informer<V1Node>;
  readonly plans: Informer<NodePlanObject>;
  readonly #objects: CustomObjects;
  readonly #write: Writer;
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;
  readonly #planner: IncrementalPlanner;
  /** node|service|vip → how many NodePlan shards report it prepared (the planner's `prepared` input). */
  readonly #prepared = new Map<string, number>();
  /** VIPPools, namespaces and the API server's addresses, for VIP admission. */
  readonly admission: AdmissionSources;
  #timer: NodeJS.Timeout | undefined;
  /** When the last pass ended (performance.now()). */
  #passEndedAt = -Infinity;
  #running: Promise<void> | undefined;
  #again = false;
  #leading = false;
  /** What the next pass must look at; the first pass does everything. */
  #dirty: Dirty = emptyDirty(true);
  /** Our own writes coming back through the watch need no work (own-writes.ts). */
  readonly #echoes = new OwnWrites(() => this.trigger());
  /** Per shard: the spec digest (specDigest) the server holds at (uid, generation), as we last wrote or read it. */
  readonly #shardSpecs = new Map<string, { uid: string; generation: number; digest: string }>();
  /** VirtualServices being deleted that still carry our finalizer. */
  readonly #deleting = new Set<string>();
  #daemonSetsCheckedAt = -Infinity;
  readonly #metrics: { reconciles: Counter<'result'>; passes: Counter<'kind'>; duration: Histogram; pending: Gauge; writes: Counter<'kind'> } | undefined;

  constructor(o: ControllerOptions) {
    this.#o = o;
    const log = o.log;
    this.vs = new Informer<VirtualService>(o.kc, { resource: R.virtualservices, name: 'virtualservices', logger: log });
    this.rs = new Informer<RealServer>(o.kc, { resource: R.realservers, name: 'realservers', logger: log });
    this.nodes = new Informer<V1Node>(o.kc, { resource: { group: '', version: 'v1', plural: 'nodes' }, name: 'nodes', logger: log });
    this.plans = new Informer<NodePlanObject>(o.kc, { resource: R.nodeplans, name: 'nodeplans', logger: log });
    this.#objects = new CustomObjects(o.kc, { fieldManager: 'lvs-controller', logger: log });
    this.#write = new Writer(o.kc, 'lvs-controller');
    this.#core = o.kc.makeApiClient(CoreV1Api);
    this.#apps = o.kc.makeApiClient(AppsV1Api);
    this.admission = new AdmissionSources({ kc: o.kc, log, reserved: o.config.reserved });
    this.#planner = new IncrementalPlanner({
      admission: () => this.admission.input(),
      getVirtualService: (id) => this.vs.getByKey(id),
      getRealServer: (id) => this.rs.getByKey(id),
      virtualServices: () => this.vs.list(),
      realServers: () => this.rs.list(),
      nodes: () => this.nodes.list().map(nodeInfo),
      defaultDirectorSelector: o.config.defaultDirectorSelector,
      // DR/Tunnel realservers get traffic only once their node's agent has bound the VIP.
      prepared: (node, service, vip) => (this.#prepared.get(preparedKey(node, service, vip)) ?? 0) > 0,
    });
    if (o.registry) {
      const registers = [o.registry];
      this.#metrics = {
        reconciles: new Counter({ name: 'lvs_controller_reconciles_total', help: 'Controller passes by result.', labelNames: ['result'], registers }),
        passes: new Counter({ name: 'lvs_controller_passes_total', help: 'Controller passes by kind: full (everything planned and compared) or incremental (only what changed).', labelNames: ['kind'], registers }),
        duration: new Histogram({ name: 'lvs_controller_reconcile_duration_seconds', help: 'Duration of one controller pass.', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers }),
        pending: new Gauge({ name: 'lvs_controller_queue_depth', help: 'Changes waiting for the next pass (0 or 1: passes coalesce).', registers }),
        writes: new Counter({ name: 'lvs_controller_writes_total', help: 'API writes by kind.', labelNames: ['kind'], registers }),
      };
    }
  }

  /** Starts the caches; resolves when all are synced. */
  async start(): Promise<void> {
    for (const inf of [this.vs, this.rs, this.nodes, this.plans] as Array<Informer<KubeObject>>) {
      inf.on('add', slim);
      inf.on('update', slim);
    }
    this.vs.on('add', (o) => this.#vsEvent(o, undefined));
    this.vs.on('update', (o, old) => this.#vsEvent(o, old));
    this.vs.on('delete', (o) => this.#vsEvent(undefined, o));
    this.rs.on('add', (o) => this.#rsEvent(o, undefined));
    this.rs.on('update', (o, old) => this.#rsEvent(o, old));
    this.rs.on('delete', (o) => this.#rsEvent(undefined, o));
    this.nodes.on('add', () => this.trigger());
    this.nodes.on('update', (o, old) => {
      // Heartbeats (conditions, images) do not matter; labels, addresses and pod CIDRs (reserved for VIPs) do.
      if (!sameLabels(o.metadata?.labels, old.metadata?.labels) || JSON.stringify(o.status?.addresses) !== JSON.stringify(old.status?.addresses)
        || JSON.stringify(o.spec?.podCIDRs) !== JSON.stringify(old.spec?.podCIDRs)) this.trigger();
    });
    this.nodes.on('delete', () => this.trigger());
    this.plans.on('add', (o) => this.#planEvent(o, undefined));
    this.plans.on('update', (o, old) => this.#planEvent(o, old));
    this.plans.on('delete', (o) => this.#planEvent(undefined, o));
    // Pools, namespace labels and reserved addresses change admission decisions, which every pass recomputes.
    this.admission.onChange(() => this.trigger());
    await Promise.all([this.vs.start(), this.rs.start(), this.nodes.start(), this.plans.start(), this.admission.start()]);
  }

  /** Leadership gates writes; becoming leader runs a full pass at once. */
  setLeading(leading: boolean): void {
    this.#leading = leading;
    if (leading) {
      this.#dirty.full = true;
      this.trigger(0);
    }
  }

  /**
   * Schedules a pass. A change after a quiet spell goes at once (after the other events of the same read);
   * changes close behind a pass are batched for 30 ms, as a burst of them (an initial sync, a multi-object
   * apply) would otherwise cost a pass each.
   */
  trigger(delayMs?: number): void {
    this.#metrics?.pending.set(1);
    if (this.#timer) return;
    const wait = delayMs ?? (this.#running || performance.now() - this.#passEndedAt < 100 ? 30 : 0);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.reconcile();
    }, wait);
  }

  /** One pass; concurrent calls coalesce into one more pass afterwards. */
  async reconcile(): Promise<void> {
    if (!this.#leading) return;
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#metrics?.pending.set(0);
    const end = this.#metrics?.duration.startTimer();
    this.#running = this.#pass()
      .then(() => this.#metrics?.reconciles.inc({ result: 'ok' }))
      .catch((e: unknown) => {
        this.#metrics?.reconciles.inc({ result: 'error' });
        this.#o.log.error({ err: (e as Error).message }, 'controller pass failed');
        this.trigger(1000);
      })
      .finally(() => {
        end?.();
        this.#running = undefined;
        this.#passEndedAt = performance.now();
        if (this.#again) {
          this.#again = false;
          this.trigger(0);
        }
      });
    return this.#running;
  }

  get lastPlan(): Plan | undefined {
    return this.#planner.plan;
  }

  // --- what changed ----------------------------------------------------------------------------------------

  #vsEvent(o: VirtualService | undefined, old: VirtualService | undefined): void {
    const id = idOf((o ?? old)!);
    if (o?.metadata.deletionTimestamp && (o.metadata.finalizers ?? []).includes(FINALIZER)) this.#deleting.add(id);
    else this.#deleting.delete(id);
    this.#echoes.event(id, o && old ? o.metadata.resourceVersion : undefined, () => {
      const d = this.#dirty;
      // Any change not of our making is planned again: besides spec and deletion, VIP admission reads the
      // allocation back from status (one VirtualService's replan is cheap).
      d.planVs.add(id);
      if (o) {
        d.statusVs.add(id);
        d.finalizers.add(id);
      }
    });
    if (!o) this.#echoes.forget(id);
  }

  #rsEvent(o: RealServer | undefined, old: RealServer | undefined): void {
    const id = idOf((o ?? old)!);
    const planned = !o || !old || o.metadata.generation !== old.metadata.generation || o.metadata.deletionTimestamp !== old.metadata.deletionTimestamp
      || !sameLabels(o.metadata.labels, old.metadata.labels);
    this.#echoes.event(id, o && old ? o.metadata.resourceVersion : undefined, () => {
      const d = this.#dirty;
      if (planned) d.planRs.add(id);
      if (o) d.statusRs.add(id);
    });
    if (!o) this.#echoes.forget(id);
  }

  #planEvent(o: NodePlanObject | undefined, old: NodePlanObject | undefined): void {
    const cur = (o ?? old)!;
    const name = cur.metadata.name ?? '';
    const d = this.#dirty;
    // Realserver VIPs whose preparation flipped: their services are planned again (weight 0 until prepared).
    const wasPrepared = preparedKeys(old);
    const isPrepared = preparedKeys(o);
    for (const [k, service] of wasPrepared) {
      if (isPrepared.has(k)) continue;
      const n = (this.#prepared.get(k) ?? 1) - 1;
      if (n > 0) this.#prepared.set(k, n);
      else this.#prepared.delete(k);
      d.planVs.add(service);
    }
    for (const [k, service] of isPrepared) {
      if (wasPrepared.has(k)) continue;
      this.#prepared.set(k, (this.#prepared.get(k) ?? 0) + 1);
      d.planVs.add(service);
    }
    // Agent reports that changed: those services' statuses need a look.
    const before = new Map((old?.status?.services ?? []).map((r) => [r.id, r]));
    for (const r of o?.status?.services ?? []) {
      const b = before.get(r.id);
      before.delete(r.id);
      if (!b || !sameReport(b, r)) d.reports.add(r.id);
    }
    for (const id of before.keys()) d.reports.add(id);
    const rsBefore = new Map((old?.status?.realServer ?? []).map((r) => [`${r.service}|${r.vip}`, r]));
    for (const r of o?.status?.realServer ?? []) {
      const k = `${r.service}|${r.vip}`;
      const b = rsBefore.get(k);
      rsBefore.delete(k);
      if (!b || !sameReport(b, r)) d.reports.add(r.service);
    }
    for (const b of rsBefore.values()) d.reports.add(b.service);
    // A spec we did not write (or a deletion), and an emptied shard whose agent may have confirmed its teardown.
    const known = this.#shardSpecs.get(name);
    const ours = o && known && known.uid === o.metadata.uid && known.generation === o.metadata.generation;
    if (!ours || cur.spec.director.length + cur.spec.realServer.length === 0) d.shards.set(name, { node: cur.spec.node, shard: cur.spec.shard });
    this.trigger();
  }

  // --- the pass -------------------------------------------------------------------------------------------

  async #pass(): Promise<void> {
    const d = this.#dirty;
    this.#dirty = emptyDirty();
    try {
      await this.#passWith(d);
    } catch (e) {
      // Put back what this pass took, so the retry sees it.
      mergeDirty(this.#dirty, d);
      throw e;
    }
  }

  async #passWith(d: Dirty): Promise<void> {
    const log = this.#o.log;
    const t0 = performance.now();
    if (d.full) {
      this.#planner.reset();
      this.#echoes.clear();
    }
    const up = this.#planner.update(d.planVs, d.planRs);
    const p = up.plan;
    const full = up.full;
    this.#metrics?.passes.inc({ kind: full ? 'full' : 'incremental' });
    const conc = this.#o.writeConcurrency ?? 16;
    const tPlanned = performance.now();

    // Finalizers first, so no VirtualService can vanish before the directors dropped it.
    if (full) {
      this.#deleting.clear();
      for (const v of this.vs.list()) if (v.metadata.deletionTimestamp && (v.metadata.finalizers ?? []).includes(FINALIZER)) this.#deleting.add(idOf(v));
    }
    const needFinalizer = (full ? this.vs.list() : [...d.finalizers].map((k) => this.vs.getByKey(k)))
      .filter((v): v is VirtualService => !!v && !v.metadata.deletionTimestamp && !(v.metadata.finalizers ?? []).includes(FINALIZER));
    await pool(needFinalizer, conc, (v) => this.#addFinalizer(v));

    await this.#writeShards(p, full ? undefined : this.#dirtyShards(up.nodes, d.shards), conc);
    const tShards = performance.now();
    await this.#labelRealServerNodes(p);
    if ((this.#o.manageDaemonSets ?? true) && (full || Date.now() - this.#daemonSetsCheckedAt > 60_000)) {
      await this.#ensureDaemonSets();
      this.#daemonSetsCheckedAt = Date.now();
    }

    // Status and Events, for what may have changed.
    const reports = indexReports(this.plans.list());
    const now = new Date();
    let vsIds: Iterable<string> = this.vs.keys();
    let rsIds: Iterable<string> = this.rs.keys();
    if (!full) {
      const rs = new Set([...up.realServers, ...d.statusRs]);
      for (const id of d.reports) {
        const out = p.services.get(id);
        for (const x of out?.destinations ?? []) rs.add(x.realServer);
        for (const x of out?.skipped ?? []) rs.add(x.realServer);
      }
      vsIds = new Set([...up.services, ...d.statusVs, ...d.reports]);
      rsIds = rs;
    }
    await pool([...vsIds], conc, async (id) => {
      const v = this.vs.getByKey(id);
      if (!v || v.metadata.deletionTimestamp) return;
      const status = virtualServiceStatus(v, p, reports, now);
      if (sameJson(status, v.status ?? {})) return;
      for (const e of conditionEvents(v.status?.conditions, status.conditions ?? [])) this.#o.events?.event(v as never, e.type, e.reason, e.note);
      await this.#echoes.write(id, () => this.#write.patch(R.virtualservices, { name: v.metadata.name ?? '', namespace: v.metadata.namespace }, { status: statusPatch(v.status, status) }, 'status').catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      }));
      this.#metrics?.writes.inc({ kind: 'status' });
    });
    await pool([...rsIds], conc, async (id) => {
      const r = this.rs.getByKey(id);
      if (!r || r.metadata.deletionTimestamp) return;
      const status = realServerStatus(r, p, reports, now);
      if (sameJson(status, r.status ?? {})) return;
      await this.#echoes.write(id, () => this.#write.patch(R.realservers, { name: r.metadata.name ?? '', namespace: r.metadata.namespace }, { status }, 'status').catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      }));
      this.#metrics?.writes.inc({ kind: 'status' });
    });

    const tStatus = performance.now();
    const poolWrites = await writePoolStatuses(this.#objects, this.admission.pools.list(), p);
    if (poolWrites > 0) this.#metrics?.writes.inc({ kind: 'status' }, poolWrites);

    // Deleted VirtualServices: release them once no director still holds them.
    if (this.#deleting.size > 0) {
      const held = new Set<string>();
      for (const byService of reports.services.values()) for (const id of byService.keys()) held.add(id);
      for (const o of this.plans.list()) for (const s of o.spec.director) held.add(s.id);
      for (const id of [...this.#deleting]) {
        const v = this.vs.getByKey(id);
        if (!v) {
          this.#deleting.delete(id);
          continue;
        }
        if (held.has(id)) continue;
        await this.#objects.removeFinalizer(R.virtualservices, { name: v.metadata.name ?? '', namespace: v.metadata.namespace }, FINALIZER);
        log.info({ virtualService: id }, 'torn down on every director; finalizer removed');
      }
    }
    const ms = (a: number, b: number): number => Math.round(b - a);
    log.debug({
      full, services: up.services.size, realServers: up.realServers.size, reports: d.reports.size,
      planMs: ms(t0, tPlanned), shardsMs: ms(tPlanned, tShards), statusMs: ms(tShards, tStatus), totalMs: ms(t0, performance.now()),
    }, 'pass');
  }

  /** One merge patch carrying the resourceVersion we read (a conflict falls back to read-modify-write). */
  async #addFinalizer(v: VirtualService): Promise<void> {
    const key = { name: v.metadata.name ?? '', namespace: v.metadata.namespace };
    try {
      await this.#echoes.write(idOf(v), () => this.#write.patch(R.virtualservices, key, { metadata: { finalizers: [...(v.metadata.finalizers ?? []), FINALIZER], resourceVersion: v.metadata.resourceVersion } }));
    } catch (e) {
      if (isNotFound(e)) return;
      if (!isConflict(e)) throw e;
      await this.#objects.addFinalizer(R.virtualservices, key, FINALIZER);
    }
    this.#metrics?.writes.inc({ kind: 'finalizer' });
  }

  /** Shards holding the touched services on their nodes, plus those the watch flagged. */
  #dirtyShards(nodes: Map<string, Set<string>>, flagged: Map<string, { node: string; shard: number }>): Map<string, { node: string; shard: number }> {
    const out = new Map(flagged);
    for (const [node, ids] of nodes) {
      for (const id of ids) {
        const shard = shardOf(id);
        out.set(shardName(node, shard), { node, shard });
      }
    }
    return out;
  }

  /** The spec digest of a shard as the server holds it (remembered per uid and generation). */
  #serverSpec(have: NodePlanObject): string {
    const name = have.metadata.name ?? '';
    const known = this.#shardSpecs.get(name);
    if (known && known.uid === have.metadata.uid && known.generation === have.metadata.generation) return known.digest;
    const c = specDigest(have.spec);
    this.#shardSpecs.set(name, { uid: have.metadata.uid ?? '', generation: have.metadata.generation ?? 0, digest: c });
    return c;
  }

  #remember(written: NodePlanObject | undefined, digest: string): void {
    if (written?.metadata.name) this.#shardSpecs.set(written.metadata.name, { uid: written.metadata.uid ?? '', generation: written.metadata.generation ?? 0, digest });
  }

  /** Brings NodePlan shards in line with the plan: all of them (`only` undefined) or the named ones. */
  async #writeShards(p: Plan, only: Map<string, { node: string; shard: number }> | undefined, conc: number): Promise<void> {
    // Shards that gain entries are written before the rest (addsEntries), so an entry moving between shards
    // is never on none of them. (A shard that gains one moved entry and loses another would be written in the
    // same batch as the other side; going from 256 or 1,024 shards to 4,096 makes none: h % 4096 % 1024 =
    // h % 1024, so an entry leaves shard k only for shard k + 1024·m, and the old shards only lose entries.)
    const first: Array<() => Promise<void>> = [];
    const writes: Array<() => Promise<void>> = [];
    const liveNodes = new Set(this.nodes.keys());
    const consider = (name: string, want: NodePlanObject | undefined, have: NodePlanObject | undefined): void => {
      if (want) {
        const digest = specDigest(want.spec);
        if (!have) {
          (addsEntries(want.spec, undefined) ? first : writes).push(async () => {
            const written = await this.#write.create(R.nodeplans, want).catch((e: unknown) => {
              if (!isAlreadyExists(e)) throw e;
              return undefined;
            });
            this.#remember(written, digest);
          });
        } else if (this.#serverSpec(have) !== digest) {
          // Merge patch of the whole spec (lists are replaced): no resourceVersion, so an agent's status
          // write in between is no conflict. Only the leader writes specs.
          (addsEntries(want.spec, have.spec) ? first : writes).push(async () => this.#remember(await this.#write.patch<NodePlanObject>(R.nodeplans, { name }, { metadata: { labels: want.metadata.labels }, spec: want.spec }), digest));
        }
        return;
      }
      if (!have) return;
      // A shard still reporting work keeps existing (emptied) until its agent confirms the teardown,
      // so finalizers wait for the kernel; a shard of a node that is gone has no agent to wait for.
      const reporting = (have.status?.services?.length ?? 0) + (have.status?.realServer?.length ?? 0) > 0;
      if (reporting && liveNodes.has(have.spec.node)) {
        if (have.spec.director.length + have.spec.realServer.length > 0) {
          const spec: NodePlanSpec = { ...have.spec, director: [], realServer: [] };
          writes.push(async () => this.#remember(await this.#write.patch<NodePlanObject>(R.nodeplans, { name }, { spec: { director: [], realServer: [] } }), specDigest(spec)));
        }
        return;
      }
      writes.push(async () => {
        await this.#write.delete(R.nodeplans, { name });
        this.#shardSpecs.delete(name);
      });
    };
    if (!only) {
      const desired = new Map<string, NodePlanObject>();
      for (const np of p.nodes.values()) for (const o of shardPlan(np)) desired.set(o.metadata.name ?? '', o);
      const existing = new Map(this.plans.list().map((o) => [o.metadata.name ?? '', o]));
      for (const name of new Set([...desired.keys(), ...existing.keys()])) consider(name, desired.get(name), existing.get(name));
    } else {
      const byNode = new Map<string, NodePlanObject[]>();
      for (const [name, { node, shard }] of only) {
        let objs = byNode.get(node);
        if (!objs) {
          const np = p.nodes.get(node);
          objs = np ? shardPlan(np) : [];
          byNode.set(node, objs);
        }
        consider(name, objs.find((o) => o.spec.shard === shard && o.metadata.name === name), this.plans.get(name));
      }
    }
    for (const batch of [first, writes]) {
      await pool(batch, conc, async (w) => {
        await w();
        this.#metrics?.writes.inc({ kind: 'nodeplan' });
      });
    }
  }

  /**
   * Nodes hosting DR/Tunnel realservers get the label the realserver agent DaemonSet selects. A node keeps it
   * while its agent still reports realserver VIPs: removing it stops the agent pod, which must first unbind
   * the VIPs and restore the sysctls (it reports an empty list once it has).
   */
  async #labelRealServerNodes(p: Plan): Promise<void> {
    const want = new Set([...p.nodes.values()].filter((n) => n.realServer.length > 0).map((n) => n.node));
    for (const o of this.plans.list()) if ((o.status?.realServer?.length ?? 0) > 0) want.add(o.spec.node);
    for (const n of this.nodes.list()) {
      const name = n.metadata?.name ?? '';
      const has = n.metadata?.labels?.[REALSERVER_NODE_LABEL] === 'true';
      if (has === want.has(name)) continue;
      await this.#core.patchNode(
        { name, body: { metadata: { labels: { [REALSERVER_NODE_LABEL]: want.has(name) ? 'true' : null } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      this.#metrics?.writes.inc({ kind: 'node-label' });
    }
  }

  async #ensureDaemonSets(): Promise<void> {
    for (const role of ['director', 'realserver'] as const) {
      const want = agentDaemonSet(role, this.#o.namespace, this.#o.config.agent);
      const name = want.metadata?.name ?? '';
      let have: V1DaemonSet | undefined;
      try {
        have = await this.#apps.readNamespacedDaemonSet({ name, namespace: this.#o.namespace });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      // The spec we wrote rides along as an annotation: the server adds defaults, so compare ours with ours.
      const annotations = { 'lvs.operator.dev/spec': JSON.stringify(want.spec) };
      if (!have) {
        await this.#apps.createNamespacedDaemonSet({ namespace: this.#o.namespace, body: { ...want, metadata: { ...want.metadata, annotations } } });
        this.#metrics?.writes.inc({ kind: 'daemonset' });
      } else if (have.metadata?.annotations?.['lvs.operator.dev/spec'] !== annotations['lvs.operator.dev/spec']) {
        const body: V1DaemonSet = { ...want, metadata: { ...want.metadata, resourceVersion: have.metadata?.resourceVersion, annotations } };
        await this.#apps.replaceNamespacedDaemonSet({ name, namespace: this.#o.namespace, body });
        this.#metrics?.writes.inc({ kind: 'daemonset' });
      }
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#running;
    this.#write.close();
    await Promise.all([this.vs.stop(), this.rs.stop(), this.nodes.stop(), this.plans.stop(), this.admission.stop()]);
  }
}
