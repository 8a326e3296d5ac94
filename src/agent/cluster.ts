/**
 * Cluster mode: the agent watches only the NodePlan shards labelled with its node, runs their merged plan,
 * and reports back on each shard's status subresource. It never reads VirtualServices or RealServers, so
 * it needs no access to users' namespaces.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/v1alpha1/meta.ts';
import type { NodePlan as NodePlanObject, NodePlanStatus, ServiceReport as ApiServiceReport } from '../api/v1alpha1/nodeplan.ts';
import type { NodePlan, PlannedService } from '../model/plan.ts';
import { Informer } from '../kube/informer.ts';
import { Writer } from '../kube/writer.ts';
import { nodeLabelValue, NODE_LABEL, ShardMerger } from '../model/shards.ts';
import { mergeConditions } from '../model/conditions.ts';
import type { Logger } from '../util/log.ts';
import type { Agent, AgentRun } from './agent.ts';
import { admittedPlan, refusalOf } from './admission.ts';
import { deepEqual } from './plandelta.ts';

export const NODEPLANS = { group: GROUP, version: VERSION, plural: 'nodeplans' };
/**
 * Status writes of one report in flight at once. After a full run every shard is written: ~3,000 at 5,000
 * services, each a round trip of 0.1-0.2 s from the emulated lab VM.
 */
export const REPORT_WRITES_IN_FLIGHT = 32;

/** The status one shard should carry after `report` (pure; the Programmed condition included). */
export function shardStatus(obj: NodePlanObject, report: AgentRun, now: Date): NodePlanStatus {
  const byId = report.director.services;
  const services: ApiServiceReport[] = obj.spec.director.map((planned) => {
    const r = byId.get(planned.id);
    // The generation the agent actually applied: the shard may already carry a newer one.
    const out: ApiServiceReport = { id: planned.id, generation: r?.generation ?? 0, programmed: r?.ok ?? false, holdsVip: r?.holdsVip ?? false };
    if (r?.holdsVip && r.vipHeldSince !== undefined) out.vipHeldSince = new Date(r.vipHeldSince).toISOString();
    if (r && r.errors.length) out.errors = r.errors.slice(0, 16).map((e) => e.slice(0, 1024));
    const refused = refusalOf(planned);
    if (refused) out.errors = [refused];
    const unhealthy = planned.destinations.filter((d) => report.health.get(`${planned.id}|${d.address}|${d.port}`) === false);
    if (unhealthy.length) out.unhealthy = unhealthy.map((d) => ({ address: d.address, port: d.port }));
    return out;
  });
  const rsById = new Map(report.realServer.map((v) => [`${v.service}|${v.vip}`, v]));
  const realServer = obj.spec.realServer.map((planned) => {
    const r = rsById.get(`${planned.service}|${planned.vip}`);
    const refused = refusalOf(planned);
    if (refused) return { service: planned.service, vip: planned.vip, prepared: false, errors: [refused] };
    return { service: planned.service, vip: planned.vip, prepared: r?.ok ?? false, ...(r && r.errors.length ? { errors: r.errors.slice(0, 16) } : {}) };
  });
  const failed = services.filter((s) => !s.programmed).length + realServer.filter((v) => !v.prepared).length;
  const generation = obj.metadata.generation ?? 0;
  return {
    observedGeneration: generation,
    conditions: mergeConditions(obj.status?.conditions, [
      failed === 0
        ? { type: 'Programmed', status: 'True', reason: 'Programmed', message: `${services.length} service(s) and ${realServer.length} realserver VIP(s) applied on ${report.node}` }
        : { type: 'Programmed', status: 'False', reason: 'ProgrammingFailed', message: `${failed} entr${failed === 1 ? 'y' : 'ies'} failed on ${report.node}` },
    ], generation, now),
    services,
    realServer,
  };
}

/** Equal apart from condition timestamps: nothing worth a write. */
export function sameStatus(a: NodePlanStatus | undefined, b: NodePlanStatus): boolean {
  // A structural compare, not canonical JSON: after a full run every shard is compared, and serialising
  // 256 shards twice took 130–340 ms natively (seconds in the emulated lab VM), a change waiting meanwhile.
  if (!a) return false;
  const { conditions: ca, ...ra } = a;
  const { conditions: cb, ...rb } = b;
  const strip = (cs: NodePlanStatus['conditions']): unknown => cs?.map((c) => ({ ...c, lastTransitionTime: '' }));
  return deepEqual(ra, rb) && deepEqual(strip(ca), strip(cb));
}

