// src/kube/leader.ts against a real kube-apiserver: the server accepts our MicroTime (and rejects
// Date#toISOString()), exactly one of two candidates leads, release() hands over at once, a killed leader
// is replaced after the lease duration, a partitioned leader steps down before the other takes over, and
// many sub-second elections share one client. Own apiserver: the partition test pauses its proxy.
import { jest } from '@jest/globals';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { LeaderElector, keepAliveLeaseApi } from '../../src/kube/leader.ts';
import type { LeaderElectorOptions, LeaseApi } from '../../src/kube/leader.ts';
import { createLogger } from '../../src/util/log.ts';
import { startApiServer } from './harness.ts';
import type { ApiServer } from './harness.ts';
import { credentials, rawRequest, sleep, uniqueName } from './util.ts';

jest.setTimeout(180_000);

const logger = createLogger('kube-leader-test', process.env['LVS_LOG_LEVEL'] ?? 'silent');
const NS = 'default';
const fast = { leaseDurationSeconds: 3, renewDeadlineMs: 2_000, retryPeriodMs: 500, retryJitter: 0.2 };

function kubeConfig(file: string, server?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  if (server) {
    kc.loadFromOptions({ clusters: kc.getClusters().map((c) => ({ ...c, server })), contexts: kc.getContexts(), users: kc.getUsers(), currentContext: kc.getCurrentContext() });
  }
  return kc;
}

async function waitFor(what: string, pred: () => boolean, timeoutMs = 20_000, stepMs = 20): Promise<number> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
  return Date.now() - t0;
}

