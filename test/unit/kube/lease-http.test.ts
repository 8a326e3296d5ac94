// keepAliveLeaseApi against a local HTTP stand-in for the API server: paths, verbs, bodies (MicroTime with 6
// digits, the resourceVersion precondition), 404 → undefined, 409 → isConflict, an abort ends a hung request,
// and all requests share one kept-alive connection. The real API server runs it in test/apiserver/failover.test.ts.
import { describe, expect, it, afterAll, beforeAll } from '@jest/globals';
import http from 'node:http';
import { listenWithKubeConfig } from './local-apiserver.ts';
import { keepAliveLeaseApi } from '../../../src/kube/leader.ts';
import { isConflict } from '../../../src/kube/errors.ts';

interface Seen { method: string; url: string; body: string; socket: number; auth: string | undefined }

describe('keepAliveLeaseApi', () => {
  const seen: Seen[] = [];
  const sockets = new Map<object, number>();
  let reply: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void = () => undefined;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (!sockets.has(req.socket)) sockets.set(req.socket, sockets.size);
      seen.push({ method: req.method ?? '', url: req.url ?? '', body, socket: sockets.get(req.socket)!, auth: req.headers.authorization });
      reply(req, res, body);
    });
  });
  const json = (res: http.ServerResponse, code: number, obj: object): void => {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  let api: ReturnType<typeof keepAliveLeaseApi>;

  beforeAll(async () => {
    const kc = await listenWithKubeConfig(server);
    api = keepAliveLeaseApi(kc, 'unit');
  });
  afterAll(async () => {
    api.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('get / create / update: verbs, paths and bodies; 404 is undefined, 409 a conflict; one connection', async () => {
    const signal = new AbortController().signal;
    const lease = (rv: string, holder: string) => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'lvs-vip-x', namespace: 'lvs-system', resourceVersion: rv, labels: { keep: 'me' } }, spec: { holderIdentity: holder, leaseDurationSeconds: 2, leaseTransitions: 1, renewTime: '2026-12-02T05:00:00.123456Z' } });
    reply = (req, res) => {
      if (req.method === 'GET') return json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
      if (req.method === 'POST') return json(res, 201, lease('7', 'director-a'));
      return json(res, 409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' });
    };
    expect(await api.get('lvs-system', 'lvs-vip-x', signal)).toBeUndefined();
    const record = { holderIdentity: 'director-a', leaseDurationSeconds: 2, leaseTransitions: 0, acquireTime: '2026-12-02T05:00:00.100Z', renewTime: '2026-12-02T05:00:00.100Z' };
    const created = await api.create('lvs-system', 'lvs-vip-x', record, signal);
    expect(created).toMatchObject({ resourceVersion: '7', record: { holderIdentity: 'director-a', renewTime: '2026-12-02T05:00:00.123456Z' } });
    const err = await api.update('lvs-system', 'lvs-vip-x', { ...record, holderIdentity: 'director-b' }, created, signal).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);

    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /apis/coordination.k8s.io/v1/namespaces/lvs-system/leases/lvs-vip-x',
      'POST /apis/coordination.k8s.io/v1/namespaces/lvs-system/leases',
      'PUT /apis/coordination.k8s.io/v1/namespaces/lvs-system/leases/lvs-vip-x',
    ]);
    expect(seen.every((s) => s.auth === 'Bearer t0ken')).toBe(true);
    const created0 = JSON.parse(seen[1]!.body) as { spec: { renewTime: string } };
    // MicroTime: exactly 6 fractional digits (the server rejects 3).
    expect(created0.spec.renewTime).toBe('2026-12-02T05:00:00.100000Z');
    const put = JSON.parse(seen[2]!.body) as { metadata: { resourceVersion: string; labels: Record<string, string> }; spec: { holderIdentity: string } };
    expect(put).toMatchObject({ metadata: { resourceVersion: '7', labels: { keep: 'me' } }, spec: { holderIdentity: 'director-b' } });
    expect(new Set(seen.map((s) => s.socket)).size).toBe(1);
  });

  it('an aborted request ends at once with the abort reason, and the next one works', async () => {
    seen.length = 0;
    let hung: http.ServerResponse | undefined;
    reply = (_req, res) => void (hung = res);
    const ctl = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ctl.abort(new Error('lease request timed out after 100 ms')), 100);
    await expect(api.get('lvs-system', 'lvs-vip-x', ctl.signal)).rejects.toThrow('lease request timed out after 100 ms');
    expect(Date.now() - t0).toBeLessThan(5_000);
    hung?.destroy();
    reply = (_req, res) => json(res, 200, { metadata: { resourceVersion: '9' }, spec: { holderIdentity: 'director-a', leaseDurationSeconds: 2 } });
    expect(await api.get('lvs-system', 'lvs-vip-x', new AbortController().signal)).toMatchObject({ resourceVersion: '9', record: { holderIdentity: 'director-a', leaseTransitions: 0 } });
  });
});
