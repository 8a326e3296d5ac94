import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HealthChecker } from '../../../src/agent/health/checker.ts';
import { defaultProbe, httpProbe, tcpProbe } from '../../../src/agent/health/probes.ts';
import type { HealthCheckSpec, HealthTarget } from '../../../src/agent/health/types.ts';
import { createLogger } from '../../../src/util/log.ts';

// Real probes against real servers on loopback. Every server is closed with close(), which waits for its
// connections: a socket the probes leak would make afterAll time out.

function target(address: string, port: number, check: Partial<HealthCheckSpec>): HealthTarget {
  return { id: 't', address, port, check: { type: 'TCP', intervalSeconds: 1, timeoutSeconds: 1, rise: 1, fall: 1, ...check } };
}

async function listen<S extends net.Server>(server: S, host = '127.0.0.1'): Promise<{ server: S; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return { server, port: (server.address() as net.AddressInfo).port };
}

const close = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

async function closedPort(): Promise<number> {
  const { server, port } = await listen(net.createServer());
  await close(server);
  return port;
}

/** Probe with a 1s timeout, like the checker would run it. */
const probe = (t: HealthTarget) => defaultProbe(t, AbortSignal.timeout(1000));

interface Seen { path?: string; host?: string; ua?: string }

function statusServer(seen: Seen, status: () => number): http.RequestListener {
  return (req, res) => {
    seen.path = req.url;
    seen.host = req.headers.host;
    seen.ua = req.headers['user-agent'];
    res.writeHead(status(), { 'content-type': 'text/plain' });
    res.end('body that nobody reads\n'.repeat(1000));
  };
}

describe('tcp probe', () => {
  let server: net.Server;
  let port: number;
  beforeAll(async () => ({ server, port } = await listen(net.createServer((s) => s.on('error', () => undefined)))));
  afterAll(() => close(server));

  it('is healthy when the handshake completes', async () => {
    expect(await probe(target('127.0.0.1', port, {}))).toEqual({ ok: true, reason: `connected to 127.0.0.1:${port}` });
  });

  it('checks check.port instead of the realserver port', async () => {
    expect((await probe(target('127.0.0.1', 1, { port }))).ok).toBe(true);
  });

  it('reports a refused connection', async () => {
    const p = await closedPort();
    expect(await probe(target('127.0.0.1', p, {}))).toEqual({ ok: false, reason: `connect ECONNREFUSED 127.0.0.1:${p}` });
  });

  it('resolves at once when aborted before it starts', async () => {
    expect(await tcpProbe(target('127.0.0.1', port, {}), AbortSignal.abort())).toEqual({ ok: false, reason: 'aborted' });
  });

  it('works over IPv6 (TCP and HTTP) when the host has ::1', async () => {
    let v6: { server: net.Server; port: number };
    try {
      v6 = await listen(net.createServer(), '::1');
    } catch {
      console.warn('skipped: no ::1 on this host');
      return;
    }
    try {
      expect(await probe(target('::1', v6.port, {}))).toEqual({ ok: true, reason: `connected to [::1]:${v6.port}` });
      const p = await closedPort();
      expect((await probe(target('::1', p, {}))).reason).toBe(`connect ECONNREFUSED ::1:${p}`);
      const seen: Seen = {};
      const web = await listen(http.createServer(statusServer(seen, () => 200)), '::1');
      try {
        expect(await probe(target('::1', web.port, { type: 'HTTP' }))).toEqual({ ok: true, reason: 'HTTP 200' });
        expect(seen.host).toBe(`[::1]:${web.port}`);
      } finally {
        await close(web.server);
      }
    } finally {
      await close(v6.server);
    }
  });
});