export interface ClusterOptions {
  kc: KubeConfig;
  node: string;
  agent: Agent;
  log: Logger;
}

export class ClusterSource {
  readonly #o: ClusterOptions;
  readonly #informer: Informer<NodePlanObject>;
  /** Reports over keep-alive connections: a TLS handshake per report costs seconds in an emulated VM. */
  readonly #writer: Writer;
  #debounce: NodeJS.Timeout | undefined;
  /** When the first watch event the next merge takes came (performance.now()), for the debug log. */
  #eventAt: number | undefined;
  /** When the last merge ran (performance.now()). */
  #appliedAt = -Infinity;
  #writing = Promise.resolve();
  /** The node's plan from its shards, merged again only where a watch event changed them. */
  readonly #merger: ShardMerger;
  /** Plan entries refused for want of an admitting VIPPool (logged once each). */
  #refused = new Map<string, string>();
  /**
   * Shards whose spec changed since the last merge, from the watch events; undefined when a shard came or
   * went (or is being deleted): the next merge then lists them all. A change is merged, admitted and
   * reported from its own shards: passes over all ~3,000 shards and 5,000 services for each took 12–60 ms
   * (up to 240 ms) per change in the emulated lab VM, on the way from the watch event to the kernel.
   */
  #changed: Set<string> | undefined;
  /** The plan last handed to the agent. */
  #handed: NodePlan | undefined;
  /** Shards of this node whose status does not show their current generation yet (a report owes them one). */
  readonly #unreported = new Set<string>();

