import { createLvsMetrics } from '../../../src/agent/metrics/registry.ts';
import type { IpvsStats, ServiceSnapshot } from '../../../src/agent/metrics/types.ts';
import { createLogger } from '../../../src/util/log.ts';

const log = createLogger('test', 'silent');

/** Stats whose fields count up from `base`, so every series has a value of its own. */
function stats(base: number): IpvsStats {
  const keys = ['conns', 'inpkts', 'outpkts', 'inbytes', 'outbytes', 'cps', 'inpps', 'outpps', 'inbps', 'outbps'] as const;
  return Object.fromEntries(keys.map((k, i) => [k, BigInt(base + i)])) as unknown as IpvsStats;
}

const web: ServiceSnapshot = {
  virtualService: 'shop/web',
  protocol: 'tcp',
  address: '192.0.2.10',
  port: 80,
  stats: stats(1),
  destinations: [{ address: '10.0.0.2', port: 8080, weight: 5, activeConns: 3, inactiveConns: 4, stats: stats(101) }],
};

/** Sample lines (no comments) of the families whose name starts with `prefix`. */
function samples(text: string, prefix: RegExp = /^lvs_(service|backend)_/): string[] {
  return text.split('\n').filter((l) => prefix.test(l));
}

function metricsFor(read: () => Promise<ServiceSnapshot[]>, defaultMetrics = false) {
  return createLvsMetrics({ readSnapshot: read, defaultMetrics, log });
}

