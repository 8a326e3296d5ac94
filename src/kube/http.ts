/**
 * A small raw JSON client over a KubeConfig (its TLS and auth via `applyToHTTPSOptions`, so exec and
 * token-file credentials refresh as in client-node), used where the generated clients do not fit: generic
 * list by path (core, apps and custom resources alike, returned as the server's JSON without client-node's
 * Date conversion) and the watch stream, which needs abort at any moment and the error body of non-200
 * responses (client-node's Watch keeps only the status text).
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { apiError } from './errors.ts';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  /** Serialised as JSON. */
  body?: unknown;
  contentType?: string;
  /** Whole-request timeout (default 60 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface StreamOptions {
  query?: Query;
  signal: AbortSignal;
  /** Called for every non-empty line of the response body. A throw ends the stream with that error. */
  onLine: (line: string) => void;
  /** Called on every chunk of bytes (the watchdog's heartbeat), including before the first full line. */
  onData?: () => void;
}

export class KubeHttp {
  readonly server: string;
  private readonly kc: KubeConfig;

  constructor(kc: KubeConfig) {
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new Error('kubeconfig has no current cluster with a server');
    this.kc = kc;
    this.server = server.replace(/\/+$/, '');
  }

  private url(path: string, query?: Query): URL {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  private async options(method: string, headers: Record<string, string>, signal: AbortSignal): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = { method, headers: { Accept: 'application/json', ...headers } };
    await this.kc.applyToHTTPSOptions(opts);
    opts.signal = signal;
    return opts;
  }

  /** One JSON request; throws ApiException (code, Status body) on a non-2xx answer. */
  async json<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const signals = [AbortSignal.timeout(o.timeoutMs ?? 60_000)];
    if (o.signal) signals.push(o.signal);
    const signal = AbortSignal.any(signals);
    const data = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = {};
    if (data !== undefined) headers['Content-Type'] = o.contentType ?? 'application/json';
    const url = this.url(path, o.query);
    const opts = await this.options(method, headers, signal);
    const text = await new Promise<{ status: number; body: string; headers: Record<string, string> }>((resolve, reject) => {
      const req = (url.protocol === 'http:' ? http : https).request(url, opts, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: flatHeaders(res.headers) }));
        res.on('error', reject);
      });
      req.on('error', (e) => reject(signal.aborted && signal.reason instanceof Error ? signal.reason : e));
      req.end(data);
    });
    if (text.status < 200 || text.status >= 300) throw apiError(text.status, text.body, text.headers);
    return (text.body ? JSON.parse(text.body) : undefined) as T;
  }

  /**
   * A streaming GET (a watch): resolves when the server ends the response, rejects with ApiException on a
   * non-200 answer and with the network error (or the signal's reason) when the stream breaks.
   */
  async stream(path: string, o: StreamOptions): Promise<void> {
    const url = this.url(path, o.query);
    const opts = await this.options('GET', {}, o.signal);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown): void => {
        if (settled) return;
        settled = true;
        const reason: unknown = o.signal.aborted ? o.signal.reason : undefined;
        reject(reason instanceof Error ? reason : e);
        req.destroy();
      };
      const req = (url.protocol === 'http:' ? http : https).request(url, opts, (res) => {
        res.setEncoding('utf8');
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          let body = '';
          res.on('data', (d: string) => (body += d));
          res.on('end', () => fail(apiError(status, body, flatHeaders(res.headers))));
          res.on('error', fail);
          return;
        }
        let buf = '';
        res.on('data', (d: string) => {
          if (settled) return;
          o.onData?.();
          buf += d;
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (!line) continue;
            try {
              o.onLine(line);
            } catch (e) {
              fail(e);
              return;
            }
            if (settled) return;
          }
        });
        res.on('end', () => {
          if (settled) return;
          const line = buf.trim();
          if (line) {
            try {
              o.onLine(line);
            } catch (e) {
              fail(e);
              return;
            }
          }
          settled = true;
          resolve();
        });
        res.on('error', fail);
        res.on('close', () => {
          if (!res.complete) fail(new Error('watch stream closed before its end'));
        });
      });
      req.on('error', fail);
      req.end();
    });
  }
}

function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}