  constructor(o: ClusterOptions) {
    this.#o = o;
    this.#informer = new Informer<NodePlanObject>(o.kc, {
      resource: NODEPLANS,
      labelSelector: `${NODE_LABEL}=${nodeLabelValue(o.node)}`,
      name: 'nodeplans',
      logger: o.log,
    });
    this.#writer = new Writer(o.kc, `lvs-agent/${o.node}`);
    this.#merger = new ShardMerger(o.node);
  }

  get informer(): Informer<NodePlanObject> {
    return this.#informer;
  }

  /** Resolves once the node's shards are listed: only then is an empty plan really empty. */
  async start(): Promise<void> {
    // A change alone is merged at once (the events of one read come in one turn of the event loop); changes
    // that follow a merge within 50 ms (the controller writing many shards) are taken together after 20 ms.
    // A trailing debounce held every change 20 ms, and a steady stream of them for as long as it lasted.
    const schedule = (): void => {
      this.#eventAt ??= performance.now();
      if (this.#debounce) return;
      const wait = performance.now() - this.#appliedAt < 50 ? 20 : 0;
      this.#debounce = setTimeout(() => {
        this.#debounce = undefined;
        this.#apply();
      }, wait);
    };
    // The agent's own status writes come back through the watch, one per shard it reports: they change no
    // spec (same uid and generation), so they schedule nothing. Looking at every shard once per echo made the
    // first report after a full run quadratic in the number of shards (~3,000 echoes at 5,000 services).
    // So every merge has a spec change to take, and is not guarded by a signature of all shards: rebuilding
    // and sorting one at every merge cost 5 ms natively at 3,000 shards and up to 300 ms in the emulated lab
    // VM, for every single change.
    const track = (o: NodePlanObject): void => {
      const name = o.metadata.name ?? '';
      if (o.status?.observedGeneration === (o.metadata.generation ?? 0)) this.#unreported.delete(name);
      else this.#unreported.add(name);
    };
    this.#informer.on('add', (o) => {
      track(o);
      this.#changed = undefined;
      schedule();
    });
    this.#informer.on('delete', (o) => {
      this.#unreported.delete(o.metadata.name ?? '');
      this.#changed = undefined;
      schedule();
    });
    this.#informer.on('update', (o, prev) => {
      track(o);
      if (o.metadata.uid !== prev.metadata.uid || o.metadata.deletionTimestamp !== prev.metadata.deletionTimestamp) this.#changed = undefined;
      else if (o.metadata.generation !== prev.metadata.generation) this.#changed?.add(o.metadata.name ?? '');
      else return;
      schedule();
    });
    await this.#informer.start();
    // The first merge, even of no shard at all, takes the list's events too.
    clearTimeout(this.#debounce);
    this.#debounce = undefined;
    this.#apply();
  }

  #apply(): void {
    const started = performance.now();
    const eventAt = this.#eventAt;
    this.#eventAt = undefined;
    this.#appliedAt = started;
    const changedNames = this.#changed;
    this.#changed = new Set();
    const live = (): NodePlanObject[] => this.#informer.list().filter((o) => !o.metadata.deletionTimestamp);
    let plan: NodePlan;
    let refused: Map<string, string>;
    let swapped: { base: NodePlan; director: readonly PlannedService[] } | undefined;
    if (changedNames) {
      const changed = [...changedNames].flatMap((name) => this.#informer.get(name) ?? []);
      const merged = this.#merger.mergeChanged(changed, live);
      // Entries swapped in place into a plan without refusals (so the agent has that very plan): only theirs
      // can be refused, and only they differ for the agent.
      const admitted = this.#merger.lastInPlace && this.#refused.size === 0 && changed.every((o) => o.spec.director.every((e) => !refusalOf(e)) && o.spec.realServer.every((e) => !refusalOf(e)));
      ({ plan, refused } = admitted ? { plan: merged, refused: this.#refused } : admittedPlan(merged));
      if (admitted && this.#handed) swapped = { base: this.#handed, director: this.#merger.lastSwapped };
    } else {
      ({ plan, refused } = admittedPlan(this.#merger.merge(live())));
    }
    for (const [entry, why] of refused) if (!this.#refused.has(entry)) this.#o.log.warn({ entry }, why);
    this.#refused = refused;
    this.#handed = plan;
    this.#o.agent.setPlan(plan, swapped);
    // From the watch event to the plan handed over: what a change waits for before its run (in the lab VM's
    // emulation a pass over thousands of shards is not free).
    if (this.#o.log.isLevelEnabled('debug')) {
      this.#o.log.debug({ shards: changedNames ? changedNames.size : 'all', inPlace: this.#merger.lastInPlace, waitedMs: eventAt === undefined ? undefined : Math.round(started - eventAt), ms: Math.round(performance.now() - started) }, 'plan merged');
    }
  }

  /**
   * Writes the report into every shard whose status it changes. Reports are serialised (one report's writes
   * all end before the next report's begin), a report's writes to different shards go up to
   * REPORT_WRITES_IN_FLIGHT at a time: after the first full run every shard is written, and one after the
   * other ~1,000 round trips from an emulated VM took two minutes. After a change-driven run only the shards
   * holding a changed service, and shards not yet reported at their current generation, are looked at; a
   * full run looks at all of them.
   */
  report(report: AgentRun): void {
    const all = report.full || report.realServerChanged;
    const touched = new Set<string>();
    if (!all) {
      for (const id of report.director.changed) touched.add(this.#merger.shardOf(id) ?? '');
      for (const h of report.healthChanged) touched.add(this.#merger.shardOf(h.slice(0, h.indexOf('|'))) ?? '');
    }
    this.#writing = this.#writing.then(async () => {
      let looked = 0;
      const inFlight = new Set<Promise<void>>();
      // After a change-driven run, the shards it touched and those owed a report, found without a pass over all.
      const objects = all ? this.#informer.list() : [...new Set([...touched, ...this.#unreported])].flatMap((name) => this.#informer.get(name) ?? []);
      for (const obj of objects) {
        if (obj.spec.node !== this.#o.node) continue;
        // After a full run every shard is compared (up to SHARDS): in slices, so that a plan change arriving
        // meanwhile is not held up by the whole comparison (a second or more on a slow node).
        if (++looked % 16 === 0) await new Promise((r) => setImmediate(r));
        const current = obj.status?.observedGeneration === (obj.metadata.generation ?? 0);
        if (!all && current && !touched.has(obj.metadata.name ?? '')) continue;
        const status = shardStatus(obj, report, new Date());
        if (sameStatus(obj.status, status)) continue;
        if (inFlight.size >= REPORT_WRITES_IN_FLIGHT) await Promise.race(inFlight);
        const write: Promise<void> = this.#writer.patchUnread(NODEPLANS, { name: obj.metadata.name ?? '' }, { status }, 'status').catch((e: unknown) => {
          this.#o.log.warn({ nodeplan: obj.metadata.name, err: (e as Error).message }, 'writing NodePlan status failed');
        }).finally(() => inFlight.delete(write));
        inFlight.add(write);
      }
      await Promise.all(inFlight);
    });
  }

  async stop(): Promise<void> {
    clearTimeout(this.#debounce);
    await this.#informer.stop();
    await this.#writing;
    this.#writer.close();
  }
}
