// Failover Events (src/agent/failover/events.ts) through the real EventRecorder: one Event on the
// VirtualService per takeover and per release, each with its cause; with two VirtualServices on one VIP, an
// Event on each. And the failover metrics in the agent's real registry (lvs_vip_holder, lvs_vip_failovers_total,
// lvs_vip_releases_total).
import { FakeClock } from '../../../src/kube/clock.ts';
import { EventRecorder } from '../../../src/kube/events.ts';
import type { EventBody, EventSink } from '../../../src/kube/events.ts';
import { DirectorFailover, recordFailoverEvent } from '../../../src/agent/failover/index.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';
import { createLvsMetrics } from '../../../src/agent/metrics/registry.ts';
import { FakeLeaseStore } from '../kube/fake-lease-api.ts';

const log = createLogger('test', 'silent');

const svc = (holdVip: boolean): PlannedService => ({
  id: 'shop/web', generation: 1, vip: '192.0.2.7', port: 443, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false, forwarding: 'DirectRouting', holdVip,
  healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60, destinations: [],
});

/** Directors sharing a fake Lease store, each with its Event recorder and its agent metrics registry. */
function cluster() {
  const clock = new FakeClock();
  const store = new FakeLeaseStore();
  const written: EventBody[] = [];
  const sink: EventSink = { create: async (e) => void written.push(e), updateSeries: async () => undefined };
  const node = (name: string) => {
    const events = new EventRecorder({ sink, reportingController: 'lvs.operator.dev/agent', reportingInstance: name, clock, logger: log });
    const metrics = createLvsMetrics({ readSnapshot: async () => [], defaultMetrics: false, log });
    const api = store.view(name);
    const f = new DirectorFailover({
      api, namespace: 'lvs-system', node: name, settings: { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 }, clock, random: () => 0, log,
      metrics, onChange: (ev) => recordFailoverEvent(events, name, ev),
    });
    return { f, api, events, metrics };
  };
  return { clock, written, node };
}

describe('failover Events', () => {
  it('records the takeover (with the previous holder) and the release (with its cause) on the VirtualService', async () => {
    const { clock, written, node } = cluster();
    const a = node('director-a');
    const b = node('director-b');
    await a.f.setPlan([svc(true)]);
    await b.f.setPlan([svc(false)]);
    await clock.advance(4_000);
    // a is cut off; b wins; a releases when it reads that.
    a.api.partitioned = true;
    await clock.advance(3_000);
    a.api.partitioned = false;
    await clock.advance(1_000);
    await a.events.flush();
    await b.events.flush();
    const seen = written.map((e) => `${e.reportingInstance} ${e.type} ${e.reason} ${e.regarding.kind} ${e.regarding.namespace}/${e.regarding.name}: ${e.note}`);
    expect(seen).toEqual([
      'director-a Normal VIPTakenOver VirtualService shop/web: director director-a holds VIP 192.0.2.7 (won its Lease with no previous holder)',
      'director-b Normal VIPTakenOver VirtualService shop/web: director director-b holds VIP 192.0.2.7 (won its Lease from director-a, which stopped renewing it)',
      'director-a Normal VIPReleased VirtualService shop/web: director director-a released VIP 192.0.2.7: lease taken by director-b',
    ]);
    expect(written.every((e) => e.namespace === 'shop' && e.action === 'Failover' && e.regarding.apiVersion === 'lvs.operator.dev/v1alpha1')).toBe(true);
    await a.f.stop({ release: false });
    await b.f.stop({ release: false });
  });

  it('two VirtualServices on one VIP: an Event on each; the holder gauge per service and the failover counters per VIP', async () => {
    const { clock, written, node } = cluster();
    const both = (holdVip: boolean): PlannedService[] => [svc(holdVip), { ...svc(holdVip), id: 'shop/web-tls', port: 8443 }];
    const a = node('director-a');
    const b = node('director-b');
    await a.f.setPlan(both(true));
    await b.f.setPlan(both(false));
    await clock.advance(4_000);
    await a.f.stop({ release: false }); // a's agent dies
    await clock.advance(3_000);
    await a.events.flush();
    await b.events.flush();
    expect(written.filter((e) => e.reportingInstance === 'director-b').map((e) => `${e.reason} ${e.regarding.name}`).sort()).toEqual(['VIPTakenOver web', 'VIPTakenOver web-tls']);
    const text = async (m: ReturnType<typeof createLvsMetrics>): Promise<string[]> => (await m.registry.metrics()).split('\n').filter((l) => l.startsWith('lvs_vip_'));
    expect(await text(b.metrics)).toEqual([
      'lvs_vip_holder{vip="192.0.2.7",virtual_service="shop/web"} 1',
      'lvs_vip_holder{vip="192.0.2.7",virtual_service="shop/web-tls"} 1',
      'lvs_vip_failovers_total{vip="192.0.2.7",cause="expired"} 1',
    ]);
    // a: took the VIP first (no failover: not counted), released it when its agent stopped; no services left.
    expect(await text(a.metrics)).toEqual(['lvs_vip_releases_total{vip="192.0.2.7",reason="stopped"} 1']);
    // The services leave b: the gauge series go, the release is counted.
    await b.f.setPlan([]);
    expect(await text(b.metrics)).toEqual([
      'lvs_vip_failovers_total{vip="192.0.2.7",cause="expired"} 1',
      'lvs_vip_releases_total{vip="192.0.2.7",reason="stopped"} 1',
    ]);
    await b.f.stop();
  });
});
