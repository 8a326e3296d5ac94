/**
 * What VIP admission needs from the cluster, cached: VIPPools, Namespaces (their labels), and the API
 * server's own addresses (the `kubernetes` Service in `default` and its EndpointSlice, the host of the
 * controller's kubeconfig when it is an address), plus the reserved ranges of the controller's config.
 * Turns them into the planner's AdmissionInput, and the plan's pool usage into VIPPool status writes.
 */
import type { KubeConfig, V1EndpointSlice, V1Namespace, V1Service } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/v1alpha1/meta.ts';
import type { VIPPool } from '../api/v1alpha1/vippool.ts';
import { isIP } from '../api/ip.ts';
import { Informer } from '../kube/informer.ts';
import { isNotFound, type CustomObjects } from '../kube/status.ts';
import type { Plan } from '../model/planner.ts';
import type { AdmissionInput, ReservedRange } from '../model/pools.ts';
import type { Logger } from '../util/log.ts';
import { sameJson } from '../util/canonical.ts';
import type { ReservedConfig } from './config.ts';
import { statusPatch, vipPoolStatus } from './status.ts';

export const VIPPOOLS = { group: GROUP, version: VERSION, plural: 'vippools' };
/** The Service (and EndpointSlice) through which the API server is reached in-cluster. */
const API_SERVICE = { namespace: 'default', name: 'kubernetes' };

/** The host of an API server URL when it is an IP literal (https://[2001:db8::1]:6443 → 2001:db8::1). */
export function serverAddress(server: string | undefined): string | undefined {
  if (!server) return undefined;
  try {
    const host = new URL(server).hostname.replace(/^\[(.*)\]$/, '$1');
    return isIP(host) ? host : undefined;
  } catch {
    return undefined;
  }
}

/** The reserved ranges of the config and of the API server's objects, pure. */
export function reservedRanges(config: ReservedConfig, api: { services: V1Service[]; slices: V1EndpointSlice[]; server?: string }): ReservedRange[] {
  const out: ReservedRange[] = [];
  for (const c of config.serviceCIDRs) out.push({ range: c, what: `the service CIDR ${c}` });
  for (const c of config.podCIDRs) out.push({ range: c, what: `the pod CIDR ${c}` });
  for (const a of config.addresses) out.push({ range: a, what: `reserved by the operator's configuration (${a})` });
  for (const s of api.services) {
    for (const ip of s.spec?.clusterIPs ?? (s.spec?.clusterIP ? [s.spec.clusterIP] : [])) {
      if (isIP(ip)) out.push({ range: ip, what: "the API server's Service address" });
    }
  }
  for (const slice of api.slices) {
    for (const e of slice.endpoints ?? []) for (const a of e.addresses ?? []) if (isIP(a)) out.push({ range: a, what: 'an API server endpoint' });
  }
  const host = serverAddress(api.server);
  if (host) out.push({ range: host, what: "the API server's address" });
  return out;
}

export interface AdmissionSourcesOptions {
  kc: KubeConfig;
  log: Logger;
  reserved: ReservedConfig;
}

export class AdmissionSources {
  readonly pools: Informer<VIPPool>;
  readonly namespaces: Informer<V1Namespace>;
  readonly apiService: Informer<V1Service>;
  readonly apiSlices: Informer<V1EndpointSlice>;
  readonly #o: AdmissionSourcesOptions;

  constructor(o: AdmissionSourcesOptions) {
    this.#o = o;
    const logger = o.log;
    const named = `metadata.name=${API_SERVICE.name}`;
    this.pools = new Informer<VIPPool>(o.kc, { resource: VIPPOOLS, name: 'vippools', logger });
    this.namespaces = new Informer<V1Namespace>(o.kc, { resource: { group: '', version: 'v1', plural: 'namespaces' }, name: 'namespaces', logger });
    this.apiService = new Informer<V1Service>(o.kc, { resource: { group: '', version: 'v1', plural: 'services', namespace: API_SERVICE.namespace }, fieldSelector: named, name: 'apiserver-service', logger });
    this.apiSlices = new Informer<V1EndpointSlice>(o.kc, { resource: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespace: API_SERVICE.namespace }, fieldSelector: named, name: 'apiserver-endpointslices', logger });
  }

  /** Calls `cb` on every change of any of the caches. */
  onChange(cb: () => void): void {
    for (const inf of [this.pools, this.namespaces, this.apiService, this.apiSlices] as Array<{ onChange(cb: () => void): unknown }>) inf.onChange(cb);
  }

  async start(): Promise<void> {
    await Promise.all([this.pools.start(), this.namespaces.start(), this.apiService.start(), this.apiSlices.start()]);
  }

  hasSynced(): boolean {
    return this.pools.hasSynced() && this.namespaces.hasSynced() && this.apiService.hasSynced() && this.apiSlices.hasSynced();
  }

  async stop(): Promise<void> {
    await Promise.all([this.pools.stop(), this.namespaces.stop(), this.apiService.stop(), this.apiSlices.stop()]);
  }

  /** The planner's admission input from the caches as they are now. */
  input(): AdmissionInput {
    return {
      pools: this.pools.list(),
      namespaces: this.namespaces.list().map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} })),
      reserved: reservedRanges(this.#o.reserved, { services: this.apiService.list(), slices: this.apiSlices.list(), server: this.#o.kc.getCurrentCluster()?.server }),
    };
  }
}

/** Writes each VIPPool's usage where it changed; returns the number of writes. */
export async function writePoolStatuses(objects: CustomObjects, pools: VIPPool[], plan: Plan): Promise<number> {
  let writes = 0;
  for (const p of pools) {
    if (p.metadata.deletionTimestamp) continue;
    const status = vipPoolStatus(p, plan.pools?.get(p.metadata.name ?? ''));
    if (sameJson(status, p.status ?? {})) continue;
    await objects.patchStatus(VIPPOOLS, { name: p.metadata.name ?? '' }, statusPatch(p.status, status)).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
    writes++;
  }
  return writes;
}
