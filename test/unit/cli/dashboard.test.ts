// The Grafana dashboard shipped in the chart: every query parses as PromQL and names only metrics that the
// agent or the controller export — taken from their real registries, not from a list — and the chart
// renders it as a sidecar ConfigMap only when asked to.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createLvsMetrics } from '../../../src/agent/metrics/registry.ts';
import { Controller } from '../../../src/controller/controller.ts';
import { defaultConfig } from '../../../src/controller/config.ts';
import { createLogger } from '../../../src/util/log.ts';
import { helm } from '../chart/helm.ts';
import { parseAllDocuments } from 'yaml';
import { promqlMetrics } from './promql.ts';
import { ROOT } from './fixtures.ts';

const DASHBOARD = join(ROOT, 'charts', 'lvs-operator', 'dashboards', 'lvs-operator.json');

interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const panels = (list: Panel[]): Panel[] => list.flatMap((p) => [p, ...panels(p.panels ?? [])]);
const queries: Array<{ where: string; expr: string }> = [
  ...panels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
  // label_values(<selector>, label) is Grafana's, the selector inside is PromQL.
  ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => {
    const q = typeof v.query === 'string' ? v.query : v.query?.query ?? '';
    const m = /^label_values\((.*),\s*([a-zA-Z_]\w*)\)$/.exec(q);
    if (!m) throw new Error(`variable ${v.name}: unexpected query ${q}`);
    return { where: `variable $${v.name}`, expr: m[1] as string };
  }),
];

/** The series names a registry exposes (histograms as _bucket/_sum/_count), read from the registry itself. */
async function exported(registry: Registry): Promise<Set<string>> {
  const out = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    const { name, type } = m as unknown as { name: string; type: string };
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) out.add(name + s);
    else out.add(name);
  }
  return out;
}

async function exportedMetrics(): Promise<{ agent: Set<string>; controller: Set<string> }> {
  // The agent's registry exactly as lvs-agent builds it (the IPVS reader is never called for the names).
  const agent = createLvsMetrics({ readSnapshot: async () => [], log: createLogger('test', 'silent') });
  // The controller registers its metrics in its constructor; main.ts adds the process metrics.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  new Controller({ kc, namespace: 'lvs-system', config: defaultConfig(), log: createLogger('test', 'silent'), registry });
  return { agent: await exported(agent.registry), controller: await exported(registry) };
}

describe('Grafana dashboard', () => {
  it('has queries for connections, traffic, health and failovers', () => {
    const titles = panels(dashboard.panels).map((p) => p.title);
    expect(titles).toEqual(expect.arrayContaining(['Connections', 'Traffic', 'Health and failovers', 'Realserver failovers', 'Active connections per realserver']));
    expect(queries.length).toBeGreaterThan(20);
  });

  it('every query is valid PromQL that names only metrics the agent or the controller export', async () => {
    const { agent, controller } = await exportedMetrics();
    // The registries are real: the sets hold what the code registers, not a copy of the dashboard.
    expect(agent).toContain('lvs_backend_connections_active');
    expect(controller).toContain('lvs_controller_writes_total');
    const unknown: string[] = [];
    const used = new Set<string>();
    for (const q of queries) {
      let metrics: string[];
      try {
        metrics = promqlMetrics(q.expr).metrics;
      } catch (e) {
        throw new Error(`${q.where}: ${(e as Error).message}\n  ${q.expr}`);
      }
      expect(metrics.length).toBeGreaterThan(0);
      for (const m of metrics) {
        used.add(m);
        if (!agent.has(m) && !controller.has(m)) unknown.push(`${q.where}: ${m}`);
      }
    }
    expect(unknown).toEqual([]);
    // Both components are on the dashboard.
    expect([...used].some((m) => controller.has(m) && !agent.has(m))).toBe(true);
    expect([...used].filter((m) => m.startsWith('lvs_backend_') || m.startsWith('lvs_service_')).length).toBeGreaterThan(8);
  });

  it('the PromQL check rejects broken queries and unknown names', () => {
    expect(() => promqlMetrics('sum(rate(lvs_service_connections_total[5m])')).toThrow(/expected/);
    expect(() => promqlMetrics('rate(lvs_service_connections_total)')).toThrow(/range vector/);
    expect(() => promqlMetrics('sum by (a (x)')).toThrow();
    expect(() => promqlMetrics('frobnicate(x)')).toThrow(/unknown function/);
    expect(() => promqlMetrics('x{a=~"("}')).toThrow(/regular expression/);
    expect(() => promqlMetrics('$node')).toThrow(/template variable/);
    expect(promqlMetrics('histogram_quantile(0.99, sum by (le) (rate(a_bucket{node=~"$node"}[$__rate_interval]))) / on(x) group_left b or vector(0)').metrics).toEqual(['a_bucket', 'b']);
    expect(() => promqlMetrics('c{__name__="d"}')).toThrow(/metric name given twice/);
    expect(promqlMetrics('-sum({__name__="d", a!="b"}) * 8').metrics).toEqual(['d']);
  });

  it('the chart ships it as a ConfigMap for the Grafana sidecar only when enabled', () => {
    const render = (args: string[]) => {
      const r = helm(['template', 'lvs-operator', join(ROOT, 'charts', 'lvs-operator'), '--namespace', 'lvs-system', ...args]);
      if (r.code !== 0) throw new Error(r.stderr);
      return parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> }; data?: Record<string, string> }).filter(Boolean);
    };
    expect(render([]).filter((o) => o.metadata.name.endsWith('-dashboard'))).toEqual([]);
    const cm = render(['--set', 'grafanaDashboard.enabled=true', '--set', 'grafanaDashboard.namespace=monitoring', '--set', 'grafanaDashboard.annotations.grafana_folder=LVS'])
      .find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'lvs-operator-dashboard');
    expect(cm?.metadata).toMatchObject({ namespace: 'monitoring', labels: { grafana_dashboard: '1' }, annotations: { grafana_folder: 'LVS' } });
    expect(JSON.parse(cm!.data!['lvs-operator.json']!)).toEqual(dashboard);
    const lint = helm(['lint', '--strict', join(ROOT, 'charts', 'lvs-operator'), '--set', 'grafanaDashboard.enabled=true']);
    expect({ code: lint.code, out: lint.stdout }).toEqual({ code: 0, out: expect.stringContaining('0 chart(s) failed') });
    const bad = helm(['template', 'x', join(ROOT, 'charts', 'lvs-operator'), '--set', 'grafanaDashboard.enabled=yes']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("at '/grafanaDashboard/enabled': got string, want boolean");
  });
});
