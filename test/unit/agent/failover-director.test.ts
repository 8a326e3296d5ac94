// The director reconciler taking "do I hold this VIP" from the VIP election instead of plan.holdVip: both
// directors program the same IPVS table, only the Lease holder binds and announces the VIP, a standby whose
// plan says holdVip does not bind without winning, and a takeover binds + announces on the new holder.
import { FakeClock } from '../../../src/kube/clock.ts';
import { VipElections } from '../../../src/agent/failover/index.ts';
import { FakeIpvs } from '../../../src/ipvs/fake.ts';
import { FakeNetif, FakeArpAnnouncer } from '../../../src/netif/fake.ts';
import { FakeSysctl, defaultSysctls } from '../../../src/sysctl/fake.ts';
import { MemoryStateStore } from '../../../src/agent/state.ts';
import { DirectorReconciler, type HealthLookup } from '../../../src/agent/director/reconciler.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeLeaseStore } from '../kube/fake-lease-api.ts';

const log = createLogger('test', 'silent');
const settings = { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 };

const planned = (holdVip: boolean): PlannedService => ({
  id: 'lab/web', generation: 1, vip: '192.168.56.40', port: 80, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false,
  forwarding: 'DirectRouting', holdVip, healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: [{ realServer: 'lab/web1', address: '192.168.56.37', port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 }],
});

const allHealthy: HealthLookup = () => undefined;

function director(name: string, store: FakeLeaseStore, clock: FakeClock, plan: PlannedService[]) {
  const ipvs = new FakeIpvs();
  const netif = new FakeNetif();
  netif.addLink('eth0', { up: true });
  const arp = new FakeArpAnnouncer();
  const api = store.view(name);
  const runs: Promise<unknown>[] = [];
  const d = {
    name, ipvs, netif, arp, api, plan,
    elections: undefined as unknown as VipElections,
    rec: undefined as unknown as DirectorReconciler,
    reconcile: () => d.rec.reconcile(d.plan, allHealthy, { resync: true }),
    vips: async () => (await netif.listAddresses('eth0')).map((a) => a.address),
    settle: () => Promise.all(runs.splice(0)),
  };
  // What the agent does: a hold or release triggers a full run.
  d.elections = new VipElections({
    api, namespace: 'lvs-system', node: name, settings, clock, random: () => 0, logger: log,
    onHold: () => runs.push(d.reconcile()),
    onRelease: () => runs.push(d.reconcile()),
  });
  d.rec = new DirectorReconciler({
    ipvs, netif, sysctl: new FakeSysctl(defaultSysctls(['eth0'])), arp, state: new MemoryStateStore(), log, defaultInterface: async () => 'eth0',
    holdsVip: (s) => d.elections.holdsVip(s.id),
  });
  return d;
}

describe('director reconciler with the VIP election', () => {
  it('only the Lease holder binds and announces; a takeover moves the VIP and announces it on the new holder', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = director('director-a', store, clock, [planned(true)]);
    const b = director('director-b', store, clock, [planned(false)]);
    // Before any election result, nobody binds (even the preferred director).
    await a.reconcile();
    await b.reconcile();
    expect(await a.vips()).toEqual([]);
    await a.elections.sync(a.plan);
    await b.elections.sync(b.plan);
    await clock.advance(0);
    await a.settle();
    expect(await a.vips()).toEqual(['192.168.56.40']);
    expect(a.arp.announcements.map((x) => x.vip)).toEqual(['192.168.56.40']);

    // The controller re-ranks (b preferred now): b's plan says holdVip, but a holds the Lease.
    b.plan = [planned(true)];
    await b.elections.sync(b.plan);
    const rb = await b.reconcile();
    expect(rb.services.get('lab/web')).toMatchObject({ ok: true, holdsVip: false });
    expect(await b.vips()).toEqual([]);
    // Hot standby: the same IPVS table on both.
    expect((await b.ipvs.listServices()).map((s) => s.destinations.length)).toEqual([1]);
    expect((await a.ipvs.listServices()).map((s) => s.destinations.length)).toEqual([1]);
    await clock.advance(5_000);
    await b.settle();
    expect(await b.vips()).toEqual([]);
    expect(b.arp.announcements).toEqual([]);

    // a is cut off from the apiserver: it keeps the VIP (retained) while b wins and binds + announces.
    a.api.partitioned = true;
    await clock.advance(3_000);
    await a.settle();
    await b.settle();
    expect(a.elections.ofService('lab/web')?.state()).toBe('retained');
    expect(await a.vips()).toEqual(['192.168.56.40']);
    expect(await b.vips()).toEqual(['192.168.56.40']);
    expect(b.arp.announcements.map((x) => x.vip)).toEqual(['192.168.56.40']);
    // a reaches the apiserver again, reads b as the holder and unbinds.
    a.api.partitioned = false;
    await clock.advance(700);
    await a.settle();
    expect(await a.vips()).toEqual([]);
    expect(b.elections.activeDirector('lab/web')).toBe('director-b');
    expect(a.elections.activeDirector('lab/web')).toBe('director-b');
    await a.elections.stop();
    await b.elections.stop();
    await a.settle();
    await b.settle();
    expect(await b.vips()).toEqual([]);
  });
});
