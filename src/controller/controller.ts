/**
 * The controller: watches VirtualServices, RealServers, Nodes and NodePlans, and on every change runs one
 * level-based pass: plan (pure) → NodePlan shards → node labels and agent DaemonSets → statuses and
 * Events. Only the elected leader writes; standbys keep their caches warm for a fast takeover.
 */
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1DaemonSet, type V1Node } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { GROUP, VERSION } from '../api/v1alpha1/meta.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import type { NodePlan as NodePlanObject } from '../api/v1alpha1/nodeplan.ts';
import { Informer } from '../kube/informer.ts';
import { CustomObjects, isNotFound, isAlreadyExists } from '../kube/status.ts';
import type { EventRecorder } from '../kube/events.ts';
import { plan, idOf, type NodeInfo, type Plan } from '../model/planner.ts';
import { shardPlan } from '../model/shards.ts';
import { transitions } from '../model/conditions.ts';
import type { Logger } from '../util/log.ts';
import { canonicalJson, sameJson } from '../util/canonical.ts';
import { indexReports, realServerStatus, statusPatch, virtualServiceStatus } from './status.ts';
import { AdmissionSources, writePoolStatuses } from './vippools.ts';
import { REALSERVER_NODE_LABEL, type ControllerConfig } from './config.ts';
import { agentDaemonSet } from './daemonsets.ts';

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

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

const specOf = (o: NodePlanObject): string => canonicalJson(o.spec);

export class Controller {
  readonly #o: ControllerOptions;
  readonly vs: Informer<VirtualService>;
  readonly rs: Informer<RealServer>;
  readonly nodes: Informer<V1Node>;
  readonly plans: Informer<NodePlanObject>;
  /** VIPPools, namespaces and the API server's addresses, for VIP admission. */
  readonly admission: AdmissionSources;
  readonly #objects: CustomObjects;
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #leading = false;
  #lastPlan: Plan | undefined;
  readonly #metrics: { reconciles: Counter<'result'>; duration: Histogram; pending: Gauge; writes: Counter<'kind'> } | undefined;

