// IPVS connection-sync daemons following the VIP election (src/agent/failover/syncd.ts, director-failover.ts):
// backup on every director, master on the holder, foreign daemons left alone; DirectorFailover drives them
// and asks the agent for a full reconcile on every hold/release.
import { FakeClock } from '../../../src/kube/clock.ts';
import { DirectorFailover, SyncDaemons, vipLeaseName } from '../../../src/agent/failover/index.ts';
import type { FailoverEvent, SyncDaemonOps } from '../../../src/agent/failover/index.ts';
import type { SyncDaemon, SyncDaemonConfig, SyncDaemonRole } from '../../../src/ipvs/types.ts';
import type { PlannedService } from '../../../src/model/plan.ts';
import { createLogger } from '../../../src/util/log.ts';
import { FakeLeaseStore } from '../kube/fake-lease-api.ts';

const log = createLogger('test', 'silent');

/** Kernel semantics: one daemon per role; starting a running role is EEXIST, stopping an idle one ESRCH. */
class FakeDaemons implements SyncDaemonOps {
  readonly running = new Map<SyncDaemonRole, SyncDaemon>();
  readonly calls: string[] = [];
  async startSyncDaemon(cfg: SyncDaemonConfig): Promise<void> {
    this.calls.push(`start ${cfg.role} ${cfg.interface} ${cfg.syncId}`);
    if (this.running.has(cfg.role)) throw Object.assign(new Error('File exists'), { code: 'EEXIST' });
    this.running.set(cfg.role, { maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1, ...cfg } as SyncDaemon);
  }
  async stopSyncDaemon(role: SyncDaemonRole): Promise<void> {
    this.calls.push(`stop ${role}`);
    if (!this.running.delete(role)) throw Object.assign(new Error('No such process'), { code: 'ESRCH' });
  }
  async listSyncDaemons(): Promise<SyncDaemon[]> {
    return [...this.running.values()];
  }
  roles(): string[] {
    return [...this.running.keys()].sort();
  }
}

describe('SyncDaemons', () => {
  it('starts and stops our daemons to match, idempotently', async () => {
    const ops = new FakeDaemons();
    const sd = new SyncDaemons({ ops, interface: async () => 'eth0', log });
    expect(await sd.apply({ master: false, backup: true })).toEqual({ running: ['backup'], foreign: [], errors: [] });
    expect(await sd.apply({ master: true, backup: true })).toEqual({ running: ['master', 'backup'], foreign: [], errors: [] });
    expect(ops.calls).toEqual(['start backup eth0 1', 'start master eth0 1']);
    await sd.apply({ master: true, backup: true });
    expect(ops.calls.length).toBe(2);
    await sd.apply({ master: false, backup: true });
    expect(ops.roles()).toEqual(['backup']);
    await sd.apply({ master: false, backup: false });
    expect(ops.roles()).toEqual([]);
    expect(ops.calls.slice(2)).toEqual(['stop master', 'stop backup']);
  });

  it('leaves a daemon it does not own (keepalived) alone and reports it', async () => {
    const ops = new FakeDaemons();
    await ops.startSyncDaemon({ role: 'master', interface: 'eth1', syncId: 51 });
    const sd = new SyncDaemons({ ops, interface: async () => 'eth0', syncId: 7, log });
    expect(await sd.apply({ master: true, backup: true })).toEqual({ running: ['backup'], foreign: ['master'], errors: [] });
    await sd.apply({ master: false, backup: false });
    expect(ops.running.get('master')).toMatchObject({ interface: 'eth1', syncId: 51 });
    expect(ops.roles()).toEqual(['master']);
    expect(() => new SyncDaemons({ ops, interface: async () => 'eth0', syncId: 0, log })).toThrow(/1..255/);
  });
});

const svc = (id: string, vip: string, holdVip: boolean): PlannedService => ({
  id, generation: 1, vip, port: 80, protocol: 'TCP', scheduler: 'rr', schedulerFlags: [], onePacket: false, forwarding: 'DirectRouting', holdVip,
  healthCheck: { type: 'TCP', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60, destinations: [],
});

describe('DirectorFailover', () => {
  it('master on the holder, backup on both; a takeover moves master and asks for a reconcile', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const node = (name: string) => {
      const ops = new FakeDaemons();
      const events: string[] = [];
      const api = store.view(name);
      const f = new DirectorFailover({
        api, namespace: 'lvs-system', node: name, settings: { leaseDurationSeconds: 2, renewIntervalMilliseconds: 500 }, clock, random: () => 0, log,
        syncDaemons: new SyncDaemons({ ops, interface: async () => 'eth0', log }),
        onChange: (ev: FailoverEvent) => events.push(`${ev.type} ${ev.services.join(',')}`),
      });
      return { f, ops, events, api };
    };
    const a = node('director-a');
    const b = node('director-b');
    await a.f.setPlan([svc('lab/web', '192.0.2.1', true)]);
    await b.f.setPlan([svc('lab/web', '192.0.2.1', false)]);
    await clock.advance(5_000);
    await a.f.settled();
    await b.f.settled();
    expect(a.events).toEqual(['hold lab/web']);
    expect(b.events).toEqual([]);
    expect(a.ops.roles()).toEqual(['backup', 'master']);
    expect(b.ops.roles()).toEqual(['backup']);
    expect(a.f.holdsVip({ id: 'lab/web' })).toBe(true);
    expect(b.f.holdsVip({ id: 'lab/web' })).toBe(false);
    expect([...b.f.activeDirectors()]).toEqual([['lab/web', 'director-a']]);

    // The holder's agent dies (no release); b takes over and becomes sync master.
    a.api.partitioned = true;
    await a.f.stop({ release: false });
    await clock.advance(3_000);
    await b.f.settled();
    expect(b.events).toEqual(['hold lab/web']);
    expect(b.ops.roles()).toEqual(['backup', 'master']);
    expect(a.ops.roles()).toEqual([]);
    expect([...b.f.activeDirectors()]).toEqual([['lab/web', 'director-b']]);

    // The service leaves b's plan: VIP released, Lease handed over, daemons stopped.
    await b.f.setPlan([]);
    await b.f.settled();
    expect(b.events).toEqual(['hold lab/web', 'release lab/web']);
    expect(b.ops.roles()).toEqual([]);
    expect(store.read('lvs-system', vipLeaseName('192.0.2.1'))?.record.holderIdentity).toBe('');
  });
});
