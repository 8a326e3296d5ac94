/**
 * The CLI's reads from a cluster: paginated lists of our kinds and Nodes, and the agents' /metrics through
 * the API server's pod proxy. Read-only; every call has a timeout.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/v1alpha1/meta.ts';
import type { VirtualService } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer } from '../api/v1alpha1/realserver.ts';
import type { NodePlan } from '../api/v1alpha1/nodeplan.ts';
import type { VIPPool } from '../api/v1alpha1/vippool.ts';
import { describeError, isForbidden, isNotFound } from '../kube/errors.ts';
import { requestOptions } from '../kube/request.ts';
import type { NodeInfo } from '../model/planner.ts';
import { nodeLabelValue, NODE_LABEL } from '../model/shards.ts';
import { parseConnections, type ConnectionTable } from './status.ts';

const TIMEOUT_MS = 30_000;
const PAGE = 500;

interface ListPage<T> {
  items?: T[];
  metadata?: { continue?: string };
}

export class ClusterReader {
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.#custom = kc.makeApiClient(CustomObjectsApi);
    this.#core = kc.makeApiClient(CoreV1Api);
  }

  async #list<T>(plural: string, opts: { namespace?: string; labelSelector?: string }): Promise<T[]> {
    const out: T[] = [];
    let cont: string | undefined;
    do {
      const base = { group: GROUP, version: VERSION, plural, limit: PAGE, ...(cont ? { _continue: cont } : {}), ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}) };
      const page = (opts.namespace
        ? await this.#custom.listNamespacedCustomObject({ ...base, namespace: opts.namespace }, requestOptions({ timeoutMs: TIMEOUT_MS }))
        : plural === 'nodeplans' || plural === 'vippools'
          ? await this.#custom.listClusterCustomObject(base, requestOptions({ timeoutMs: TIMEOUT_MS }))
          : await this.#custom.listCustomObjectForAllNamespaces({ ...base, resourcePlural: plural }, requestOptions({ timeoutMs: TIMEOUT_MS }))) as ListPage<T>;
      out.push(...(page.items ?? []));
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return out;
  }

  /** VirtualServices of one namespace, or of all when `namespace` is undefined. */
  virtualServices(namespace?: string): Promise<VirtualService[]> {
    return this.#list<VirtualService>('virtualservices', namespace ? { namespace } : {});
  }

  realServers(namespace?: string): Promise<RealServer[]> {
    return this.#list<RealServer>('realservers', namespace ? { namespace } : {});
  }

  /** Every NodePlan, or one node's; undefined when the caller may not read them (they are internal). */
  async nodePlans(node?: string): Promise<NodePlan[] | undefined> {
    try {
      const list = await this.#list<NodePlan>('nodeplans', node ? { labelSelector: `${NODE_LABEL}=${nodeLabelValue(node)}` } : {});
      return node ? list.filter((p) => p.spec.node === node) : list;
    } catch (e) {
      if (isForbidden(e)) return undefined;
      throw e;
    }
  }

  /** Every VIPPool; undefined when the caller may not read them (cluster-scoped, an admin's). */
  async vipPools(): Promise<VIPPool[] | undefined> {
    try {
      return await this.#list<VIPPool>('vippools', {});
    } catch (e) {
      if (isForbidden(e)) return undefined;
      throw e;
    }
  }

  async nodes(): Promise<NodeInfo[]> {
    const out: NodeInfo[] = [];
    let cont: string | undefined;
    do {
      const page = await this.#core.listNode({ limit: PAGE, ...(cont ? { _continue: cont } : {}) }, requestOptions({ timeoutMs: TIMEOUT_MS }));
      for (const n of page.items) {
        out.push({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {}, addresses: (n.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })) });
      }
      cont = page.metadata?._continue || undefined;
    } while (cont);
    return out;
  }

  /**
   * Active/inactive connections as the agents on `nodes` export them, read through the API server's pod
   * proxy (needs pods list and pods/proxy get). Returns what it could read and why the rest failed.
   */
  async connections(nodes: readonly string[], timeoutMs = 5000): Promise<{ table: ConnectionTable; problems: string[] }> {
    const table: ConnectionTable = new Map();
    const problems: string[] = [];
    if (nodes.length === 0) return { table, problems };
    let pods: V1Pod[];
    try {
      pods = (await this.#core.listPodForAllNamespaces({ labelSelector: 'app.kubernetes.io/name=lvs-agent,app.kubernetes.io/component=director' }, requestOptions({ timeoutMs: TIMEOUT_MS }))).items;
    } catch (e) {
      return { table, problems: [`cannot list the agent pods: ${describeError(e)}`] };
    }
    await Promise.all(nodes.map(async (node) => {
      const pod = pods.find((p) => p.spec?.nodeName === node && p.status?.phase === 'Running');
      const port = pod?.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === 'metrics')?.containerPort;
      if (!pod || !port) {
        problems.push(`${node}: no running agent pod with a metrics port`);
        return;
      }
      try {
        const text = await this.#core.connectGetNamespacedPodProxyWithPath(
          { name: `${pod.metadata?.name ?? ''}:${port}`, namespace: pod.metadata?.namespace ?? '', path: 'metrics' },
          requestOptions({ timeoutMs }),
        );
        parseConnections(node, String(text), table);
      } catch (e) {
        problems.push(`${node}: ${isNotFound(e) ? 'agent pod not found' : describeError(e)}`);
      }
    }));
    return { table, problems };
  }
}
