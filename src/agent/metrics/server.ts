import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../../util/log.ts';

export interface MetricsServerOptions {
  /** 0 picks an ephemeral port (see the handle's `port`). */
  port: number;
  /** Defaults to all addresses (:: or 0.0.0.0). */
  host?: string;
  registry: Registry;
  /** Liveness for /healthz; always live when absent. */
  healthz?: () => boolean;
  /** Readiness for /readyz; defaults to healthz. */
  readyz?: () => boolean;
  log?: Logger;
}

export interface MetricsServer {
  /** The bound port, useful when asked for port 0. */
  readonly port: number;
  /** Stops listening and drops idle keep-alive connections (Prometheus keeps them open). */
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

/** Serves /metrics, /healthz and /readyz; resolves once listening. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const log = options.log ?? createLogger('metrics');
  const healthz = options.healthz ?? (() => true);
  const readyz = options.readyz ?? healthz;
  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'metrics request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': TEXT });
      res.end('internal error\n');
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return reply(405, TEXT, 'method not allowed\n');
    }
    switch (path) {
      case '/metrics':
        return reply(200, options.registry.contentType, await options.registry.metrics());
      case '/healthz':
        return probe(healthz) ? reply(200, TEXT, 'ok\n') : reply(503, TEXT, 'unhealthy\n');
      case '/readyz':
        return probe(readyz) ? reply(200, TEXT, 'ok\n') : reply(503, TEXT, 'not ready\n');
      default:
        return reply(404, TEXT, 'not found\n');
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'metrics server error'));
  const { port } = server.address() as AddressInfo;
  log.info({ host: options.host, port }, 'metrics server listening');

  return {
    port,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    }),
  };
}

/** A throwing check counts as failing rather than as a 500. */
function probe(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces) as listen options; a bad port is an error, not port 0. */
export function parseListenAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const port = Number(address.slice(at + 1));
  if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid listen address "${address}": want HOST:PORT`);
  return { host: address.slice(0, at).replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}
