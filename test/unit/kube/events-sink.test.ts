// eventsV1Sink against a local HTTP stand-in for the API server: the events.k8s.io/v1 body (MicroTime with 6
// digits), at most `concurrency` requests in flight over kept-alive connections, and beyond `maxQueued`
// waiting Events new ones are dropped (counted) instead of piling up. The real API server: kube-objects.test.ts.
import { describe, expect, it, afterAll, beforeAll } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { eventsV1Sink, type EventBody } from '../../../src/kube/events.ts';
import { createLogger } from '../../../src/util/log.ts';

describe('eventsV1Sink', () => {
  const bodies: Array<{ method: string; url: string; body: Record<string, unknown> }> = [];
  const sockets = new Set<object>();
  let inFlight = 0;
  let maxInFlight = 0;
  let hold: Array<() => void> = [];
  let holding = false;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      sockets.add(req.socket);
      bodies.push({ method: req.method ?? '', url: req.url ?? '', body: JSON.parse(body) as Record<string, unknown> });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const answer = (): void => {
        inFlight--;
        res.writeHead(201, { 'Content-Type': 'application/json' });
        res.end('{}');
      };
      if (holding) hold.push(answer);
      else answer();
    });
  });
  let kc: KubeConfig;
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't0ken' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const event = (i: number): EventBody => ({
    name: `vs-${i}.1`, namespace: 'lab', eventTime: new Date('2026-12-02T15:00:00.123Z'), type: 'Normal', reason: 'Accepted', action: 'Reconcile',
    note: `vs-${i} accepted`, regarding: { apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VirtualService', name: `vs-${i}`, namespace: 'lab' },
    reportingController: 'lvs.operator.dev/controller', reportingInstance: 'test',
  });

  it('writes events.k8s.io/v1 Events and series patches with MicroTime', async () => {
    const sink = eventsV1Sink(kc, { logger: createLogger('test', 'silent') });
    bodies.length = 0;
    await sink.create(event(1));
    await sink.updateSeries('lab', 'vs-1.1', { count: 3, lastObservedTime: new Date('2026-12-02T15:00:01.5Z') });
    sink.close();
    expect(bodies.map((b) => `${b.method} ${b.url}`)).toEqual(['POST /apis/events.k8s.io/v1/namespaces/lab/events', 'PATCH /apis/events.k8s.io/v1/namespaces/lab/events/vs-1.1']);
    expect(bodies[0]!.body).toMatchObject({ apiVersion: 'events.k8s.io/v1', kind: 'Event', eventTime: '2026-12-02T15:00:00.123000Z', reason: 'Accepted', regarding: { kind: 'VirtualService', name: 'vs-1' } });
    expect(bodies[1]!.body).toEqual({ series: { count: 3, lastObservedTime: '2026-12-02T15:00:01.500000Z' } });
  });

  it('keeps at most `concurrency` in flight on kept-alive connections, and drops what exceeds the queue', async () => {
    const sink = eventsV1Sink(kc, { concurrency: 2, maxQueued: 3, logger: createLogger('test', 'silent') });
    bodies.length = 0;
    sockets.clear();
    maxInFlight = 0;
    holding = true;
    const all = Array.from({ length: 10 }, (_, i) => sink.create(event(i)));
    await new Promise((r) => setTimeout(r, 100));
    expect(inFlight).toBe(2);
    expect(sink.dropped).toBe(5); // 2 in flight + 3 waiting; the other 5 never reach the server
    holding = false;
    while (hold.length) {
      const h = hold;
      hold = [];
      for (const answer of h) answer();
      await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all(all);
    sink.close();
    expect(maxInFlight).toBe(2);
    expect(bodies).toHaveLength(5);
    expect(bodies.map((b) => (b.body.regarding as { name: string }).name)).toEqual(['vs-0', 'vs-1', 'vs-2', 'vs-3', 'vs-4']);
    expect(sockets.size).toBeLessThanOrEqual(2);
  });
});