describe('IPVS metrics', () => {
  it('exposes exactly the per-service and per-backend series of a snapshot', async () => {
    const m = metricsFor(async () => [web]);
    const svc = 'virtual_service="shop/web",local_address="192.0.2.10",local_port="80",proto="TCP",local_mark=""';
    const be = `${svc},remote_address="10.0.0.2",remote_port="8080"`;
    expect(samples(await m.registry.metrics())).toEqual([
      `lvs_service_connections_total{${svc}} 1`,
      `lvs_service_incoming_packets_total{${svc}} 2`,
      `lvs_service_outgoing_packets_total{${svc}} 3`,
      `lvs_service_incoming_bytes_total{${svc}} 4`,
      `lvs_service_outgoing_bytes_total{${svc}} 5`,
      `lvs_service_connections_per_second{${svc}} 6`,
      `lvs_service_incoming_packets_per_second{${svc}} 7`,
      `lvs_service_outgoing_packets_per_second{${svc}} 8`,
      `lvs_service_incoming_bytes_per_second{${svc}} 9`,
      `lvs_service_outgoing_bytes_per_second{${svc}} 10`,
      `lvs_backend_connections_total{${be}} 101`,
      `lvs_backend_incoming_packets_total{${be}} 102`,
      `lvs_backend_outgoing_packets_total{${be}} 103`,
      `lvs_backend_incoming_bytes_total{${be}} 104`,
      `lvs_backend_outgoing_bytes_total{${be}} 105`,
      `lvs_backend_connections_active{${be}} 3`,
      `lvs_backend_connections_inactive{${be}} 4`,
      `lvs_backend_weight{${be}} 5`,
    ]);
  });

  it('types counters as counter and rates as gauge', async () => {
    const text = await metricsFor(async () => [web]).registry.metrics();
    expect(text).toContain('# TYPE lvs_service_connections_total counter');
    expect(text).toContain('# TYPE lvs_backend_incoming_bytes_total counter');
    expect(text).toContain('# TYPE lvs_service_connections_per_second gauge');
    expect(text).toContain('# TYPE lvs_backend_weight gauge');
  });

  it('renders 64-bit counters as plain decimals, exact up to 2^53 and rounded to float64 above', async () => {
    const big: ServiceSnapshot = {
      ...web,
      stats: { ...web.stats, conns: 2n ** 53n, inpkts: 2n ** 53n + 1n, inbytes: 2n ** 64n - 1n, outbytes: 12345678901234567891n },
      destinations: [],
    };
    const lines = samples(await metricsFor(async () => [big]).registry.metrics(), /_total\{/);
    const value = (name: string): string | undefined => lines.find((l) => l.startsWith(`${name}{`))?.split(' ')[1];
    expect(value('lvs_service_connections_total')).toBe('9007199254740992');
    expect(value('lvs_service_incoming_packets_total')).toBe('9007199254740992'); // 2^53+1 is not a float64
    expect(value('lvs_service_incoming_bytes_total')).toBe('18446744073709552000'); // 2^64-1 rounds to 2^64
    expect(value('lvs_service_outgoing_bytes_total')).toBe('12345678901234567000');
    // What Prometheus parses back is the nearest float64 of the kernel's counter.
    expect(Number(value('lvs_service_outgoing_bytes_total'))).toBe(Number(12345678901234567891n));
  });

  it('quotes IPv6 addresses as they are and escapes label values', async () => {
    const v6: ServiceSnapshot = {
      ...web,
      virtualService: 'we"ird\\ns\nname',
      address: '2001:db8::10',
      protocol: 'udp',
      destinations: [{ ...web.destinations[0]!, address: 'fd00::2' }],
    };
    const line = samples(await metricsFor(async () => [v6]).registry.metrics(), /^lvs_backend_weight\{/)[0];
    expect(line).toBe('lvs_backend_weight{virtual_service="we\\"ird\\\\ns\\nname",local_address="2001:db8::10",local_port="80",'
      + 'proto="UDP",local_mark="",remote_address="fd00::2",remote_port="8080"} 5');
  });

  it('labels fwmark services like node_exporter and leaves virtual_service out when unknown', async () => {
    const fwm: ServiceSnapshot = { protocol: 'tcp', address: '0.0.0.0', port: 0, fwmark: 100, stats: stats(1), destinations: [] };
    const lines = samples(await metricsFor(async () => [fwm]).registry.metrics(), /^lvs_service_connections_total\{/);
    expect(lines).toEqual(['lvs_service_connections_total{local_address="",local_port="0",proto="FWM",local_mark="00000064"} 1']);
  });

  it('reads the kernel once per scrape and drops the series of services that are gone', async () => {
    let snapshot = [web, { ...web, virtualService: 'shop/api', port: 443, destinations: [] }];
    let reads = 0;
    const m = metricsFor(async () => {
      reads++;
      return snapshot;
    });
    expect(samples(await m.registry.metrics(), /^lvs_service_connections_total/)).toHaveLength(2);
    expect(reads).toBe(1);
    snapshot = [];
    expect(samples(await m.registry.metrics())).toEqual([]);
    expect(reads).toBe(2);
  });

  it('counts a failed kernel read in lvs_agent_scrape_errors_total and still serves the other metrics', async () => {
    let fail: 'reject' | 'throw' | undefined = 'reject';
    const m = metricsFor(async () => {
      if (fail === 'reject') throw new Error('netlink: EPERM');
      return [web];
    }, true);
    m.managedServices.set(7);
    let text = await m.registry.metrics();
    expect(samples(text)).toEqual([]);
    expect(samples(text, /^lvs_agent_scrape_errors_total /)).toEqual(['lvs_agent_scrape_errors_total 1']);
    expect(samples(text, /^lvs_agent_managed_services /)).toEqual(['lvs_agent_managed_services 7']);
    expect(samples(text, /^process_cpu_user_seconds_total /)).toHaveLength(1);

    fail = undefined;
    text = await m.registry.metrics();
    expect(samples(text)).toHaveLength(18);
    expect(samples(text, /^lvs_agent_scrape_errors_total /)).toEqual(['lvs_agent_scrape_errors_total 1']);
  });

  it('survives a reader that throws synchronously', async () => {
    const m = createLvsMetrics({ readSnapshot: () => { throw new Error('sync'); }, defaultMetrics: false, log });
    expect(samples(await m.registry.metrics(), /^lvs_agent_scrape_errors_total /)).toEqual(['lvs_agent_scrape_errors_total 1']);
  });
  it('gives up on a kernel read that never answers, and reads afresh next scrape', async () => {
    let hang = true;
    const m = createLvsMetrics({
      readSnapshot: () => (hang ? new Promise(() => undefined) : Promise.resolve([web])), readTimeoutMs: 50, defaultMetrics: false, log,
    });
    let text = await m.registry.metrics();
    expect(samples(text)).toEqual([]);
    expect(samples(text, /^lvs_agent_scrape_errors_total /)).toEqual(['lvs_agent_scrape_errors_total 1']);
    hang = false;
    text = await m.registry.metrics();
    expect(samples(text)).toHaveLength(18);
  });
});

describe('agent metrics', () => {
  it('records reconciles, errors, drift repairs and managed services', async () => {
    const m = metricsFor(async () => []);
    m.recordReconcile(0.004);
    m.recordReconcile(0.3, 'EPERM');
    m.driftRepairs.inc({ kind: 'destination-added' }, 2);
    m.managedServices.set(3);
    const text = await m.registry.metrics();
    expect(samples(text, /^lvs_agent_(reconciles|reconcile_errors|drift_repairs)_total|^lvs_agent_managed_services/)).toEqual([
      'lvs_agent_reconciles_total 2',
      'lvs_agent_reconcile_errors_total{reason="EPERM"} 1',
      'lvs_agent_drift_repairs_total{kind="destination-added"} 2',
      'lvs_agent_managed_services 3',
    ]);
    expect(samples(text, /^lvs_agent_reconcile_duration_seconds_(bucket\{le="0.005"\}|count|sum)/)).toEqual([
      'lvs_agent_reconcile_duration_seconds_bucket{le="0.005"} 1',
      'lvs_agent_reconcile_duration_seconds_sum 0.304',
      'lvs_agent_reconcile_duration_seconds_count 2',
    ]);
  });

  it('sets and deletes lvs_backend_healthy', async () => {
    const m = metricsFor(async () => []);
    const a = { virtualService: 'shop/web', address: '10.0.0.2', port: 80 };
    const b = { virtualService: 'shop/web', address: 'fd00::3', port: 80 };
    m.setBackendHealthy(a, true);
    m.setBackendHealthy(b, true);
    m.setBackendHealthy(b, false);
    expect(samples(await m.registry.metrics(), /^lvs_backend_healthy/)).toEqual([
      'lvs_backend_healthy{virtual_service="shop/web",remote_address="10.0.0.2",remote_port="80"} 1',
      'lvs_backend_healthy{virtual_service="shop/web",remote_address="fd00::3",remote_port="80"} 0',
    ]);
    m.deleteBackendHealthy(a);
    expect(samples(await m.registry.metrics(), /^lvs_backend_healthy/)).toHaveLength(1);
  });

  it('keeps every instance on its own registry, default metrics included', async () => {
    const one = metricsFor(async () => [], true);
    const two = metricsFor(async () => [], true);
    expect(one.registry).not.toBe(two.registry);
    one.managedServices.set(1);
    expect(samples(await two.registry.metrics(), /^lvs_agent_managed_services /)).toEqual(['lvs_agent_managed_services 0']);
    expect(samples(await two.registry.metrics(), /^nodejs_heap_size_total_bytes /)).toHaveLength(1);
  });
});