  constructor(o: ControllerOptions) {
    this.#o = o;
    const log = o.log;
    this.vs = new Informer<VirtualService>(o.kc, { resource: R.virtualservices, name: 'virtualservices', logger: log });
    this.rs = new Informer<RealServer>(o.kc, { resource: R.realservers, name: 'realservers', logger: log });
    this.nodes = new Informer<V1Node>(o.kc, { resource: { group: '', version: 'v1', plural: 'nodes' }, name: 'nodes', logger: log });
    this.plans = new Informer<NodePlanObject>(o.kc, { resource: R.nodeplans, name: 'nodeplans', logger: log });
    this.admission = new AdmissionSources({ kc: o.kc, log, reserved: o.config.reserved });
    this.#objects = new CustomObjects(o.kc, { fieldManager: 'lvs-controller', logger: log });
    this.#core = o.kc.makeApiClient(CoreV1Api);
    this.#apps = o.kc.makeApiClient(AppsV1Api);
    if (o.registry) {
      const registers = [o.registry];
      this.#metrics = {
        reconciles: new Counter({ name: 'lvs_controller_reconciles_total', help: 'Controller passes by result.', labelNames: ['result'], registers }),
        duration: new Histogram({ name: 'lvs_controller_reconcile_duration_seconds', help: 'Duration of one controller pass.', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers }),
        pending: new Gauge({ name: 'lvs_controller_queue_depth', help: 'Changes waiting for the next pass (0 or 1: passes are level-based and coalesce).', registers }),
        writes: new Counter({ name: 'lvs_controller_writes_total', help: 'API writes by kind.', labelNames: ['kind'], registers }),
      };
    }
  }

  /** Starts the caches; resolves when all are synced. */
  async start(): Promise<void> {
    for (const inf of [this.vs, this.rs, this.nodes, this.plans] as unknown as Array<Informer<VirtualService>>) inf.onChange(() => this.trigger());
    this.admission.onChange(() => this.trigger());
    await Promise.all([this.vs.start(), this.rs.start(), this.nodes.start(), this.plans.start(), this.admission.start()]);
  }

  /** Leadership gates writes; becoming leader runs a pass at once. */
  setLeading(leading: boolean): void {
    this.#leading = leading;
    if (leading) this.trigger(0);
  }

  trigger(delayMs = 30): void {
    this.#metrics?.pending.set(1);
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.reconcile();
    }, delayMs);
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
        if (this.#again) {
          this.#again = false;
          this.trigger(0);
        }
      });
    return this.#running;
  }

  get lastPlan(): Plan | undefined {
    return this.#lastPlan;
  }

  async #pass(): Promise<void> {
    const log = this.#o.log;
    const cfg = this.#o.config;
    const virtualServices = this.vs.list();
    const realServers = this.rs.list();
    const nodes = this.nodes.list().map(nodeInfo);
    const p = plan({ virtualServices, realServers, nodes, defaultDirectorSelector: cfg.defaultDirectorSelector, admission: this.admission.input() });
    this.#lastPlan = p;
    const conc = this.#o.writeConcurrency ?? 16;

    // Finalizers first, so no VirtualService can vanish before the directors dropped it.
    await pool(virtualServices.filter((v) => !v.metadata.deletionTimestamp && !(v.metadata.finalizers ?? []).includes(FINALIZER)), conc, async (v) => {
      await this.#objects.addFinalizer(R.virtualservices, { name: v.metadata.name ?? '', namespace: v.metadata.namespace }, FINALIZER);
      this.#metrics?.writes.inc({ kind: 'finalizer' });
    });

    // NodePlan shards.
    const desired = new Map<string, NodePlanObject>();
    for (const np of p.nodes.values()) for (const o of shardPlan(np)) desired.set(o.metadata.name ?? '', o);
    const existing = new Map(this.plans.list().map((o) => [o.metadata.name ?? '', o]));
    const writes: Array<() => Promise<void>> = [];
    log.debug({ services: p.services.size, nodes: p.nodes.size, shards: desired.size }, 'planned');
    for (const [name, want] of desired) {
      const have = existing.get(name);
      if (!have) writes.push(async () => void (await this.#objects.create(R.nodeplans, want).catch((e: unknown) => { if (!isAlreadyExists(e)) throw e; })));
      else if (specOf(have) !== specOf(want)) {
        writes.push(async () => void (await this.#objects.replace(R.nodeplans, { ...want, metadata: { ...want.metadata, resourceVersion: have.metadata.resourceVersion } })));
      }
    }
    const liveNodes = new Set(nodes.map((n) => n.name));
    for (const [name, have] of existing) {
      if (desired.has(name)) continue;
      // A shard still reporting work keeps existing (emptied) until its agent confirms the teardown,
      // so finalizers wait for the kernel; a shard of a node that is gone has no agent to wait for.
      const reporting = (have.status?.services?.length ?? 0) + (have.status?.realServer?.length ?? 0) > 0;
      if (reporting && liveNodes.has(have.spec.node)) {
        if (have.spec.director.length + have.spec.realServer.length > 0) {
          const emptied = { ...have, spec: { ...have.spec, director: [], realServer: [] } };
          writes.push(async () => void (await this.#objects.replace(R.nodeplans, emptied)));
        }
        continue;
      }
      writes.push(async () => void (await this.#objects.delete(R.nodeplans, { name })));
    }
    await pool(writes, conc, async (w) => {
      await w();
      this.#metrics?.writes.inc({ kind: 'nodeplan' });
    });

    await this.#labelRealServerNodes(p);
    if (this.#o.manageDaemonSets ?? true) await this.#ensureDaemonSets();

    // Status and Events.
    const reports = indexReports(this.plans.list());
    const now = new Date();
    await pool(virtualServices.filter((v) => !v.metadata.deletionTimestamp), conc, async (v) => {
      const status = virtualServiceStatus(v, p, reports, now);
      if (sameJson(status, v.status ?? {})) return;
      for (const c of transitions(v.status?.conditions, status.conditions ?? [])) {
        this.#o.events?.event(v as never, c.status === 'False' && c.type !== 'Ready' ? 'Warning' : 'Normal', `${c.type}${c.status === 'True' ? '' : c.status}`, c.message);
      }
      await this.#objects.patchStatus(R.virtualservices, { name: v.metadata.name ?? '', namespace: v.metadata.namespace }, statusPatch(v.status, status)).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
      this.#metrics?.writes.inc({ kind: 'status' });
    });
    await pool(realServers.filter((r) => !r.metadata.deletionTimestamp), conc, async (r) => {
      const status = realServerStatus(r, p, reports, now);
      if (sameJson(status, r.status ?? {})) return;
      await this.#objects.patchStatus(R.realservers, { name: r.metadata.name ?? '', namespace: r.metadata.namespace }, status).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
      this.#metrics?.writes.inc({ kind: 'status' });
    });

    const poolWrites = await writePoolStatuses(this.#objects, this.admission.pools.list(), p);
    if (poolWrites > 0) this.#metrics?.writes.inc({ kind: 'status' }, poolWrites);

    // Deleted VirtualServices: release them once no director still holds them.
    const held = new Set<string>();
    for (const byService of reports.services.values()) for (const id of byService.keys()) held.add(id);
    for (const o of this.plans.list()) for (const s of o.spec.director) held.add(s.id);
    for (const v of virtualServices.filter((x) => x.metadata.deletionTimestamp && (x.metadata.finalizers ?? []).includes(FINALIZER))) {
      if (held.has(idOf(v))) continue;
      await this.#objects.removeFinalizer(R.virtualservices, { name: v.metadata.name ?? '', namespace: v.metadata.namespace }, FINALIZER);
      log.info({ virtualService: idOf(v) }, 'torn down on every director; finalizer removed');
    }
  }

  /** Nodes hosting DR/Tunnel realservers get the label the realserver agent DaemonSet selects. */
  async #labelRealServerNodes(p: Plan): Promise<void> {
    const want = new Set([...p.nodes.values()].filter((n) => n.realServer.length > 0).map((n) => n.node));
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
    await Promise.all([this.vs.stop(), this.rs.stop(), this.nodes.stop(), this.plans.stop(), this.admission.stop()]);
  }
}
