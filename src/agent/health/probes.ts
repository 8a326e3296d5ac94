import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { HealthTarget, ProbeResult } from './types.ts';

const USER_AGENT = 'lvs-operator-healthcheck';

/** Port actually checked: the check's own port, else the realserver's. */
export function checkPort(target: HealthTarget): number {
  return target.check.port ?? target.port;
}

/** "10.0.0.2:80" / "[2001:db8::2]:80", as people read addresses. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** TCP_CHECK: a completed handshake is healthy; the socket is closed at once. */
export function tcpProbe(target: HealthTarget, signal: AbortSignal): Promise<ProbeResult> {
  const port = checkPort(target);
  return new Promise((resolve) => {
    if (signal.aborted) return resolve({ ok: false, reason: 'aborted' });
    const socket = net.connect({ host: target.address, port });
    const finish = (result: ProbeResult): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish({ ok: false, reason: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish({ ok: true, reason: `connected to ${hostPort(target.address, port)}` }));
    // `on`, not `once`: a destroyed socket may still report a late error, which must not go uncaught.
    socket.on('error', (err) => finish({ ok: false, reason: err.message }));
  });
}

/** HTTP_GET / SSL_GET: the status code decides; the body is never read. Certificates are not verified. */
export function httpProbe(target: HealthTarget, signal: AbortSignal): Promise<ProbeResult> {
  const { check } = target;
  const expected = check.expectedStatuses?.length ? check.expectedStatuses : [200];
  // Without an explicit host, node derives Host from address and port (bracketing IPv6 literals).
  const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept: '*/*', connection: 'close' };
  if (check.host) headers.host = check.host;
  const options: http.RequestOptions = {
    host: target.address,
    port: checkPort(target),
    path: check.path ?? '/',
    method: 'GET',
    headers,
    agent: false, // one connection per check, nothing pooled to leak between checks
    signal,
  };
  return new Promise((resolve) => {
    const req = check.type === 'HTTPS' ? https.request({ ...options, rejectUnauthorized: false }) : http.request(options);
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(result);
    };
    req.on('response', (res) => {
      res.on('error', () => undefined); // destroyed below; late errors are irrelevant
      const status = res.statusCode ?? 0;
      res.destroy();
      finish(expected.includes(status)
        ? { ok: true, reason: `HTTP ${status}` }
        : { ok: false, reason: `HTTP ${status} (expected ${expected.join(', ')})` });
    });
    req.on('error', (err) => finish({ ok: false, reason: err.message }));
    req.end();
  });
}

/** The probe for the target's check type; None is always healthy. */
export function defaultProbe(target: HealthTarget, signal: AbortSignal): Promise<ProbeResult> {
  switch (target.check.type) {
    case 'TCP':
      return tcpProbe(target, signal);
    case 'HTTP':
    case 'HTTPS':
      return httpProbe(target, signal);
    case 'None':
      return Promise.resolve({ ok: true, reason: 'no health check' });
  }
}
