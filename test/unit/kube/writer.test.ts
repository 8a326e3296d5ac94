// Writer against a local HTTP stand-in for the API server: patch answers the written object; patchUnread
// drains a successful answer unread (an unparseable body cannot fail it) and keeps the connection for the
// next request; a refused patch rejects with the server's message either way.
import { describe, expect, it, afterAll, beforeAll } from '@jest/globals';
import http from 'node:http';
import { listenWithKubeConfig } from './local-apiserver.ts';
import { Writer } from '../../../src/kube/writer.ts';

const NODEPLANS = { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'nodeplans' };

describe('Writer', () => {
  const seen: Array<{ method: string; url: string; type: string | undefined; body: string; socket: number }> = [];
  const sockets = new Map<object, number>();
  let reply: (res: http.ServerResponse) => void = () => undefined;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (!sockets.has(req.socket)) sockets.set(req.socket, sockets.size);
      seen.push({ method: req.method ?? '', url: req.url ?? '', type: req.headers['content-type'], body, socket: sockets.get(req.socket)! });
      reply(res);
    });
  });
  const answer = (code: number, text: string) => (res: http.ServerResponse): void => {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(text);
  };
  let writer: Writer;

  beforeAll(async () => {
    const kc = await listenWithKubeConfig(server);
    writer = new Writer(kc, 'lvs-agent/director');
  });
  afterAll(async () => {
    writer.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('patch answers the written object; patchUnread answers nothing, drains the body and reuses the connection', async () => {
    const big = { metadata: { name: 'director-0001', resourceVersion: '42' }, spec: { director: Array.from({ length: 2000 }, (_, i) => ({ id: `ns/vs-${i}` })) } };
    reply = answer(200, JSON.stringify(big));
    const written = await writer.patch<{ metadata: { resourceVersion: string } }>(NODEPLANS, { name: 'director-0001' }, { status: { observedGeneration: 3 } }, 'status');
    expect(written.metadata.resourceVersion).toBe('42');
    // A body that is not JSON would throw if it were parsed: unread, it cannot.
    reply = answer(200, '{"kind":"NodePlan", truncated');
    await expect(writer.patchUnread(NODEPLANS, { name: 'director-0001' }, { status: { observedGeneration: 4 } }, 'status')).resolves.toBeUndefined();
    reply = answer(200, JSON.stringify(big));
    await expect(writer.patchUnread(NODEPLANS, { name: 'director-0002' }, { status: { observedGeneration: 5 } }, 'status')).resolves.toBeUndefined();
    expect(seen.map((s) => [s.method, s.url, s.type, JSON.parse(s.body)])).toEqual([
      ['PATCH', '/apis/lvs.operator.dev/v1alpha1/nodeplans/director-0001/status?fieldManager=lvs-agent%2Fdirector', 'application/merge-patch+json', { status: { observedGeneration: 3 } }],
      ['PATCH', '/apis/lvs.operator.dev/v1alpha1/nodeplans/director-0001/status?fieldManager=lvs-agent%2Fdirector', 'application/merge-patch+json', { status: { observedGeneration: 4 } }],
      ['PATCH', '/apis/lvs.operator.dev/v1alpha1/nodeplans/director-0002/status?fieldManager=lvs-agent%2Fdirector', 'application/merge-patch+json', { status: { observedGeneration: 5 } }],
    ]);
    // Drained answers hand their connection back: all three went over one.
    expect(new Set(seen.map((s) => s.socket)).size).toBe(1);
  });

  it('a refused patchUnread rejects with the API server\'s message and code', async () => {
    reply = answer(422, JSON.stringify({ kind: 'Status', code: 422, reason: 'Invalid', message: 'NodePlan.lvs.operator.dev "director-0001" is invalid: status.observedGeneration: Invalid value: -1' }));
    await expect(writer.patchUnread(NODEPLANS, { name: 'director-0001' }, { status: { observedGeneration: -1 } }, 'status')).rejects.toMatchObject({
      code: 422, message: expect.stringContaining('status.observedGeneration: Invalid value: -1'),
    });
  });
});
