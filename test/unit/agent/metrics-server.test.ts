import http from 'node:http';
import { Gauge, Registry } from 'prom-client';
import { createLvsMetrics } from '../../../src/agent/metrics/registry.ts';
import { parseListenAddress, startMetricsServer, type MetricsServer } from '../../../src/agent/metrics/server.ts';
import { createLogger } from '../../../src/util/log.ts';

const log = createLogger('test', 'silent');

interface Reply { status: number; type: string | undefined; body: string; headers: http.IncomingHttpHeaders }

function request(port: number, path: string, method = 'GET', agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics server', () => {
  let healthy = true;
  let ready = true;
  let server: MetricsServer;
  const metrics = createLvsMetrics({ readSnapshot: async () => [], log });

  beforeAll(async () => {
    server = await startMetricsServer({
      port: 0, host: '127.0.0.1', registry: metrics.registry, healthz: () => healthy, readyz: () => ready, log,
    });
  });
  afterAll(() => server.close());

  it('listens on an ephemeral port', () => {
    expect(server.port).toBeGreaterThan(0);
  });

  it('serves /metrics in the registry content type', async () => {
    metrics.managedServices.set(2);
    const r = await request(server.port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.body).toContain('\nlvs_agent_managed_services 2\n');
    expect(r.body).toContain('process_resident_memory_bytes');
  });

  it('answers /healthz and /readyz from their callbacks', async () => {
    expect(await request(server.port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await request(server.port, '/readyz?verbose')).toMatchObject({ status: 200, body: 'ok\n' });
    healthy = false;
    ready = false;
    expect(await request(server.port, '/healthz')).toMatchObject({ status: 503, body: 'unhealthy\n' });
    expect(await request(server.port, '/readyz')).toMatchObject({ status: 503, body: 'not ready\n' });
    healthy = true;
    ready = true;
  });

  it('answers HEAD without a body, 404 for other paths and 405 for other methods', async () => {
    const head = await request(server.port, '/metrics', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await request(server.port, '/nope')).status).toBe(404);
    const post = await request(server.port, '/metrics', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });
});

describe('metrics server edge cases', () => {
  it('returns 500 when the registry cannot render, and treats a throwing health check as failing', async () => {
    const registry = new Registry();
    new Gauge({ name: 'broken', help: 'x', registers: [registry], collect: () => { throw new Error('collector bug'); } });
    const server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry, healthz: () => { throw new Error('x'); }, log });
    try {
      expect(await request(server.port, '/metrics')).toMatchObject({ status: 500, body: 'internal error\n' });
      expect((await request(server.port, '/healthz')).status).toBe(503);
      expect((await request(server.port, '/readyz')).status).toBe(503); // readyz defaults to healthz
    } finally {
      await server.close();
    }
  });

  it('closes promptly while a scraper holds a keep-alive connection', async () => {
    const server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: new Registry(), log });
    const agent = new http.Agent({ keepAlive: true });
    try {
      expect((await request(server.port, '/healthz', 'GET', agent)).status).toBe(200);
      const started = Date.now();
      await server.close();
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      agent.destroy();
    }
  });

  it('rejects when the port is taken', async () => {
    const first = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: new Registry(), log });
    try {
      await expect(startMetricsServer({ port: first.port, host: '127.0.0.1', registry: new Registry(), log }))
        .rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});

describe('parseListenAddress', () => {
  it.each([
    ['0.0.0.0:9120', { host: '0.0.0.0', port: 9120 }],
    [':8080', { host: '0.0.0.0', port: 8080 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:8081', { host: '::1', port: 8081 }],
  ])('%s', (text, want) => expect(parseListenAddress(text)).toEqual(want));
  it.each(['9120', 'localhost:http', 'h:70000'])('rejects %s', (text) => expect(() => parseListenAddress(text)).toThrow(`invalid listen address "${text}"`));
});
