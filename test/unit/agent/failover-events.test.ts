// Failover Events (src/agent/failover/events.ts) through the real EventRecorder: one Event on the
// VirtualService per takeover and per release, each with its cause.
import { FakeClock } from '../../../src/kube/clock.ts';
import { EventRecorder } from '../../../src/kube/events.ts';
import type { EventBody, EventSink } from '../../../src/kube/events.ts';
import { DirectorFailover, recordFailoverEvent } from '../../../src/agent/failover/index.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeLeaseStore } from '../kube/fake-lease-api.ts';

const log = createLogger('test', 'silent');

const svc = (holdVip: boolean): PlannedService => ({
  id: 'shop/web', generation: 1, vip: '192.0.2.7', port: 443, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false, forwarding: 'DirectRouting', holdVip,
  healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60, destinations: [],
});

describe('failover Events', () => {
  it('records the takeover (with the previous holder) and the release (with its cause) on the VirtualService', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const written: EventBody[] = [];
    const sink: EventSink = { create: async (e) => void written.push(e), updateSeries: async () => undefined };
    const node = (name: string) => {
      const events = new EventRecorder({ sink, reportingController: 'lvs.operator.dev/agent', reportingInstance: name, clock, logger: log });
      const api = store.view(name);
      const f = new DirectorFailover({
        api, namespace: 'lvs-system', node: name, settings: { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 }, clock, random: () => 0, log,
        onChange: (ev) => recordFailoverEvent(events, name, ev),
      });
      return { f, api, events };
    };
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
      'director-b Normal VIPTakenOver VirtualService shop/web: director director-b holds VIP 192.0.2.7 (won its Lease from director-a)',
      'director-a Normal VIPReleased VirtualService shop/web: director director-a released VIP 192.0.2.7: lease taken by director-b',
    ]);
    expect(written.every((e) => e.namespace === 'shop' && e.action === 'Failover' && e.regarding.apiVersion === 'lvs.operator.dev/v1alpha1')).toBe(true);
    await a.f.stop({ release: false });
    await b.f.stop({ release: false });
  });
});