describe('http probe', () => {
  const seen: Seen = {};
  let status = 200;
  let server: http.Server;
  let port: number;
  beforeAll(async () => ({ server, port } = await listen(http.createServer(statusServer(seen, () => status)))));
  afterAll(() => close(server));
  beforeEach(() => {
    status = 200;
  });

  it('GETs / with the address as Host by default and accepts 200', async () => {
    expect(await probe(target('127.0.0.1', port, { type: 'HTTP' }))).toEqual({ ok: true, reason: 'HTTP 200' });
    expect(seen).toEqual({ path: '/', host: `127.0.0.1:${port}`, ua: 'lvs-operator-healthcheck' });
  });

  it('sends path and Host of the check', async () => {
    await probe(target('127.0.0.1', port, { type: 'HTTP', path: '/healthz?full=1', host: 'shop.example.com' }));
    expect(seen).toMatchObject({ path: '/healthz?full=1', host: 'shop.example.com' });
  });

  it('fails on an unexpected status and says what it expected', async () => {
    status = 503;
    expect(await probe(target('127.0.0.1', port, { type: 'HTTP' }))).toEqual({ ok: false, reason: 'HTTP 503 (expected 200)' });
    expect(await probe(target('127.0.0.1', port, { type: 'HTTP', expectedStatuses: [200, 204] })))
      .toEqual({ ok: false, reason: 'HTTP 503 (expected 200, 204)' });
    expect(await probe(target('127.0.0.1', port, { type: 'HTTP', expectedStatuses: [503] }))).toEqual({ ok: true, reason: 'HTTP 503' });
  });

  it('reports a refused connection', async () => {
    const p = await closedPort();
    expect(await probe(target('127.0.0.1', p, { type: 'HTTP' }))).toEqual({ ok: false, reason: `connect ECONNREFUSED 127.0.0.1:${p}` });
  });

  it('fails when the server closes without an answer', async () => {
    const { server: rude, port: p } = await listen(net.createServer((s) => s.destroy()));
    try {
      const r = await probe(target('127.0.0.1', p, { type: 'HTTP' }));
      expect(r.ok).toBe(false);
      expect(r.reason).toMatch(/socket hang up|ECONNRESET/);
    } finally {
      await close(rude);
    }
  });
});

describe('a server that never answers', () => {
  let server: http.Server;
  let port: number;
  // Accepts the connection and the request, then stays silent.
  beforeAll(async () => ({ server, port } = await listen(http.createServer(() => undefined))));
  afterAll(() => close(server));

  it('makes the probe resolve once its signal aborts, releasing the socket', async () => {
    const controller = new AbortController();
    const pending = httpProbe(target('127.0.0.1', port, { type: 'HTTP' }), controller.signal);
    setTimeout(() => controller.abort(), 100);
    expect((await pending).ok).toBe(false);
  });

  it('is marked unhealthy by the checker with "timeout after 1s"', async () => {
    const checker = new HealthChecker({ random: () => 0, log: createLogger('test', 'silent') });
    const change = new Promise<[string, boolean, string]>((resolve) => checker.once('change', (...args) => resolve(args)));
    const started = Date.now();
    checker.setTargets([{ ...target('127.0.0.1', port, { type: 'HTTP' }), id: 'ns/vs|127.0.0.1' }]);
    expect(await change).toEqual(['ns/vs|127.0.0.1', false, 'timeout after 1s']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
    checker.stop();
  });
});

const openssl = (() => {
  try {
    return execFileSync('which', ['openssl'], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
})();

// The HTTPS test needs a certificate; without the openssl CLI there is no way to make one here.
(openssl ? describe : describe.skip)('https probe (self-signed certificate from openssl)', () => {
  const seen: Seen = {};
  let server: https.Server;
  let port: number;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvs-health-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(openssl, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key,
      '-out', cert, '-days', '1', '-subj', '/CN=not-the-address.invalid'], { stdio: 'ignore' });
    const tls = { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
    ({ server, port } = await listen(https.createServer(tls, statusServer(seen, () => 200))));
  });
  afterAll(async () => {
    await close(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a self-signed certificate for another name', async () => {
    expect(await probe(target('127.0.0.1', port, { type: 'HTTPS', path: '/tls' }))).toEqual({ ok: true, reason: 'HTTP 200' });
    expect(seen).toMatchObject({ path: '/tls', host: `127.0.0.1:${port}` });
  });

  it('sends the Host of the check over TLS', async () => {
    expect((await probe(target('127.0.0.1', port, { type: 'HTTPS', host: 'shop.example.com' }))).ok).toBe(true);
    expect(seen.host).toBe('shop.example.com');
  });

  it('fails HTTP against a TLS port', async () => {
    const r = await probe(target('127.0.0.1', port, { type: 'HTTP' }));
    expect(r.ok).toBe(false);
  });
});