describe('LeaderElector on a real apiserver', () => {
  let api: ApiServer;
  let leases: LeaseApi & { close(): void }; // through the proxy
  let leasesDirect: LeaseApi & { close(): void }; // bypassing it
  let coord: CoordinationV1Api;
  const electors: LeaderElector[] = [];

  const elector = (name: string, identity: string, o: Partial<LeaderElectorOptions> = {}) => {
    const log: string[] = [];
    const el = new LeaderElector({
      api: leases, namespace: NS, name, identity, logger, ...fast,
      onStartedLeading: () => {
        log.push('started');
      },
      onStoppedLeading: () => log.push('stopped'),
      onNewLeader: (id) => log.push(`leader:${id}`),
      ...o,
    });
    electors.push(el);
    return { el, log };
  };

  beforeAll(async () => {
    api = await startApiServer({ log: () => undefined });
    const kc = kubeConfig(api.kubeconfigs.admin);
    leases = keepAliveLeaseApi(kc, 'leader-test');
    leasesDirect = keepAliveLeaseApi(kubeConfig(api.kubeconfigs.admin, api.directUrl), 'leader-test');
    coord = kc.makeApiClient(CoordinationV1Api);
  });

  afterAll(async () => {
    await Promise.all(electors.map((e) => e.stop({ release: false })));
    leases?.close();
    leasesDirect?.close();
    await api?.stop();
  });

  test('MicroTime: ours is accepted with 6 digits; Date#toISOString() is rejected with 400', async () => {
    const name = uniqueName('micro');
    const { el } = elector(name, 'a');
    el.start();
    await waitFor('a leads', () => el.isLeader());
    const lease = await coord.readNamespacedLease({ namespace: NS, name });
    // client-node does not deserialize MicroTime: the value is the server's string.
    expect(String(lease.spec?.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(lease.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 3, leaseTransitions: 0 });
    await el.stop();

    const c = credentials(api.kubeconfigs.admin);
    const res = await rawRequest(c, 'POST', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: uniqueName('ms') },
      spec: { holderIdentity: 'x', leaseDurationSeconds: 3, renewTime: new Date().toISOString() },
    });
    expect(res.status).toBe(400);
    process.stderr.write(`3-digit renewTime -> ${res.status}: ${String(res.json()['message'])}\n`);
    expect(String(res.json()['message'])).toMatch(/renewTime|parsing time|cannot parse/);
  });

  test('two candidates: exactly one leads; release() hands over within a retry period', async () => {
    const name = uniqueName('pair');
    const a = elector(name, 'a');
    const b = elector(name, 'b');
    a.el.start();
    await waitFor('a leads', () => a.el.isLeader());
    b.el.start();
    const t0 = Date.now();
    while (Date.now() - t0 < 5_000) {
      expect(Number(a.el.isLeader()) + Number(b.el.isLeader())).toBeLessThanOrEqual(1);
      await sleep(50);
    }
    expect(a.el.isLeader()).toBe(true);
    expect(b.el.leader()).toBe('a');

    const t1 = Date.now();
    await a.el.release();
    const released = await coord.readNamespacedLease({ namespace: NS, name });
    expect(released.spec?.holderIdentity ?? '').toBe('');
    await waitFor('b leads', () => b.el.isLeader(), 5_000);
    const handover = Date.now() - t1;
    process.stderr.write(`release() handover: ${handover} ms (lease duration 3000 ms)\n`);
    expect(handover).toBeLessThan(1_500);
    expect(a.log).toEqual(['leader:a', 'started', 'leader:', 'stopped']);
    const l = await coord.readNamespacedLease({ namespace: NS, name });
    expect(l.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.el.stop();
  });

  test('a killed leader (no release) is replaced after the lease duration, not before', async () => {
    const name = uniqueName('kill');
    const a = elector(name, 'a');
    const b = elector(name, 'b');
    a.el.start();
    await waitFor('a leads', () => a.el.isLeader());
    b.el.start();
    await sleep(1_500);
    await a.el.stop({ release: false });
    const t0 = Date.now();
    await waitFor('b leads', () => b.el.isLeader(), 10_000);
    const took = Date.now() - t0;
    process.stderr.write(`takeover after a kill: ${took} ms (lease duration 3000 ms, retry 500 ms)\n`);
    // b's last observed change is at most one jittered retry (≤ 600 ms) before the kill.
    expect(took).toBeGreaterThanOrEqual(3_000 - 600 - 200);
    expect(took).toBeLessThan(3_000 + 2 * 600 + 1_000);
    await b.el.stop();
  });

  test('a partitioned leader steps down before the other candidate takes over', async () => {
    const name = uniqueName('part');
    const a = elector(name, 'a'); // through the proxy
    const b = elector(name, 'b', { api: leasesDirect });
    a.el.start();
    await waitFor('a leads', () => a.el.isLeader());
    b.el.start();
    await sleep(1_000);
    let overlap = false;
    let aDown = 0;
    let bUp = 0;
    const t0 = Date.now();
    await api.proxy.pause();
    try {
      await waitFor('b leads', () => {
        if (a.el.isLeader() && b.el.isLeader()) overlap = true;
        if (!aDown && !a.el.isLeader()) aDown = Date.now() - t0;
        if (!bUp && b.el.isLeader()) bUp = Date.now() - t0;
        return bUp > 0;
      }, 15_000, 10);
    } finally {
      await api.proxy.resume();
    }
    process.stderr.write(`partition: a stepped down after ${aDown} ms, b took over after ${bUp} ms\n`);
    expect(overlap).toBe(false);
    expect(aDown).toBeLessThanOrEqual(2_000 + 200);
    expect(bUp).toBeGreaterThan(aDown);
    expect(a.log).toEqual(['leader:a', 'started', 'stopped']);
    // After the partition heals, a follows b.
    await waitFor('a sees b', () => a.el.leader() === 'b', 10_000);
    expect(a.el.isLeader()).toBe(false);
    await a.el.stop();
    await b.el.stop();
  });

  test('20 per-VIP elections on one client each side: sub-second periods, failover in about the lease duration', async () => {
    const vips = Array.from({ length: 20 }, () => uniqueName('vip'));
    const timing = { leaseDurationSeconds: 2, renewDeadlineMs: 1_500, retryPeriodMs: 500, retryJitter: 0.2 };
    const a = vips.map((v) => elector(v, 'director-a', timing));
    const b = vips.map((v) => elector(v, 'director-b', timing));
    for (const x of a) x.el.start();
    await waitFor('director-a leads all', () => a.every((x) => x.el.isLeader()));
    for (const x of b) x.el.start();
    await sleep(3_000);
    expect(a.every((x) => x.el.isLeader())).toBe(true);
    expect(b.some((x) => x.el.isLeader())).toBe(false);
    await Promise.all(a.map((x) => x.el.stop({ release: false })));
    const took = await waitFor('director-b leads all', () => b.every((x) => x.el.isLeader()), 10_000);
    process.stderr.write(`20 VIPs failover: ${took} ms (lease 2000 ms, retry 500 ms)\n`);
    expect(took).toBeLessThan(2_000 + 600 + 1_400);
    await Promise.all(b.map((x) => x.el.stop()));
  });
});
