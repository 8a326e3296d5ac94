// The test control plane itself: identities and RBAC, restart, and that every
// fault-injection helper causes exactly what it claims.
import { jest } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { sharedApiServer, startApiServer } from './harness.ts';
import type { ApiServer, SharedApiServer } from './harness.ts';
import { credentials, rawRequest, rawWatch, sleep, uniqueName } from './util.ts';
import type { Credentials } from './util.ts';

jest.setTimeout(120_000);

function client(kubeconfig: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return kc;
}

async function createNamespace(c: Credentials, name: string): Promise<void> {
  const r = await rawRequest(c, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  expect(r.status).toBe(201);
}

async function createConfigMap(c: Credentials, ns: string, name: string, data: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await rawRequest(c, 'POST', `/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data });
  expect(r.status).toBe(201);
  return r.json();
}

async function listRV(c: Credentials, ns: string): Promise<string> {
  const r = await rawRequest(c, 'GET', `/api/v1/namespaces/${ns}/configmaps`);
  expect(r.status).toBe(200);
  return String((r.json()['metadata'] as { resourceVersion: string }).resourceVersion);
}

describe('harness apiserver (shared, from global setup)', () => {
  let api: SharedApiServer;
  let admin: Credentials; // through the proxy
  let adminDirect: Credentials; // bypassing the proxy
  let ns: string;

  beforeAll(async () => {
    api = sharedApiServer();
    admin = credentials(api.kubeconfigs.admin);
    adminDirect = credentials(api.kubeconfigs.admin, api.directUrl);
    ns = uniqueName('harness');
    await createNamespace(admin, ns);
  });

  test('admin lists namespaces with client-node', async () => {
    const core = client(api.kubeconfigs.admin).makeApiClient(k8s.CoreV1Api);
    const list = await core.listNamespace();
    const names = list.items.map((n) => n.metadata?.name);
    expect(names).toEqual(expect.arrayContaining(['default', 'kube-system', ns]));
  });

  test.each([
    ['admin', 'lvs-test-admin', ['system:masters', 'system:authenticated']],
    ['controller', 'system:serviceaccount:lvs-system:lvs-operator-controller', ['system:serviceaccounts', 'system:serviceaccounts:lvs-system', 'system:authenticated']],
    ['agent', 'system:serviceaccount:lvs-system:lvs-operator-agent', ['system:serviceaccounts', 'system:serviceaccounts:lvs-system', 'system:authenticated']],
  ] as const)('%s kubeconfig authenticates as %s', async (who, user, groups) => {
    const auth = client(api.kubeconfigs[who]).makeApiClient(k8s.AuthenticationV1Api);
    const review = await auth.createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
    expect(review.status?.userInfo?.username).toBe(user);
    expect(review.status?.userInfo?.groups).toEqual(expect.arrayContaining([...groups]));
  });

  test('RBAC is enforced: agent and controller may not list secrets (no bindings yet)', async () => {
    for (const who of ['agent', 'controller'] as const) {
      const core = client(api.kubeconfigs[who]).makeApiClient(k8s.CoreV1Api);
      const err = await core.listSecretForAllNamespaces().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(k8s.ApiException);
      const ex = err as k8s.ApiException<string>;
      expect(ex.code).toBe(403);
      // client-node 2.x: ApiException.body is the raw JSON string of the Status.
      const status = JSON.parse(String(ex.body)) as { reason: string; message: string };
      expect(status.reason).toBe('Forbidden');
      expect(status.message).toContain(`"system:serviceaccount:lvs-system:lvs-operator-${who}" cannot list resource "secrets"`);
    }
    // ... and admin may.
    await client(api.kubeconfigs.admin).makeApiClient(k8s.CoreV1Api).listSecretForAllNamespaces();
  });

  test('restart(): kube-apiserver comes back on the same URL and the data survives', async () => {
    const cm = await createConfigMap(admin, ns, 'survivor', { k: 'v' });
    const uid = (cm['metadata'] as { uid: string }).uid;
    const { ms } = await api.restart();
    expect(ms).toBeGreaterThan(0);
    const r = await rawRequest(admin, 'GET', `/api/v1/namespaces/${ns}/configmaps/survivor`);
    expect(r.status).toBe(200);
    expect((r.json()['metadata'] as { uid: string }).uid).toBe(uid);
    expect(r.json()['data']).toEqual({ k: 'v' });
    const st = await api.status();
    expect(Number(st['apiserverStarts'])).toBeGreaterThanOrEqual(2);
  });

  test('proxy.cutAll(): open watches end at once, new requests work', async () => {
    const w = rawWatch(admin, `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${await listRV(admin, ns)}`);
    expect(await w.status).toBe(200);
    const t0 = Date.now();
    const closed = await api.proxy.cutAll();
    expect(closed).toBeGreaterThanOrEqual(1);
    const end = await Promise.race([w.closed, sleep(3000).then(() => 'still open' as const)]);
    expect(end).not.toBe('still open');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect((await rawRequest(admin, 'GET', '/api/v1/namespaces/default')).status).toBe(200);
  });

  test('proxy.pause(): connections stay open but silent; resume() delivers what was held back', async () => {
    const w = rawWatch(admin, `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${await listRV(admin, ns)}`);
    expect(await w.status).toBe(200);
    await api.proxy.pause();
    try {
      // Written directly (the proxy is stalled): the event is produced but cannot reach the watcher.
      await createConfigMap(adminDirect, ns, 'while-paused');
      await sleep(1500);
      expect(w.events.filter((e) => e.object.metadata?.name === 'while-paused')).toHaveLength(0);
      const stalled = await Promise.race([w.closed.then(() => 'closed' as const), sleep(200).then(() => 'open' as const)]);
      expect(stalled).toBe('open');
    } finally {
      await api.proxy.resume();
    }
    const ev = await w.next((e) => e.object.metadata?.name === 'while-paused', 5000);
    expect(ev.type).toBe('ADDED');
    w.abort();
  });

  test('expireResourceVersions(): a watch or list from an old resourceVersion gets 410 Gone', async () => {
    const oldRV = await listRV(admin, ns);
    await createConfigMap(admin, ns, 'after-old-rv');
    // Before: watching from oldRV replays the create.
    const before = rawWatch(admin, `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${oldRV}`);
    expect((await before.next((e) => e.object.metadata?.name === 'after-old-rv')).type).toBe('ADDED');
    before.abort();

    const { revision, restarted } = await api.expireResourceVersions();
    expect(revision).toBeGreaterThan(Number(oldRV));
    expect(restarted).toBe(api.watchCache);

    const w = rawWatch(admin, `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${oldRV}`);
    const ev = await w.next((e) => e.type === 'ERROR');
    expect(ev.object.code).toBe(410);
    expect(ev.object.reason).toBe('Expired');
    w.abort();
    const list = await rawRequest(admin, 'GET', `/api/v1/namespaces/${ns}/configmaps?resourceVersion=${oldRV}&resourceVersionMatch=Exact`);
    expect(list.status).toBe(410);
    // A fresh list + watch works (what a reflector does after a 410).
    const fresh = rawWatch(admin, `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${await listRV(admin, ns)}`);
    expect(await fresh.status).toBe(200);
    await createConfigMap(admin, ns, 'after-relist');
    expect((await fresh.next((e) => e.object.metadata?.name === 'after-relist')).type).toBe('ADDED');
    fresh.abort();
  });

  test('namespace deletion completes (namespace controller runs)', async () => {
    const gone = uniqueName('gone');
    await createNamespace(admin, gone);
    await createConfigMap(admin, gone, 'content');
    expect((await rawRequest(admin, 'DELETE', `/api/v1/namespaces/${gone}`)).status).toBe(200);
    const deadline = Date.now() + 30_000;
    let status = 200;
    while (Date.now() < deadline && status !== 404) {
      await sleep(250);
      status = (await rawRequest(admin, 'GET', `/api/v1/namespaces/${gone}`)).status;
    }
    expect(status).toBe(404);
  });
});

describe('startApiServer() (own instance: watch cache off, extra identity)', () => {
  let api: ApiServer | undefined;

  afterAll(async () => {
    await api?.stop();
  });

  test('starts, reports versions, and compact() alone makes old resourceVersions 410 without a restart', async () => {
    api = await startApiServer({ watchCache: false, identities: [{ name: 'node-lab1', user: 'system:node:lab1', groups: ['system:nodes'] }] });
    process.stderr.write(`own lvs-test-apiserver ready in ${api.startupMs} ms\n`);
    // An extra identity, authorized by the Node authorizer (RBAC has no binding for system:nodes).
    const nodeKc = client(api.kubeconfigs['node-lab1']!);
    const review = await nodeKc.makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
    expect(review.status?.userInfo?.username).toBe('system:node:lab1');
    const nodeCore = nodeKc.makeApiClient(k8s.CoreV1Api);
    const code = (p: Promise<unknown>) => p.then(() => 200, (e: k8s.ApiException<string>) => e.code);
    expect(await code(nodeCore.readNode({ name: 'lab1' }))).toBe(404); // its own Node: allowed, just absent
    expect(await code(nodeCore.readNode({ name: 'lab2' }))).toBe(403); // another node's: denied
    expect(await code(nodeCore.listSecretForAllNamespaces())).toBe(403);
    expect(api.version).toMatch(/^v1\.35\.\d+$/);
    const admin = credentials(api.kubeconfigs.admin);
    const version = await rawRequest(admin, 'GET', '/version');
    expect(version.json()['gitVersion']).toBe(api.version);
    const ns = uniqueName('compact');
    await createNamespace(admin, ns);
    const oldRV = await listRV(admin, ns);
    await createConfigMap(admin, ns, 'a');
    const { revision, restarted } = await api.expireResourceVersions();
    expect(restarted).toBe(false);
    expect(revision).toBeGreaterThan(Number(oldRV));
    const w = rawWatch(admin, `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${oldRV}`);
    const ev = await w.next((e) => e.type === 'ERROR');
    expect(ev.object.code).toBe(410);
    w.abort();
    expect(Number((await api.status())['apiserverStarts'])).toBe(1);
  });

  test('stop() ends the processes and removes the state dir', async () => {
    const a = api!;
    await a.stop();
    expect(existsSync(a.dir)).toBe(false);
    expect(() => process.kill(a.pid, 0)).toThrow();
    await a.stop(); // idempotent
    api = undefined;
  });
});
